"""__NAME__: a Tresor provider plugin in Python (componentize-py).

Each secret is one file in the directory the mount grants (`/data` inside
the sandbox): a JSON line with its version and metadata, then the value
sealed by the host (`host.seal`), never in plaintext.

Start from here: replace the file layout with your backend, keep the rules
of wit/plugin.wit (errors say what to do next and never hold a value), and
check it with `tresor plugin check __NAME__.wasm`.
"""

import json
import os

import wit_world
from componentize_py_types import Err
from wit_world.exports import provider
from wit_world.imports import host, types

DATA = "/data"
CONFIG_KEYS = []


def file_of(path):
    return f"{DATA}/{path.encode().hex()}.secret"


def path_of(name):
    if not name.endswith(".secret"):
        return None
    try:
        return bytes.fromhex(name[: -len(".secret")]).decode()
    except ValueError:
        return None


def context(path, version):
    return f"{path}\0{version}".encode()


def unsupported(what):
    return Err(types.Error_Unsupported(f"__NAME__ does not support {what}"))


def load(path):
    try:
        with open(file_of(path), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    header, _, sealed = data.partition(b"\n")
    try:
        meta = json.loads(header)
        return meta["version"], [tuple(kv) for kv in meta["metadata"]], sealed
    except (ValueError, KeyError, TypeError):
        raise Err(types.Error_Internal(f"the file of `{path}` is damaged"))


class Provider(wit_world.exports.Provider):
    def configure(self, config):
        for key, _ in config:
            if key not in CONFIG_KEYS:
                raise Err(types.Error_InvalidInput(f"unknown config key `{key}`; this plugin reads {CONFIG_KEYS}"))
        if not os.path.isdir(DATA):
            raise Err(types.Error_InvalidInput(f"there is no {DATA}: grant the mount a `directory`"))

    def get_capabilities(self):
        return provider.Capabilities(
            writable=True, versioned=False, check_and_set=False, deletable=True, listable=True, soft_delete=False
        )

    def get(self, path, version):
        stored = load(path)
        if stored is None:
            raise Err(types.Error_NotFound(f"no secret `{path}`"))
        current, metadata, sealed = stored
        if version is not None and version != str(current):
            raise Err(types.Error_NotFound(f"`{path}` keeps only its latest version, {current}"))
        value = host.unseal(sealed, context(path, current))
        return types.Secret(value=value, version=str(current), created_ms=0, metadata=metadata, deletion_ms=0)

    def put(self, path, value, metadata, expected_version):
        stored = load(path)
        version = 1 if stored is None else stored[0] + 1
        header = json.dumps({"version": version, "metadata": [list(kv) for kv in metadata]}).encode()
        sealed = host.seal(value, context(path, version))
        # A temporary file renamed over the old one: a crash never leaves half a secret.
        tmp = file_of(path) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(header + b"\n" + sealed)
        os.replace(tmp, file_of(path))
        return str(version)

    def delete(self, path):
        try:
            os.remove(file_of(path))
        except FileNotFoundError:
            raise Err(types.Error_NotFound(f"no secret `{path}`"))

    def delete_versions(self, path, versions, destroy):
        raise unsupported("deleting single versions")

    def undelete_versions(self, path, versions):
        raise unsupported("restoring versions")

    def list_secrets(self, prefix):
        paths = (path_of(name) for name in os.listdir(DATA))
        return sorted(p for p in paths if p is not None and p.startswith(prefix))

    def versions(self, path):
        raise unsupported("version history")

    def get_settings(self, path):
        raise unsupported("version settings")

    def set_settings(self, path, settings):
        raise unsupported("version settings")

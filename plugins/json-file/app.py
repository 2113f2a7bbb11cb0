"""The JSON-file provider, written in Python: versioned secrets kept as one
JSON document per secret in the directory the host grants the mount (`/data`
inside the sandbox). See store.py for the layout and how writes stay atomic
and safe with several instances at once.

Values are sealed by the host (`host.seal`, bound to `"<path>\\0<version>"`)
before they are written, and unsealed by the host when read: the plugin never
sees a key and the directory never holds a plaintext value.

Mount configuration:

| key            | meaning                                                      |
|----------------|--------------------------------------------------------------|
| `max_versions` | versions each secret keeps unless its own or the mount's settings say otherwise (default 10, as Vault) |

Any other key is refused when the mount starts, naming it.
"""

import difflib
import functools
import os

import wit_world
from componentize_py_types import Err
from wit_world.exports import provider
from wit_world.imports import host, types

import store

DATA_DIR = "/data"
CONFIG_KEYS = ["max_versions"]


def refuse_unknown_keys(config):
    """`invalid-input` naming the first unknown key (never a value: values
    can be credentials), what it may be a misspelling of, and every key this
    plugin accepts."""
    for key, _ in config:
        if key in CONFIG_KEYS:
            continue
        close = difflib.get_close_matches(key, CONFIG_KEYS, n=1, cutoff=0.6)
        guess = f" (did you mean `{close[0]}`?)" if close else ""
        raise store.invalid_input(
            f"unknown config key `{key}`{guess}: the config keys this plugin accepts are "
            f"{', '.join(CONFIG_KEYS)}; fix the mount's config"
        )


def parse_max_versions(config):
    raw = [v for k, v in config if k == "max_versions"]
    if not raw:
        return 0
    text = raw[-1].strip()
    if not text.isdigit() or int(text) > 2**32 - 1:
        raise store.invalid_input(
            "config key `max_versions` must be a whole number of versions (0: Vault's default of 10): "
            "fix it in the mount's config"
        )
    return int(text)


def guarded(op):
    """Turns an unexpected exception of the export `op` into `internal`, so
    a bug fails its request with a message instead of trapping the instance.
    The message names the exception's type (an OSError also its errno), never
    its text otherwise: that could hold a value."""

    def wrap(method):
        @functools.wraps(method)
        def call(self, *args):
            try:
                return method(self, *args)
            except Err:
                raise
            except OSError as e:
                raise store.internal(
                    f"{op} failed in the data directory: {e.strerror or type(e).__name__} (errno {e.errno}); "
                    "check that the mount's directory grant exists and is writable"
                )
            except Exception as e:  # noqa: BLE001 - the boundary of the plugin
                host.log(host.LogLevel.ERROR, f"json-file: unexpected {type(e).__name__} in {op}")
                raise store.internal(
                    f"the json-file provider failed unexpectedly in {op} ({type(e).__name__}): "
                    "this is a bug, report it with the host's log"
                )

        return call

    return wrap


# The store of this instance, made by `configure`. Module state, not an
# attribute: the bindings may make a new `Provider` for every call.
_store = None


def need_store():
    if _store is None:
        raise store.internal("the json-file provider was called before configure")
    return _store


class Provider(wit_world.exports.Provider):

    @guarded("configure")
    def configure(self, config):
        refuse_unknown_keys(config)
        max_versions = parse_max_versions(config)
        if not os.path.isdir(DATA_DIR):
            raise store.invalid_input(
                f"the json-file provider keeps its secrets in a data directory at {DATA_DIR}, and the mount "
                "has none: grant the mount a directory, e.g. grants = { directory = \"data/json\" }"
            )
        global _store
        _store = store.Store(DATA_DIR, max_versions)
        host.log(host.LogLevel.INFO, f"json-file provider ready in {DATA_DIR} (max_versions={max_versions or 'default'})")
        return None

    def get_capabilities(self):
        return provider.Capabilities(
            writable=True,
            versioned=True,
            check_and_set=True,
            deletable=True,
            listable=True,
            soft_delete=True,
        )

    @guarded("get")
    def get(self, path, version):
        return need_store().get(path, version)

    @guarded("put")
    def put(self, path, value, metadata, expected_version):
        if not path:
            raise store.invalid_input("the secret path is empty: give a path such as `app/db-password`")
        return need_store().put(path, value, metadata, expected_version)

    @guarded("delete")
    def delete(self, path):
        need_store().delete(path)

    @guarded("delete-versions")
    def delete_versions(self, path, versions, destroy):
        need_store().delete_versions(path, versions, destroy)

    @guarded("undelete-versions")
    def undelete_versions(self, path, versions):
        need_store().undelete_versions(path, versions)

    @guarded("list-secrets")
    def list_secrets(self, prefix):
        return need_store().list(prefix)

    @guarded("versions")
    def versions(self, path):
        return need_store().versions(path)

    @guarded("get-settings")
    def get_settings(self, path):
        return need_store().get_settings(path)

    @guarded("set-settings")
    def set_settings(self, path, settings):
        need_store().set_settings(path, settings)

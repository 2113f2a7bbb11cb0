"""A deliberately hostile provider written in Python, to test that the host's
sandbox holds for a Python interpreter as it does for Rust plugins
(tests/plugins/hostile). `get(path, _)` does what `path` says:

| path               | behaviour                                                   |
|--------------------|-------------------------------------------------------------|
| `ok`               | value `fine`, version `1`                                   |
| `file:<abs path>`  | reads that file; its bytes are the value                    |
| `file-hex:<hex>`   | the same, for a path given in hex (to smuggle `..` past the host's path check) |
| `env:<NAME>`       | reads that environment variable                             |
| `net:<host:port>`  | opens a TCP connection and writes `hello`; value `connected` |
| `loop`             | spins forever (the host must interrupt it)                  |
| `alloc`            | allocates and touches memory without bound                  |
| `trap`             | aborts the interpreter, so the instance traps               |
| anything else      | `not-found`                                                 |

Every other operation is `unsupported`.
"""

import os
import socket

import wit_world
from wit_world.exports import provider
from wit_world.imports import types
from componentize_py_types import Err


def _secret(value):
    return types.Secret(value=bytes(value), version="1", created_ms=0, metadata=[], deletion_ms=0)


def _unsupported():
    return Err(types.Error_Unsupported("the hostile Python test plugin only implements get"))


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return _secret(f.read())
    except OSError as e:
        raise Err(types.Error_Internal(f"open failed: {e}"))


def _read_env(name):
    value = os.environ.get(name)
    if value is None:
        raise Err(types.Error_NotFound(f"env var `{name}` is not visible"))
    return _secret(value.encode())


def _connect(addr):
    # A plain socket and connect, not `socket.create_connection`: that one
    # encodes the host name with the `idna` codec, which the component only
    # has when the app imports `encodings.idna` at build time (else it raises
    # LookupError, which would trap the call instead of failing it).
    host, _, port = addr.rpartition(":")
    try:
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except Exception as e:  # noqa: BLE001 - report whatever the platform says
        raise Err(types.Error_Unavailable(f"no socket: {type(e).__name__}: {e}"))
    try:
        conn.connect((host, int(port)))
        conn.sendall(b"hello")
    except Exception as e:  # noqa: BLE001
        raise Err(types.Error_Unavailable(f"connect failed: {type(e).__name__}: {e}"))
    finally:
        conn.close()
    return _secret(b"connected")


def _spin():
    counter = 0
    while True:
        counter += 1


def _hoard():
    blocks = []
    while True:
        # 1 MiB of non-zero bytes, so every page is touched; never freed.
        blocks.append(b"\xa5" * (1 << 20))


class Provider(wit_world.exports.Provider):
    def configure(self, config):
        return None

    def get_capabilities(self):
        return provider.Capabilities(
            writable=False, versioned=False, check_and_set=False,
            deletable=False, listable=False, soft_delete=False,
        )

    def get(self, path, version):
        if path == "ok":
            return _secret(b"fine")
        if path == "loop":
            _spin()
        if path == "alloc":
            _hoard()
        if path == "trap":
            # Not an `Err`: the bindings cannot turn it into an answer, so
            # the call traps.
            os.abort()
        if path.startswith("file-hex:"):
            try:
                file = bytes.fromhex(path[len("file-hex:"):]).decode()
            except ValueError:
                raise Err(types.Error_InvalidInput("file-hex: wants an even number of hex digits"))
            return _read_file(file)
        if path.startswith("file:"):
            return _read_file(path[len("file:"):])
        if path.startswith("env:"):
            return _read_env(path[len("env:"):])
        if path.startswith("net:"):
            return _connect(path[len("net:"):])
        raise Err(types.Error_NotFound(f"the hostile Python plugin has no behaviour `{path}`"))

    def put(self, path, value, metadata, expected_version):
        raise _unsupported()

    def delete(self, path):
        raise _unsupported()

    def delete_versions(self, path, versions, destroy):
        raise _unsupported()

    def undelete_versions(self, path, versions):
        raise _unsupported()

    def list_secrets(self, prefix):
        raise _unsupported()

    def versions(self, path):
        raise _unsupported()

    def get_settings(self, path):
        raise _unsupported()

    def set_settings(self, path, settings):
        raise _unsupported()

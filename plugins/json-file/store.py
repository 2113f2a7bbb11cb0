"""The on-disk store of the JSON-file provider: one JSON document per secret,
revised copy-on-write, in the directory the host grants the mount (`/data`).

Layout::

    /data/
      settings.json            the mount's settings (absent: none set)
      secrets/
        <hex of the path>/     one directory per secret
          <rev>.json           revision <rev> of the secret's document; the
                               highest revision present is the current one
          tmp-<random>         a revision being written (ignored by reads)
        <chunk>.d/...          a path whose hex is longer than 200 digits is
                               spread over nested `<chunk>.d` directories
      trash/<random>/          a deleted secret being removed (ignored)

A secret's document holds all its versions (their values sealed by the host,
bound to `"<path>\\0<version>"`), their metadata and flags, and the secret's
own settings. It is never modified in place: a change writes the whole new
document to a `tmp-*` file, syncs it, and publishes it with `os.link` as
revision `<rev + 1>.json`. The link fails when another writer (another
instance of the plugin) published that revision first, and the change then
starts over from the newer document, so concurrent writes never lose one
another and check-and-set holds across instances. Older revisions are
removed once the new one is published. A crash leaves at worst a `tmp-*`
file or an older revision beside the current one; reads never see a
half-written document.

Deleting a secret renames its directory into `trash/` in one step. A writer
creates its `tmp-*` file in the secret's directory before it reads the
current revision, so when a delete renames the directory away mid-write, the
link fails (the `tmp-*` name no longer resolves) and the write starts over in
a fresh directory: a version number read before a delete is never published
after it.
"""

import base64
import json
import os
import re
import time

from componentize_py_types import Err
from wit_world.imports import host, types

SECRETS_DIR = "secrets"
TRASH_DIR = "trash"
SETTINGS_FILE = "settings.json"
TMP_PREFIX = "tmp-"
CONTINUED = ".d"
HEX_CHUNK = 200
DOCUMENT_FORMAT = 1
# How many versions a secret keeps when neither it nor the mount says: Vault's default.
DEFAULT_MAX_VERSIONS = 10
# How many times a change starts over after losing a race to another writer.
MAX_ATTEMPTS = 64
# A `tmp-*` file older than this (ms) was left by a crash and may be removed.
STALE_TMP_MS = 3600 * 1000

_REVISION = re.compile(r"[1-9][0-9]*\.json")
_VERSION = re.compile(r"[1-9][0-9]*")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


def not_found(message):
    return Err(types.Error_NotFound(message))


def invalid_input(message):
    return Err(types.Error_InvalidInput(message))


def conflict(message):
    return Err(types.Error_Conflict(message))


def unavailable(message):
    return Err(types.Error_Unavailable(message))


def internal(message):
    return Err(types.Error_Internal(message))


def no_such_secret(path):
    return not_found(f"no secret at `{path}`")


def io_error(op, path, e):
    """An I/O failure during `op` on `path`: names the operation, the path
    and the errno (never a value)."""
    what = f"secret `{path}`" if path else "the mount's settings"
    return internal(
        f"{op} of {what} failed in the data directory: {e.strerror or e.__class__.__name__} "
        f"(errno {e.errno}); check that the mount's directory grant exists and is writable"
    )


def now_ms():
    """Milliseconds since the Unix epoch; 0 without a clock grant."""
    return max(0, int(time.time() * 1000))


def parse_version(text):
    """A version identifier: a decimal number from 1 up, without sign or
    leading zeros. `None` for anything else."""
    if text is not None and _VERSION.fullmatch(text):
        return int(text)
    return None


def seal_context(path, n):
    """The context bound to a sealed value, so a value copied to another
    path or version fails to unseal."""
    return f"{path}\0{n}".encode()


def empty_settings():
    return {"max_versions": 0, "cas_required": False, "delete_version_after_ms": 0}


def settings_record(s):
    return {
        "max_versions": int(s.max_versions),
        "cas_required": bool(s.cas_required),
        "delete_version_after_ms": int(s.delete_version_after_ms),
    }


def settings_value(record):
    record = record or empty_settings()
    return types.Settings(
        max_versions=int(record.get("max_versions", 0)),
        cas_required=bool(record.get("cas_required", False)),
        delete_version_after_ms=int(record.get("delete_version_after_ms", 0)),
    )


def rules(secret, mount, configured_max):
    """What a write to one secret must follow: its settings over the
    mount's, as Vault combines them (the larger max-versions, the shorter
    delete-version-after)."""
    secret = secret or empty_settings()
    mount = mount or empty_settings()
    mount_max = mount["max_versions"] or configured_max
    max_versions = max(secret["max_versions"], mount_max) or DEFAULT_MAX_VERSIONS
    after = [a for a in (secret["delete_version_after_ms"], mount["delete_version_after_ms"]) if a]
    return {
        "max_versions": max_versions,
        "cas_required": secret["cas_required"] or mount["cas_required"],
        "delete_version_after_ms": min(after) if after else 0,
    }


def expired(entry):
    return entry["delete_at_ms"] != 0 and now_ms() >= entry["delete_at_ms"]


def is_missing(e):
    return isinstance(e, (FileNotFoundError, NotADirectoryError))


def random_name():
    return os.urandom(8).hex()


def sync_dir(path):
    """Flushes a directory's entries, so a new or removed name survives a
    crash. Best effort: not every platform can sync a directory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_tree(path):
    """Removes `path` and everything under it. Best effort."""
    try:
        names = os.listdir(path)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    for name in names:
        child = os.path.join(path, name)
        if os.path.isdir(child) and not os.path.islink(child):
            remove_tree(child)
        else:
            try:
                os.unlink(child)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def list_names(path):
    """The names in directory `path`, or `None` when it does not exist.

    Under WASI, listing a directory looks up every entry it returns, so a
    file that a concurrent writer removes mid-listing fails the listing
    with `FileNotFoundError`: such a listing is started over."""
    for _ in range(100):
        try:
            return os.listdir(path)
        except OSError as e:
            if not is_missing(e):
                raise
            if not os.path.isdir(path):
                return None
    return os.listdir(path)


def new_document(path):
    return {"format": DOCUMENT_FORMAT, "path": path, "latest": 0, "settings": None, "versions": []}


class Store:
    """Versioned secrets in `root`, sealed by the host. Holds no state but its
    configuration: any number of instances may work on one directory."""

    def __init__(self, root, configured_max):
        self.root = root
        self.tree = os.path.join(root, SECRETS_DIR)
        self.configured_max = configured_max

    # ----- paths -----------------------------------------------------------

    def secret_dir(self, path):
        digits = path.encode().hex()
        chunks = [digits[i:i + HEX_CHUNK] for i in range(0, len(digits), HEX_CHUNK)]
        names = [c + CONTINUED for c in chunks[:-1]] + chunks[-1:]
        return os.path.join(self.tree, *names)

    # ----- documents -------------------------------------------------------

    def load(self, directory, path, op):
        """`(rev, document)` of the current revision in `directory`:
        `(0, None)` when it holds none yet, `None` when it does not exist."""
        for _ in range(MAX_ATTEMPTS):
            try:
                names = list_names(directory)
            except OSError as e:
                raise io_error(op, path, e)
            if names is None:
                return None
            revs = [int(n[:-5]) for n in names if _REVISION.fullmatch(n)]
            if not revs:
                return (0, None)
            rev = max(revs)
            try:
                with open(os.path.join(directory, f"{rev}.json"), "rb") as f:
                    data = f.read()
            except OSError as e:
                if is_missing(e):
                    # A newer revision replaced it meanwhile: look again.
                    continue
                raise io_error(op, path, e)
            return (rev, self.parse(data, path, rev))
        raise unavailable(f"secret `{path}` kept changing while it was read: retry")

    @staticmethod
    def parse(data, path, rev):
        try:
            doc = json.loads(data)
            if doc.get("format") != DOCUMENT_FORMAT or doc.get("path") != path:
                raise ValueError("another format or path")
            for entry in doc["versions"]:
                entry["metadata"] = [(str(k), str(v)) for k, v in entry["metadata"]]
            return doc
        except (ValueError, KeyError, TypeError, AttributeError):
            host.log(host.LogLevel.ERROR, f"revision {rev} of the document of secret `{path}` is corrupt")
            raise internal(
                f"the document of secret `{path}` (revision {rev}.json) is corrupt: "
                "restore it from a backup, or delete the secret and write it again"
            )

    def current(self, path, op):
        """The current document of `path`, or `None` when it has none."""
        loaded = self.load(self.secret_dir(path), path, op)
        return loaded[1] if loaded else None

    def mount_settings(self):
        try:
            with open(os.path.join(self.root, SETTINGS_FILE), "rb") as f:
                data = f.read()
        except OSError as e:
            if is_missing(e):
                return empty_settings()
            raise io_error("reading the settings", "", e)
        try:
            record = json.loads(data)
            return {
                "max_versions": int(record["max_versions"]),
                "cas_required": bool(record["cas_required"]),
                "delete_version_after_ms": int(record["delete_version_after_ms"]),
            }
        except (ValueError, KeyError, TypeError):
            raise internal(
                f"the mount's settings ({SETTINGS_FILE} in the data directory) are damaged: "
                "set them again (set-settings on the empty path) or remove the file"
            )

    def rules_for(self, doc):
        return rules(doc["settings"], self.mount_settings(), self.configured_max)

    def make_dirs(self, directory, path, op):
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            if not isinstance(e, FileExistsError):
                raise io_error(op, path, e)

    def update(self, path, op, change, create):
        """Applies `change(doc)` to the current document of `path` and
        publishes the result as the next revision; returns what `change`
        returned. `change` returns `(result, changed)`, and may raise `Err`
        to refuse. Without `create`, a secret without a directory is
        `not-found`."""
        directory = self.secret_dir(path)
        created = False
        for _ in range(MAX_ATTEMPTS):
            # The temporary file first: it pins this incarnation of the
            # directory (see the module docs).
            tmp = os.path.join(directory, TMP_PREFIX + random_name())
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as e:
                if not is_missing(e):
                    raise io_error(op, path, e)
                if not create:
                    raise no_such_secret(path)
                self.make_dirs(directory, path, op)
                created = True
                continue
            try:
                loaded = self.load(directory, path, op)
                if loaded is None:
                    continue  # Deleted meanwhile: start over.
                rev, doc = loaded
                if doc is None:
                    doc = new_document(path)
                result, changed = change(doc)
                if not changed:
                    return result
                data = json.dumps(doc, separators=(",", ":")).encode()
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                    os.close(fd)
                    fd = None
                    os.link(tmp, os.path.join(directory, f"{rev + 1}.json"))
                except OSError as e:
                    if isinstance(e, FileExistsError) or is_missing(e):
                        # Another writer published that revision first, or the
                        # secret was deleted under us: start over.
                        continue
                    raise io_error(op, path, e)
                if not self.publish(directory, rev + 1):
                    continue
                return result
            except Err:
                if created:
                    self.remove_if_empty(directory, tmp)
                raise
            finally:
                if fd is not None:
                    os.close(fd)
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        raise unavailable(f"too many concurrent changes to secret `{path}`: retry later")

    def publish(self, directory, rev):
        """After linking revision `rev`: removes the revisions before it.
        False when a newer revision existed already (this one was published
        by a writer that read a document since replaced twice: it is
        ignored by every reader, removed here, and the change starts over)."""
        names = list_names(directory) or []
        revs = [int(n[:-5]) for n in names if _REVISION.fullmatch(n)]
        if revs and max(revs) > rev:
            try:
                os.unlink(os.path.join(directory, f"{rev}.json"))
            except OSError:
                pass
            return False
        sync_dir(directory)
        for old in revs:
            if old < rev:
                try:
                    os.unlink(os.path.join(directory, f"{old}.json"))
                except OSError:
                    pass
        now = now_ms()
        for name in names:
            if name.startswith(TMP_PREFIX) and now:
                tmp = os.path.join(directory, name)
                try:
                    if now - int(os.stat(tmp).st_mtime * 1000) > STALE_TMP_MS:
                        os.unlink(tmp)
                except OSError:
                    pass
        return True

    def remove_if_empty(self, directory, own_tmp):
        """Removes a secret directory this call made for a change that was
        refused (it holds only our own temporary file). Best effort."""
        try:
            os.unlink(own_tmp)
        except OSError:
            pass
        try:
            os.rmdir(directory)
        except OSError:
            return
        self.remove_empty_parents(directory)

    def remove_empty_parents(self, directory):
        parent = os.path.dirname(directory)
        while parent != self.tree and parent.startswith(self.tree):
            try:
                os.rmdir(parent)
            except OSError:
                return
            parent = os.path.dirname(parent)

    # ----- operations ------------------------------------------------------

    def get(self, path, version):
        if version is not None:
            n = parse_version(version)
            if n is None:
                raise not_found(f"secret `{path}` has no version `{version}`")
        doc = self.current(path, "get")
        if doc is None or not doc["versions"]:
            if version is not None:
                raise not_found(f"secret `{path}` has no version {version}")
            raise no_such_secret(path)
        if version is None:
            n = doc["latest"]
        entry = next((e for e in doc["versions"] if e["version"] == n), None)
        if entry is None:
            raise not_found(f"secret `{path}` has no version {n}")
        if entry["deleted"]:
            raise not_found(f"version {n} of secret `{path}` is deleted: undelete it to read it")
        if entry["destroyed"] or entry["sealed"] is None:
            raise not_found(f"version {n} of secret `{path}` was destroyed")
        if expired(entry):
            raise not_found(f"version {n} of secret `{path}` was deleted by its delete_version_after setting")
        try:
            sealed = base64.b64decode(entry["sealed"], validate=True)
        except ValueError:
            raise internal(f"version {n} of secret `{path}` is corrupt in its document")
        try:
            value = host.unseal(sealed, seal_context(path, n))
        except Err as e:
            if isinstance(e.value, types.Error_InvalidInput):
                raise internal(
                    f"version {n} of secret `{path}` cannot be decrypted: its document was altered, "
                    "or it was written by another mount"
                )
            raise
        return types.Secret(
            value=value,
            version=str(n),
            created_ms=entry["created_ms"],
            metadata=list(entry["metadata"]),
            deletion_ms=entry["delete_at_ms"],
        )

    def put(self, path, value, metadata, expected_version):
        metadata = [(str(k), str(v)) for k, v in metadata]

        def change(doc):
            r = self.rules_for(doc)
            if r["cas_required"] and expected_version is None:
                raise invalid_input(
                    f"check-and-set parameter required for this call: secret `{path}` requires "
                    "check-and-set (cas_required); send the version you expect to replace "
                    "(0 for a new secret)"
                )
            latest = doc["latest"] if doc["versions"] else 0
            if expected_version is not None:
                check_expected(path, latest, expected_version)
            n = latest + 1
            sealed = host.seal(value, seal_context(path, n))
            created = now_ms()
            after = r["delete_version_after_ms"]
            doc["versions"].append({
                "version": n,
                "created_ms": created,
                "metadata": metadata,
                "sealed": base64.b64encode(sealed).decode(),
                "destroyed": False,
                "deleted": False,
                "deleted_ms": 0,
                "delete_at_ms": created + after if after else 0,
            })
            doc["latest"] = n
            prune(doc, r["max_versions"])
            return str(n), True

        return self.update(path, "put", change, create=True)

    def delete(self, path):
        directory = self.secret_dir(path)
        trash_dir = os.path.join(self.root, TRASH_DIR)
        try:
            os.makedirs(trash_dir, exist_ok=True)
        except OSError as e:
            if not isinstance(e, FileExistsError):
                raise io_error("delete", path, e)
        trash = os.path.join(trash_dir, random_name())
        try:
            os.rename(directory, trash)
        except OSError as e:
            if is_missing(e):
                raise no_such_secret(path)
            raise io_error("delete", path, e)
        # The rename committed the delete; what is left is garbage. A
        # directory without a document (a refused first write, a crash
        # mid-write) or with only an empty one held no secret.
        try:
            loaded = self.load(trash, path, "delete")
            doc = loaded[1] if loaded else None
            had = doc is not None and bool(doc["versions"] or doc["settings"] is not None)
        except Err:
            had = True  # A damaged document: it was a secret.
        sync_dir(os.path.dirname(directory))
        remove_tree(trash)
        self.clean_trash(trash_dir)
        self.remove_empty_parents(directory)
        if not had:
            raise no_such_secret(path)

    @staticmethod
    def clean_trash(trash_dir):
        for name in list_names(trash_dir) or []:
            remove_tree(os.path.join(trash_dir, name))

    def delete_versions(self, path, versions, destroy):
        wanted = {n for n in (parse_version(v) for v in versions) if n is not None}
        when = now_ms()

        def change(doc):
            if not doc["versions"]:
                raise no_such_secret(path)
            changed = False
            for entry in doc["versions"]:
                if entry["version"] not in wanted:
                    continue
                if destroy:
                    if not entry["destroyed"] or entry["sealed"] is not None:
                        entry["destroyed"] = True
                        entry["sealed"] = None
                        changed = True
                elif not entry["deleted"]:
                    # A version deleted twice keeps its first deletion time.
                    entry["deleted"] = True
                    entry["deleted_ms"] = when
                    changed = True
            return None, changed

        self.update(path, "destroy" if destroy else "delete-versions", change, create=False)

    def undelete_versions(self, path, versions):
        wanted = {n for n in (parse_version(v) for v in versions) if n is not None}

        def change(doc):
            if not doc["versions"]:
                raise no_such_secret(path)
            changed = False
            for entry in doc["versions"]:
                if entry["version"] in wanted and entry["deleted"] and not entry["destroyed"]:
                    entry["deleted"] = False
                    entry["deleted_ms"] = 0
                    changed = True
            return None, changed

        self.update(path, "undelete-versions", change, create=False)

    def list(self, prefix):
        found = []
        self.scan(self.tree, "", prefix, found)
        return sorted(found)

    def scan(self, directory, pending, prefix, found):
        try:
            names = list_names(directory)
        except OSError as e:
            raise internal(
                f"list failed while reading the data directory: {e.strerror or e} (errno {e.errno})"
            )
        for name in names or []:
            stem = name[:-len(CONTINUED)] if name.endswith(CONTINUED) else None
            if stem is not None and len(stem) == HEX_CHUNK and _HEX.fullmatch(stem):
                # A long path: keep going only if it can still match the prefix.
                known = bytes.fromhex(pending + stem)
                want = prefix.encode()
                if known.startswith(want) or want.startswith(known):
                    self.scan(os.path.join(directory, name), pending + stem, prefix, found)
                continue
            if not _HEX.fullmatch(name) or len(name) > HEX_CHUNK:
                continue
            try:
                path = bytes.fromhex(pending + name).decode()
            except UnicodeDecodeError:
                continue
            if not path.startswith(prefix):
                continue
            try:
                loaded = self.load(os.path.join(directory, name), path, "list")
            except Err:
                continue  # Damaged: reads of it say so.
            if loaded and loaded[1] is not None and loaded[1]["versions"]:
                found.append(path)

    def versions(self, path):
        doc = self.current(path, "versions")
        if doc is None or not doc["versions"]:
            raise no_such_secret(path)
        infos = []
        for entry in doc["versions"]:
            gone = expired(entry)
            infos.append(types.VersionInfo(
                version=str(entry["version"]),
                created_ms=entry["created_ms"],
                deleted=entry["deleted"] or gone,
                destroyed=entry["destroyed"] or entry["sealed"] is None,
                metadata=list(entry["metadata"]),
                deletion_ms=entry["deleted_ms"] if entry["deleted"] else entry["delete_at_ms"],
            ))
        return infos

    def get_settings(self, path):
        if path == "":
            return settings_value(self.mount_settings())
        doc = self.current(path, "get-settings")
        if doc is None or (not doc["versions"] and doc["settings"] is None):
            raise no_such_secret(path)
        return settings_value(doc["settings"])

    def set_settings(self, path, settings):
        record = settings_record(settings)
        if path == "":
            self.replace_mount_settings(record)
            return

        def change(doc):
            doc["settings"] = record
            prune(doc, self.rules_for(doc)["max_versions"])
            return None, True

        self.update(path, "set-settings", change, create=True)

    def replace_mount_settings(self, record):
        """Writes the mount's settings file in one atomic step: a synced
        temporary file renamed over it."""
        tmp = os.path.join(self.root, TMP_PREFIX + random_name())
        try:
            with open(tmp, "xb") as f:
                f.write(json.dumps(record).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.root, SETTINGS_FILE))
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise io_error("set-settings", "", e)
        sync_dir(self.root)


def prune(doc, max_versions):
    """Drops the versions that fall out of a window of `max_versions` below
    the latest: they are removed for good with the revision that drops them."""
    floor = doc["latest"] - max_versions
    doc["versions"] = [e for e in doc["versions"] if e["version"] > floor]


def check_expected(path, latest, expected):
    """`conflict` unless `latest` is the version the caller expects (`""`: none)."""
    if expected == "":
        ok = latest == 0
        wanted = "the secret not to exist"
    else:
        ok = parse_version(expected) == latest
        wanted = f"version {expected}"
    if ok:
        return
    if latest == 0:
        raise conflict(f"secret `{path}` does not exist, expected {wanted}: read it again and retry")
    raise conflict(f"current version of `{path}` is {latest}, expected {wanted}: read it again and retry")

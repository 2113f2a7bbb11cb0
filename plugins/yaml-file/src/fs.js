// A thin, synchronous layer over the WASI 0.2 filesystem: paths are relative
// to the mount's data directory (the preopen `/data`). Every descriptor this
// module opens is closed (its resource dropped) before it returns, so an
// instance serving many calls does not pile up host file handles.

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

/** Where the host mounts the mount's granted directory. */
export const DATA_DIR = '/data';

let root = null;

/** The WASI error code (`no-entry`, `exist`, ...) of a failed call, or null. */
export function codeOf(e) {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof e.payload === 'string') return e.payload;
  return null;
}

const MISSING = new Set(['no-entry', 'not-directory']);

/** Did `e` say that a name (or a directory on its way) does not exist? */
export function isMissing(e) {
  return MISSING.has(codeOf(e));
}

/** Did `e` say that the name exists already? */
export function isExisting(e) {
  return codeOf(e) === 'exist';
}

function dispose(resource) {
  const drop = resource && resource[Symbol.dispose || Symbol.for('dispose')];
  if (typeof drop === 'function') drop.call(resource);
}

/**
 * Finds the preopened data directory. Returns false when the mount grants
 * none (the plugin then refuses to start).
 */
export function openRoot() {
  for (const [descriptor, path] of getDirectories()) {
    if (path === DATA_DIR) {
      root = descriptor;
    } else {
      dispose(descriptor);
    }
  }
  return root !== null;
}

const NO_FOLLOW = { symlinkFollow: false };

function open(path, openFlags, flags) {
  return root.openAt(NO_FOLLOW, path, openFlags, flags);
}

/** The bytes of the file at `path`, or null when it does not exist. */
export function readFile(path) {
  let file;
  try {
    file = open(path, {}, { read: true });
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  try {
    const chunks = [];
    let total = 0;
    let offset = 0n;
    for (;;) {
      const [bytes, eof] = file.read(1n << 20n, offset);
      if (bytes.length > 0) {
        chunks.push(bytes);
        total += bytes.length;
        offset += BigInt(bytes.length);
      }
      if (eof || bytes.length === 0) break;
    }
    if (chunks.length === 1) return chunks[0];
    const out = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  } finally {
    dispose(file);
  }
}

/** Creates the file `path`, which must not exist, empty. */
export function createNew(path) {
  dispose(open(path, { create: true, exclusive: true }, { write: true }));
}

/** Replaces the content of the existing file `path` with `bytes` and syncs it to disk. */
export function writeSynced(path, bytes) {
  const file = open(path, { truncate: true }, { write: true });
  try {
    let offset = 0;
    while (offset < bytes.length) {
      const written = Number(file.write(bytes.subarray(offset), BigInt(offset)));
      if (written <= 0) throw new Error('the file system accepted no bytes');
      offset += written;
    }
    file.sync();
  } finally {
    dispose(file);
  }
}

/** Links `from` as `to` (which must not exist): false when `to` exists. */
export function link(from, to) {
  try {
    root.linkAt({}, from, root, to);
    return true;
  } catch (e) {
    if (isExisting(e)) return false;
    throw e;
  }
}

/** Renames `from` to `to`, replacing a file at `to`. */
export function rename(from, to) {
  root.renameAt(from, root, to);
}

/** Removes the file `path`; false when it did not exist. */
export function removeFile(path) {
  try {
    root.unlinkFileAt(path);
    return true;
  } catch (e) {
    if (isMissing(e)) return false;
    throw e;
  }
}

/** Removes `path`, ignoring every failure (best effort). */
export function removeFileQuietly(path) {
  try {
    root.unlinkFileAt(path);
  } catch (_) {
    // Best effort.
  }
}

/** Creates the directory `path` and those above it that are missing. */
export function makeDirs(path) {
  const parts = path.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    try {
      root.createDirectoryAt(dir);
    } catch (e) {
      if (!isExisting(e)) throw e;
    }
  }
}

/** Removes the directory `path` if it is empty; false otherwise. */
export function removeEmptyDir(path) {
  try {
    root.removeDirectoryAt(path);
    return true;
  } catch (_) {
    return false;
  }
}

/** The entries of the directory `path` as `[name, type]`, or null when it does not exist. */
export function listDir(path) {
  let dir;
  try {
    dir = open(path, { directory: true }, { read: true });
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  try {
    const stream = dir.readDirectory();
    try {
      const entries = [];
      for (;;) {
        const entry = stream.readDirectoryEntry();
        if (!entry) break;
        entries.push([entry.name, entry.type]);
      }
      return entries;
    } finally {
      dispose(stream);
    }
  } finally {
    dispose(dir);
  }
}

/** Removes `path` and everything under it (best effort). */
export function removeTree(path) {
  let entries;
  try {
    entries = listDir(path);
  } catch (_) {
    return;
  }
  if (entries === null) return;
  for (const [name, type] of entries) {
    const child = `${path}/${name}`;
    if (type === 'directory') {
      removeTree(child);
    } else {
      removeFileQuietly(child);
    }
  }
  removeEmptyDir(path);
}

/** What `path` is (`directory`, `regular-file`, ...), or null when it does not exist. */
export function typeOf(path) {
  try {
    return root.statAt(NO_FOLLOW, path).type;
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
}

/** The data directory's own type (`directory` when the grant is usable). */
export function rootType() {
  return root.getType();
}

/** When `path` was last modified, in milliseconds since the epoch; null when unknown. */
export function modifiedMs(path) {
  try {
    const stat = root.statAt(NO_FOLLOW, path);
    const t = stat.dataModificationTimestamp;
    if (!t) return null;
    return Number(t.seconds) * 1000 + Math.floor(t.nanoseconds / 1e6);
  } catch (_) {
    return null;
  }
}

/**
 * Flushes the directory `path`'s entries to disk, so a new or removed name
 * survives a crash. Platforms that cannot sync a directory are tolerated.
 */
export function syncDir(path) {
  let dir;
  try {
    dir = path === '' ? null : open(path, { directory: true }, { read: true });
  } catch (_) {
    return;
  }
  try {
    (dir || root).sync();
  } catch (_) {
    // Not every platform syncs a directory.
  } finally {
    if (dir) dispose(dir);
  }
}

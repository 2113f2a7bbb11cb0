// The on-disk store: one YAML document per secret, holding all its versions
// (values sealed by the host), its metadata and its own settings.
//
// A document is never changed in place. A change writes the whole new
// document to a `tmp-<random>` file in the secret's directory, syncs it, and
// publishes it as the next generation, `<gen + 1>.yaml`, with a hard link,
// which fails when that name exists: so a crash never leaves a half-written
// document (readers only open `<gen>.yaml` files, all complete), and of two
// instances changing one secret at once exactly one wins each generation;
// the other reads the new document and applies its change again (a
// check-and-set then fails as it should). The previous generation is removed
// once the new one is in place; a reader that loses it looks again.
//
// The temporary file is created *before* the document is read: a delete
// renames the secret's directory away, so a change that raced with it finds
// its file gone and starts over in the new directory, and a version number
// read in one life of a secret is never published in the next.

import { parse, stringify } from 'yaml';

import { internal, unavailable } from './errors.js';
import * as fs from './fs.js';
import {
  MOUNT_SETTINGS,
  SECRETS_DIR,
  TMP_PREFIX,
  TRASH_DIR,
  continuedChunk,
  docGeneration,
  fromHex,
  isHexName,
  nowMs,
  randomSuffix,
  secretDir,
  toHex,
  utf8,
} from './layout.js';

/** How many times a change starts over after losing a race before it gives up. */
const MAX_ATTEMPTS = 64;
/** How many times a read looks again when the document it found was replaced meanwhile. */
const MAX_READS = 16;
/** A `tmp-*` file older than this was left by a crash and may be removed. */
const STALE_TMP_MS = 3600 * 1000;
/** How many versions a secret keeps when neither it nor the mount says: Vault's default. */
export const DEFAULT_MAX_VERSIONS = 10;

const HEADER = [
  ' Tresor yaml-file provider: one secret, all its versions.',
  ' Each `sealed` value is encrypted by the Tresor host (AES-256-GCM, bound to the',
  ' path and version); this file never holds a plaintext value. Do not edit it:',
  ' change secrets through Tresor, which writes a new generation of this file.',
].join('\n');

/** Settings that set nothing. */
export const emptySettings = () => ({ max_versions: 0, cas_required: false, delete_version_after_ms: 0 });

/** Settings from a document (or anything) into the store's shape. */
function normalizeSettings(raw) {
  const s = emptySettings();
  if (raw && typeof raw === 'object') {
    if (Number.isSafeInteger(raw.max_versions) && raw.max_versions > 0) s.max_versions = raw.max_versions;
    s.cas_required = raw.cas_required === true;
    if (Number.isSafeInteger(raw.delete_version_after_ms) && raw.delete_version_after_ms > 0) {
      s.delete_version_after_ms = raw.delete_version_after_ms;
    }
  }
  return s;
}

/** A YAML document's text for `value`, with the header comment. */
function encode(value) {
  const text = stringify(value, { lineWidth: 0, minContentWidth: 0 });
  return utf8(`#${HEADER.split('\n').join('\n#')}\n${text}`);
}

function decode(bytes, what) {
  let value;
  try {
    value = parse(new TextDecoder().decode(bytes), { prettyErrors: false, maxAliasCount: 0 });
  } catch (e) {
    // The parser's message quotes the document; only its code is shown.
    throw internal(`${what} is damaged (${(e && e.code) || 'not YAML'}): restore it from a backup`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw internal(`${what} is damaged (not a YAML mapping): restore it from a backup`);
  }
  return value;
}

/** Checks a parsed secret document and brings it into the store's shape. */
function checkDoc(raw, path) {
  const what = `the document of secret \`${path}\``;
  if (raw.path !== path) throw internal(`${what} names another path: restore it from a backup`);
  if (!Array.isArray(raw.versions)) throw internal(`${what} is damaged (no versions list)`);
  const versions = [];
  for (const v of raw.versions) {
    if (!v || typeof v !== 'object' || !Number.isSafeInteger(v.version) || v.version < 1) {
      throw internal(`${what} is damaged (a version without a number)`);
    }
    versions.push(v);
  }
  versions.sort((a, b) => a.version - b.version);
  const latest = Number.isSafeInteger(raw.latest) ? raw.latest : 0;
  const doc = {
    path,
    latest: Math.max(latest, versions.length ? versions[versions.length - 1].version : 0),
    versions,
  };
  if (raw.settings !== undefined && raw.settings !== null) doc.settings = normalizeSettings(raw.settings);
  return doc;
}

/** A fresh document for `path`. */
export const newDoc = (path) => ({ path, latest: 0, versions: [] });

/** The current generation's name in a listing of a secret's directory (highest `<gen>.yaml`). */
function currentGeneration(entries) {
  let best = 0;
  for (const [name] of entries) {
    const gen = docGeneration(name);
    if (gen !== null && gen > best) best = gen;
  }
  return best;
}

/** The current document of `path` as `{ gen, doc }`; `{ gen: 0, doc: null }` when there is none. */
export function readDoc(path) {
  const dir = secretDir(path);
  for (let attempt = 0; attempt < MAX_READS; attempt++) {
    const entries = fs.listDir(dir);
    if (entries === null) return { gen: 0, doc: null, entries: [] };
    const gen = currentGeneration(entries);
    if (gen === 0) return { gen: 0, doc: null, entries };
    const bytes = fs.readFile(`${dir}/${gen}.yaml`);
    // Replaced by a newer generation since the listing: look again.
    if (bytes === null) continue;
    return { gen, doc: checkDoc(decode(bytes, `the document of secret \`${path}\``), path), entries };
  }
  throw unavailable(`secret \`${path}\` kept changing while it was read: retry`);
}

/** Removes the generations of a document below `gen` and stale temporary files (best effort). */
function removeOld(dir, entries, gen) {
  const now = nowMs();
  for (const [name] of entries) {
    const g = docGeneration(name);
    if (g !== null && g < gen) {
      fs.removeFileQuietly(`${dir}/${name}`);
    } else if (name.startsWith(TMP_PREFIX) && now > 0) {
      const modified = fs.modifiedMs(`${dir}/${name}`);
      if (modified !== null && now - modified > STALE_TMP_MS) fs.removeFileQuietly(`${dir}/${name}`);
    }
  }
}

/**
 * Changes the document of `path`: `change(doc)` gets the current document
 * (null when the secret has none) and returns `{ doc, result }` to publish
 * `doc` and answer `result`, or `{ result }` to change nothing. With
 * `create`, the secret's directory is made when missing. `change` may run
 * more than once (after a lost race); it may throw a contract error.
 */
export function update(path, create, change) {
  const dir = secretDir(path);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const tmp = `${dir}/${TMP_PREFIX}${randomSuffix()}`;
    try {
      fs.createNew(tmp);
    } catch (e) {
      if (!fs.isMissing(e)) throw e;
      if (!create) {
        const { result } = change(null);
        return result;
      }
      fs.makeDirs(dir);
      for (const parent of parentsOf(dir)) fs.syncDir(parent);
      continue;
    }
    try {
      for (; attempt < MAX_ATTEMPTS; attempt++) {
        const { gen, doc, entries } = readDoc(path);
        const changed = change(doc);
        if (!changed.doc) return changed.result;
        try {
          fs.writeSynced(tmp, encode(changed.doc));
        } catch (e) {
          // The secret was deleted under our feet: start over.
          if (fs.isMissing(e)) break;
          throw e;
        }
        let linked;
        try {
          linked = fs.link(tmp, `${dir}/${gen + 1}.yaml`);
        } catch (e) {
          if (fs.isMissing(e)) break;
          throw e;
        }
        if (!linked) continue;
        // Published. Unless a writer that had read an older generation
        // linked a number since freed: then a newer generation exists,
        // ours is stale, and the change is applied again.
        const after = fs.listDir(dir) || [];
        if (currentGeneration(after) !== gen + 1) {
          fs.removeFileQuietly(`${dir}/${gen + 1}.yaml`);
          continue;
        }
        fs.syncDir(dir);
        removeOld(dir, after, gen + 1);
        return changed.result;
      }
    } finally {
      fs.removeFileQuietly(tmp);
    }
  }
  throw unavailable(`too many concurrent changes to secret \`${path}\`: retry later`);
}

/** The directories above `dir` inside the data directory, nearest last. */
function parentsOf(dir) {
  const parts = dir.split('/');
  const out = [''];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

/**
 * Deletes the secret at `path` with all its versions: its directory is
 * renamed into `trash/` in one step, then removed. False when there was no
 * such secret.
 */
export function deleteSecret(path) {
  const dir = secretDir(path);
  fs.makeDirs(TRASH_DIR);
  const trash = `${TRASH_DIR}/${randomSuffix()}`;
  try {
    fs.rename(dir, trash);
  } catch (e) {
    if (fs.isMissing(e)) return false;
    throw e;
  }
  // The rename committed the delete; what is left is garbage.
  let existed = true;
  try {
    const entries = fs.listDir(trash) || [];
    const gen = currentGeneration(entries);
    if (gen === 0) {
      existed = false;
    } else {
      const bytes = fs.readFile(`${trash}/${gen}.yaml`);
      const raw = bytes === null ? null : decode(bytes, `the document of secret \`${path}\``);
      existed = !raw || (Array.isArray(raw.versions) && raw.versions.length > 0) || !!raw.settings;
    }
  } catch (_) {
    existed = true;
  }
  fs.syncDir(parentsOf(dir).pop());
  cleanTrash();
  removeEmptyParents(dir);
  return existed;
}

/** Removes what deletes left in `trash/` (a crash mid-delete). Best effort. */
function cleanTrash() {
  let entries;
  try {
    entries = fs.listDir(TRASH_DIR) || [];
  } catch (_) {
    return;
  }
  for (const [name] of entries) fs.removeTree(`${TRASH_DIR}/${name}`);
}

/** Removes the `.d` directories above a deleted long path's directory once empty. */
function removeEmptyParents(dir) {
  const parts = dir.split('/');
  for (let i = parts.length - 1; i > 1; i--) {
    if (!fs.removeEmptyDir(parts.slice(0, i).join('/'))) return;
  }
}

/**
 * The paths of all secrets with at least one version whose path starts
 * with `prefix`, sorted.
 */
export function list(prefix) {
  const want = toHex(prefix);
  const found = [];
  const walk = (dir, hex) => {
    const entries = fs.listDir(dir);
    if (entries === null) return;
    for (const [name, type] of entries) {
      if (type !== 'directory') continue;
      const chunk = continuedChunk(name);
      if (chunk !== null) {
        const acc = hex + chunk;
        if (acc.startsWith(want) || want.startsWith(acc)) walk(`${dir}/${name}`, acc);
        continue;
      }
      if (!isHexName(name)) continue;
      const full = hex + name;
      if (!full.startsWith(want)) continue;
      const path = fromHex(full);
      if (path === null) continue;
      let doc;
      try {
        ({ doc } = readDoc(path));
      } catch (e) {
        // A damaged document is reported when the secret is read.
        doc = { versions: [{}] };
      }
      if (doc && doc.versions.length > 0) found.push(path);
    }
  };
  walk(SECRETS_DIR, '');
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The mount's settings (empty when never set). */
export function mountSettings() {
  const bytes = fs.readFile(MOUNT_SETTINGS);
  if (bytes === null) return emptySettings();
  return normalizeSettings(decode(bytes, `the mount's ${MOUNT_SETTINGS}`).settings);
}

/** Replaces the mount's settings in one atomic step (a synced temporary file renamed over it). */
export function setMountSettings(settings) {
  const tmp = `${TMP_PREFIX}${randomSuffix()}`;
  fs.createNew(tmp);
  try {
    fs.writeSynced(tmp, encode({ settings: normalizeSettings(settings) }));
    fs.rename(tmp, MOUNT_SETTINGS);
  } finally {
    fs.removeFileQuietly(tmp);
  }
  fs.syncDir('');
}

/** What a write to one secret must follow: its settings over the mount's, as Vault combines them. */
export function rules(secret, mount, configuredMax) {
  const s = secret || emptySettings();
  const mountMax = mount.max_versions || configuredMax;
  // Vault keeps the larger of the two ...
  const maxVersions = Math.max(s.max_versions, mountMax) || DEFAULT_MAX_VERSIONS;
  // ... and deletes after the shorter of the two that are set.
  const a = s.delete_version_after_ms;
  const b = mount.delete_version_after_ms;
  const deleteAfter = a === 0 ? b : b === 0 ? a : Math.min(a, b);
  return { maxVersions, casRequired: s.cas_required || mount.cas_required, deleteAfter };
}

/** Drops the oldest versions of `doc` beyond `maxVersions` below its latest. */
export function prune(doc, maxVersions) {
  const floor = doc.latest - maxVersions;
  if (floor > 0) doc.versions = doc.versions.filter((v) => v.version > floor);
}

/** Has a version's `delete_version_after` time passed? */
export function expired(v) {
  return !!v.delete_at_ms && nowMs() >= v.delete_at_ms;
}


// Tresor's YAML-file provider, in JavaScript: versioned secrets kept as YAML
// documents in the directory the mount grants (`/data` in the sandbox).
//
// The plugin never sees the master key: every value is sealed by the host
// (`tresor:plugin/host.seal`, bound to the context `"<path>\0<version>"`, as
// plugins/file does) before it is written, and unsealed by the host when
// read. See store.js for the layout and how writes stay atomic.
//
// Mount configuration:
//
//   max_versions   versions each secret keeps unless its own or the mount's
//                  settings say otherwise (default 10, as Vault)
//
// Any other key is refused when the mount starts, naming it.

import { log, seal, unseal } from 'tresor:plugin/host@0.1.0';

import { asContractError, conflict, describe, internal, invalidInput, notFound } from './errors.js';
import * as fs from './fs.js';
import { fromBase64, nowMs, parseVersion, sealContext, toBase64 } from './layout.js';
import * as store from './store.js';

const CONFIG_KEYS = ['max_versions'];
const MAX_PATH_LEN = 512;

/** The mount configuration's `max_versions` (0: unset). */
let configuredMax = 0;

// ---------------------------------------------------------------- checks

function checkText(text, what) {
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_PATH_LEN) {
    throw invalidInput(`the ${what} is ${bytes} bytes long: the limit is ${MAX_PATH_LEN} bytes`);
  }
  // Control characters: C0, DEL and C1.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(text)) {
    throw invalidInput(`the ${what} contains a NUL or control character: use printable characters only`);
  }
}

function checkPath(path) {
  if (path === '') throw invalidInput('the secret path is empty: give a path such as `app/db-password`');
  checkText(path, 'secret path');
  if (path.startsWith('/') || path.endsWith('/')) {
    throw invalidInput(
      'the secret path must not start or end with `/`: paths are relative to the mount, like `app/db-password`',
    );
  }
  for (const segment of path.split('/')) {
    if (segment === '') {
      throw invalidInput('the secret path has an empty segment (`//`): separate segments with a single `/`');
    }
    if (segment === '.' || segment === '..') {
      throw invalidInput(
        `the secret path has a \`${segment}\` segment: \`.\` and \`..\` are not allowed, spell the path out in full`,
      );
    }
  }
}

function checkPrefix(prefix) {
  checkText(prefix, 'list prefix');
  if (prefix.startsWith('/')) {
    throw invalidInput('the list prefix must not start with `/`: paths are relative to the mount');
  }
}

/** Levenshtein distance between two short keys. */
function editDistance(a, b) {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 0; i < a.length; i++) {
    const current = [i + 1];
    for (let j = 0; j < b.length; j++) {
      current.push(Math.min(previous[j] + (a[i] === b[j] ? 0 : 1), previous[j + 1] + 1, current[j] + 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/** `" (did you mean `x`?)"` when `key` looks like a misspelling of one of `known`, else "". */
function didYouMean(key, known) {
  const lower = key.toLowerCase();
  const limit = Math.max(Math.floor(lower.length / 3), 2);
  const close = known.filter((k) => editDistance(lower, k) <= limit || (lower.length >= 3 && k.includes(lower)));
  return close.length ? ` (did you mean ${close.map((k) => `\`${k}\``).join(' or ')}?)` : '';
}

// ---------------------------------------------------------------- values

function toPairs(metadata) {
  if (!metadata || typeof metadata !== 'object') return [];
  return Object.entries(metadata).map(([k, v]) => [String(k), v === null || v === undefined ? '' : String(v)]);
}

function fromPairs(pairs) {
  const out = {};
  for (const [k, v] of pairs) {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const latestVersion = (doc) => (doc && doc.versions.length ? doc.versions[doc.versions.length - 1] : null);
const noSuchSecret = (path) => notFound(`no secret at \`${path}\``);
const ms = (n) => BigInt(Number.isSafeInteger(n) && n > 0 ? n : 0);

/** A doc's version as the contract's `secret` record, unsealing its value. */
function open(path, v) {
  const n = v.version;
  if (v.destroyed || typeof v.sealed !== 'string') {
    throw notFound(`version ${n} of secret \`${path}\` was destroyed`);
  }
  const sealed = fromBase64(v.sealed);
  if (sealed === null) throw internal(`version ${n} of secret \`${path}\` is damaged in its document`);
  let value;
  try {
    value = unseal(sealed, sealContext(path, n));
  } catch (e) {
    const err = asContractError(e);
    if (err && err.tag === 'invalid-input') {
      throw internal(
        `version ${n} of secret \`${path}\` cannot be decrypted: its document was altered, or it was written by another mount`,
      );
    }
    throw err || e;
  }
  return {
    value,
    version: String(n),
    createdMs: ms(v.created_ms),
    metadata: toPairs(v.metadata),
    deletionMs: ms(v.delete_at_ms),
  };
}

function checkExpected(path, latest, expected) {
  const matches = expected === '' ? latest === 0 : parseVersion(expected) === latest;
  if (matches) return;
  const wanted = expected === '' ? 'the secret not to exist' : `version ${expected}`;
  throw conflict(
    latest === 0
      ? `secret \`${path}\` does not exist, expected ${wanted}`
      : `current version of \`${path}\` is ${latest}, expected ${wanted}`,
  );
}

function settingsOut(s) {
  return {
    maxVersions: s.max_versions,
    casRequired: s.cas_required,
    deleteVersionAfterMs: BigInt(s.delete_version_after_ms),
  };
}

function settingsIn(s) {
  const after = BigInt(s.deleteVersionAfterMs);
  return {
    max_versions: s.maxVersions,
    cas_required: !!s.casRequired,
    delete_version_after_ms: after > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(after),
  };
}

// ---------------------------------------------------------------- operations

/**
 * Runs one export call: a contract error passes through, anything else (a
 * WASI failure, a bug) becomes `internal`, naming the operation and path.
 */
function run(op, path, body) {
  try {
    return body();
  } catch (e) {
    const err = asContractError(e);
    if (err) throw err;
    const code = fs.codeOf(e);
    const what = path ? `${op} of secret \`${path}\`` : op;
    if (code === 'read-only' || code === 'not-permitted' || code === 'access') {
      throw internal(
        `${what} failed: the data directory refused the change (${code}); grant the mount a writable directory (grants.read_only = false)`,
      );
    }
    if (code === 'insufficient-space' || code === 'quota') {
      throw internal(`${what} failed: the data directory is full (${code}); free some space and retry`);
    }
    throw internal(`${what} failed in the data directory: ${describe(e)}`);
  }
}

function configure(config) {
  const keys = config.map(([k]) => k);
  const unknown = keys.find((k) => !CONFIG_KEYS.includes(k));
  if (unknown !== undefined) {
    throw invalidInput(
      `unknown config key \`${unknown}\`${didYouMean(unknown, CONFIG_KEYS)}: the config keys this plugin accepts are ${CONFIG_KEYS.join(', ')}; fix the mount's config`,
    );
  }
  configuredMax = 0;
  for (const [k, v] of config) {
    if (k === 'max_versions') {
      if (!/^[0-9]{1,9}$/.test(v.trim())) {
        throw invalidInput(
          "config key `max_versions` must be a whole number of versions (0: Vault's default of 10); fix the mount's config",
        );
      }
      configuredMax = Number(v.trim());
    }
  }
  if (!fs.openRoot()) {
    throw invalidInput(
      `the yaml-file provider needs a data directory at ${fs.DATA_DIR}: grant the mount a directory (grants = { directory = "data/<mount>" })`,
    );
  }
  let type;
  try {
    type = fs.rootType();
  } catch (e) {
    type = null;
  }
  if (type !== 'directory') {
    throw invalidInput(
      `the yaml-file provider needs a data directory at ${fs.DATA_DIR}, but the grant is not a usable directory: grant the mount a directory`,
    );
  }
}

function get(path, version) {
  checkPath(path);
  let wanted = null;
  if (version !== undefined && version !== null) {
    wanted = parseVersion(version);
    if (wanted === null) throw notFound(`secret \`${path}\` has no version \`${version}\``);
  }
  const { doc } = store.readDoc(path);
  const latest = latestVersion(doc);
  if (!latest) throw noSuchSecret(path);
  const v = wanted === null ? latest : doc.versions.find((x) => x.version === wanted);
  if (!v) throw notFound(`secret \`${path}\` has no version ${wanted}`);
  if (v.deleted) throw notFound(`version ${v.version} of secret \`${path}\` is deleted: undelete it to read it`);
  if (store.expired(v)) {
    throw notFound(`version ${v.version} of secret \`${path}\` was deleted by its delete_version_after setting`);
  }
  return open(path, v);
}

function put(path, value, metadata, expected) {
  checkPath(path);
  const mount = store.mountSettings();
  return store.update(path, true, (current) => {
    const doc = current || store.newDoc(path);
    const rules = store.rules(doc.settings, mount, configuredMax);
    if (rules.casRequired && (expected === undefined || expected === null)) {
      throw invalidInput(
        `check-and-set parameter required for this call: secret \`${path}\` requires check-and-set (cas_required); send the version you expect to replace (0 for a new secret)`,
      );
    }
    if (expected !== undefined && expected !== null) checkExpected(path, doc.latest, expected);
    const n = doc.latest + 1;
    const createdMs = nowMs();
    const entry = {
      version: n,
      created_ms: createdMs,
      metadata: fromPairs(metadata),
      sealed: toBase64(seal(value, sealContext(path, n))),
    };
    if (rules.deleteAfter > 0) entry.delete_at_ms = createdMs + rules.deleteAfter;
    doc.versions.push(entry);
    doc.latest = n;
    store.prune(doc, rules.maxVersions);
    return { doc, result: String(n) };
  });
}

function del(path) {
  checkPath(path);
  if (!store.deleteSecret(path)) throw noSuchSecret(path);
}

function deleteVersions(path, versions, destroy) {
  checkPath(path);
  const numbers = versions.map(parseVersion).filter((n) => n !== null);
  store.update(path, false, (doc) => {
    if (!latestVersion(doc)) throw noSuchSecret(path);
    let changed = false;
    for (const v of doc.versions) {
      if (!numbers.includes(v.version)) continue;
      if (destroy) {
        if (!v.destroyed || v.sealed !== undefined) {
          delete v.sealed;
          v.destroyed = true;
          changed = true;
        }
      } else if (!v.deleted) {
        // A version deleted twice keeps its first deletion time.
        v.deleted = true;
        v.deleted_ms = nowMs();
        changed = true;
      }
    }
    return changed ? { doc, result: undefined } : { result: undefined };
  });
}

function undeleteVersions(path, versions) {
  checkPath(path);
  const numbers = versions.map(parseVersion).filter((n) => n !== null);
  store.update(path, false, (doc) => {
    if (!latestVersion(doc)) throw noSuchSecret(path);
    let changed = false;
    for (const v of doc.versions) {
      if (numbers.includes(v.version) && v.deleted && !v.destroyed) {
        delete v.deleted;
        delete v.deleted_ms;
        changed = true;
      }
    }
    return changed ? { doc, result: undefined } : { result: undefined };
  });
}

function listSecrets(prefix) {
  checkPrefix(prefix);
  return store.list(prefix);
}

function versions(path) {
  checkPath(path);
  const { doc } = store.readDoc(path);
  if (!latestVersion(doc)) throw noSuchSecret(path);
  return doc.versions.map((v) => {
    const deleted = !!v.deleted;
    return {
      version: String(v.version),
      createdMs: ms(v.created_ms),
      deleted: deleted || store.expired(v),
      destroyed: !!v.destroyed || typeof v.sealed !== 'string',
      metadata: toPairs(v.metadata),
      deletionMs: deleted ? ms(v.deleted_ms || v.created_ms) : ms(v.delete_at_ms),
    };
  });
}

function getSettings(path) {
  if (path === '') return settingsOut(store.mountSettings());
  checkPath(path);
  const { doc } = store.readDoc(path);
  if (!doc || (!doc.settings && doc.versions.length === 0)) throw noSuchSecret(path);
  return settingsOut(doc.settings || store.emptySettings());
}

function setSettings(path, settings) {
  const wanted = settingsIn(settings);
  if (path === '') {
    store.setMountSettings(wanted);
    return;
  }
  checkPath(path);
  const mount = store.mountSettings();
  store.update(path, true, (current) => {
    const doc = current || store.newDoc(path);
    doc.settings = wanted;
    store.prune(doc, store.rules(doc.settings, mount, configuredMax).maxVersions);
    return { doc, result: undefined };
  });
}

// ---------------------------------------------------------------- export

export const provider = {
  configure(config) {
    try {
      configure(config);
    } catch (e) {
      const err = asContractError(e);
      if (err) throw err;
      throw internal(`configure failed: ${describe(e)}`);
    }
    log('debug', `yaml-file provider ready on ${fs.DATA_DIR}`);
  },
  getCapabilities() {
    return {
      writable: true,
      versioned: true,
      checkAndSet: true,
      deletable: true,
      listable: true,
      softDelete: true,
    };
  },
  get: (path, version) => run('get', path, () => get(path, version)),
  put: (path, value, metadata, expected) => run('put', path, () => put(path, value, metadata, expected)),
  delete: (path) => run('delete', path, () => del(path)),
  deleteVersions: (path, vs, destroy) => run('delete-versions', path, () => deleteVersions(path, vs, destroy)),
  undeleteVersions: (path, vs) => run('undelete-versions', path, () => undeleteVersions(path, vs)),
  listSecrets: (prefix) => run('list', '', () => listSecrets(prefix)),
  versions: (path) => run('versions', path, () => versions(path)),
  getSettings: (path) => run('get-settings', path, () => getSettings(path)),
  setSettings: (path, settings) => run('set-settings', path, () => setSettings(path, settings)),
};

// __NAME__: a Tresor provider plugin in JavaScript (componentize-js).
//
// Each secret is one file in the directory the mount grants (`/data` in the
// sandbox): a JSON line with its version and metadata, then the value sealed
// by the host (`seal`), never in plaintext. componentize-js calls imports
// synchronously; an export fails by throwing the contract's error variant,
// `{ tag, val }`.
//
// Start from here: replace the file layout with your backend, keep the rules
// of wit/deps/tresor-plugin/plugin.wit (errors say what to do next and never
// hold a value), and check it with `tresor plugin check __NAME__.wasm`.

import { seal, unseal } from 'tresor:plugin/host@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

const CONFIG_KEYS = [];
const fail = (tag, val) => ({ tag, val });
const unsupported = (what) => fail('unsupported', `__NAME__ does not support ${what}`);
const enc = new TextEncoder();
const dec = new TextDecoder();
let root = null;

const hex = (s) => Array.from(enc.encode(s), (b) => b.toString(16).padStart(2, '0')).join('');
const fileOf = (path) => `${hex(path)}.secret`;
const context = (path, version) => enc.encode(`${path}\0${version}`);
const code = (e) => (typeof e === 'string' ? e : e && e.payload);
const drop = (r) => r && r[Symbol.dispose] && r[Symbol.dispose]();

function pathOf(name) {
  if (!name.endsWith('.secret')) return null;
  const h = name.slice(0, -'.secret'.length);
  if (h.length % 2 || /[^0-9a-f]/.test(h)) return null;
  const bytes = new Uint8Array(h.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return dec.decode(bytes);
}

function readFile(name) {
  let f;
  try {
    f = root.openAt({}, name, {}, { read: true });
  } catch (e) {
    if (code(e) === 'no-entry') return null;
    throw e;
  }
  try {
    const parts = [];
    let offset = 0n;
    for (;;) {
      const [bytes, eof] = f.read(1n << 20n, offset);
      parts.push(bytes);
      offset += BigInt(bytes.length);
      if (eof || bytes.length === 0) break;
    }
    const out = new Uint8Array(Number(offset));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  } finally {
    drop(f);
  }
}

function writeFile(name, bytes) {
  const f = root.openAt({}, name, { create: true, truncate: true }, { write: true });
  try {
    let offset = 0;
    while (offset < bytes.length) offset += Number(f.write(bytes.subarray(offset), BigInt(offset)));
    f.sync();
  } finally {
    drop(f);
  }
}

function load(path) {
  const bytes = readFile(fileOf(path));
  if (bytes === null) return null;
  const n = bytes.indexOf(10);
  try {
    const header = JSON.parse(dec.decode(bytes.subarray(0, n)));
    return { version: header.version, metadata: header.metadata, sealed: bytes.subarray(n + 1) };
  } catch {
    throw fail('internal', `the file of \`${path}\` is damaged`);
  }
}

export const provider = {
  configure(config) {
    for (const [key] of config) {
      if (!CONFIG_KEYS.includes(key)) throw fail('invalid-input', `unknown config key \`${key}\`; this plugin reads [${CONFIG_KEYS}]`);
    }
    for (const [dir, path] of getDirectories()) {
      if (path === '/data') root = dir;
    }
    if (root === null) throw fail('invalid-input', 'there is no /data: grant the mount a `directory`');
  },
  getCapabilities() {
    return { writable: true, versioned: false, checkAndSet: false, deletable: true, listable: true, softDelete: false };
  },
  get(path, version) {
    const stored = load(path);
    if (stored === null) throw fail('not-found', `no secret \`${path}\``);
    if (version !== undefined && version !== null && version !== String(stored.version)) {
      throw fail('not-found', `\`${path}\` keeps only its latest version, ${stored.version}`);
    }
    const value = unseal(stored.sealed, context(path, stored.version));
    return { value, version: String(stored.version), createdMs: 0n, metadata: stored.metadata, deletionMs: 0n };
  },
  put(path, value, metadata) {
    const stored = load(path);
    const version = stored === null ? 1 : stored.version + 1;
    const header = enc.encode(JSON.stringify({ version, metadata }) + '\n');
    const sealed = seal(value, context(path, version));
    const bytes = new Uint8Array(header.length + sealed.length);
    bytes.set(header);
    bytes.set(sealed, header.length);
    // A temporary file renamed over the old one: a crash never leaves half a secret.
    writeFile(`${fileOf(path)}.tmp`, bytes);
    root.renameAt(`${fileOf(path)}.tmp`, root, fileOf(path));
    return String(version);
  },
  delete(path) {
    try {
      root.unlinkFileAt(fileOf(path));
    } catch (e) {
      if (code(e) === 'no-entry') throw fail('not-found', `no secret \`${path}\``);
      throw e;
    }
  },
  deleteVersions() {
    throw unsupported('deleting single versions');
  },
  undeleteVersions() {
    throw unsupported('restoring versions');
  },
  listSecrets(prefix) {
    const stream = root.readDirectory();
    const paths = [];
    try {
      for (let entry = stream.readDirectoryEntry(); entry; entry = stream.readDirectoryEntry()) {
        const p = pathOf(entry.name);
        if (p !== null && p.startsWith(prefix)) paths.push(p);
      }
    } finally {
      drop(stream);
    }
    return paths.sort();
  },
  versions() {
    throw unsupported('version history');
  },
  getSettings() {
    throw unsupported('version settings');
  },
  setSettings() {
    throw unsupported('version settings');
  },
};

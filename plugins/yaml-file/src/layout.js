// Names in the data directory, and the encodings the store uses.
//
//   /data/
//     settings.yaml               the mount's settings (a YAML document)
//     secrets/
//       <hex of the path>/        one directory per secret
//         <gen>.yaml              the secret's YAML document, generation <gen>
//         tmp-<random>            a document being written (ignored by reads)
//       <200 hex digits>.d/       the first 100 bytes of a longer path ...
//         <rest in hex>/          ... whose secret directory is inside
//     trash/<random>/             a deleted secret being removed (ignored)
//
// A secret's directory is named by the lowercase hex of its path's bytes:
// it sorts like the bytes and cannot collide with the fixed names. A file
// name is limited to 255 bytes on common file systems, so a path longer
// than 100 bytes is spread over `<chunk>.d` directories of 200 hex digits.

export const SECRETS_DIR = 'secrets';
export const TRASH_DIR = 'trash';
export const MOUNT_SETTINGS = 'settings.yaml';
export const TMP_PREFIX = 'tmp-';
export const HEX_CHUNK = 200;
export const CONTINUED = '.d';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (text) => encoder.encode(text);

/** Lowercase hex of the UTF-8 bytes of `text`. */
export function toHex(text) {
  let out = '';
  for (const byte of utf8(text)) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** The text whose UTF-8 bytes `hex` spells, or null. */
export function fromHex(hex) {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  try {
    return decoder.decode(bytes);
  } catch (_) {
    return null;
  }
}

/** Is `name` a name of a secret's directory (even-length lowercase hex, one chunk at most)? */
export const isHexName = (name) =>
  name.length > 0 && name.length <= HEX_CHUNK && name.length % 2 === 0 && /^[0-9a-f]+$/.test(name);

/** The hex chunk of a `<chunk>.d` directory name, or null. */
export function continuedChunk(name) {
  if (!name.endsWith(CONTINUED)) return null;
  const chunk = name.slice(0, -CONTINUED.length);
  return chunk.length === HEX_CHUNK && /^[0-9a-f]+$/.test(chunk) ? chunk : null;
}

/** The directory of the secret at `path`, relative to the data directory. */
export function secretDir(path) {
  const hex = toHex(path);
  const names = [];
  for (let i = 0; i < hex.length; i += HEX_CHUNK) names.push(hex.slice(i, i + HEX_CHUNK));
  const last = names.length - 1;
  return [SECRETS_DIR, ...names.map((n, i) => (i < last ? n + CONTINUED : n))].join('/');
}

/** Parses a version identifier: a decimal from 1 up, without sign or leading zeros. */
export function parseVersion(text) {
  if (typeof text !== 'string' || !/^[1-9][0-9]{0,15}$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** The generation of a document file name `<gen>.yaml`, or null. */
export function docGeneration(name) {
  const m = /^([1-9][0-9]{0,15})\.yaml$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** The context a sealed value is bound to: `"<path>\0<version>"` (as plugins/file). */
export const sealContext = (path, version) => utf8(`${path}\0${version}`);

/** 16 random hex digits, for names no other writer picks. */
export function randomSuffix() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Standard base64 of `bytes`. */
export function toBase64(bytes) {
  let binary = '';
  const step = 0x2000;
  for (let i = 0; i < bytes.length; i += step) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + step));
  }
  return btoa(binary);
}

/** The bytes standard base64 `text` spells, or null when it is not base64. */
export function fromBase64(text) {
  if (typeof text !== 'string') return null;
  let binary;
  try {
    binary = atob(text.replace(/\s+/g, ''));
  } catch (_) {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Milliseconds since the Unix epoch; 0 without a clock grant (the clock is frozen). */
export function nowMs() {
  const now = Date.now();
  return Number.isFinite(now) && now > 0 ? Math.floor(now) : 0;
}

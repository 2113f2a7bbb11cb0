// Errors of the contract (`tresor:plugin/types.error`). An export fails by
// throwing the variant itself, `{ tag, val }`; the bindings turn it into the
// `err` case of the function's `result`. Messages say what went wrong and
// what to do next, and never hold a secret value.

const TAGS = new Set([
  'not-found',
  'invalid-input',
  'conflict',
  'unavailable',
  'permission-denied',
  'unsupported',
  'internal',
]);

export const notFound = (message) => ({ tag: 'not-found', val: message });
export const invalidInput = (message) => ({ tag: 'invalid-input', val: message });
export const conflict = (message) => ({ tag: 'conflict', val: message });
export const unavailable = (message) => ({ tag: 'unavailable', val: message });
export const internal = (message) => ({ tag: 'internal', val: message });

/** The contract error `e` is, if it is one (thrown by this code, or by a host import). */
export function asContractError(e) {
  if (e && typeof e === 'object') {
    if (TAGS.has(e.tag) && typeof e.val === 'string') return e;
    if (e.payload && TAGS.has(e.payload.tag)) return e.payload;
  }
  return null;
}

/**
 * A short description of an unexpected exception, for an `internal` error:
 * a WASI error code (`no-entry`, `read-only`, ...) or a JavaScript error's
 * name and message. Never the data being handled.
 */
export function describe(e) {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object') {
    if (typeof e.payload === 'string') return e.payload;
    if (e instanceof Error) return `${e.name}: ${e.message}`;
  }
  return 'an unexpected failure';
}

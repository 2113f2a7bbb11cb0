// A deliberately hostile provider in JavaScript, to test that the host's
// sandbox holds for a ComponentizeJS component as it does for Rust
// (tests/plugins/hostile). `get(path)` does what `path` says:
//
//   ok               value `fine`, version `1`
//   file:<abs path>  reads that file (through the preopen that holds it); its bytes are the value
//   file-hex:<hex>   the same, for a path given in hex (to smuggle `..` past the host's path check)
//   env:<NAME>       reads that environment variable (wasi:cli/environment)
//   net:<host:port>  opens a TCP connection (wasi:sockets) and writes `hello`; value `connected`
//   loop             spins forever (the host must interrupt it)
//   alloc            allocates and touches memory without bound
//   trap             makes the instance trap (an exception that is no contract error)
//   anything else    not-found
//
// Every other operation is `unsupported`.

import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { instanceNetwork } from 'wasi:sockets/instance-network@0.2.12';
import { createTcpSocket } from 'wasi:sockets/tcp-create-socket@0.2.12';

const encoder = new TextEncoder();

// ComponentizeJS 0.23 emits no JavaScript class for a resource whose
// interface has no functions (`network` of wasi:sockets/network), yet its
// binding of `instance-network` builds the returned handle from a class of
// that name, which then fails with a ReferenceError. The bindings run in a
// global of their own; a function they made leads to it, and a global of
// that name there stands in for the class (the bindings keep the handle).
function defineNetworkClass() {
  const bindingsGlobal = instanceNetwork.constructor('return this')();
  if (!bindingsGlobal['import_network_0_2_12$Network']) {
    bindingsGlobal['import_network_0_2_12$Network'] = class Network {};
  }
}

/** The instance's network (one per instance: the bindings cannot drop it). */
let network = null;

const secret = (value) => ({
  value: typeof value === 'string' ? encoder.encode(value) : value,
  version: '1',
  createdMs: 0n,
  metadata: [],
  deletionMs: 0n,
});

const fail = (tag, val) => ({ tag, val });

/** The WASI error code of a failed call (`no-entry`, `not-permitted`, ...). */
function codeOf(e) {
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object' && typeof e.payload === 'string') return e.payload;
  if (e instanceof Error) return e.message;
  return String(e);
}

function dispose(resource) {
  const drop = resource && resource[Symbol.dispose || Symbol.for('dispose')];
  if (typeof drop === 'function') drop.call(resource);
}

function unhex(hex) {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (_) {
    return null;
  }
}

/**
 * Reads `path` as a C program would: through the preopened directory whose
 * name is the longest prefix of it, with the rest of the path (`..` and all)
 * resolved by the host, symlinks followed.
 */
function readFile(path) {
  let best = null;
  for (const [descriptor, name] of getDirectories()) {
    const base = name.replace(/\/+$/, '');
    if ((path === base || path.startsWith(base + '/')) && (!best || base.length > best[1].length)) {
      best = [descriptor, base];
    }
  }
  if (!best) throw fail('internal', `open failed: no preopened directory holds \`${path}\``);
  const rest = path.slice(best[1].length).replace(/^\/+/, '') || '.';
  let file;
  try {
    file = best[0].openAt({ symlinkFollow: true }, rest, {}, { read: true });
  } catch (e) {
    throw fail('internal', `open failed: ${codeOf(e)}`);
  }
  try {
    const chunks = [];
    let offset = 0n;
    for (;;) {
      const [bytes, eof] = file.read(65536n, offset);
      chunks.push(bytes);
      offset += BigInt(bytes.length);
      if (eof || bytes.length === 0) break;
    }
    const out = new Uint8Array(Number(offset));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return secret(out);
  } catch (e) {
    throw fail('internal', `read failed: ${codeOf(e)}`);
  } finally {
    dispose(file);
  }
}

function readEnv(name) {
  for (const [k, v] of getEnvironment()) {
    if (k === name) return secret(v);
  }
  throw fail('not-found', `env var not visible: \`${name}\``);
}

/** `a.b.c.d:port` or `[v6]:port` as a wasi:sockets address. */
function parseAddress(text) {
  let m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$/.exec(text);
  if (m) {
    return { family: 'ipv4', address: { tag: 'ipv4', val: { port: Number(m[5]), address: [1, 2, 3, 4].map((i) => Number(m[i])) } } };
  }
  m = /^\[([0-9a-fA-F:]+)\]:(\d{1,5})$/.exec(text);
  if (m) {
    const [head, tail = ''] = m[1].split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
    return {
      family: 'ipv6',
      address: { tag: 'ipv6', val: { port: Number(m[2]), flowInfo: 0, address: groups, scopeId: 0 } },
    };
  }
  throw fail('invalid-input', 'net: wants an IP address and port, like 127.0.0.1:5432');
}

function connect(text) {
  const { family, address } = parseAddress(text);
  // Children (pollable, streams) are dropped before their socket.
  let socket = null;
  let pollable = null;
  let streams = null;
  try {
    if (!network) {
      defineNetworkClass();
      network = instanceNetwork();
    }
    socket = createTcpSocket(family);
    socket.startConnect(network, address);
    pollable = socket.subscribe();
    for (;;) {
      try {
        streams = socket.finishConnect();
        break;
      } catch (e) {
        if (codeOf(e) !== 'would-block') throw e;
        pollable.block();
      }
    }
    streams[1].blockingWriteAndFlush(encoder.encode('hello'));
    return secret('connected');
  } catch (e) {
    if (e && e.tag) throw e;
    throw fail('unavailable', `connect failed: ${codeOf(e)}`);
  } finally {
    if (streams) streams.forEach(dispose);
    dispose(pollable);
    dispose(socket);
  }
}

/** Spins forever (the host's deadline must interrupt it). */
function spin() {
  let counter = 0;
  for (;;) counter = (counter + 1) | 0;
}

/** Allocates 1 MiB blocks of non-zero bytes (so every page is touched) and never frees them. */
function hoard() {
  const blocks = [];
  for (;;) {
    blocks.push(new Uint8Array(1 << 20).fill(0xa5));
  }
}

const unsupported = () => {
  throw fail('unsupported', 'the hostile test plugin only implements get');
};

export const provider = {
  configure(_config) {},
  getCapabilities() {
    return { writable: false, versioned: false, checkAndSet: false, deletable: false, listable: false, softDelete: false };
  },
  get(path, _version) {
    if (path === 'ok') return secret('fine');
    if (path === 'loop') spin();
    if (path === 'alloc') hoard();
    // An exception that is no contract error: the bindings cannot lower it
    // into the `result`, and the instance traps.
    if (path === 'trap') throw new TypeError('hostile trap');
    if (path.startsWith('file-hex:')) {
      const file = unhex(path.slice('file-hex:'.length));
      if (file === null) throw fail('invalid-input', 'file-hex: wants an even number of hex digits');
      return readFile(file);
    }
    if (path.startsWith('file:')) return readFile(path.slice('file:'.length));
    if (path.startsWith('env:')) return readEnv(path.slice('env:'.length));
    if (path.startsWith('net:')) return connect(path.slice('net:'.length));
    throw fail('not-found', `the hostile plugin has no behaviour \`${path}\``);
  },
  put: unsupported,
  delete: unsupported,
  deleteVersions: unsupported,
  undeleteVersions: unsupported,
  listSecrets: unsupported,
  versions: unsupported,
  getSettings: unsupported,
  setSettings: unsupported,
};

// Structure check of an artifact's module.wasm before any engine sees it.
//
// checkModule(bytes, drivers, memoryPages) reads the module's sections with
// strict bounds and enforces the artifact contract (docs/artifact.md,
// "WebAssembly section"); it throws Error('module.wasm: ...') on the first
// defect and returns undefined otherwise. wasm/module_check.py is the same
// checker in Python, with the same messages.
//
// Binary format, WebAssembly Core Specification 2.0:
// - §5.2.2 integers: u32 is unsigned LEB128 of at most 5 bytes whose value fits in 32 bits;
// - §5.2.4 names: a byte vector holding valid UTF-8;
// - §5.3.4 value types, §5.3.6 function types (0x60 params results),
//   §5.3.7 limits (0x00 min | 0x01 min max), §5.3.9 table types;
// - §5.5.2 sections (id, u32 size, contents), §5.5.3 custom .. §5.5.15 data count,
//   §5.5.16 modules (magic, version 1, non-custom sections in order, each at most once).
//
// Contract: the only import is env.memory (a memory, neither shared nor
// 64-bit, minimum <= memoryPages); no memory or start section; tables hold at
// most 100000 entries; each driver is an exported function of type () -> ().
// Code bodies are skipped by size (the engine validates them).

export const MAX_TABLE_ENTRIES = 100000;
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]; // §5.5.16: magic, version 1
const SECTIONS = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global',
  'export', 'start', 'element', 'code', 'data', 'data count'];
const ORDER = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11]; // §5.5.16: data count sits between element and code
const VALTYPES = new Map([[0x7f, 'i32'], [0x7e, 'i64'], [0x7d, 'f32'], [0x7c, 'f64'], [0x7b, 'v128'],
  [0x70, 'funcref'], [0x6f, 'externref']]);
const KINDS = ['function', 'table', 'memory', 'global', 'tag'];
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(msg) {
  throw new Error(`module.wasm: ${msg}`);
}

const hex = (b) => `0x${b.toString(16).padStart(2, '0')}`;

/** A name for a message: printable ASCII only, at most 32 characters. */
function show(s) {
  s = Array.from(String(s), (c) => (c >= ' ' && c <= '~' ? c : '?')).join('');
  return s.length <= 32 ? s : `${s.slice(0, 32)}...`;
}

function fmtType([params, results]) {
  const side = (ts) => `(${[...ts.slice(0, 4).map((v) => VALTYPES.get(v)),
    ...(ts.length > 4 ? [`... ${ts.length} values`] : [])].join(', ')})`;
  return `${side(params)} -> ${side(results)}`;
}

/** Bounded reads of data[pos, end); errors name `where` (a section) and the byte offset. */
class Reader {
  constructor(data, pos, end, where = '') {
    Object.assign(this, { data, pos, end, where });
  }

  fail(msg) {
    fail(this.where ? `${this.where}: ${msg}` : msg);
  }

  byte() {
    if (this.pos >= this.end) this.fail(`unexpected end at byte ${this.pos}`);
    return this.data[this.pos++];
  }

  u32() {
    const start = this.pos;
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      if (i === 4 && b & 0x80) this.fail(`LEB128 integer at byte ${start} is longer than 5 bytes`);
      if (i === 4 && b > 0x0f) this.fail(`LEB128 integer at byte ${start} exceeds 2^32-1`);
      value += (b & 0x7f) * 2 ** (7 * i);
      if (!(b & 0x80)) return value;
    }
  }

  /** A vector length (§5.1.3), checked against the bytes left (each element takes one at least) before anything is read or allocated. */
  count(what) {
    const at = this.pos;
    const n = this.u32();
    if (n > this.end - this.pos) this.fail(`${what} count ${n} at byte ${at} exceeds the ${this.end - this.pos} bytes left`);
    return n;
  }

  skip(n) {
    if (n > this.end - this.pos) this.fail(`size ${n} at byte ${this.pos} exceeds the ${this.end - this.pos} bytes left`);
    this.pos += n;
  }

  name() {
    const at = this.pos;
    const n = this.count('name byte');
    this.pos += n;
    try {
      return UTF8.decode(this.data.subarray(this.pos - n, this.pos));
    } catch {
      return this.fail(`name at byte ${at} is not valid UTF-8`);
    }
  }

  limits(what, shared = false) {
    const flag = this.byte();
    if (shared) { // §5.3.7 with the threads proposal: 0x03 shared, min and max
      if (flag !== 3) this.fail(`${what} must be shared (limits flag 0x03) in a threaded module, not ${hex(flag)}`);
      const lo = this.u32();
      const hi = this.u32();
      if (hi < lo) this.fail(`${what} maximum ${hi} is below its minimum ${lo}`);
      return [lo, hi];
    }
    if (flag !== 0 && flag !== 1) {
      this.fail(`${what} has limits flag ${hex(flag)}; only 0x00 and 0x01 are allowed (no shared or 64-bit memories)`);
    }
    const lo = this.u32();
    const hi = flag ? this.u32() : null;
    if (hi !== null && hi < lo) this.fail(`${what} maximum ${hi} is below its minimum ${lo}`);
    return [lo, hi];
  }
}

// A threaded module's (wasm/threads.py) exports besides the drivers: name -> [params, results].
const THREAD_EXPORTS = [['worker', [[0x7f], []]], ['stop', [[], []]], ['threads_setup', [[0x7f, 0x7f], []]]];
// optional (older artifacts lack it; the backend calls it where exported): name -> [params, results]
const THREAD_OPTIONAL = [['wake', [[], []]]];

/**
 * Throw Error('module.wasm: ...') unless `bytes` is a well-formed module honouring the contract.
 * `shared`: the memory import must be shared (a threaded module) and the module must export
 * worker (i32) -> (), stop () -> () and threads_setup (i32, i32) -> (), and may export wake () -> ().
 */
export function checkModule(bytes, drivers, memoryPages, shared = false, rowsDrivers = []) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const r = new Reader(data, 0, data.length);
  const head = Array.from(data.subarray(0, 8));
  if (head.some((b, i) => b !== HEADER[i]) || head.length < 8) {
    if (head.every((b, i) => b === HEADER[i])) fail(`unexpected end at byte ${head.length}`);
    fail(head.slice(0, 4).some((b, i) => b !== HEADER[i]) ? 'not a WebAssembly module (bad magic bytes)'
      : 'unsupported WebAssembly version (expected 1)');
  }
  r.pos = 8;
  const types = [], funcs = [], exports = new Map();
  let last = -1, memory = null, codeCount = 0, dataCount = null, dataSegments = 0;
  while (r.pos < r.end) {
    const at = r.pos, sid = r.byte();
    if (sid >= SECTIONS.length) fail(`unknown section id ${sid} at byte ${at}`);
    const size = r.u32();
    if (size > r.end - r.pos) fail(`${SECTIONS[sid]} section at byte ${at} has size ${size}, past the end of the module`);
    const s = new Reader(data, r.pos, r.pos + size, `${SECTIONS[sid]} section`);
    r.pos += size;
    if (sid) {
      if (ORDER.indexOf(sid) <= last) fail(`${SECTIONS[sid]} section at byte ${at} is out of order or repeated`);
      last = ORDER.indexOf(sid);
    }
    if (sid === 0) {
      s.name();
      continue;
    }
    if (sid === 1) { // §5.5.4, §5.3.6
      for (let n = s.count('type'); n > 0; n--) {
        const form = s.byte();
        if (form !== 0x60) s.fail(`unsupported type form ${hex(form)} (only function types, 0x60)`);
        const sig = [];
        for (const what of ['parameter', 'result']) {
          const vals = Array.from({ length: s.count(what) }, () => s.byte());
          const bad = vals.filter((v) => !VALTYPES.has(v));
          if (bad.length) s.fail(`unsupported value type ${hex(bad[0])}`);
          sig.push(vals);
        }
        types.push(sig);
      }
    } else if (sid === 2) { // §5.5.5
      for (let n = s.count('import'); n > 0; n--) {
        const mod = s.name(), field = s.name(), kind = s.byte();
        if (kind >= KINDS.length) s.fail(`unknown import kind ${hex(kind)}`);
        if (mod !== 'env' || field !== 'memory' || kind !== 2) {
          fail(`imports '${show(mod)}'.'${show(field)}' (${KINDS[kind]}); the only import allowed is the memory env.memory`);
        }
        if (memory !== null) fail('imports env.memory twice');
        memory = s.limits('env.memory', shared);
        if (memory[0] > memoryPages) {
          fail(`env.memory needs at least ${memory[0]} pages, more than the ${memoryPages} pages the artifact provides`);
        }
      }
    } else if (sid === 3) { // §5.5.6
      for (let i = 0, n = s.count('function'); i < n; i++) {
        const t = s.u32();
        if (t >= types.length) s.fail(`function ${i} has type index ${t}, but there are ${types.length} types`);
        funcs.push(types[t]);
      }
    } else if (sid === 4) { // §5.5.7, §5.3.9
      for (let i = 0, n = s.count('table'); i < n; i++) {
        const ref = s.byte();
        if (ref !== 0x70 && ref !== 0x6f) s.fail(`table ${i} has unsupported element type ${hex(ref)}`);
        const [lo, hi] = s.limits(`table ${i}`);
        if (lo > MAX_TABLE_ENTRIES) s.fail(`table ${i} minimum ${lo} exceeds ${MAX_TABLE_ENTRIES} entries`);
        if (hi !== null && hi > MAX_TABLE_ENTRIES) s.fail(`table ${i} maximum ${hi} exceeds ${MAX_TABLE_ENTRIES} entries`);
      }
    } else if (sid === 5) {
      fail('defines its own memory; the memory must be imported as env.memory');
    } else if (sid === 7) { // §5.5.10
      for (let n = s.count('export'); n > 0; n--) {
        const ename = s.name(), kind = s.byte();
        if (kind >= KINDS.length) s.fail(`unknown export kind ${hex(kind)}`);
        const index = s.u32();
        if (exports.has(ename)) s.fail(`duplicate export name '${show(ename)}'`);
        exports.set(ename, [kind, index]);
      }
    } else if (sid === 8) {
      fail('has a start function; start functions are not allowed');
    } else if (sid === 10) { // §5.5.13: bodies skipped by size
      codeCount = s.count('code entry');
      for (let n = codeCount; n > 0; n--) s.skip(s.u32());
    } else if (sid === 12) { // §5.5.15
      dataCount = s.u32();
    } else { // global, element, data: skipped
      if (sid === 11) dataSegments = s.count('data segment');
      s.pos = s.end;
    }
    if (s.pos !== s.end) s.fail(`contents end at byte ${s.pos}, before the section's end at byte ${s.end}`);
  }
  if (codeCount !== funcs.length) {
    fail(`the function section declares ${funcs.length} functions but the code section has ${codeCount} bodies`);
  }
  if (dataCount !== null && dataCount !== dataSegments) {
    fail(`the data count section declares ${dataCount} segments but the data section has ${dataSegments}`);
  }
  if (memory === null) fail('does not import env.memory');
  for (const [name, [params, results]] of shared ? [...THREAD_EXPORTS, ...THREAD_OPTIONAL] : []) {
    const optional = THREAD_OPTIONAL.some(([n]) => n === name);
    if (optional && !exports.has(name)) continue;
    const [kind, index] = exports.get(name) ?? [null, null];
    const t = kind === 0 && index < funcs.length ? funcs[index] : null;
    if (!t || t[0].join() !== params.join() || t[1].join() !== results.join()) {
      fail(optional ? `a threaded module's export '${name}' must be a function of type ${fmtType([params, results])}`
        : `a threaded module must export the function '${name}' of type ${fmtType([params, results])}`);
    }
  }
  // drivers are () -> (); rows drivers (run-time rows, docs/artifact.md) (i32) -> ()
  for (const [d, want] of [...drivers.map((x) => [x, [[], []]]), ...rowsDrivers.map((x) => [x, [[0x7f], []]])]) {
    if (!exports.has(d)) fail(`does not export the driver function '${show(d)}'`);
    const [kind, index] = exports.get(d);
    if (kind !== 0) fail(`export '${show(d)}' is a ${KINDS[kind]}, a driver must be a function ${fmtType(want)}`);
    if (index >= funcs.length) fail(`export '${show(d)}' is function ${index}, but the module defines ${funcs.length} functions`);
    const [params, results] = funcs[index];
    if (params.join() !== want[0].join() || results.length) fail(`export '${show(d)}' has type ${fmtType(funcs[index])}, a driver must be ${fmtType(want)}`);
  }
}

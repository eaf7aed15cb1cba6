// WebAssembly backend: one module, one imported memory, one driver export per
// signature; variables, inputs and outputs live at fixed byte addresses
// (docs/artifact.md, "WebAssembly section").

import { ArtifactError, storageBytes } from '../artifact.js';
import { checkModule } from './wasm_module.js';
import { toStorage } from '../tensor.js';

const PAGE = 65536;
const MAX_MEMORY = 65536 * PAGE; // a wasm32 memory: at most 65536 pages (4 GiB)

/**
 * Check the signatures' "wasm" sections, compile and instantiate module.wasm
 * with one `WebAssembly.Memory` of `max(memory_bytes)`, and copy every
 * variable's initial value, and every large constant of a section's
 * "constants" (a weights tensor), to its address. Throws an Error naming the
 * signature/variable/file that is wrong.
 */
export async function createWasmBackend({ manifest, files, weights }, fail, { threads = 1, quiet = false, spawnThread = null } = {}) {
  const { variables, signatures } = manifest;
  let memoryBytes = 0;
  const address = new Map(); // variable index -> byte address
  const constants = new Map(); // byte address -> weights tensor name (large constants, stored once)
  for (const [name, sig] of Object.entries(signatures)) {
    const w = sig.wasm;
    const what = `signature '${name}' wasm`;
    if (w === undefined) fail(`manifest.json: ${what}: section is missing (this artifact has no WebAssembly code for it)`);
    memoryBytes = Math.max(memoryBytes, w.memory_bytes);
    if (w.rows_driver !== undefined && sig.batch === undefined) fail(`manifest.json: ${what}: "rows_driver" needs a "batch" section (a symbolic batch)`);
    if (w.rows_driver !== undefined && Object.values(signatures).some((s) => s.wasm?.driver === w.rows_driver)) {
      fail(`manifest.json: ${what}: "rows_driver" '${w.rows_driver}' is a driver (() -> ()), not a rows driver ((i32) -> ())`);
    }
    for (const key of ['inputs', 'outputs']) {
      if (w[key].length !== sig[key].length) {
        fail(`manifest.json: ${what}: "${key}" must hold one byte address per ${key.slice(0, -1)} (${sig[key].length})`);
      }
    }
    const vars = w.variables ?? {};
    for (const i of new Set([...(sig.reads ?? []), ...(sig.writes ?? [])])) {
      if (!Object.hasOwn(vars, String(i))) fail(`manifest.json: ${what}: no address for variable ${i} ('${variables[i].name}'), which the signature uses`);
    }
    for (const [key, addr] of Object.entries(vars)) {
      const i = Number(key); // the schema allows only canonical decimal indices
      if (i >= variables.length) fail(`manifest.json: ${what}: variables {"${key}": ${addr}}: there is no variable ${i}`);
      if (address.has(i) && address.get(i) !== addr) {
        fail(`manifest.json: ${what}: variable '${variables[i].name}' is at ${addr}, another signature has it at ${address.get(i)} (variables must have one address)`);
      }
      address.set(i, addr);
    }
    for (const [key, name] of Object.entries(w.constants ?? {})) {
      const addr = Number(key); // the schema allows only canonical decimal addresses
      const t = weights.get(name);
      if (t === undefined) fail(`weights.safetensors: constant '${name}' (${what} constants) is missing`);
      if (!['float32', 'int32', 'bool'].includes(t.dtype)) fail(`weights.safetensors: constant '${name}' is ${t.dtype}; constants are float32, int32 or bool`);
      if (constants.has(addr) && constants.get(addr) !== name) {
        fail(`manifest.json: ${what}: constants at ${addr} names '${name}', another signature has '${constants.get(addr)}' there`);
      }
      constants.set(addr, name);
    }
  }
  // every region inside the memory; variables and constants must not overlap each other
  const regions = [...address].map(([i, addr]) => ({ addr, end: addr + storageBytes(variables[i]), what: `variable '${variables[i].name}'` }));
  for (const [addr, name] of constants) regions.push({ addr, end: addr + storageBytes(weights.get(name)), what: `constant '${name}'` });
  // ordered as Python orders (start, end, what) tuples, so both loaders name the same pair
  regions.sort((a, b) => a.addr - b.addr || a.end - b.end || (a.what < b.what ? -1 : a.what > b.what ? 1 : 0));
  regions.forEach((r, k) => {
    if (k > 0 && r.addr < regions[k - 1].end) fail(`manifest.json: wasm: ${r.what} [${r.addr}, ${r.end}) overlaps ${regions[k - 1].what}`);
  });
  for (const [name, sig] of Object.entries(signatures)) {
    for (const key of ['inputs', 'outputs']) {
      sig.wasm[key].forEach((addr, k) => regions.push({ addr, end: addr + storageBytes(sig[key][k]), what: `signature '${name}' ${key.slice(0, -1)} '${sig[key][k].name}'` }));
    }
  }
  for (const r of regions) {
    if (r.end > memoryBytes) fail(`manifest.json: wasm: ${r.what} [${r.addr}, ${r.end}) lies outside the ${memoryBytes}-byte memory`);
  }

  // Threads (wasm/threads.py): the artifact's threaded module on a shared memory, when more than
  // one thread is asked for, the artifact has one and this context has shared memory (browsers:
  // cross-origin isolated); else one thread, module.wasm, exactly as before.
  let modules = ['module.wasm', 'module_relaxed.wasm'].filter((m) => files.has(m));
  const threaded = ['module_threads.wasm', 'module_relaxed_threads.wasm'].filter((m) => files.has(m));
  const layouts = Object.values(signatures).filter((sig) => sig.wasm.threads !== undefined).map((sig) => sig.wasm.threads);
  for (const lay of layouts) { // a workspace where not even a second thread fits
    if (lay.scratch + lay.stride > MAX_MEMORY) {
      fail(`manifest.json: wasm: threads {"scratch": ${lay.scratch}, "stride": ${lay.stride}}: a second thread's workspace ends past WebAssembly's 4 GiB memory`);
    }
  }
  let threadsNotice = null;
  const short = threads > 1 && threadsUnavailable(threaded.length > 0 && layouts.length > 0, spawnThread);
  if (short) {
    if (!quiet) { // threads were asked for (not load()'s default 'auto'): say why one runs
      threadsNotice = `webtensor.load: ${threads} threads were asked for, but the model runs on 1: ${short}`;
      console.warn(threadsNotice);
    }
    threads = 1;
  }
  if (threads > 1) {
    const need = Math.max(...layouts.map((lay) => lay.scratch + (threads - 1) * lay.stride));
    if (need > MAX_MEMORY) {
      fail(`manifest.json: wasm: ${threads} threads need ${need} bytes of memory (scratch + ${threads - 1} x stride), more than WebAssembly's 4 GiB; load it with fewer threads`);
    }
    memoryBytes = Math.max(memoryBytes, need);
    modules = threaded;
  }
  const pages = Math.max(1, Math.ceil(memoryBytes / PAGE));
  // Every listed module is checked (the same verdict with and without relaxed SIMD); the relaxed
  // one runs where the engine has relaxed SIMD.
  for (const m of modules) {
    try {
      checkModule(files.get(m), Object.values(signatures).map((sig) => sig.wasm.driver), pages, threads > 1,
        Object.values(signatures).filter((sig) => sig.wasm.rows_driver !== undefined).map((sig) => sig.wasm.rows_driver));
    } catch (e) {
      fail(m + e.message.slice('module.wasm'.length)); // its messages start 'module.wasm: '
    }
  }
  const chosen = modules.length > 1 && hasRelaxedSimd() ? modules[1] : modules[0];
  let module;
  try {
    module = await WebAssembly.compile(files.get(chosen));
  } catch (e) {
    fail(`${chosen} is not a valid WebAssembly module (${String(e.message).slice(0, 200)})`);
  }
  // The memory cannot grow past what the manifest declares: a driver's memory.grow returns -1.
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: threads > 1 });
  let instance;
  try {
    instance = await WebAssembly.instantiate(module, { env: { memory } });
  } catch (e) {
    fail(`${chosen} cannot be instantiated (${String(e.message).slice(0, 200)})`);
  }
  // Large constants are stored once, in the weights: copy them to their addresses.
  for (const [addr, name] of constants) {
    const t = weights.get(name);
    new Uint8Array(memory.buffer).set(toStorage(t.bytes, t.dtype), addr);
  }
  // Variables that no signature maps stay on the host.
  const host = new Map();
  variables.forEach((v, i) => {
    const t = weights.get(v.name);
    const data = toStorage(t.bytes, v.dtype);
    if (address.has(i)) new Uint8Array(memory.buffer).set(data, address.get(i));
    else host.set(i, data.slice());
  });
  let workers = [];
  if (threads > 1) {
    // a browser's main thread may not block: the driver then spins on atomic loads
    instance.exports.threads_setup(threads, typeof globalThis.document === 'undefined' ? 1 : 0);
    workers = await startThreads(spawnThread, module, memory, threads, instance.exports.stop, fail);
  }
  const backend = new WasmBackend(memory, instance.exports, signatures, variables, address, host, chosen, workers);
  backend.threadsNotice = threadsNotice;
  return backend;
}

/** Why more than one thread cannot run here (a sentence), or null when it can. */
function threadsUnavailable(hasThreadedModule, spawnThread) {
  if (!hasThreadedModule) return 'the artifact has no module_threads.wasm (export it with wasm_threads=True)';
  if (!spawnThread) return 'this entry point cannot create Workers';
  if (globalThis.crossOriginIsolated === false) {
    return 'the page is not cross-origin isolated (crossOriginIsolated is false), so it has no shared memory; '
      + 'serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp';
  }
  if (!canShareMemory()) return 'this engine has no shared WebAssembly.Memory (SharedArrayBuffer)';
  return null;
}

/** Whether a shared WebAssembly.Memory can be made here (browsers: only when cross-origin isolated). */
export function canShareMemory() {
  if (typeof SharedArrayBuffer !== 'function' || globalThis.crossOriginIsolated === false) return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Threads 1..n-1 (js/thread.js), each instantiated and waiting on the barrier; ends them on a failure. */
async function startThreads(spawnThread, module, memory, n, stop, fail) {
  const workers = [];
  const ready = [];
  try {
    for (let tid = 1; tid < n; tid++) {
      const w = await spawnThread(); // throws where Workers cannot be made (e.g. a CSP without worker-src)
      workers.push(w);
      ready.push(new Promise((resolve, reject) => {
        const on = (e) => {
          const m = e?.data ?? e; // a Web Worker's MessageEvent or a worker_threads message
          if (m.type === 'ready') resolve();
          else if (m.type === 'error') reject(new Error(m.message));
        };
        if (typeof w.once === 'function') w.once('message', on); else w.addEventListener('message', on, { once: true });
        if (typeof w.once === 'function') w.once('error', reject); else w.addEventListener('error', reject, { once: true });
      }));
      w.postMessage({ module, memory, tid });
    }
    await Promise.all(ready);
  } catch (e) {
    stop();
    for (const w of workers) w.terminate();
    fail(`module_threads.wasm: a thread could not start (${String(e.message).slice(0, 200)})`);
  }
  return workers;
}

// A module whose one function computes f32x4.relaxed_madd of three splats (wasm/engines.py's
// relaxed_simd_probe): it validates only where the engine has relaxed SIMD.
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 7, 9, 1, 5, 112, 114, 111, 98, 101, 0, 0,
  10, 28, 1, 26, 0, 67, 0, 0, 128, 63, 253, 19, 67, 0, 0, 0, 64, 253, 19, 67, 0, 0, 64, 64, 253, 19, 253, 133, 2, 11,
]);
let relaxed = null;

/**
 * Whether this engine has relaxed SIMD (Chromium 114+, Firefox 145+, Node 22+; Node 20 with
 * --experimental-wasm-relaxed-simd): then artifacts run their module_relaxed.wasm.
 */
export function hasRelaxedSimd() {
  relaxed ??= WebAssembly.validate(RELAXED_PROBE);
  return relaxed;
}

class WasmBackend {
  constructor(memory, exports, signatures, variables, address, host, module, workers = []) {
    this.kind = 'wasm';
    this.module = module;
    this.workers = workers; // threads 1..n-1 (js/thread.js); this thread is thread 0
    this.stop = exports.stop;
    // wakes the threads before the inputs are copied: a thread asleep for more than ~0.5 ms takes
    // ~150 us to wake on a VM (bench/bench_threads.mjs --wake), which the copy then hides
    this.wake = workers.length && exports.wake ? exports.wake : null; // older artifacts lack it
    this.memory = memory;
    this.variables = variables;
    this.address = address;
    this.host = host;
    this.signatures = new Map(Object.entries(signatures).map(([name, sig]) => [name, {
      driver: exports[sig.wasm.driver],
      rowsDriver: sig.wasm.rows_driver === undefined ? null : exports[sig.wasm.rows_driver],
      wakes: sig.wasm.threads?.rounds !== 0, // its driver splits kernels (older manifests do not say)
      chunk: sig.batch?.chunk,
      whole: sig.batch?.rows_input !== undefined, // a train step's outputs are whole at any rows
      inputs: sig.wasm.inputs,
      inputBytes: sig.inputs.map((spec) => storageBytes(spec)),
      outputs: sig.wasm.outputs.map((addr, k) => [addr, storageBytes(sig.outputs[k])]),
    }]));
  }

  /**
   * Write the inputs, call the driver, return the outputs' bytes. An input is
   * its storage bytes (copied to its slot) or {addr, bytes} of a resident
   * tensor in this memory (nothing to do when it already is the slot, else
   * its bytes are copied there). `views`: return Uint8Array views of the output slots (valid
   * until the next run) instead of copies. `rows` (where takesRows(name); 1 <= rows <= chunk): the
   * inputs and outputs hold the first `rows` rows only, run by the signature's rows driver (a train
   * step's: its inputs but the row count; its outputs are whole).
   */
  run(name, inputs, views = false, rows = undefined) {
    const sig = this.signatures.get(name);
    if (rows !== undefined && !(this.takesRows(name) && Number.isInteger(rows) && rows >= 1 && rows <= sig.chunk)) {
      throw new Error(`webtensor: signature '${name}' cannot run ${rows} rows`);
    }
    if (sig?.wakes) this.wake?.();
    let mem = new Uint8Array(this.memory.buffer);
    // a resident tensor of another slot is read before any slot is written: slots of different
    // signatures overlap, so writing one input could overwrite another's source
    const staged = inputs.map((data, k) => (data instanceof Uint8Array || data.addr === sig.inputs[k]
      ? data : mem.slice(data.addr, data.addr + data.bytes)));
    staged.forEach((data, k) => { if (data instanceof Uint8Array) mem.set(data, sig.inputs[k]); });
    try {
      if (rows === undefined) sig.driver();
      else sig.rowsDriver(rows);
    } catch (e) {
      throw new ArtifactError(`webtensor: signature '${name}': the WebAssembly driver trapped (${String(e.message).slice(0, 200)})`);
    }
    mem = new Uint8Array(this.memory.buffer); // a driver that grew the memory detached the old buffer
    return sig.outputs.map(([addr, bytes]) => {
      const n = rows === undefined || sig.whole ? bytes : bytes / sig.chunk * rows;
      return views ? mem.subarray(addr, addr + n) : mem.slice(addr, addr + n);
    });
  }

  /** Whether signature `name` runs fewer rows than its chunk (run()'s `rows`: a rows driver). */
  takesRows(name) {
    return this.signatures.get(name)?.rowsDriver != null;
  }

  /** {addr, bytes} of signature `name`'s input `k` (where a resident tensor for it lives). */
  inputSlot(name, k) {
    const sig = this.signatures.get(name);
    return { addr: sig.inputs[k], bytes: sig.inputBytes[k] };
  }

  readVariables(indices) {
    return indices.map((i) => {
      if (this.host.has(i)) return this.host.get(i).slice();
      const addr = this.address.get(i);
      return new Uint8Array(this.memory.buffer).slice(addr, addr + storageBytes(this.variables[i]));
    });
  }

  writeVariable(i, data) {
    if (this.host.has(i)) this.host.set(i, data.slice());
    else new Uint8Array(this.memory.buffer).set(data, this.address.get(i));
  }

  stats() {
    return { wasmMemoryBytes: this.memory.buffer.byteLength, wasmModule: this.module, wasmThreads: this.workers.length + 1 };
  }

  dispose() {
    if (this.workers.length) {
      this.stop(); // the workers return from worker(); terminate() also ends one still starting
      for (const w of this.workers) w.terminate();
    }
    this.workers = [];
    this.memory = this.signatures = this.host = null;
  }
}

// The WebAssembly backend in a Worker (`load(source, {worker: true, timeout})`):
// the main thread keeps this proxy, which has the WasmBackend interface
// (backends/wasm.js) and forwards every call as a message to js/worker.js,
// where createWasmBackend runs the model. A request that takes longer than
// `timeout` ms terminates the worker (the only way to stop WebAssembly that
// does not return) and rejects with a TimeoutError. Browser-safe: no Node
// imports (the entry points create the Worker; see spawnWorker in index.js and
// node.js). Works with a module Web Worker and a Node worker_threads Worker.

import * as artifactModule from '../artifact.js';

/** Largest delay setTimeout accepts (2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The same calls on a Web Worker and on a Node worker_threads Worker:
 * post(message, transfer), listen(onMessage, onFailure(reason)), hold(busy)
 * (Node: keep the process alive only while a request is pending), terminate().
 */
function portOf(worker) {
  if (typeof worker.on === 'function') { // Node worker_threads.Worker (an EventEmitter)
    return {
      post: (message, transfer) => worker.postMessage(message, transfer),
      listen(onMessage, onFailure) {
        worker.on('message', onMessage);
        worker.on('messageerror', (e) => onFailure(`a message from it could not be read (${e?.message ?? e})`));
        worker.on('error', (e) => onFailure(`${e?.name ?? 'Error'}: ${e?.message ?? e}`));
        worker.on('exit', (code) => onFailure(`it exited with code ${code}`));
      },
      hold: (busy) => (busy ? worker.ref() : worker.unref()),
      terminate: () => Promise.resolve(worker.terminate()).catch(() => {}),
    };
  }
  return { // a Web Worker (an EventTarget)
    post: (message, transfer) => worker.postMessage(message, transfer),
    listen(onMessage, onFailure) {
      worker.addEventListener('message', (e) => onMessage(e.data));
      worker.addEventListener('messageerror', () => onFailure('a message from it could not be read'));
      worker.addEventListener('error', (e) => {
        e.preventDefault?.();
        onFailure(e.message || 'its script could not be loaded or failed (check that js/worker.js is served next to js/index.js)');
      });
    },
    hold: () => {},
    terminate: () => worker.terminate(),
  };
}

/**
 * An Error with the name and message (and plain own properties) of one thrown
 * in the worker; of the same class when it is one this thread knows
 * (artifact.js's ArtifactError, the built-in error types).
 */
function rebuildError({ name, message, props }) {
  const known = { ArtifactError: artifactModule.ArtifactError, TypeError, RangeError, SyntaxError, ReferenceError };
  const Class = typeof known[name] === 'function' ? known[name] : Error;
  const e = new Class(message);
  Object.assign(e, props ?? {});
  if (name && e.name !== name) e.name = name;
  return e;
}

function timeoutError(message) {
  const e = new Error(message);
  e.name = 'TimeoutError';
  return e;
}

/**
 * Start a worker with `spawn()` (a Worker, or a promise of one), send it the
 * checked artifact ({manifest, files, weights} from readArtifact: only
 * module.wasm (and module_relaxed.wasm; with `threads` > 1 the threaded modules) and the bytes of
 * the variables and large constants travel), and resolve to the proxy once
 * createWasmBackend has succeeded there. `fail(msg)` is the loader's artifact
 * error: createWasmBackend's complaints in the worker are rethrown through it,
 * so they read exactly as on the main thread. `timeout` (ms, or undefined
 * for none) bounds loading (compiling and instantiating module.wasm, after the
 * worker has started) and every later request.
 */
export async function createWorkerBackend({ manifest, files, weights }, fail, { spawn, timeout, threads = 1, quiet = false }) {
  const backend = new WorkerBackend(await spawn(), manifest.variables, timeout);
  // signatures with a rows driver (docs/artifact.md "Run-time rows"); the worker's backend checks them
  backend._rows = new Set(Object.entries(manifest.signatures).filter(([, sig]) => sig.wasm?.rows_driver !== undefined).map(([name]) => name));
  try {
    await backend._ready;
    // copies, so that transferring them detaches nothing of the caller's; the worker picks the module its engine runs
    const moduleNames = ['module.wasm', 'module_relaxed.wasm', ...(threads > 1 ? ['module_threads.wasm', 'module_relaxed_threads.wasm'] : [])];
    const modules = moduleNames.filter((m) => files.has(m)).map((m) => [m, files.get(m).slice()]);
    // the variables' tensors and the large constants' (the wasm sections' "constants")
    const names = new Set(manifest.variables.map((v) => v.name));
    for (const sig of Object.values(manifest.signatures)) {
      for (const name of Object.values(sig.wasm?.constants ?? {})) if (weights.has(name)) names.add(name);
    }
    const vars = [...names].map((name) => {
      const t = weights.get(name);
      return [name, { dtype: t.dtype, shape: t.shape.slice(), bytes: t.bytes.slice() }];
    });
    const { threadsNotice } = await backend._request('init', [{ manifest, modules, weights: vars, threads, quiet }],
      [...modules.map(([, m]) => m.buffer), ...vars.map(([, t]) => t.bytes.buffer)], 'loading the model (compiling and instantiating module.wasm)', fail);
    backend.threadsNotice = threadsNotice;
  } catch (e) {
    backend.dispose();
    throw e;
  }
  return backend;
}

class WorkerBackend {
  constructor(worker, variables, timeout) {
    this.kind = 'wasm';
    this.threadsNotice = null; // createWasmBackend's in the worker (why fewer threads run than asked)
    this._port = portOf(worker);
    this._variables = variables;
    this._timeout = timeout;
    this._ids = 0;
    this._pending = null; // {id, what, resolve, reject, fail, timer}: at most one request is in flight
    this._chain = Promise.resolve();
    this._dead = null; // why later calls fail: set by a timeout, a crash of the worker, or dispose()
    this._disposed = false;
    this._stats = {};
    this._ready = new Promise((resolve, reject) => { this._readyWaiter = { resolve, reject }; });
    this._ready.catch(() => {});
    this._port.listen((message) => this._onMessage(message), (reason) => this._onFailure(reason));
  }

  /** Send one request after the previous one has settled; resolves to the worker's result. */
  _request(op, args, transfer, what, fail = null) {
    const send = () => new Promise((resolve, reject) => {
      if (this._dead) {
        reject(new Error(`webtensor: ${what}: ${this._dead}`));
        return;
      }
      const id = ++this._ids;
      const pending = { id, what, resolve, reject, fail, timer: null };
      this._pending = pending;
      this._port.hold(true);
      if (this._timeout !== undefined) {
        pending.timer = setTimeout(() => this._onTimeout(pending), this._timeout);
      }
      try {
        this._port.post({ id, op, args }, transfer);
      } catch (e) {
        this._settle(pending);
        reject(e);
      }
    });
    const result = this._chain.then(send, send);
    this._chain = result.catch(() => {});
    return result;
  }

  /** Forget `pending` (the in-flight request): stop its timer, let the process exit while idle. */
  _settle(pending) {
    clearTimeout(pending.timer);
    if (this._pending === pending) this._pending = null;
    if (!this._dead) this._port.hold(false);
  }

  _onMessage(message) {
    if (message?.type === 'ready') {
      this._readyWaiter.resolve();
      return;
    }
    const pending = this._pending;
    if (!pending || message?.id !== pending.id) return;
    this._settle(pending);
    if (message.stats) this._stats = message.stats;
    if (message.ok) {
      pending.resolve(message.result);
    } else if (typeof message.fail === 'string') {
      try {
        (pending.fail ?? ((msg) => { throw new Error(msg); }))(message.fail);
        pending.reject(new Error(message.fail)); // a `fail` that returned
      } catch (e) {
        pending.reject(e);
      }
    } else {
      pending.reject(rebuildError(message.error ?? {}));
    }
  }

  _onTimeout(pending) {
    if (this._pending !== pending) return;
    const reason = `${pending.what} did not finish within ${this._timeout} ms`;
    this._kill(`the model's worker was terminated after a timeout (${reason})`);
    pending.reject(timeoutError(`webtensor: ${reason}; the model's worker was terminated`));
  }

  /** The worker failed to start, crashed or exited on its own. */
  _onFailure(reason) {
    if (this._dead) return; // terminated by us: a timeout or dispose()
    const pending = this._pending;
    this._kill(`the model's worker stopped (${reason})`);
    this._readyWaiter.reject(new Error(`webtensor.load: the model's worker could not start (${reason})`));
    pending?.reject(new Error(`webtensor: ${pending.what}: ${this._dead}`));
  }

  /** Terminate the worker; later requests reject with `dead`. */
  _kill(dead) {
    this._dead = dead;
    if (this._pending) this._settle(this._pending);
    this._pending = null;
    this._port.terminate();
  }

  /** `rows`: the signature's first rows only (its rows driver, where takesRows(name)). */
  run(name, inputs, views = false, rows = undefined) {
    const copies = inputs.map((data) => data.slice()); // own buffers to transfer; the caller's arrays stay intact
    return this._request('run', [name, copies, rows], copies.map((c) => c.buffer), `signature '${name}'`);
  }

  /** Whether signature `name` runs fewer rows than its chunk (run()'s `rows`: a rows driver). */
  takesRows(name) {
    return this._rows?.has(name) ?? false;
  }

  readVariables(indices) {
    return this._request('readVariables', [indices], [], 'reading the variables');
  }

  writeVariable(i, data) {
    const copy = data.slice();
    return this._request('writeVariable', [i, copy], [copy.buffer], `writing variable '${this._variables[i]?.name}'`);
  }

  /** What the worker's backend reported after its last request ({wasmMemoryBytes}). */
  stats() {
    return { ...this._stats };
  }

  /** Terminate the worker (frees its memory). Idempotent; pending requests reject. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    const pending = this._pending;
    if (!this._dead) {
      this._kill('the model was disposed');
      this._readyWaiter.reject(new Error('webtensor.load: the model was disposed while its worker was starting'));
      pending?.reject(new Error(`webtensor: ${pending.what}: the model was disposed`));
    }
    this._stats = {};
  }
}

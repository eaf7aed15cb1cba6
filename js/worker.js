// The worker side of `load(source, {worker: true})` (see backends/worker.js):
// runs createWasmBackend on the artifact the main thread has checked and
// serves its requests by message, one at a time. Runs as a module Web Worker
// (browsers) or a worker_threads Worker (Node).
//
// With `threads` > 1 in 'init', its threads (js/thread.js) are Workers of this worker, where the
// driver may block while it waits for them (a page's main thread may not).
//
// Protocol: the worker posts {type: 'ready'} once it listens. Requests are
// {id, op, args} with op 'init' | 'run' | 'readVariables' | 'writeVariable' |
// 'stats' | 'dispose'; each gets one reply {id, ok: true, result, stats} or
// {id, ok: false, fail: message} (an artifact error: createWasmBackend called
// `fail`) or {id, ok: false, error: {name, message, props}}, `stats` being
// the backend's stats() after the request. Result buffers are transferred.

import { createWasmBackend } from './backends/wasm.js';

/** The channel to the main thread: {post(message, transfer), listen(handler), close()}. */
async function connect() {
  if (typeof self !== 'undefined' && typeof self.postMessage === 'function') { // a Web Worker
    return {
      post: (message, transfer) => self.postMessage(message, transfer),
      listen: (handler) => self.addEventListener('message', (e) => handler(e.data)),
      close: () => self.close(),
    };
  }
  const specifier = 'node:worker_threads'; // a variable, so that bundlers leave the browser build alone
  const { parentPort } = await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
  if (!parentPort) throw new Error('webtensor: js/worker.js must run in a Worker');
  return {
    post: (message, transfer) => parentPort.postMessage(message, transfer),
    listen: (handler) => parentPort.on('message', handler),
    close: () => parentPort.close(),
  };
}

/** What createWasmBackend's `fail(msg)` throws here; the main thread rethrows the message through its own `fail`. */
class ArtifactFailure extends Error {}
const fail = (msg) => { throw new ArtifactFailure(msg); };

let backend = null;

/** A thread of a threaded model (js/thread.js), a Worker of this worker: a module Web Worker or a worker_threads Worker. */
async function spawnThread() {
  const url = new URL('./thread.js', import.meta.url);
  if (typeof self !== 'undefined' && typeof self.postMessage === 'function') return new Worker(url, { type: 'module' });
  const specifier = 'node:worker_threads';
  const w = new (await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier)).Worker(url);
  w.unref(); // a thread never keeps Node alive (the model's worker ends them with the model)
  return w;
}

const ops = {
  async init({ manifest, modules, weights, threads = 1, quiet = false }) {
    if (backend) throw new Error('webtensor: the worker already holds a model');
    // threads are nested Workers where this context can create them (a Web Worker: Chromium,
    // Firefox, Safari 15.5+; Node: always)
    const webWorker = typeof self !== 'undefined' && typeof self.postMessage === 'function';
    const canSpawn = !webWorker || typeof Worker === 'function';
    backend = await createWasmBackend({ manifest, files: new Map(modules), weights: new Map(weights) }, fail,
      { threads, quiet, spawnThread: canSpawn ? spawnThread : null });
    return { threadsNotice: backend.threadsNotice };
  },
  run: (name, inputs, rows) => backend.run(name, inputs, false, rows),
  readVariables: (indices) => backend.readVariables(indices),
  writeVariable: (i, data) => { backend.writeVariable(i, data); },
  stats: () => backend.stats(),
  dispose() {
    backend?.dispose();
    backend = null;
  },
};

/** The buffers of the Uint8Arrays in `result` (each once) that can be handed over instead of copied. */
function transferables(result) {
  if (!Array.isArray(result)) return [];
  const buffers = new Set();
  for (const r of result) if (r instanceof Uint8Array && r.byteLength === r.buffer.byteLength) buffers.add(r.buffer);
  return [...buffers];
}

function describeError(e) {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const props = {};
  for (const [key, value] of Object.entries(e)) if (key !== 'name' && key !== 'message' && key !== 'stack') props[key] = value;
  try {
    structuredClone(props);
  } catch {
    return { name: e.name, message: e.message };
  }
  return { name: e.name, message: e.message, props };
}

const port = await connect();

async function handle({ id, op, args }) {
  let reply;
  let transfer = [];
  try {
    if (!Object.hasOwn(ops, op)) throw new Error(`webtensor: the worker has no request '${op}'`);
    if (op !== 'init' && op !== 'dispose' && !backend) throw new Error('webtensor: the worker holds no model');
    const result = await ops[op](...(args ?? []));
    transfer = transferables(result);
    reply = { id, ok: true, result };
  } catch (e) {
    reply = e instanceof ArtifactFailure ? { id, ok: false, fail: e.message } : { id, ok: false, error: describeError(e) };
  }
  reply.stats = backend ? backend.stats() : null;
  try {
    port.post(reply, transfer);
  } catch (e) { // e.g. a result that cannot be cloned: the request still gets its one reply
    port.post({ id, ok: false, error: describeError(e), stats: reply.stats });
  }
  if (op === 'dispose') port.close();
}

let queue = Promise.resolve();
port.listen((message) => {
  queue = queue.then(() => handle(message ?? {})).catch(() => {});
});
port.post({ type: 'ready' });

// A thread of a threaded wasm model (backends/wasm.js, wasm/threads.py): instantiates the
// artifact's module_threads.wasm on the model's shared WebAssembly.Memory and runs its
// worker(tid) export, which waits on a barrier in that memory (memory.atomic.wait32) and runs the
// tiles of each kernel the driver publishes, until the model's dispose() calls stop(). Runs as a
// module Web Worker (browsers) or a worker_threads Worker (Node).
//
// Protocol: the main thread posts {module, memory, tid} once; the thread posts {type: 'ready'}
// once instantiated (or {type: 'error', message}), and {type: 'done'} when worker() returns.

async function channel() {
  if (typeof self !== 'undefined' && typeof self.postMessage === 'function') { // a Web Worker
    return { post: (m) => self.postMessage(m), once: (h) => self.addEventListener('message', (e) => h(e.data), { once: true }), close: () => self.close() };
  }
  const specifier = 'node:worker_threads'; // a variable, so that bundlers leave the browser build alone
  const { parentPort } = await import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
  if (!parentPort) throw new Error('webtensor: js/thread.js must run in a Worker');
  return { post: (m) => parentPort.postMessage(m), once: (h) => parentPort.once('message', h), close: () => parentPort.close() };
}

const port = await channel();
port.once(async ({ module, memory, tid }) => {
  let exports;
  try {
    exports = (await WebAssembly.instantiate(module, { env: { memory } })).exports;
  } catch (e) {
    port.post({ type: 'error', message: String(e?.message ?? e).slice(0, 200) });
    port.close();
    return;
  }
  port.post({ type: 'ready' });
  exports.worker(tid); // returns after stop()
  port.post({ type: 'done' });
  port.close();
});

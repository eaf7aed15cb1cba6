// webtensor: run artifacts exported by the Python package (inference and
// training steps) on WebAssembly or WebGPU. Browser-safe entry point: no Node
// imports; artifacts are fetched by URL or passed as bytes.
//
//   import * as webtensor from 'webtensor';
//   const model = await webtensor.load('models/mlp/', { backend: 'auto' });
//   const y = await model.predict(webtensor.tensor(x, [32, 64]));
//   const loss = await model.trainStep(x, labels);

import { urlReader } from './artifact.js';
import { loadModel } from './model.js';

export { Model, VERSION } from './model.js';
export { Tensor, tensor } from './tensor.js';
export { OutputView, ResidentTensor } from './resident.js';
export { parseSafetensors, writeSafetensors } from './safetensors.js';
export { ArtifactError, FORMAT, FORMAT_VERSION } from './artifact.js';
export { isSoftwareAdapter } from './backends/webgpu.js';

/**
 * Load an artifact: `source` is the URL of its directory (relative URLs
 * resolve against the page) or an object {'manifest.json': Uint8Array, ...};
 * `options`: {backend: 'auto' | 'webgpu' | 'wasm', gpu, device, worker,
 * timeout, threads} (`worker: true` runs the WebAssembly in a module Web Worker;
 * `timeout` ms then bounds each call; `threads: n` or 'auto' (the default: navigator.hardwareConcurrency,
 * at most 4) splits large kernels over Web Workers on a cross-origin isolated page: see
 * loadModel in model.js). Resolves to
 * a Model; rejects with an Error naming the damaged file or missing backend.
 */
export function load(source, options) {
  return loadModel(source, options, urlReader, spawnWorker, () => globalThis.navigator?.hardwareConcurrency ?? 1);
}

/** The Worker of `load(source, {worker: true})` (js/worker.js) or of a thread (js/thread.js): a module Web Worker. */
function spawnWorker(script = 'worker.js') {
  if (typeof Worker !== 'function') {
    throw new Error("webtensor.load: `worker: true` needs Web Workers, which this environment lacks (no global Worker; in Node use the package's Node entry, 'webtensor')");
  }
  return new Worker(new URL(`./${script}`, import.meta.url), { type: 'module' });
}

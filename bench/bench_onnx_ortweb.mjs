// Times an ONNX file with ONNX Runtime Web's WebAssembly backend, one thread (issue 14's reference
// for bench/bench_onnx.py --ort-web). onnxruntime-web is not a dependency of this repository: point
// ORT_WEB at an installed copy (`npm install onnxruntime-web` in any folder, then
// ORT_WEB=<that folder>/node_modules/onnxruntime-web).
//
//   ORT_WEB=... node bench/bench_onnx_ortweb.mjs MODEL.onnx INPUT_NAME SHAPE REPEAT
//
// Prints {"ms": best of REPEAT runs after one warm-up}, on the inputs bench_onnx_node.mjs makes.

import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [model, inputName, shapeArg, repeatArg] = process.argv.slice(2);
// The package's own copy (a dev dependency), unless ORT_WEB names another onnxruntime-web folder.
const ortWeb = process.env.ORT_WEB ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'onnxruntime-web');
const ort = await import(pathToFileURL(join(ortWeb, 'dist', 'ort.node.min.mjs')).href);
ort.env.wasm.numThreads = 1;
const shape = shapeArg.split(',').map(Number);
const n = shape.reduce((a, b) => a * b, 1);
let s = 1;
const data = Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1);
const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
const feeds = { [inputName]: new ort.Tensor('float32', data, shape) };
await session.run(feeds);
let best = Infinity;
for (let i = 0; i < Number(repeatArg); i++) {
  const t = performance.now();
  await session.run(feeds);
  best = Math.min(best, performance.now() - t);
}
console.log(JSON.stringify({ ms: best }));

// Times an exported artifact's predict in Node (webtensor's wasm backend), for bench/bench_onnx.py:
//
//   node bench/bench_onnx_node.mjs DIR SHAPE REPEAT      (SHAPE: comma-separated, e.g. 16,3,48,192)
//
// Prints {"ms": best of REPEAT calls after one warm-up, reading the result back each time}.

import * as webtensor from '../js/node.js';

const [dir, shapeArg, repeatArg] = process.argv.slice(2);
const shape = shapeArg.split(',').map(Number);
const n = shape.reduce((a, b) => a * b, 1);
let s = 1;
const x = webtensor.tensor(Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1), shape);
const model = await webtensor.load(dir, { backend: 'wasm' });
(await model.predict(x)).dataSync();
let best = Infinity;
for (let i = 0; i < Number(repeatArg); i++) {
  const t = performance.now();
  (await model.predict(x)).dataSync();
  best = Math.min(best, performance.now() - t);
}
model.dispose();
console.log(JSON.stringify({ ms: best }));

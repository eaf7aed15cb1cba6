// Predict time of the compact artifacts bench_compact.py wrote (node bench/bench_compact.mjs DIR [REPEAT]):
// each model's float32, float16 and int8 artifact in Node's WebAssembly, best of REPEAT interleaved
// runs, with the ratio to float32 measured in the same run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import * as webtensor from '../js/node.js';

const [dir, repeatArg] = process.argv.slice(2);
const repeat = Number(repeatArg ?? 30);
const { x, shape } = JSON.parse(readFileSync(join(dir, 'x.json'), 'utf8'));
const input = webtensor.tensor(new Float32Array(x), shape);
console.log(`\nNode ${process.version} (WebAssembly), predict batch ${shape[0]}, best of ${repeat}`);
for (const kind of ['cnn', 'transformer']) {
  const models = {};
  for (const dt of ['float32', 'float16', 'int8']) models[dt] = await webtensor.load(join(dir, `${kind}_${dt}`), { backend: 'wasm' });
  const best = { float32: Infinity, float16: Infinity, int8: Infinity };
  for (let i = 0; i < repeat; i++) {
    for (const dt of Object.keys(models)) {
      const t = performance.now();
      await models[dt].predict(input);
      best[dt] = Math.min(best[dt], performance.now() - t);
    }
  }
  for (const dt of Object.keys(models)) {
    console.log(`${kind.padEnd(12)} ${dt.padEnd(8)} predict ms ${best[dt].toFixed(3).padStart(8)}   vs f32 ${(best[dt] / best.float32).toFixed(2)}`);
    models[dt].dispose();
  }
}

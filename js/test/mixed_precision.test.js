// A mixed_float16 model (float32 weights, float16 compute, LossScaleOptimizer) exported by Python
// (tests/export_fixtures_mixed.py) runs in Node's WebAssembly bit for bit as in Python-wasmtime:
// predict, train steps (the loss scale grows during them) and the state after them. WebGPU (artifacts
// store float16 as f32 and round it to float16 in an extra pass, as wasm) agrees within 1e-4. The
// same model exported with webgpu_f16 (WGSL f16, `enable f16;`) needs the adapter's shader-f16: it
// runs where the adapter has it, is refused with that reason on WebGPU where not (Dawn/SwiftShader),
// and its module.wasm is the default export's (bit for bit as in Python).

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_mixed.py');

let out, e;
before(() => ({ out, expected: e } = pythonFixture(SCRIPT, 'webtensor-mixed-')));
after(() => rmSync(out, { recursive: true, force: true }));

test('wasm: a mixed_float16 artifact predicts and trains bit for bit as in Python', async () => {
  const model = await webtensor.load(join(out, 'mixed'), { backend: 'wasm' });
  try {
    const y = await model.predict(webtensor.tensor(new Float32Array(e.x), [e.batch, 64]));
    assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(e.predict)));
    const losses = [];
    for (let i = 0; i < e.losses.length; i++) {
      const b = e.batches[i % e.batches.length];
      const loss = await model.trainStep(webtensor.tensor(new Float32Array(b.x), [e.batch, 64]), new Int32Array(b.y));
      losses.push(loss.dataSync()[0]);
    }
    assert.deepEqual(losses, Array.from(Float32Array.from(e.losses)));
    const weights = await model.getWeights();
    for (const [name, want] of Object.entries(e.weights)) {
      assert.deepEqual(Array.from(weights[name].dataSync(), Number), Array.from(want, Number), name);
    }
    assert.equal(weights['optimizer/dynamic_scale'].dataSync()[0], 2 ** 17);
  } finally {
    model.dispose();
  }
});

test('webgpu: the same artifact agrees with Python within 1e-4, loss scale included', async (t) => {
  const { gpu, reason } = await getGPU();
  if (!gpu) return t.skip(reason);
  const model = await webtensor.load(join(out, 'mixed'), { backend: 'webgpu', gpu });
  try {
    const y = await model.predict(webtensor.tensor(new Float32Array(e.x), [e.batch, 64]));
    const d = maxAbsDiff(y.dataSync(), Float32Array.from(e.predict));
    assert.ok(d < 1e-4, `predict: max |difference| ${d}`);
    for (let i = 0; i < e.losses.length; i++) {
      const b = e.batches[i % e.batches.length];
      const loss = await model.trainStep(webtensor.tensor(new Float32Array(b.x), [e.batch, 64]), new Int32Array(b.y));
      const diff = Math.abs(loss.dataSync()[0] - e.losses[i]);
      assert.ok(diff < 1e-4 * Math.abs(e.losses[i]), `step ${i}: loss ${loss.dataSync()[0]} vs ${e.losses[i]}`);
    }
    const weights = await model.getWeights();
    assert.equal(weights['optimizer/dynamic_scale'].dataSync()[0], 2 ** 17);
  } finally {
    model.dispose();
  }
});

test('webgpu_f16: needs shader-f16 on WebGPU; its wasm code is bit for bit the default one', async (t) => {
  const x = webtensor.tensor(new Float32Array(e.x), [e.batch, 64]);
  const cpu = await webtensor.load(join(out, 'mixed_f16'), { backend: 'wasm' });
  try {
    assert.deepEqual(Array.from((await cpu.predict(x)).dataSync()), Array.from(Float32Array.from(e.predict)));
  } finally {
    cpu.dispose();
  }
  const { gpu, reason } = await getGPU();
  if (!gpu) return t.skip(reason);
  const adapter = await gpu.requestAdapter();
  if (!adapter.features.has('shader-f16')) {
    await assert.rejects(webtensor.load(join(out, 'mixed_f16'), { backend: 'webgpu', gpu }), /shader-f16/);
    return;
  }
  // f16 arithmetic (products and sums in f32) against f32 arithmetic rounded to float16: within
  // float16 rounding of the probabilities (tests/python/test_mixed_precision.py measures 7e-8)
  const model = await webtensor.load(join(out, 'mixed_f16'), { backend: 'webgpu', gpu });
  try {
    const d = maxAbsDiff((await model.predict(x)).dataSync(), Float32Array.from(e.predict));
    assert.ok(d < 4 * 2 ** -10, `predict: max |difference| ${d}`);
  } finally {
    model.dispose();
  }
});

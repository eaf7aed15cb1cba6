// Issue 12, end to end: artifacts exported by Python (tests/export_fixtures_more.py) run in
// Node. A functional model with three inputs takes them as an array, an object keyed by
// input name, or as arguments, and its trainSteps equal Python's; a function that captures a
// 1 MiB constant tensor stores it once (weights.safetensors, copied into WebAssembly memory at
// load) and still computes what the Python function does. WebAssembly must equal
// Python-wasmtime bit for bit (same module, no relaxed SIMD); WebGPU within float32 tolerance.

import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, readDir } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_more.py');
const BATCH = 4;

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-more-')));
after(() => rmSync(out, { recursive: true, force: true }));

const f32 = (values) => Array.from(Float32Array.from(values));

describe('a functional model with three inputs', () => {
  const inputs = () => {
    const e = expected.three;
    return {
      a: webtensor.tensor(new Float32Array(e.a), [BATCH, 3]),
      b: webtensor.tensor(new Float32Array(e.b), [BATCH, 4]),
      c: webtensor.tensor(new Float32Array(e.c), [BATCH, 2]),
      y: webtensor.tensor(new Float32Array(e.y), [BATCH, 2]),
    };
  };

  test('wasm: predict takes an array, an object keyed by input name, or arguments, bitwise equal to Python', async () => {
    const model = await webtensor.load(join(out, 'three'), { backend: 'wasm' });
    try {
      assert.deepEqual(model.signatures.predict.inputs.map((s) => [s.name, s.shape]), [['a', [BATCH, 3]], ['b', [BATCH, 4]], ['c', [BATCH, 2]]]);
      assert.deepEqual(model.signatures.train_step.inputs.map((s) => s.name), ['a', 'b', 'c', 'y']);
      const { a, b, c } = inputs();
      const want = f32(expected.three.predict);
      for (const got of [await model.predict([a, b, c]), await model.predict({ c, a, b }), await model.predict(a, b, c),
        (await model.run('predict', { a, b, c })).output_0]) {
        assert.deepEqual(got.shape, [BATCH, 2]);
        assert.deepEqual(Array.from(got.dataSync()), want);
      }
      await assert.rejects(model.predict([a, b]), /signature 'predict' takes 3 input\(s\) \('a', 'b', 'c'\), got 2/);
      await assert.rejects(model.predict({ a, b }), /input 'c' is missing/);
      await assert.rejects(model.predict([a, c, b]), /signature 'predict', input 'b': expected \[batch,4\] float32, got \[4,2\] float32/);
    } finally {
      model.dispose();
    }
  });

  test('wasm: trainStep with an array or an object of inputs equals Python\'s steps bit for bit', async () => {
    for (const form of ['array', 'object']) {
      const model = await webtensor.load(join(out, 'three'), { backend: 'wasm' });
      try {
        const { a, b, c, y } = inputs();
        const losses = [];
        for (let i = 0; i < expected.three.losses.length; i++) {
          const loss = await model.trainStep(form === 'array' ? [a, b, c] : { a, b, c }, y);
          losses.push(loss.dataSync()[0]);
        }
        assert.deepEqual(losses, f32(expected.three.losses), form);
        const weights = await model.getWeights();
        for (const [name, values] of Object.entries(expected.three.weights)) {
          assert.deepEqual(Array.from(weights[name].dataSync(), Number), Array.from(Float32Array.from(values), Number), `${form}: ${name}`);
        }
      } finally {
        model.dispose();
      }
    }
  });

  test('webgpu: predict with an object of inputs matches Python within tolerance', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const model = await webtensor.load(join(out, 'three'), { backend: 'webgpu', gpu });
    try {
      const { a, b, c } = inputs();
      const got = await model.predict({ a, b, c });
      const d = maxAbsDiff(got.dataSync(), Float32Array.from(expected.three.predict));
      assert.ok(d < 1e-5, `max |difference| ${d}`);
    } finally {
      model.dispose();
    }
  });
});

describe('a function capturing a 1 MiB constant tensor', () => {
  const dir = () => join(out, 'const');
  const x = () => webtensor.tensor(new Float32Array(expected.const.x), [2, 512]);

  test('the artifact stores the constant once (weights.safetensors), not in module.wasm too', () => {
    const files = readDir(dir());
    const total = Object.values(files).reduce((n, f) => n + f.length, 0);
    const bytes = expected.const.const_bytes;
    assert.ok(total >= bytes && total < 1.1 * bytes, `artifact: ${total} bytes for a ${bytes}-byte constant`);
    assert.ok(statSync(join(dir(), 'module.wasm')).size < 65536);
    const manifest = JSON.parse(new TextDecoder().decode(files['manifest.json']));
    assert.deepEqual(Object.values(manifest.signatures.predict.wasm.constants), ['const/predict/0']);
  });

  for (const worker of [false, true]) {
    test(`wasm${worker ? ' (worker)' : ''}: the output equals the Python function's bit for bit`, async () => {
      const model = await webtensor.load(dir(), { backend: 'wasm', worker });
      try {
        const y = await model.predict(x());
        assert.deepEqual(y.shape, [2, 512]);
        assert.deepEqual(Array.from(y.dataSync()), f32(expected.const.out));
      } finally {
        model.dispose();
      }
    });
  }

  test('webgpu: the output matches the Python function within tolerance', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const model = await webtensor.load(dir(), { backend: 'webgpu', gpu });
    try {
      const d = maxAbsDiff((await model.predict(x())).dataSync(), Float32Array.from(expected.const.out));
      assert.ok(d < 1e-4, `max |difference| ${d}`);
    } finally {
      model.dispose();
    }
  });
});

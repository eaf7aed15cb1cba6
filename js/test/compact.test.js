// Compact artifacts (export(..., weights_dtype='float16' | 'int8'); docs/artifact.md "Compact
// weights"): tests/compact_fixtures.py exports the digits CNN and a transformer encoder with each
// weights dtype and records what Python's loader (wasmtime) computes; Node runs the same module on
// the same weights, so its outputs must be equal bit for bit.

import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'compact_fixtures.py');

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-compact-')));
after(() => rmSync(out, { recursive: true, force: true }));

/** The int8 artifact `dir` on WebGPU predicts `input` within float32 rounding (1e-5 of the peak) of
 * `want`, the wasm loader's output. */
async function assertWebGPUNearWasm(gpu, dir, input, want) {
  const model = await webtensor.load(join(out, dir), { backend: 'webgpu', gpu });
  try {
    const y = (await model.predict(input)).dataSync();
    const peak = Math.max(...want.map(Math.abs));
    const err = Math.max(...Array.from(y, (v, i) => Math.abs(v - want[i])));
    assert.ok(err <= 1e-5 * peak, `max |webgpu - wasm| ${err}, max |wasm| ${peak}`);
  } finally {
    model.dispose();
  }
}

describe('compact embedding table (int8, a scale per row: quantized_gather)', () => {
  for (const dtype of ['float32', 'int8']) {
    test(`${dtype}: predict is bitwise equal to Python's loader`, async () => {
      const e = expected.embedding;
      const model = await webtensor.load(join(out, `embedding_${dtype}`), { backend: 'wasm' });
      try {
        const y = await model.predict(webtensor.tensor(new Int32Array(e.x), e.shape, 'int32'));
        assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(e.predict[dtype])));
      } finally {
        model.dispose();
      }
    });
  }
  test('int8 on WebGPU (the generic quantized_gather kernel) matches wasm within float32 rounding', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const e = expected.embedding;
    await assertWebGPUNearWasm(gpu, 'embedding_int8_webgpu', webtensor.tensor(new Int32Array(e.x), e.shape, 'int32'), e.predict.int8);
  });
});

for (const kind of ['cnn', 'transformer']) {
  describe(`compact ${kind}`, () => {
    for (const dtype of ['float32', 'float16', 'int8']) {
      test(`${dtype}: predict is bitwise equal to Python's loader`, async () => {
        const e = expected[kind];
        const model = await webtensor.load(join(out, `${kind}_${dtype}`), { backend: 'wasm' });
        try {
          const y = await model.predict(webtensor.tensor(new Float32Array(e.x), e.shape));
          assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(e.predict[dtype])));
          const weights = await model.getWeights();
          const manifest = JSON.parse(readFileSync(join(out, `${kind}_${dtype}`, 'manifest.json'), 'utf8'));
          const kernels = manifest.variables.filter((v) => v.storage?.dtype === 'int8');
          assert.equal(kernels.length > 0, dtype === 'int8');
          for (const v of kernels) assert.equal(weights[v.name].dtype, 'int32'); // the packed words
        } finally {
          model.dispose();
        }
      });
    }

    test('int8 outputs stay near float32 (a few quantization steps)', () => {
      const p = expected[kind].predict;
      let err = 0, peak = 0;
      p.float32.forEach((v, i) => { err = Math.max(err, Math.abs(p.int8[i] - v)); peak = Math.max(peak, Math.abs(v)); });
      assert.ok(err > 0 && err < 0.02 * peak, `max |int8 - float32| ${err}, max |float32| ${peak}`);
    });

    test('int8 on WebGPU (WGSL matmul_q8) matches wasm within float32 rounding', async (t) => {
      const { gpu, reason } = await getGPU();
      if (!gpu) return t.skip(reason);
      const e = expected[kind];
      await assertWebGPUNearWasm(gpu, `${kind}_int8_webgpu`, webtensor.tensor(new Float32Array(e.x), e.shape), e.predict.int8);
    });

    test('int8 weights are over 3.4x smaller than float32', () => {
      const size = (dt) => statSync(join(out, `${kind}_${dt}`, 'weights.safetensors')).size;
      assert.ok(size('float32') / size('int8') > 3.4, `${size('float32')} / ${size('int8')}`);
      assert.ok(size('float32') / size('float16') > 1.9, `${size('float32')} / ${size('float16')}`);
    });
  });
}

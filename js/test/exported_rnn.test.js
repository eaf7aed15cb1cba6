// Issue 15, recurrent layers end to end: a model with Embedding(mask_zero=True), a bidirectional
// GRU and an LSTM, exported by Python (tests/export_fixtures_rnn.py; each time loop is a loop of the
// artifact's control flow, in predict and in train_step's forward and backward passes), runs in Node:
// predict and trainStep equal Python-wasmtime bit for bit on WebAssembly, and predict matches within
// float32 tolerance on WebGPU.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_rnn.py');
const BATCH = 4;
const TIME = 6;

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-rnn-')));
after(() => rmSync(out, { recursive: true, force: true }));

const f32 = (values) => Array.from(Float32Array.from(values));
const ids = () => webtensor.tensor(Int32Array.from(expected.ids), [BATCH, TIME]);

describe('a masked recurrent text model', () => {
  test('wasm: predict and trainStep equal Python bit for bit', async () => {
    const model = await webtensor.load(join(out, 'text'), { backend: 'wasm' });
    try {
      const got = await model.predict(ids());
      assert.deepEqual(got.shape, [BATCH, 2]);
      assert.deepEqual(Array.from(got.dataSync()), f32(expected.predict));
      const y = webtensor.tensor(new Float32Array(expected.y), [BATCH, 2]);
      const losses = [];
      for (let i = 0; i < expected.losses.length; i++) losses.push((await model.trainStep(ids(), y)).dataSync()[0]);
      assert.deepEqual(losses, f32(expected.losses));
    } finally {
      model.dispose();
    }
  });

  test('webgpu: predict matches Python within tolerance', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const model = await webtensor.load(join(out, 'text'), { backend: 'webgpu', gpu });
    try {
      const d = maxAbsDiff((await model.predict(ids())).dataSync(), Float32Array.from(expected.predict));
      assert.ok(d < 1e-5, `max |difference| ${d}`);
    } finally {
      model.dispose();
    }
  });
});

// End to end: artifacts exported by Python (tests/export_fixtures.py trains the
// digits MLP and CNN briefly, exports them, and runs them with webtensor.load
// in Python) run in Node. WebAssembly must equal Python-wasmtime bit for bit
// (same module, deterministic wasm without relaxed SIMD); WebGPU (Dawn on
// SwiftShader without a GPU) within float32 tolerances. saveWeights() must
// load into the Python model with Model.load_weights.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures.py');
const BATCH = 32;
const GPU_STEPS = { mlp: 20, cnn: 5 }; // SwiftShader is slow: fewer CNN steps on WebGPU

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-')));
after(() => rmSync(out, { recursive: true, force: true }));

/** max |a - b| / (|b| + 1e-3) over elements: a relative error robust near 0. */
function maxRelDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (Math.abs(b[i]) + 1e-3));
  return m;
}

const batchOf = (e, i) => {
  const b = e.batches[i % e.batches.length];
  return [webtensor.tensor(new Float32Array(b.x), [BATCH, 8, 8, 1]), new Int32Array(b.y)];
};

async function train(model, e, steps) {
  const losses = [];
  for (let i = 0; i < steps; i++) {
    const [x, y] = batchOf(e, i);
    const loss = await model.trainStep(x, y);
    assert.deepEqual(loss.shape, []);
    losses.push(loss.dataSync()[0]);
  }
  return losses;
}

for (const kind of ['mlp', 'cnn']) {
  describe(`exported digits ${kind}`, () => {
    const dir = () => join(out, kind);
    const x = () => webtensor.tensor(new Float32Array(expected[kind].x), [BATCH, 8, 8, 1]);

    test('wasm: predict is bitwise equal to Python-wasmtime (and to the Python model)', async () => {
      const e = expected[kind];
      const model = await webtensor.load(dir(), { backend: 'wasm' });
      try {
        assert.equal(model.backend, 'wasm');
        assert.deepEqual(Object.keys(model.signatures).sort(), ['predict', 'train_step']);
        const y = await model.predict(x());
        assert.deepEqual(y.shape, [BATCH, 10]);
        assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(e.predict)));
        assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(e.model_predict)));
      } finally {
        model.dispose();
      }
    });

    test(`wasm: ${50} trainSteps decrease the loss and equal Python's run bit for bit`, async () => {
      const e = expected[kind];
      const model = await webtensor.load(dir(), { backend: 'wasm' });
      try {
        const losses = await train(model, e, e.steps);
        assert.deepEqual(losses, Array.from(Float32Array.from(e.losses)));
        assert.ok(losses.at(-1) < losses[0], `loss ${losses[0]} -> ${losses.at(-1)}`);
        const weights = await model.getWeights();
        for (const [name, want] of Object.entries(e.weights)) {
          const got = Array.from(weights[name].dataSync(), Number);
          assert.deepEqual(got, Array.from(want, Number), name);
        }
      } finally {
        model.dispose();
      }
    });

    test('webgpu: predict and trainSteps match Python within tolerance', async (t) => {
      const { gpu, reason } = await getGPU();
      if (!gpu) return t.skip(reason);
      const e = expected[kind];
      const model = await webtensor.load(dir(), { backend: 'webgpu', gpu });
      try {
        assert.equal(model.backend, 'webgpu');
        const y = await model.predict(x());
        const d = maxAbsDiff(y.dataSync(), Float32Array.from(e.predict));
        assert.ok(d < 1e-4, `predict: max |difference| ${d}`);
        // fewer steps than Python's run: compare the losses step by step, and the weights after
        // all steps by training the wasm backend for the same number of steps
        const steps = GPU_STEPS[kind];
        const losses = await train(model, e, steps);
        const rel = maxRelDiff(losses, e.losses.slice(0, steps));
        assert.ok(rel < 1e-4, `losses: max relative difference ${rel}`);
        assert.ok(losses.at(-1) < losses[0], `loss ${losses[0]} -> ${losses.at(-1)}`);
        let want = e.weights;
        if (steps !== e.steps) {
          const ref = await webtensor.load(dir(), { backend: 'wasm' });
          await train(ref, e, steps);
          want = Object.fromEntries(Object.entries(await ref.getWeights()).map(([k, v]) => [k, v.dataSync()]));
          ref.dispose();
        }
        const weights = await model.getWeights();
        for (const [name, w] of Object.entries(want)) {
          if (name.startsWith('state/') || name === 'optimizer/iterations') {
            assert.deepEqual(Array.from(weights[name].dataSync()), Array.from(w), name);
            continue;
          }
          const diff = maxAbsDiff(weights[name].dataSync(), Float32Array.from(w));
          assert.ok(diff < 1e-4, `${name}: max |difference| ${diff}`);
        }
      } finally {
        model.dispose();
      }
    });

    test('saveWeights() after training loads into the Python model (Model.load_weights)', async () => {
      const e = expected[kind];
      const model = await webtensor.load(dir(), { backend: 'wasm' });
      const tmp = mkdtempSync(join(tmpdir(), 'webtensor-weights-'));
      try {
        await train(model, e, 3);
        writeFileSync(join(tmp, 'w.safetensors'), await model.saveWeights());
        writeFileSync(join(tmp, 'x.json'), JSON.stringify({ x: e.x }));
        const py = JSON.parse(execFileSync('python3', [SCRIPT, '--predict-with-weights', kind,
          join(tmp, 'w.safetensors'), join(tmp, 'x.json')]).toString());
        const y = await model.predict(x());
        assert.deepEqual(Array.from(y.dataSync()), Array.from(Float32Array.from(py)));
      } finally {
        model.dispose();
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
}

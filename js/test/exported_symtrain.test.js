// Train steps that take any batch up to their chunk (docs/artifact.md "Symbolic batch: train steps"):
// artifacts exported by Python (tests/export_fixtures_symtrain.py) with symbolic_batch=True, whose
// train_step is compiled for 32 rows and counts only the first row_count of them. Node's trainStep
// at 5, 32 and 1 rows (in that order, the optimizer's state carried over) gives the losses and
// weights of Python's fit on those rows: bit for bit on WebAssembly (the same module.wasm), within
// float32 rounding on WebGPU (Dawn); the same in headless Chromium through the browser entry. More
// rows than the chunk are a RangeError naming the maximum.

import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { CHROMIUM, getGPU, maxAbsDiff, pythonFixture, runPage } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_symtrain.py');
// WebGPU sums in another order than the reference: measured at most 1.2e-6 here (Dawn on
// SwiftShader) and 2.4e-6 in Python on lavapipe; a padding row that counted, or a wrong row count,
// is about 1e-3 off
const GPU_TOL = 1e-5;
const SHAPES = { mlp: { row: [6], y: [], ydtype: 'int32' }, cnn: { row: [6, 6, 1], y: [4], ydtype: 'float32' } };

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-symtrain-')));
after(() => rmSync(out, { recursive: true, force: true }));

const size = (shape) => shape.reduce((p, d) => p * d, 1);

/** Run the fixture's steps on `model`; yields [n, loss, expected step, weights] per step. */
async function* steps(model, kind) {
  const { row, y, ydtype } = SHAPES[kind];
  for (const [k, n] of expected.steps.entries()) {
    const b = expected[kind].batches[k];
    const x = webtensor.tensor(Float32Array.from(b.x), [n, ...row]);
    const t = webtensor.tensor(ydtype === 'int32' ? Int32Array.from(b.y) : Float32Array.from(b.y), [n, ...y], ydtype);
    const loss = await model.trainStep(x, t);
    assert.deepEqual(loss.shape, []);
    yield [n, loss.dataSync()[0], expected[kind].after[k], await model.getWeights()];
  }
}

describe('a train step that takes any batch up to its chunk', () => {
  for (const kind of Object.keys(SHAPES)) {
    test(`wasm: ${kind} trainStep at 5, 32 and 1 rows equals Python's fit, bit for bit`, async () => {
      const model = await webtensor.load(join(out, kind), { backend: 'wasm' });
      try {
        const sig = model.signatures.train_step;
        assert.deepEqual(sig.inputs.map((s) => s.name), ['x', 'y']);     // the row count is the runtime's
        assert.ok(model._backend.takesRows('train_step'));                 // 5 and 1 rows run by the rows driver
        const before = await model.getWeights();
        for await (const [n, loss, want, got] of steps(model, kind)) {
          assert.equal(loss, Math.fround(want.loss), `loss at ${n} rows`);
          for (const [path, w] of Object.entries(want.weights)) {
            assert.deepEqual(Array.from(got[path].dataSync()), Array.from(Float32Array.from(w)), `${path} after ${n} rows`);
          }
        }
        const after = await model.getWeights();
        assert.ok(Object.keys(before).some((p) => maxAbsDiff(before[p].dataSync(), after[p].dataSync()) > 1e-3));
      } finally {
        model.dispose();
      }
    });
  }

  test('wasm in a worker: the same bits', async () => {
    const model = await webtensor.load(join(out, 'cnn'), { backend: 'wasm', worker: true });
    try {
      assert.ok(model._backend.takesRows('train_step'));      // the worker runs 5 and 1 rows by the rows driver
      for await (const [n, loss, want, got] of steps(model, 'cnn')) {
        assert.equal(loss, Math.fround(want.loss), `loss at ${n} rows`);
        for (const [path, w] of Object.entries(want.weights)) {
          assert.deepEqual(Array.from(got[path].dataSync()), Array.from(Float32Array.from(w)), `${path} after ${n} rows`);
        }
      }
    } finally {
      model.dispose();
    }
  });

  test('wasm: more rows than the chunk are a RangeError; malformed batches are refused', async () => {
    const model = await webtensor.load(join(out, 'mlp'), { backend: 'wasm' });
    try {
      const x = (n) => webtensor.tensor(new Float32Array(n * 6), [n, 6]);
      const y = (n) => webtensor.tensor(new Int32Array(n), [n], 'int32');
      await assert.rejects(model.trainStep(x(33), y(33)),
        (e) => e instanceof RangeError && /batch size 33 is outside \[1, 32\] \(the artifact's declared maximum\)/.test(e.message));
      await assert.rejects(model.trainStep(x(4), y(3)), /inputs have different batch sizes \(4, 3\)/);
      await assert.rejects(model.trainStep(new Float32Array(7), new Int32Array(1)), /typed array of whole rows of 6 values/);
      await assert.rejects(model.run('train_step', [x(2), y(2), webtensor.tensor(new Int32Array([2]), [], 'int32')]),
        /takes 2 input\(s\) \('x', 'y'\), got 3/);
      await assert.rejects(model.run('train_step', [x(2), y(2)], { output: 'view' }), /outputs are always copied/);
      const loss = await model.trainStep(new Float32Array(2 * 6), new Int32Array(2));    // typed arrays of whole rows
      assert.ok(Number.isFinite(loss.dataSync()[0]));
    } finally {
      model.dispose();
    }
  });

  test('webgpu: mlp and cnn trainStep at 5, 32 and 1 rows equal Python\'s fit within float32 rounding', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    for (const kind of Object.keys(SHAPES)) {
      const model = await webtensor.load(join(out, kind), { backend: 'webgpu', gpu });
      try {
        assert.ok(model._backend.takesRows('train_step'));   // kernels with "rows", zeroing passes before the sums
        for await (const [n, loss, want, got] of steps(model, kind)) {
          assert.ok(Math.abs(loss - want.loss) <= GPU_TOL * Math.max(1, Math.abs(want.loss)), `${kind} loss at ${n} rows: ${loss} vs ${want.loss}`);
          for (const [path, w] of Object.entries(want.weights)) {
            const d = maxAbsDiff(got[path].dataSync(), Float32Array.from(w));
            assert.ok(d <= GPU_TOL, `${kind} ${path} after ${n} rows: ${d}`);
          }
        }
      } finally {
        model.dispose();
      }
    }
  });

  test('headless Chromium: the browser entry\'s trainStep at 5, 32 and 1 rows (wasm: bit for bit; WebGPU)', { timeout: 180_000 }, async (t) => {
    if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed`);
    const page = `<!doctype html><script type="module">
import * as webtensor from '/js/index.js';
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const e = await (await fetch('/fixtures/expected.json')).json();
  const results = {};
  for (const backend of 'gpu' in navigator ? ['wasm', 'webgpu'] : ['wasm']) {
    const model = await webtensor.load('/fixtures/cnn', { backend });
    const steps = [];
    for (const [k, n] of e.steps.entries()) {
      const b = e.cnn.batches[k];
      const loss = await model.trainStep(webtensor.tensor(new Float32Array(b.x), [n, 6, 6, 1]), webtensor.tensor(new Float32Array(b.y), [n, 4]));
      const w = await model.getWeights();
      steps.push({ loss: loss.dataSync()[0], weights: Object.fromEntries(Object.entries(w).map(([p, v]) => [p, Array.from(v.dataSync())])) });
    }
    results[backend] = { backend: model.backend, steps };
    model.dispose();
  }
  await report({ results });
} catch (err) {
  await report({ error: String(err && err.stack || err) });
}
</script>`;
    const r = await runPage(t, page, out, ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader']);
    assert.equal(r.error, undefined, r.error);
    for (const [backend, run] of Object.entries(r.results)) {
      assert.equal(run.backend, backend);
      run.steps.forEach((got, k) => {
        const want = expected.cnn.after[k];
        const tol = backend === 'wasm' ? 0 : GPU_TOL;
        assert.ok(Math.abs(got.loss - want.loss) <= tol * Math.max(1, Math.abs(want.loss)), `${backend} loss at step ${k}`);
        for (const [path, w] of Object.entries(want.weights)) {
          const d = maxAbsDiff(got.weights[path], Float32Array.from(w));
          assert.ok(d <= tol, `${backend} ${path} after step ${k}: ${d}`);
        }
      });
    }
    assert.ok(r.results.wasm);
    t.diagnostic(`backends run: ${Object.keys(r.results).join(', ')}`);
  });
});

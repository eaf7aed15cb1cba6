// Format version 2 end to end: artifacts exported by Python (tests/export_fixtures_symbolic.py)
// whose predict takes any batch. Node runs batches of 1, 5, 8 and 13 rows as chunks of the
// compiled 4 (padding the last), bit for bit equal to the Python model's row-by-row outputs on
// the same WebAssembly code; a declared maximum and malformed inputs are refused clearly. Run-time
// rows (docs/artifact.md "Run-time rows"): artifacts of 32-row chunks with a rows driver run a last
// partial chunk with its own rows, bit for bit equal to fixed-shape artifacts exported for exactly
// that batch (computed by Python) and to the same artifact without its rows driver (padded).
// WebGPU (Dawn): kernels that take their rows from a uniform run a last partial chunk with fewer
// workgroups, bit for bit what the padded chunk gives those rows.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { rowsDispatch } from '../backends/webgpu.js';
import { getGPU, maxAbsDiff, pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_symbolic.py');

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-symbolic-')));
after(() => rmSync(out, { recursive: true, force: true }));

const ROW = 36;     // 6 x 6 x 1 values per input row
const CLASSES = 5;

describe('a symbolic batch (format version 2)', () => {
  for (const kind of ['mlp', 'cnn']) {
    test(`wasm: ${kind} predict at batch 1, 5, 8 and 13 equals Python row by row, bit for bit`, async () => {
      const model = await webtensor.load(join(out, kind), { backend: 'wasm' });
      try {
        const sig = model.signatures.predict;
        assert.deepEqual(sig.inputs[0].shape, [expected.chunk, 6, 6, 1]);
        const x = Float32Array.from(expected.x);
        const want = Array.from(Float32Array.from(expected[kind]));
        for (const b of [1, 5, 8, 13]) {
          const input = webtensor.tensor(x.slice(0, b * ROW), [b, 6, 6, 1]);
          const got = await model.predict(input);
          assert.deepEqual(got.shape, [b, CLASSES]);
          assert.deepEqual(Array.from(got.dataSync()), want.slice(0, b * CLASSES), `batch ${b}`);
          const flat = (await model.run('predict', x.slice(0, b * ROW))).output_0;    // a typed array of whole rows
          assert.deepEqual(Array.from(flat.dataSync()), want.slice(0, b * CLASSES));
        }
        await assert.rejects(model.predict(webtensor.tensor(new Float32Array(3 * 30), [3, 6, 5, 1])),
          /signature 'predict', input 'x': expected \[batch,6,6,1\] float32, got \[3,6,5,1\] float32/);
        await assert.rejects(model.run('predict', new Float32Array(ROW + 1)), /typed array of whole rows of 36 values/);
        await assert.rejects(model.run('predict', new Float32Array(0)), /batch size 0 is outside/);
        await assert.rejects(model.run('predict', x.slice(0, ROW), { output: 'view' }), /outputs are always copied/);
        const view = (await model.run('predict', x.slice(0, expected.chunk * ROW), { output: 'view' })).output_0;
        assert.deepEqual(Array.from(view.dataSync()), want.slice(0, expected.chunk * CLASSES));   // the compiled rows: as is
      } finally {
        model.dispose();
      }
    });
  }

  for (const [kind, threads, worker] of [['mlp', 1, false], ['cnn', 1, false], ['cnn28', 1, false], ['cnn28', 2, false], ['cnn', 1, true]]) {
    test(`wasm: run-time rows, ${kind} on ${threads} thread(s)${worker ? ' in a worker' : ''}, batch 1, 5, 13, 32, 33 equal fixed-shape artifacts and the padded path`, async () => {
      const rows = expected.rows[kind];
      const shape = kind === 'cnn28' ? [28, 28, 1] : [6, 6, 1];
      const per = shape[0] * shape[1] * shape[2];
      const x = Float32Array.from(rows.x);
      const options = worker ? { backend: 'wasm', worker } : { backend: 'wasm', threads };
      const model = await webtensor.load(join(out, 'rows', kind), options);
      const padded = await webtensor.load(join(out, 'rows', `${kind}_padded`), options);
      try {
        if (!worker) assert.equal(model.stats().wasmThreads, threads);
        assert.equal(model._backend.takesRows('predict'), true); // internal: which path runs the last chunk
        assert.equal(padded._backend.takesRows('predict'), false);
        for (const b of [1, 5, 13, 32, 33]) {
          const want = Array.from(Float32Array.from(rows[String(b)]));
          const input = webtensor.tensor(x.slice(0, b * per), [b, ...shape]);
          assert.deepEqual(Array.from((await model.predict(input)).dataSync()), want, `batch ${b}`);
          assert.deepEqual(Array.from((await padded.predict(input)).dataSync()), want, `batch ${b}, padded`);
        }
        const runs = model.stats().runs;
        await model.predict(webtensor.tensor(x.slice(0, 33 * per), [33, ...shape]));
        assert.equal(model.stats().runs - runs, 2); // a whole chunk, then one row
      } finally {
        model.dispose();
        padded.dispose();
      }
    });
  }

  for (const kind of ['mlp', 'cnn28']) {
    test(`webgpu: run-time rows, ${kind} at batch 1, 5, 33 equal the padded chunk bitwise, with fewer workgroups`, async (t) => {
      const { gpu, reason } = await getGPU();
      if (!gpu) return t.skip(reason);
      const rows = expected.rows[kind];
      const shape = kind === 'cnn28' ? [28, 28, 1] : [6, 6, 1];
      const per = shape[0] * shape[1] * shape[2];
      const chunk = 32;
      const x = Float32Array.from(rows.x);
      const model = await webtensor.load(join(out, 'rows', kind), { backend: 'webgpu', gpu });
      try {
        const backend = model._backend; // internal: which path runs the last chunk, and its dispatches
        assert.equal(backend.takesRows('predict'), true);
        const whole = backend.dispatches('predict');
        const one = backend.dispatches('predict', 1);
        assert.deepEqual(backend.dispatches('predict', chunk), whole);
        assert.ok(one.every((d, k) => d.every((n, i) => n <= (whole[k][i] ?? 1))));
        if (kind === 'cnn28') { // the mlp's 32-row chunk is one workgroup per kernel already
          assert.deepEqual([whole[0], one[0]], [[85, 1, 1], [3, 1, 1]]); // 676 pixels x 4 channels / 4 lanes / 256
        }
        for (const b of [1, 5, 33]) {
          const got = (await model.predict(webtensor.tensor(x.slice(0, b * per), [b, ...shape]))).dataSync();
          const last = b - Math.floor((b - 1) / chunk) * chunk;
          const padded = new Float32Array(chunk * per);
          padded.set(x.subarray((b - last) * per, b * per));
          const [bytes] = await backend.run('predict', [new Uint8Array(padded.buffer)]);
          const want = new Float32Array(bytes.slice().buffer);
          const classes = got.length / b;
          assert.deepEqual(Array.from(got.subarray((b - last) * classes)), Array.from(want.subarray(0, last * classes)), `batch ${b}`);
          const d = maxAbsDiff(got, Float32Array.from(rows[String(b)])); // another backend's sums
          assert.ok(d < 1e-5, `batch ${b}: max |difference| from the fixed wasm artifact ${d}`);
        }
        await assert.rejects(backend.run('predict', [new Uint8Array(4 * per * 33)], false, 33), /cannot run 33 rows/);
      } finally {
        model.dispose();
      }
    });
  }

  test('webgpu: run-time dispatches fold as the chunk\'s grid (the cases Python checks)', () => {
    const cases = JSON.parse(execFileSync('python3', [join(dirname(SCRIPT), 'python', 'webgpu_rows_cases.py')]).toString());
    assert.ok(cases.length >= 8);
    for (const [rows, formula, grid, want] of cases) assert.deepEqual(rowsDispatch(rows, formula, grid), want, JSON.stringify([rows, formula, grid]));
  });

  test('wasm: a declared maximum is enforced; train_step keeps its traced batch', async () => {
    const model = await webtensor.load(join(out, 'cnn'), { backend: 'wasm' });
    try {
      await assert.rejects(model.predict(webtensor.tensor(new Float32Array(14 * ROW), [14, 6, 6, 1])),
        /batch size 14 is outside \[1, 13\] \(the artifact's declared maximum\)/);
      await assert.rejects(model.trainStep(webtensor.tensor(new Float32Array(5 * ROW), [5, 6, 6, 1]),
        webtensor.tensor(new Int32Array(5), [5], 'int32')), /expected \[4,6,6,1\] float32, got \[5,6,6,1\] float32/);
    } finally {
      model.dispose();
    }
  });
});

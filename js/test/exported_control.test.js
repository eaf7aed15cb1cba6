// Issue 15, control flow in artifacts: functions with cond, while_loop (bounded and unbounded),
// scan (forward, reverse) and nesting, exported by Python (tests/export_fixtures_control.py), run
// in Node: on WebAssembly they equal the traced Python function bit for bit on every input (which
// take different branches and iteration counts); on WebGPU within 2e-6 (Python's wgpu on lavapipe
// measured at most 1.8e-7). Hostile control sections fail to load with an ArtifactError that says
// what is wrong.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { LIMITS } from '../control.js';
import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, readDir, resign } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_control.py');
const CASES = ['loop', 'unbounded', 'branch', 'scan', 'nested'];

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-control-')));
after(() => rmSync(out, { recursive: true, force: true }));

const ARRAYS = { float32: Float32Array, int32: Int32Array };
const inputsOf = (run) => run.map((a) => webtensor.tensor(ARRAYS[a.dtype].from(a.data), a.shape, a.dtype));
const outputsOf = async (model, run) => Object.values(await model.run('predict', inputsOf(run)));

describe('control flow in artifacts', () => {
  for (const name of CASES) {
    test(`wasm: ${name} equals the traced Python function bit for bit`, async () => {
      const model = await webtensor.load(join(out, name), { backend: 'wasm' });
      try {
        const { inputs, outputs } = expected[name];
        for (let r = 0; r < inputs.length; r++) {
          const got = await outputsOf(model, inputs[r]);
          assert.equal(got.length, outputs[r].length);
          got.forEach((t, k) => assert.deepEqual(Array.from(t.dataSync()), Array.from(ARRAYS[t.dtype].from(outputs[r][k])), `${name} run ${r} output ${k}`));
        }
      } finally {
        model.dispose();
      }
    });
  }

  test('wasm in a worker: the nested case', async () => {
    const model = await webtensor.load(join(out, 'nested'), { backend: 'wasm', worker: true });
    try {
      const { inputs, outputs } = expected.nested;
      const got = await outputsOf(model, inputs[1]);
      assert.deepEqual(Array.from(got[0].dataSync()), Array.from(Float32Array.from(outputs[1][0])));
    } finally {
      model.dispose();
    }
  });

  test('webgpu: every case within float32 tolerance', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    for (const name of CASES) {
      const model = await webtensor.load(join(out, name), { backend: 'webgpu', gpu });
      try {
        const { inputs, outputs } = expected[name];
        for (let r = 0; r < inputs.length; r++) {
          const got = await outputsOf(model, inputs[r]);
          got.forEach((g, k) => {
            const d = maxAbsDiff(g.dataSync(), Float32Array.from(outputs[r][k]));
            assert.ok(d < 2e-6, `${name} run ${r} output ${k}: max |difference| ${d}`);
          });
        }
      } finally {
        model.dispose();
      }
    }
  });

  test('inputTensor on a control-flow signature is refused', async () => {
    const model = await webtensor.load(join(out, 'loop'), { backend: 'wasm' });
    try {
      assert.throws(() => model.inputTensor('predict', 0), /holds control flow/);
    } finally {
      model.dispose();
    }
  });
});

describe('hostile control sections', () => {
  const damaged = (name, edit) => resign(readDir(join(out, name)), (m) => edit(m.signatures.predict.control, m));
  const refuses = async (name, edit, pattern) => {
    await assert.rejects(webtensor.load(damaged(name, edit), { backend: 'wasm' }), (e) => {
      assert.ok(e instanceof webtensor.ArtifactError, `${e}`);
      assert.match(e.message, pattern);
      return true;
    });
  };

  test('a piece that reads its own output (a cycle), an unknown value, a value defined twice', async () => {
    await refuses('loop', (c) => { c.pieces[0].inputs.push(c.pieces[0].outputs[0]); }, /used before it is defined/);
    await refuses('loop', (c) => { c.programs[0].outputs[0] = 99999; }, /value 99999 is used before it is defined/);
    await refuses('loop', (c) => { c.pieces[1].outputs[0] = c.programs[0].inputs[0]; }, /defined twice|do not match/);
  });

  test('a program that runs itself, an unknown program, a piece run twice, an unknown piece', async () => {
    const loopStep = (c) => c.programs[0].steps.find((s) => s.while).while;
    await refuses('loop', (c) => { loopStep(c).body = loopStep(c).cond; }, /is used twice/);
    await refuses('loop', (c) => { loopStep(c).body = 9999; }, /program 9999 does not exist/);
    await refuses('branch', (c) => { c.programs[2].steps.push({ piece: c.programs[1].steps[0].piece }); }, /is run twice/);
    await refuses('branch', (c) => { c.programs[0].steps.unshift({ piece: 500 }); }, /piece 500 does not exist/);
  });

  test('absurd or missing iteration bounds, and mismatched shapes', async () => {
    const loopStep = (c) => c.programs[0].steps.find((s) => s.while).while;
    await refuses('loop', (c) => { loopStep(c).maximum_iterations = 2 ** 31 - 1; }, /over this loader's cap/);
    await refuses('scan', (c) => { delete loopStep(c).maximum_iterations; }, /maximum_iterations/);
    await refuses('scan', (c) => { loopStep(c).maximum_iterations = 50; }, /first dimension of at least maximum_iterations/);
    await refuses('branch', (c) => { c.values[c.programs[0].steps.find((s) => s.cond).cond.pred].dtype = 'float32'; }, /predicate must be a bool scalar|do not match|dtypes and shapes/);
  });

  test('a loop whose condition never fails stops at the loader cap with an ArtifactError', async () => {
    // 'unbounded' runs y = 2y + 0.5 while max(y) < 10: from -inf it never stops
    const model = await webtensor.load(join(out, 'unbounded'), { backend: 'wasm' });
    const cap = LIMITS.maxIterations;
    LIMITS.maxIterations = 1000; // the default (2 ** 20) takes seconds to reach
    try {
      const x = webtensor.tensor(new Float32Array(6).fill(-Infinity), [2, 3]);
      await assert.rejects(model.predict(x), (e) => e instanceof webtensor.ArtifactError && /more than 1000 iterations/.test(e.message));
      const fine = webtensor.tensor(new Float32Array(6).fill(1), [2, 3]); // 1 -> 2.5 -> 5.5 -> 11.5
      assert.deepEqual(Array.from((await model.predict(fine)).dataSync()), new Array(6).fill(11.5));
    } finally {
      LIMITS.maxIterations = cap;
      model.dispose();
    }
  });
});

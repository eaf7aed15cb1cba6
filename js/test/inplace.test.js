// In-place variable updates (core/runtime/artifacts.py plan_signature), end to end in Node: a small
// MLP's train step exported per optimizer with in-place updates and with temporaries and copies
// (tests/export_fixtures_inplace.py). WebAssembly: the in-place artifact's losses and variables
// equal Python-wasmtime's bit for bit. WebGPU (Dawn; SwiftShader without a GPU): the in-place
// artifact binds each updated variable once, read_write (Dawn validates it), equals the copies
// artifact bit for bit on the same adapter, agrees with Python's run within float32 tolerance,
// and runs one dispatch fewer per variable written (no copy dispatches), in one submit.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, trainOnBatches } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_inplace.py');
const OPTIMIZERS = ['sgd', 'sgd_nesterov', 'adam', 'adamw_amsgrad', 'rmsprop'];

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-inplace-')));
after(() => rmSync(out, { recursive: true, force: true }));

describe('variables updated in place', () => {
  test('wasm: losses and variables equal Python-wasmtime bit for bit', async () => {
    for (const name of OPTIMIZERS) {
      const model = await webtensor.load(join(out, name, 'inplace'), { backend: 'wasm' });
      try {
        const { losses, weights } = await trainOnBatches(model, expected);
        const e = expected[name];
        assert.deepEqual(losses, Array.from(Float32Array.from(e.losses)), name);
        for (const [k, want] of Object.entries(e.weights)) assert.deepEqual(weights[k], Array.from(want, Number), `${name} ${k}`);
      } finally {
        model.dispose();
      }
    }
  });

  test('webgpu: equal to the copies bit for bit, fewer dispatches, close to Python', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const { globals } = await import('webgpu');
    const counts = { dispatches: 0, submits: 0 };
    const wrapped = [[globals.GPUComputePassEncoder, 'dispatchWorkgroups', 'dispatches'], [globals.GPUQueue, 'submit', 'submits']].map(([cls, method, key]) => {
      const orig = cls.prototype[method];
      cls.prototype[method] = function counted(...a) {
        counts[key]++;
        return orig.apply(this, a);
      };
      return () => { cls.prototype[method] = orig; };
    });
    try {
      for (const name of OPTIMIZERS) {
        const runs = {};
        for (const variant of ['copies', 'inplace']) {
          const model = await webtensor.load(join(out, name, variant), { backend: 'webgpu', gpu });
          try {
            const before = { ...counts };
            runs[variant] = await trainOnBatches(model, expected);
            runs[variant].dispatches = (counts.dispatches - before.dispatches) / expected.steps;
            runs[variant].submits = (counts.submits - before.submits - 1) / expected.steps;   // - getWeights' readback
          } finally {
            model.dispose();
          }
        }
        const { copies, inplace } = runs;
        assert.deepEqual(inplace.losses, copies.losses, name);
        assert.deepEqual(inplace.weights, copies.weights, name);
        assert.equal(copies.dispatches - inplace.dispatches, expected[name].writes, `${name}: dispatches ${copies.dispatches} -> ${inplace.dispatches}`);
        assert.equal(inplace.submits, 1, name);
        for (const [k, want] of Object.entries(expected[name].weights)) {
          const d = maxAbsDiff(Float32Array.from(inplace.weights[k]), Float32Array.from(want));
          assert.ok(d < 1e-4, `${name} ${k}: max |difference| ${d}`);
        }
      }
    } finally {
      wrapped.forEach((undo) => undo());
    }
  });
});

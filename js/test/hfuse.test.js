// Horizontal fusion (webgpu/group.py), end to end in Node: a small MLP's train step exported with
// independent update kernels grouped into one dispatch and without (tests/export_fixtures_hfuse.py).
// WebGPU (Dawn; SwiftShader without a GPU): the grouped artifact equals the ungrouped one bit for bit
// on the same adapter, runs exactly its manifest's kernels per step (fewer than the ungrouped one for
// SGD with momentum, whose four updates are one dispatch at the spec's 8 storage buffers), and agrees
// with Python's WebAssembly run within float32 tolerance.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, trainOnBatches } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_hfuse.py');
const OPTIMIZERS = ['sgd_momentum', 'adam'];

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-hfuse-')));
after(() => rmSync(out, { recursive: true, force: true }));

describe('horizontal fusion', () => {
  test('webgpu: grouped equals ungrouped bit for bit, with the manifest\'s (fewer) dispatches', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const { globals } = await import('webgpu');
    let dispatches = 0;
    const cls = globals.GPUComputePassEncoder;
    const orig = cls.prototype.dispatchWorkgroups;
    cls.prototype.dispatchWorkgroups = function counted(...a) {
      dispatches++;
      return orig.apply(this, a);
    };
    try {
      for (const name of OPTIMIZERS) {
        const runs = {};
        for (const variant of ['plain', 'fused']) {
          const model = await webtensor.load(join(out, name, variant), { backend: 'webgpu', gpu });
          try {
            const start = dispatches;
            runs[variant] = await trainOnBatches(model, expected);
            runs[variant].dispatches = (dispatches - start) / expected.steps;
          } finally {
            model.dispose();
          }
        }
        const { plain, fused } = runs;
        const kernels = expected[name].kernels;
        assert.deepEqual(fused.losses, plain.losses, name);
        assert.deepEqual(fused.weights, plain.weights, name);
        assert.equal(plain.dispatches, kernels.plain, name);
        assert.equal(fused.dispatches, kernels.fused, name);
        assert.ok(kernels.fused < kernels.plain, `${name}: ${kernels.plain} -> ${kernels.fused}`);
        for (const [k, want] of Object.entries(expected[name].weights)) {
          const d = maxAbsDiff(Float32Array.from(fused.weights[k]), Float32Array.from(want));
          assert.ok(d < 1e-4, `${name} ${k}: max |difference| ${d}`);
        }
      }
    } finally {
      cls.prototype.dispatchWorkgroups = orig;
    }
  });
});

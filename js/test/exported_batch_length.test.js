// A symbolic batch and a symbolic length together (docs/artifact.md "Symbolic batch and length"):
// artifacts exported by Python (tests/export_fixtures_batch_length.py) for token ids of any batch up
// to 9 (chunks of 3 rows) and any length up to 12: the text job's model (Embedding(mask_zero) + LSTM +
// Dense), an LSTM + GRU language model and classifier, and Bidirectional GRU models. Node runs several
// (batch, length) pairs from one artifact, bit for bit equal to artifacts exported at each fixed pair
// (outputs computed by Python's loader on the same WebAssembly code); sizes past the maxima are refused,
// and so is a length in the batch's axis.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, readDir, resign } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_batch_length.py');

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-batch-length-')));
after(() => rmSync(out, { recursive: true, force: true }));

const ids = (n, L) => webtensor.tensor(Int32Array.from(expected.ids[`${n},${L}`]), [n, L], 'int32');

describe('a symbolic batch and length', () => {
  for (const kind of ['lm', 'seq', 'bi']) {
    for (const worker of [false, true]) {
      test(`wasm${worker ? ' in a worker' : ''}: ${kind} at several (batch, length) equals fixed-shape artifacts bit for bit`, async () => {
        const model = await webtensor.load(join(out, kind), { backend: 'wasm', worker });
        try {
          for (const [n, L] of expected.pairs) {
            const got = await model.run('predict', [ids(n, L)]);
            for (const [name, want] of Object.entries(expected[kind][`${n},${L}`])) {
              assert.equal(got[name].shape[0], n);
              assert.deepEqual(Array.from(got[name].dataSync()), Array.from(Float32Array.from(want)), `${kind} (${n}, ${L}) ${name}`);
            }
          }
        } finally {
          model.dispose();
        }
      });
    }
  }

  test('wasm: a Model.export LSTM classifier takes batches 1, 3 and 7 (a loop carrying rows), bit for bit as fixed-batch artifacts', async () => {
    const model = await webtensor.load(join(out, 'model'), { backend: 'wasm' });
    try {
      for (const [n, { ids: x, output_0: want }] of Object.entries(expected.model)) {
        const got = await model.run('predict', [webtensor.tensor(Int32Array.from(x), [Number(n), 6], 'int32')]);
        assert.deepEqual(Array.from(got.output_0.dataSync()), Array.from(Float32Array.from(want)), `batch ${n}`);
      }
    } finally {
      model.dispose();
    }
  });

  test('webgpu: lm at (2, 5) and (5, 7) within float32 tolerance of the fixed-shape wasm artifacts', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    const model = await webtensor.load(join(out, 'lm'), { backend: 'webgpu', gpu });
    try {
      for (const [n, L] of [[2, 5], [5, 7]]) {
        const got = await model.run('predict', [ids(n, L)]);
        for (const [name, want] of Object.entries(expected.lm[`${n},${L}`])) {
          const d = maxAbsDiff(got[name].dataSync(), Float32Array.from(want));
          assert.ok(d < 5e-8, `lm (${n}, ${L}) ${name}: max |difference| ${d}`); // 10x the largest Python measured, 4.7e-9 (lavapipe)
        }
      }
    } finally {
      model.dispose();
    }
  });

  test('wasm: sizes past the declared maxima are refused; malformed inputs are refused', async () => {
    const model = await webtensor.load(join(out, 'seq'), { backend: 'wasm' });
    try {
      const zeros = (shape) => webtensor.tensor(new Int32Array(shape.reduce((a, b) => a * b, 1)), shape, 'int32');
      await assert.rejects(model.run('predict', [zeros([10, 4])]), /batch size 10 is outside \[1, 9\] \(the artifact's declared maximum\)/);
      await assert.rejects(model.run('predict', [zeros([4, 13])]),
        (e) => e instanceof RangeError && /length 13 is outside \[1, 12\] \(the artifact's declared maximum length\)/.test(e.message));
      await assert.rejects(model.run('predict', [zeros([2, 3, 1])]), /expected \[batch,length\] int32, got \[2,3,1\] int32/);
      await assert.rejects(model.run('predict', [new Int32Array(8)]), /expected a tensor \[batch,length\] int32$/);
      await assert.rejects(model.run('predict', [ids(2, 5)], { output: 'view' }), /outputs are always copied/);
    } finally {
      model.dispose();
    }
  });

  test('a hostile manifest is refused: a length in the batch axis', async () => {
    const files = resign(readDir(join(out, 'seq')), (m) => {
      const sig = m.signatures.predict;
      sig.batch.chunk = 12;
      for (const spec of [...sig.inputs, ...sig.outputs]) spec.shape[0] = 12;
      sig.length.inputs[0] = 0;
    });
    await assert.rejects(webtensor.load(files, { backend: 'wasm' }),
      (e) => e.name === 'ArtifactError' && /has the length in axis 0, which its 'batch' section makes the batch/.test(e.message));
  });
});

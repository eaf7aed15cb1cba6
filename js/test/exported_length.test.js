// A symbolic length (docs/artifact.md "Symbolic length") end to end: artifacts exported by Python
// (tests/export_fixtures_length.py) for token ids of any length up to 12: an Embedding + LSTM + Dense
// language model with a GRU + Dense classifier, a reverse scan, and Bidirectional GRU models (a
// classifier, a per-step tagger) with a go_backwards LSTM encoding. Node runs lengths 1, 5 and 12
// from one artifact, bit for bit equal to artifacts exported at each fixed length (outputs computed
// by Python's loader on the same WebAssembly code); a length past the maximum is a RangeError, and
// malformed length sections are refused at load.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { getGPU, maxAbsDiff, pythonFixture, readDir, resign } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'export_fixtures_length.py');

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-exported-length-')));
after(() => rmSync(out, { recursive: true, force: true }));

const ids = (n) => webtensor.tensor(Int32Array.from(expected.ids[n]), [2, n], 'int32');

describe('a symbolic length', () => {
  for (const [kind, shapeOf] of [['seq', (n) => [2, n, 5]], ['rev', (n) => [n, 2, 8]], ['bi', () => [2, 3]]]) {
    for (const worker of [false, true]) {
      test(`wasm${worker ? ' in a worker' : ''}: ${kind} at lengths 1, 5 and 12 equals fixed-length artifacts bit for bit`, async () => {
        const model = await webtensor.load(join(out, kind), { backend: 'wasm', worker });
        try {
          for (const n of [1, 5, 12]) {
            const got = await model.run('predict', n === 5 ? [Int32Array.from(expected.ids[n])] : [ids(n)]);   // a typed array: its size gives the length
            assert.deepEqual(got.output_0.shape, shapeOf(n));
            for (const [name, want] of Object.entries(expected[kind][n])) {
              assert.deepEqual(Array.from(got[name].dataSync()), Array.from(Float32Array.from(want)), `${kind} length ${n} ${name}`);
            }
          }
        } finally {
          model.dispose();
        }
      });
    }
  }

  test('webgpu: seq and rev at lengths 1, 5 and 12 within float32 tolerance of the fixed-length wasm artifacts', async (t) => {
    const { gpu, reason } = await getGPU();
    if (!gpu) return t.skip(reason);
    for (const kind of ['seq', 'rev', 'bi']) {
      const model = await webtensor.load(join(out, kind), { backend: 'webgpu', gpu });
      try {
        for (const n of [1, 5, 12]) {
          const got = await model.run('predict', [ids(n)]);
          for (const [name, want] of Object.entries(expected[kind][n])) {
            const d = maxAbsDiff(got[name].dataSync(), Float32Array.from(want));
            assert.ok(d < 3e-7, `${kind} length ${n} ${name}: max |difference| ${d}`); // 10x the largest measured, 3.0e-8 (lavapipe)
          }
        }
      } finally {
        model.dispose();
      }
    }
  });

  test('wasm: a length past the declared maximum is a RangeError; malformed inputs are refused', async () => {
    const model = await webtensor.load(join(out, 'seq'), { backend: 'wasm' });
    try {
      const zeros = (shape) => webtensor.tensor(new Int32Array(shape.reduce((a, b) => a * b, 1)), shape, 'int32');
      await assert.rejects(model.run('predict', [zeros([2, 13])]),
        (e) => e instanceof RangeError && /length 13 is outside \[1, 12\] \(the artifact's declared maximum length\)/.test(e.message));
      await assert.rejects(model.run('predict', [zeros([2, 0])]), RangeError);
      await assert.rejects(model.run('predict', [zeros([3, 4])]), /expected \[2,length\] int32, got \[3,4\] int32/);
      await assert.rejects(model.run('predict', [new Int32Array(9)]), /typed array of int32 holding whole steps of 2 values/);
      await assert.rejects(model.run('predict', [new Float32Array(10)]), /typed array of int32/);
      await assert.rejects(model.run('predict', [new Int32Array(26)]), RangeError);
      await assert.rejects(model.run('predict', [ids(5)], { output: 'view' }), /outputs are always copied/);
    } finally {
      model.dispose();
    }
  });

  const hostile = {
    'maximum off the shapes': [(s) => { s.length.maximum = 11; }, /axis 1 is not the maximum length 11/],
    'too few entries': [(s) => { s.length.outputs.pop(); }, /'outputs' has 1 entries for 2 outputs/],
    'no input has it': [(s) => { s.length.inputs[0] = -1; }, /no input has the length/],
    'loop without a section': [(s) => { delete s.length; }, /a loop over the length needs a "length" section/],
    'schema: axis -2': [(s) => { s.length.inputs[0] = -2; }, /length\.inputs/],
    'schema: extra key': [(s) => { s.length.axes = []; }, /length/],
  };
  for (const [name, [edit, message]] of Object.entries(hostile)) {
    test(`a hostile length section is refused: ${name}`, async () => {
      const files = resign(readDir(join(out, 'seq')), (m) => edit(m.signatures.predict));
      await assert.rejects(webtensor.load(files, { backend: 'wasm' }), (e) => e.name === 'ArtifactError' && message.test(e.message));
    });
  }
});

// An ONNX model imported in Python (webtensor.onnx.load: PP-OCR's MobileNetV3 classifier, shipped
// in the rapidocr-onnxruntime package), exported with predict and train_step, run in Node
// (tests/onnx/export_onnx_fixture.py makes the artifact and what Python computed from it).
// WebAssembly must equal Python-wasmtime bit for bit, and match onnxruntime within 1e-4 relative;
// 20 trainSteps must give Python's losses and lower the loss. Skips when the Python side lacks
// onnx or rapidocr-onnxruntime (the `test` extra installs both).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'onnx', 'export_onnx_fixture.py');

let out, expected, skip;
before(() => {
  out = mkdtempSync(join(tmpdir(), 'webtensor-onnx-'));
  const r = spawnSync('python3', [SCRIPT, out], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status === 3) skip = 'the Python side lacks onnx or rapidocr-onnxruntime';
  else if (r.status !== 0) throw new Error(`export_onnx_fixture.py failed (status ${r.status})`);
  else expected = JSON.parse(readFileSync(join(out, 'expected.json'), 'utf8'));
});
after(() => rmSync(out, { recursive: true, force: true }));

test('imported ONNX classifier: predict equals Python and matches onnxruntime', async (t) => {
  if (skip) return t.skip(skip);
  const model = await webtensor.load(join(out, 'cls'), { backend: 'wasm' });
  try {
    const y = await model.predict(webtensor.tensor(new Float32Array(expected.x), expected.shape));
    const got = y.dataSync();
    assert.deepEqual(Array.from(got), Array.from(Float32Array.from(expected.predict)));
    const peak = Math.max(...expected.onnxruntime.map(Math.abs));
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - expected.onnxruntime[i]));
    assert.ok(err / peak < 1e-4, `relative error against onnxruntime ${err / peak}`);
  } finally {
    model.dispose();
  }
});

test('imported ONNX classifier: 20 trainSteps give Python losses and lower the loss', async (t) => {
  if (skip) return t.skip(skip);
  const model = await webtensor.load(join(out, 'cls'), { backend: 'wasm' });
  try {
    const x = webtensor.tensor(new Float32Array(expected.x), expected.shape);
    const losses = [];
    for (let i = 0; i < expected.losses.length; i++) {
      const loss = await model.trainStep(x, new Int32Array(expected.y));
      losses.push(loss.dataSync()[0]);
    }
    assert.deepEqual(losses, Array.from(Float32Array.from(expected.losses)));
    assert.ok(losses.at(-1) < 0.5 * losses[0], `loss ${losses[0]} -> ${losses.at(-1)}`);
  } finally {
    model.dispose();
  }
});

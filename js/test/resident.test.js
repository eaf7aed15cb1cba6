// Resident tensors (inputs that live in the model's WebAssembly memory) and
// output views: the same bits as the copying path, and the documented
// lifetimes and errors.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import * as webtensor from '../node.js';
import { buildFixtures, readDir } from './helpers.js';

let fx, model, files;
before(async () => {
  fx = buildFixtures();
  files = readDir(fx.dir);
  model = await webtensor.load(fx.dir, { backend: 'wasm' });
});
after(() => model?.dispose());

const bits = (a) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

test('predict on a resident input equals the copying path bit for bit, and reads nothing from the host', async () => {
  const copied = (await model.predict(fx.x)).dataSync();
  const x = model.inputTensor('predict', 'x');
  assert.deepEqual(x.shape, [8, 4]);
  assert.equal(model.inputTensor(), x, 'one object per slot');
  x.view().set(fx.x);
  const resident = (await model.predict(x)).dataSync();
  assert.deepEqual(bits(resident), bits(copied));
  assert.deepEqual(bits(x.dataSync()), bits(fx.x));
  // the run read the slot, not a host copy: change the slot, get the other answer
  const doubled = fx.x.map((v) => 2 * v);
  x.view().set(doubled);
  assert.deepEqual(bits((await model.predict(x)).dataSync()), bits((await model.predict(doubled)).dataSync()));
  // the copying run above wrote the same slot: the resident tensor shows what it wrote
  assert.deepEqual(bits(x.dataSync()), bits(doubled));
});

test('output views and caller buffers hold the copying path\'s bits; a view expires at the next run', async () => {
  const x = model.inputTensor('predict', 'x').write(fx.x);
  const expected = (await model.predict(fx.x)).dataSync();
  const { y } = await model.run('predict', x, { output: 'view' });
  assert.ok(y instanceof webtensor.OutputView);
  assert.equal(y.dataSync().buffer, x.view().buffer, 'a view of the model memory');
  assert.deepEqual(bits(y.dataSync()), bits(expected));
  const buf = new Float32Array(24);
  const { y: y2 } = await model.run('predict', [x], { into: { y: buf } });
  assert.equal(y2.dataSync(), buf);
  assert.deepEqual(bits(buf), bits(expected));
  assert.throws(() => y.dataSync(), /output view expired/);
  // bool outputs are copied even with output: 'view'; int32 ones are views
  const labels = model.inputTensor('classify', 'labels').write(fx.labels);
  const cx = model.inputTensor('classify', 'x').write(fx.x);
  const ref = await model.run('classify', [fx.x, fx.labels]);
  const out = await model.run('classify', [cx, labels], { output: 'view' });
  assert.ok(!(out.correct instanceof webtensor.OutputView));
  assert.ok(out.classes instanceof webtensor.OutputView);
  assert.deepEqual([...out.classes.dataSync()], [...ref.classes.dataSync()].map(Number));
  assert.deepEqual([...out.correct.dataSync()], [...ref.correct.dataSync()]);
  await model.predict(fx.x);
  assert.throws(() => out.classes.dataSync(), /expired/);
});

test('a run of another signature makes resident inputs stale until written again', async () => {
  const m = await webtensor.load(files, { backend: 'wasm' });
  try {
    const x = m.inputTensor('predict', 'x').write(fx.x);
    const before = (await m.predict(x)).dataSync();
    await m.predict(x); // its own signature keeps it
    assert.equal(x.isStale, false);
    await m.run('classify', [fx.x, fx.labels]);
    assert.equal(x.isStale, true);
    await assert.rejects(m.predict(x), /stale: a run of signature 'classify' reused its memory/);
    assert.throws(() => x.view(), /stale/);
    assert.throws(() => x.dataSync(), /stale/);
    x.write(fx.x);
    assert.deepEqual(bits((await m.predict(x)).dataSync()), bits(before));
    // a tensor made after another signature ran starts stale
    await m.run('classify', [fx.x, fx.labels]);
    m.inputTensor('predict').dispose();
    assert.equal(m.inputTensor('predict').isStale, true);
  } finally {
    m.dispose();
  }
});

test('errors: wrong shape or dtype, another model, disposed tensor or model, queued runs, other backends', async () => {
  const other = await webtensor.load(files, { backend: 'wasm' });
  const ox = other.inputTensor('predict').write(fx.x);
  await assert.rejects(model.predict(ox), /belongs to another model/);
  const labels = model.inputTensor('classify', 'labels').write(fx.labels);
  await assert.rejects(model.predict(labels), /expected \[8,4\] float32, got \[8\] int32/);
  await assert.rejects(model.run('train_step', [fx.x, labels]), /input 't': expected \[8,3\] float32, got \[8\] int32/);
  assert.throws(() => labels.write(new Float32Array(8)), /expected a Int32Array \(int32\)/);
  assert.throws(() => labels.write(new Int32Array(7)), /expected 8 values/);
  assert.throws(() => model.inputTensor('predict', 'nope'), /has no input "nope"/);
  assert.throws(() => model.inputTensor('nope'), /no signature 'nope'/);
  await assert.rejects(model.run('predict', fx.x, { output: 'views' }), /output must be 'copy' or 'view'/);
  await assert.rejects(model.run('predict', fx.x, { into: { y: new Float32Array(3) } }), /into 'y': expected 24 values/);
  await assert.rejects(model.run('predict', fx.x, { into: { z: new Float32Array(24) } }), /has no output 'z'/);
  await assert.rejects(model.setWeights({ 'dense/kernel': ox }), /a resident tensor cannot be used here/);
  // touching a resident tensor while a run is queued would race with it
  const x = model.inputTensor('predict').write(fx.x);
  const pending = model.predict(x);
  assert.throws(() => x.write(fx.x), /a run is queued/);
  await pending;
  x.write(fx.x);
  x.dispose();
  assert.equal(x.isDisposed, true);
  await assert.rejects(model.predict(x), /resident tensor was disposed/);
  assert.throws(() => x.view(), /resident tensor was disposed/);
  assert.notEqual(model.inputTensor('predict'), x, 'a new tensor for the slot');
  other.dispose();
  assert.equal(ox.isDisposed, true);
  assert.throws(() => ox.dataSync(), /model was disposed/);
  assert.throws(() => other.inputTensor(), /model was disposed/);
  const { y } = await model.run('predict', fx.x, { output: 'view' });
  const m2 = await webtensor.load(files, { backend: 'wasm' });
  const { y: v } = await m2.run('predict', fx.x, { output: 'view' });
  m2.dispose();
  assert.throws(() => v.dataSync(), /expired/);
  assert.ok(y.dataSync().length === 24);
  const w = await webtensor.load(files, { backend: 'wasm', worker: true });
  try {
    assert.throws(() => w.inputTensor(), /need the wasm backend on this thread \(this model runs on wasm in a worker\)/);
    await assert.rejects(w.run('predict', fx.x, { output: 'view' }), /needs the wasm backend on this thread/);
    const buf = new Float32Array(24);
    await w.run('predict', fx.x, { into: { y: buf } });
    assert.deepEqual(bits(buf), bits((await model.predict(fx.x)).dataSync()));
  } finally {
    w.dispose();
  }
});

test('train_step on resident inputs equals the copying path bit for bit', async () => {
  const a = await webtensor.load(files, { backend: 'wasm' });
  const b = await webtensor.load(files, { backend: 'wasm' });
  try {
    const x = b.inputTensor('train_step', 'x').write(fx.x);
    const t = b.inputTensor('train_step', 't').write(fx.t);
    for (let i = 0; i < 5; i++) {
      const la = (await a.trainStep(fx.x, fx.t)).dataSync();
      const lb = (await b.trainStep(x, t)).dataSync();
      assert.deepEqual(bits(lb), bits(la));
    }
    const wa = await a.getWeights(), wb = await b.getWeights();
    for (const name of Object.keys(wa)) assert.deepEqual(bits(wb[name].dataSync()), bits(wa[name].dataSync()), name);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('resident tensors of other slots are copied in without clobbering each other (swapped inputs)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'webtensor-resident-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('python3', ['-c', `
import numpy as np, webtensor as wt
def f(x, a):
    return x * 2.0 + a
def g(u, v):
    return u - v
z = np.zeros(16, np.float32)
wt.export(None, path=${JSON.stringify(dir)}, signatures={"predict": (f, (z, z)), "other": (g, (z, z))}, backends=("wasm",))
`]);
  const m = await webtensor.load(dir, { backend: 'wasm' });
  try {
    const xv = Float32Array.from({ length: 16 }, (_, i) => i + 0.5);
    const av = Float32Array.from({ length: 16 }, (_, i) => 100 - 3 * i);
    const x = m.inputTensor('predict', 'x').write(xv);
    const a = m.inputTensor('predict', 'a').write(av);
    // swapped: each slot's tensor goes to the other slot
    const swapped = (await m.run('predict', { x: a, a: x })).output_0.dataSync();
    assert.deepEqual(bits(swapped), bits((await m.predict(av, xv)).dataSync()));
    x.write(xv);
    a.write(av);
    // another signature's inputs from predict's slots (the regions overlap)
    const other = (await m.run('other', [a, x])).output_0.dataSync();
    assert.deepEqual(bits(other), bits(av.map((v, i) => Math.fround(v - xv[i]))));
    assert.equal(x.isStale, true, 'a run of another signature makes them stale');
  } finally {
    m.dispose();
  }
});

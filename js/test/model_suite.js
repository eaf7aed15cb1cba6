// The tests every backend must pass, on the fixture artifact (see
// fixtures/make_fixtures.py): registered by wasm.test.js and webgpu.test.js.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as webtensor from '../node.js';
import { buildFixtures, maxAbsDiff, python } from './helpers.js';

const READ_WEIGHTS_PY = `
import json, sys
import numpy as np
from safetensors.numpy import load as st_load
from webtensor import safetensors_io
data = sys.stdin.buffer.read()
tensors, metadata = safetensors_io.load(data)
ours = {k: {"dtype": d, "shape": list(s), "values": np.frombuffer(bytes(v), {"float32": np.float32, "int32": np.int32, "bool": np.bool_}[d]).tolist()} for k, (d, s, v) in tensors.items()}
theirs = {k: {"shape": list(a.shape), "values": a.ravel().tolist()} for k, a in st_load(data).items()}
print(json.dumps({"ours": ours, "theirs": theirs, "metadata": metadata, "same_bytes": safetensors_io.save({k: (d, s, v) for k, (d, s, v) in tensors.items()}, metadata) == data}))
`;

/**
 * Register the backend tests. `options()` resolves to load options (or null
 * to skip, with `skipReason()`); `tol` is the allowed |difference| from the
 * float32 reference that replays the WebAssembly kernels' operation order
 * (0: bitwise equal).
 */
export function modelSuite(backend, { options, tol }) {
  describe(`${backend} backend`, () => {
    let fx, opts, model;
    const close = (got, want, what, t = tol) => {
      const d = maxAbsDiff(got, want);
      assert.ok(t === 0 ? d === 0 : d <= t, `${what}: max |difference| ${d} > ${t}`);
    };

    before(async () => {
      fx = buildFixtures();
      opts = await options();
    });
    after(() => {
      model?.dispose();
      fx.cleanup();
    });

    const loadModel = async (extra = {}) => webtensor.load(fx.dir, { ...opts, ...extra });
    const skip = () => (opts ? false : 'no WebGPU adapter; skipped outside CI (with CI set this is a failure)');

    test('loads on the requested backend and reports it', async (t) => {
      if (skip()) return t.skip(skip());
      model = await loadModel();
      assert.equal(model.backend, backend);
      if (backend === 'webgpu') assert.equal(typeof model.adapterInfo.vendor, 'string');
      else assert.equal(model.adapterInfo, null);
      assert.deepEqual(Object.keys(model.signatures).sort(), ['classify', 'predict', 'train_step']);
      assert.deepEqual(model.signatures.predict.inputs, [{ name: 'x', dtype: 'float32', shape: [8, 4] }]);
      assert.deepEqual(model.variables.map((v) => v.name), ['dense/kernel', 'dense/bias', 'optimizer/iterations']);
    });

    test('predict matches numpy', async (t) => {
      if (skip()) return t.skip(skip());
      const y = await model.predict(webtensor.tensor(fx.x, [8, 4]));
      assert.deepEqual(y.shape, [8, 3]);
      assert.equal(y.dtype, 'float32');
      assert.ok(y.dataSync() instanceof Float32Array);
      close(await y.data(), fx.expected.predict.y, 'y vs float32 reference');
      close(y.dataSync(), fx.expected.predict.y_numpy, 'y vs numpy x @ W + b', 1e-6);
      // the same inputs as a typed array, an array and an object
      for (const inputs of [fx.x, [fx.x], { x: fx.x }]) close((await model.predict(inputs)).dataSync(), y.dataSync(), 'y', 0);
    });

    test('int32 inputs, int32 and bool outputs (classify)', async (t) => {
      if (skip()) return t.skip(skip());
      const out = await model.run('classify', { x: fx.x, labels: webtensor.tensor(fx.labels, [8], 'int32') });
      assert.deepEqual(Object.keys(out), ['classes', 'correct']);
      assert.equal(out.classes.dtype, 'int32');
      assert.ok(out.classes.dataSync() instanceof Int32Array);
      assert.deepEqual(Array.from(out.classes.dataSync()), fx.expected.classify.classes);
      assert.equal(out.correct.dtype, 'bool');
      assert.deepEqual(Array.from(out.correct.dataSync()), fx.expected.classify.correct.map(Number));
    });

    test('50 train steps decrease the loss and match the numpy SGD run', async (t) => {
      if (skip()) return t.skip(skip());
      const { losses } = fx.expected.train;
      const got = [];
      for (let s = 0; s < 50; s++) {
        const loss = await model.trainStep(fx.x, webtensor.tensor(fx.t, [8, 3]));
        assert.deepEqual(loss.shape, []);
        got.push(loss.dataSync()[0]);
      }
      assert.ok(got[49] < got[0] / 2, `loss ${got[0]} -> ${got[49]}`);
      close(got, losses, 'losses', tol * 10);
      const w = await model.getWeights();
      close(w['dense/kernel'].dataSync(), fx.expected.train['dense/kernel'], 'W after 50 steps', tol * 10);
      close(w['dense/bias'].dataSync(), fx.expected.train['dense/bias'], 'b after 50 steps', tol * 10);
      assert.deepEqual(w['dense/kernel'].shape, [4, 3]);
      assert.equal(w['optimizer/iterations'].dtype, 'int32');
      assert.deepEqual(Array.from(w['optimizer/iterations'].dataSync()), [50]);
      // predict reads the parameters train_step updated
      const y = await model.predict(fx.x);
      assert.ok(maxAbsDiff(y.dataSync(), fx.expected.predict.y) > 0.1);
    });

    test('saveWeights: Python (safetensors_io and safetensors) reads the trained weights', async (t) => {
      if (skip()) return t.skip(skip());
      const weights = await model.getWeights();
      const bytes = await model.saveWeights();
      assert.ok(bytes instanceof Uint8Array);
      const r = python(READ_WEIGHTS_PY, bytes);
      assert.equal(r.same_bytes, true, 'Python re-saves the same tensors to the same bytes');
      assert.equal(r.metadata.format, 'webtensor-weights');
      for (const [name, tensor] of Object.entries(weights)) {
        assert.deepEqual(r.ours[name].shape, tensor.shape, name);
        assert.equal(r.ours[name].dtype, tensor.dtype, name);
        assert.deepEqual(r.ours[name].values, Array.from(tensor.dataSync()), name);
        assert.deepEqual(r.theirs[name].values, Array.from(tensor.dataSync()), name);
      }
      // and this runtime reads it back
      const { tensors } = webtensor.parseSafetensors(bytes);
      assert.deepEqual([...tensors.keys()].sort(), Object.keys(weights).sort());
    });

    test('setWeights restores the initial weights (and checks names, dtypes and shapes)', async (t) => {
      if (skip()) return t.skip(skip());
      await model.setWeights({
        'dense/kernel': webtensor.tensor(fx.expected.initial['dense/kernel'], [4, 3]),
        'dense/bias': new Float32Array(fx.expected.initial['dense/bias']),
        'optimizer/iterations': new Int32Array([0]),
      });
      close((await model.predict(fx.x)).dataSync(), fx.expected.predict.y, 'y after setWeights');
      const w = await model.getWeights();
      assert.deepEqual(Array.from(w['optimizer/iterations'].dataSync()), [0]);
      await assert.rejects(model.setWeights({ 'dense/kernal': new Float32Array(12) }), /no variable 'dense\/kernal'.*'dense\/kernel'/);
      await assert.rejects(model.setWeights({ 'dense/kernel': webtensor.tensor(new Float32Array(12), [3, 4]) }),
        /variable 'dense\/kernel': expected \[4,3\] float32, got \[3,4\] float32/);
      await assert.rejects(model.setWeights({ 'dense/bias': new Float32Array(4) }), /'dense\/bias': expected 3 values/);
      await assert.rejects(model.setWeights({ 'optimizer/iterations': new Float32Array(1) }), /expected int32 data \(Int32Array\), got Float32Array/);
      // nothing was written by the failed calls
      close((await model.predict(fx.x)).dataSync(), fx.expected.predict.y, 'y after failed setWeights');
    });

    test('wrong inputs throw errors naming the signature, input, expected and given', async (t) => {
      if (skip()) return t.skip(skip());
      await assert.rejects(model.predict(webtensor.tensor(new Float32Array(24), [8, 3])),
        /signature 'predict', input 'x': expected \[8,4\] float32, got \[8,3\] float32/);
      await assert.rejects(model.predict(new Float32Array(31)), /signature 'predict', input 'x': expected 32 values for \[8,4\] float32, got 31/);
      await assert.rejects(model.predict(new Int32Array(32)), /input 'x': expected float32 data \(Float32Array\), got Int32Array/);
      await assert.rejects(model.predict(webtensor.tensor(new Int32Array(32), [8, 4])), /input 'x': expected \[8,4\] float32, got \[8,4\] int32/);
      await assert.rejects(model.predict([[1, 2, 3]]), /input 'x': expected a webtensor.tensor or a typed array/);
      await assert.rejects(model.predict({ y: fx.x }), /signature 'predict' has no input 'y' \(inputs: 'x'\)/);
      await assert.rejects(model.run('classify', { x: fx.x }), /signature 'classify': input 'labels' is missing/);
      await assert.rejects(model.run('classify', [fx.x]), /signature 'classify' takes 2 input\(s\) \('x', 'labels'\), got 1/);
      await assert.rejects(model.trainStep(fx.x, new Float32Array(8)), /signature 'train_step', input 't': expected 24 values/);
      await assert.rejects(model.run('evaluate', fx.x), /no signature 'evaluate' \(this model has: predict, classify, train_step\)/);
      // the model still works
      close((await model.predict(fx.x)).dataSync(), fx.expected.predict.y, 'y after errors');
    });

    test('memory stays flat over 1,000 train steps and 1,000 predictions', async (t) => {
      if (skip()) return t.skip(skip());
      await model.trainStep(fx.x, fx.t);
      await model.predict(fx.x);
      const first = model.stats();
      const key = backend === 'wasm' ? 'wasmMemoryBytes' : 'gpuBuffers';
      assert.ok(first[key] > 0, JSON.stringify(first));
      let loss;
      for (let s = 0; s < 1000; s++) {
        loss = await model.trainStep(fx.x, fx.t);
        await model.predict(fx.x);
        if (s % 250 === 0) assert.deepEqual({ ...model.stats(), runs: 0 }, { ...first, runs: 0 }, `after ${s + 1} steps`);
      }
      const last = model.stats();
      assert.equal(last.runs, first.runs + 2000);
      assert.deepEqual({ ...last, runs: 0 }, { ...first, runs: 0 });
      assert.ok(Number.isFinite(loss.dataSync()[0]) && loss.dataSync()[0] < fx.expected.train.losses[49]);
    });

    test('calls made without awaiting run in order', async (t) => {
      if (skip()) return t.skip(skip());
      await model.setWeights({ 'dense/kernel': new Float32Array(fx.expected.initial['dense/kernel']), 'dense/bias': new Float32Array(fx.expected.initial['dense/bias']) });
      const before = model.predict(fx.x);
      const steps = Array.from({ length: 5 }, () => model.trainStep(fx.x, fx.t));
      const afterSteps = model.predict(fx.x);
      const losses = await Promise.all(steps);
      close(losses.map((l) => l.dataSync()[0]), fx.expected.train.losses.slice(0, 5), 'losses of queued steps', tol * 10);
      close((await before).dataSync(), fx.expected.predict.y, 'predict queued before the steps');
      assert.ok(maxAbsDiff((await afterSteps).dataSync(), fx.expected.predict.y) > 0.01);
    });

    test('dispose frees the backend; later calls throw', async (t) => {
      if (skip()) return t.skip(skip());
      const m = await loadModel();
      const y = await m.predict(fx.x);
      m.dispose();
      m.dispose(); // idempotent
      assert.equal(m.isDisposed, true);
      await assert.rejects(m.predict(fx.x), /predict.*disposed/);
      await assert.rejects(m.getWeights(), /disposed/);
      assert.equal(m.stats().gpuBuffers, undefined);
      y.dispose();
      assert.throws(() => y.dataSync(), /disposed/);
      await assert.rejects(model.predict(y), /input 'x': the tensor was disposed/);
    });
  });
}

// WebGPU loading: backend choice, required limits, damaged kernels, and that
// nothing is left behind (failed loads, dispose, the FinalizationRegistry).
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { after, before, describe, test } from 'node:test';

import * as webtensor from '../node.js';
import { buildFixtures, getGPU, readDir, resign } from './helpers.js';

let fx, files, gpu, reason;
before(async () => {
  fx = buildFixtures();
  files = readDir(fx.dir);
  ({ gpu, reason } = await getGPU());
});
after(() => fx.cleanup());

/** A device of our own whose createBuffer/destroy calls are counted. */
async function countedDevice() {
  const adapter = await gpu.requestAdapter();
  const device = await adapter.requestDevice();
  const counts = { created: 0, live: 0 };
  const createBuffer = device.createBuffer;
  device.createBuffer = (descriptor) => {
    const buffer = createBuffer.call(device, descriptor);
    counts.created++;
    counts.live++;
    const destroy = buffer.destroy;
    let destroyed = false;
    buffer.destroy = () => {
      if (!destroyed) counts.live--;
      destroyed = true;
      destroy.call(buffer);
    };
    return buffer;
  };
  return { device, counts };
}

const withManifest = (edit) => resign(files, edit);
const edited = (name, text) => resign({ ...files, [name]: new TextEncoder().encode(text) });
const wgsl = (name) => new TextDecoder().decode(files[name]);

describe('WebGPU loading', () => {
  const skip = () => (gpu ? false : reason);

  test("'auto' picks WebGPU when a GPU is passed, and reports the adapter", async (t) => {
    if (skip()) return t.skip(skip());
    const model = await webtensor.load(fx.dir, { gpu });
    assert.equal(model.backend, 'webgpu');
    assert.ok(model.adapterInfo && typeof model.adapterInfo.vendor === 'string', JSON.stringify(model.adapterInfo));
    assert.deepEqual(Array.from((await model.predict(fx.x)).dataSync()), fx.expected.predict.y);
    model.dispose();
  });

  test('required limits: explicit webgpu throws naming the limit; auto falls back to wasm', async (t) => {
    if (skip()) return t.skip(skip());
    const big = withManifest((m) => { m.signatures.train_step.webgpu.required_limits.maxComputeInvocationsPerWorkgroup = 1 << 20; });
    await assert.rejects(webtensor.load(big, { backend: 'webgpu', gpu }),
      /signature 'train_step' webgpu: the artifact requires maxComputeInvocationsPerWorkgroup 1048576 \(the adapter offers \d+\)/);
    assert.equal((await webtensor.load(big, { gpu })).backend, 'wasm');
    const unknown = withManifest((m) => { m.signatures.predict.webgpu.required_limits.maxWarpDrive = 1; });
    await assert.rejects(webtensor.load(unknown, { backend: 'webgpu', gpu }), /requires maxWarpDrive \(unknown limit on this adapter\)/);
    const feature = edited('kernels/predict_0.wgsl', 'enable chromium_experimental_warp_drive;\n' + wgsl('kernels/predict_0.wgsl'));
    await assert.rejects(webtensor.load(feature, { backend: 'webgpu', gpu }), /need the WebGPU feature 'chromium_experimental_warp_drive'/);
    assert.equal((await webtensor.load(feature, { gpu })).backend, 'wasm');
  });

  test('no webgpu section: explicit webgpu throws; auto falls back to wasm', async (t) => {
    if (skip()) return t.skip(skip());
    const noGPU = withManifest((m) => { delete m.signatures.classify.webgpu; });
    await assert.rejects(webtensor.load(noGPU, { backend: 'webgpu', gpu }), /signature 'classify' webgpu: section is missing/);
    assert.equal((await webtensor.load(noGPU, { gpu })).backend, 'wasm');
  });

  const damaged = {
    'WGSL that does not compile': [() => edited('kernels/train_step_3.wgsl', wgsl('kernels/train_step_3.wgsl').replace('w[idx] = ', 'w[idx] = nope + ')),
      /kernels\/train_step_3\.wgsl: WGSL does not compile: \d+:\d+: .*nope/, true],
    'a missing entry point': [() => withManifest((m) => { m.signatures.train_step.webgpu.kernels[2].entry_point = 'start'; }),
      /signature 'train_step' webgpu kernels\[2\] \(kernels\/train_step_2\.wgsl\): cannot create the pipeline/, true],
    'fewer bindings than the shader declares': [() => withManifest((m) => { m.signatures.predict.webgpu.kernels[0].bindings = [0, 1, 2]; }),
      /kernels\[0\] \(kernels\/predict_0\.wgsl\): the shader declares @binding\(3\), but the kernel lists 3 bindings/, false],
    'more bindings than the shader declares': [() => withManifest((m) => { m.signatures.predict.webgpu.kernels[0].bindings = [0, 1, 2, 3, 0]; }),
      /the kernel lists binding 4, but the shader declares no @group\(0\) @binding\(4\)/, false],
    'a written buffer bound twice': [() => withManifest((m) => { m.signatures.predict.webgpu.kernels[0].bindings = [3, 1, 2, 3]; }),
      /buffers\[3\] is bound twice and written/, false],
    'a buffer too small for its input': [() => withManifest((m) => { m.signatures.predict.webgpu.buffers[0].bytes = 64; }),
      /signature 'predict' webgpu buffers\[0\]: 64 bytes cannot hold \[8,4\] float32 \(128 bytes\)/, false],
    'a missing constant': [() => withManifest((m) => { m.signatures.train_step.webgpu.buffers[7].data = 'const/train_step/9'; }),
      /weights\.safetensors: constant "const\/train_step\/9" .* is missing/, false],
    'an output without a buffer': [() => withManifest((m) => { m.signatures.predict.webgpu.buffers[3].index = 1; }),
      /buffers\[3\]: no output 1/, false],
    'a dispatch over the limit': [() => withManifest((m) => { m.signatures.predict.webgpu.kernels[0].dispatch = [1e6, 1, 1]; }),
      /kernels\[0\]\.dispatch\[0\]: must be at most 65535, got 1000000/, false],
  };
  for (const [name, [make, message, createsBuffers]] of Object.entries(damaged)) {
    test(`${name}: a clear Error, and every buffer created is destroyed`, async (t) => {
      if (skip()) return t.skip(skip());
      const { device, counts } = await countedDevice();
      await assert.rejects(webtensor.load(make(), { backend: 'webgpu', device }), (e) => {
        assert.match(e.message, /^webtensor: artifact \(in memory\): /);
        assert.match(e.message, message);
        return true;
      });
      assert.equal(counts.created > 0, createsBuffers, `buffers created: ${counts.created}`);
      assert.equal(counts.live, 0, 'buffers left behind');
      // the caller's device is still usable (not destroyed, error scopes balanced)
      const model = await webtensor.load(files, { backend: 'webgpu', device });
      assert.deepEqual(Array.from((await model.predict(fx.x)).dataSync()), fx.expected.predict.y);
      model.dispose();
      assert.equal(counts.live, 0);
      device.destroy();
    });
  }

  test("a caller's device: no buffers created per run; dispose destroys ours, not the device", async (t) => {
    if (skip()) return t.skip(skip());
    const { device, counts } = await countedDevice();
    const model = await webtensor.load(files, { backend: 'webgpu', device });
    await model.trainStep(fx.x, fx.t);
    await model.getWeights();
    const created = counts.created;
    assert.equal(model.stats().gpuBuffers, counts.live);
    for (let s = 0; s < 100; s++) {
      await model.trainStep(fx.x, fx.t);
      await model.predict(fx.x);
      await model.run('classify', [fx.x, fx.labels]);
    }
    await model.getWeights();
    assert.equal(counts.created, created, 'no buffers created after the first calls');
    model.dispose();
    assert.equal(counts.live, 0);
    const probe = device.createBuffer({ size: 4, usage: 0x08 | 0x01 });
    device.queue.writeBuffer(probe, 0, new Uint8Array(4));
    await device.queue.onSubmittedWorkDone();
    probe.destroy();
    device.destroy();
  });

  test('FinalizationRegistry frees the buffers of a model that was never disposed', async (t) => {
    if (skip()) return t.skip(skip());
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    const { device, counts } = await countedDevice();
    await (async () => {
      const model = await webtensor.load(files, { backend: 'webgpu', device });
      await model.predict(fx.x);
    })();
    assert.ok(counts.live > 0);
    for (let i = 0; i < 50 && counts.live > 0; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(counts.live, 0, 'buffers of the unreachable model were destroyed');
    device.destroy();
  });
});

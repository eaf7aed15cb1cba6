// WebGPU loading: backend choice, required limits, damaged kernels, and that
// nothing is left behind (failed loads, dispose, the FinalizationRegistry).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { after, before, describe, test } from 'node:test';

import * as webtensor from '../node.js';
import { buildFixtures, getGPU, maxAbsDiff, readDir, resign } from './helpers.js';

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

// Adapter infos as Dawn (SwiftShader) and a hardware GPU report them.
const SWIFTSHADER_INFO = { vendor: 'google', architecture: 'swiftshader', device: 'swiftshader-device-subzero-', description: 'SwiftShader driver 5.0.0', isFallbackAdapter: true };
const HARDWARE_INFO = { vendor: 'nvidia', architecture: 'ampere', device: '', description: 'NVIDIA GeForce RTX 3080', isFallbackAdapter: false };

/** A GPU whose adapters are the real ones, but report `info` as their adapter.info. */
const reporting = (info) => ({
  requestAdapter: async (options) => {
    const adapter = await gpu.requestAdapter(options);
    return new Proxy(adapter, {
      get: (target, key) => (key === 'info' ? info : typeof target[key] === 'function' ? target[key].bind(target) : target[key]),
    });
  },
});

test('isSoftwareAdapter: fallback adapters, SwiftShader, llvmpipe, lavapipe and WARP; not hardware GPUs', () => {
  const software = [
    SWIFTSHADER_INFO,
    { vendor: 'google', architecture: 'swiftshader', device: '', description: '' },          // Chrome, no isFallbackAdapter
    { vendor: 'mesa', architecture: '', device: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' },
    { vendor: 'mesa', architecture: '', device: 'lavapipe', description: '' },
    { vendor: 'microsoft', architecture: '', device: '', description: 'Microsoft Basic Render Driver' },
    { vendor: 'microsoft', architecture: 'warp', device: '', description: '' },
    { vendor: '', architecture: '', device: '', description: '', isFallbackAdapter: true },
  ];
  const hardware = [
    HARDWARE_INFO,
    { vendor: 'intel', architecture: 'gen-12lp', device: '', description: '' },
    { vendor: 'apple', architecture: 'metal-3', device: '', description: 'Apple M2' },
    { vendor: 'amd', architecture: 'rdna-3', device: '', description: 'AMD Radeon RX 7900 XTX' },
    { vendor: 'microsoft', architecture: '', device: '', description: 'Microsoft Warpdrive Pro' }, // "warp" only as a word
    { vendor: '', architecture: '', device: '', description: '' },
  ];
  for (const info of software) assert.equal(webtensor.isSoftwareAdapter(info), true, JSON.stringify(info));
  for (const info of hardware) assert.equal(webtensor.isSoftwareAdapter(info), false, JSON.stringify(info));
  assert.equal(webtensor.isSoftwareAdapter(null), false);
  assert.equal(webtensor.isSoftwareAdapter(undefined), false);
});

const withManifest = (edit) => resign(files, edit);
const edited = (name, text) => resign({ ...files, [name]: new TextEncoder().encode(text) });
const wgsl = (name) => new TextDecoder().decode(files[name]);

// A child process (node --expose-gc) that loads with `gpu: create([])` inline, as
// load()'s error message suggests, so that nothing but the model holds the GPU
// object, and collects garbage between every call.
const INLINE_GPU_CHILD = `
const webtensor = await import(process.env.WT_ENTRY);
const { create } = await import(process.env.WT_WEBGPU);
const { dir, x, t } = JSON.parse(process.env.WT_ARGS);
const collect = async () => { gc(); await new Promise((resolve) => setTimeout(resolve, 10)); gc(); };
const model = await webtensor.load(dir, { backend: 'webgpu', gpu: create([]) });
await collect();
const y = Array.from((await model.predict(new Float32Array(x))).dataSync());
const losses = [];
for (let i = 0; i < 5; i++) {
  await collect();
  losses.push((await model.trainStep(new Float32Array(x), new Float32Array(t))).dataSync()[0]);
}
await collect();
model.dispose();
await collect();
console.log(JSON.stringify({ backend: model.backend, y, losses }));
`;

describe('WebGPU loading', () => {
  const skip = () => (gpu ? false : reason);

  test("'auto' uses WebGPU on a hardware adapter and wasm on a software one; 'webgpu' uses either", async (t) => {
    if (skip()) return t.skip(skip());
    const real = (await gpu.requestAdapter()).info;
    const described = `${real.vendor} / ${real.architecture} / ${real.description}`;
    const auto = await webtensor.load(fx.dir, { gpu });
    assert.equal(auto.backend, webtensor.isSoftwareAdapter(real) ? 'wasm' : 'webgpu', described); // SwiftShader here: wasm
    t.diagnostic(`this machine's adapter: ${described}: 'auto' picked ${auto.backend}`);
    auto.dispose();
    for (const [info, want] of [[SWIFTSHADER_INFO, 'wasm'], [HARDWARE_INFO, 'webgpu']]) {
      const model = await webtensor.load(fx.dir, { gpu: reporting(info) });
      assert.equal(model.backend, want, JSON.stringify(info));
      assert.deepEqual(Array.from((await model.predict(fx.x)).dataSync()), fx.expected.predict.y);
      model.dispose();
    }
    const explicit = await webtensor.load(fx.dir, { backend: 'webgpu', gpu: reporting(SWIFTSHADER_INFO) });
    assert.equal(explicit.backend, 'webgpu');
    assert.deepEqual(explicit.adapterInfo, { vendor: 'google', architecture: 'swiftshader', device: 'swiftshader-device-subzero-', description: 'SwiftShader driver 5.0.0' });
    assert.deepEqual(Array.from((await explicit.predict(fx.x)).dataSync()), fx.expected.predict.y);
    explicit.dispose();
  });

  test('required limits: explicit webgpu throws naming the limit; auto falls back to wasm', async (t) => {
    if (skip()) return t.skip(skip());
    const big = withManifest((m) => { m.signatures.train_step.webgpu.required_limits.maxComputeInvocationsPerWorkgroup = 1 << 20; });
    await assert.rejects(webtensor.load(big, { backend: 'webgpu', gpu }),
      /signature 'train_step' webgpu: the artifact requires maxComputeInvocationsPerWorkgroup 1048576 \(the adapter offers \d+\)/);
    assert.equal((await webtensor.load(big, { gpu: reporting(HARDWARE_INFO) })).backend, 'wasm');
    const unknown = withManifest((m) => { m.signatures.predict.webgpu.required_limits.maxWarpDrive = 1; });
    await assert.rejects(webtensor.load(unknown, { backend: 'webgpu', gpu }), /requires maxWarpDrive \(unknown limit on this adapter\)/);
    const feature = edited('kernels/predict_0.wgsl', 'enable chromium_experimental_warp_drive;\n' + wgsl('kernels/predict_0.wgsl'));
    await assert.rejects(webtensor.load(feature, { backend: 'webgpu', gpu }), /need the WebGPU feature 'chromium_experimental_warp_drive'/);
    assert.equal((await webtensor.load(feature, { gpu: reporting(HARDWARE_INFO) })).backend, 'wasm');
  });

  test('no webgpu section: explicit webgpu throws; auto falls back to wasm', async (t) => {
    if (skip()) return t.skip(skip());
    const noGPU = withManifest((m) => { delete m.signatures.classify.webgpu; });
    await assert.rejects(webtensor.load(noGPU, { backend: 'webgpu', gpu }), /signature 'classify' webgpu: section is missing/);
    assert.equal((await webtensor.load(noGPU, { gpu: reporting(HARDWARE_INFO) })).backend, 'wasm');
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

  test('a model keeps its GPU object alive: `gpu: create([])` inline survives gc() between calls (10 processes)', async (t) => {
    if (skip()) return t.skip(skip());
    const env = {
      ...process.env,
      WT_ENTRY: new URL('../node.js', import.meta.url).href,
      WT_WEBGPU: import.meta.resolve('webgpu'),
      WT_ARGS: JSON.stringify({ dir: fx.dir, x: Array.from(fx.x), t: Array.from(fx.t) }),
    };
    for (let run = 0; run < 10; run++) {
      const { error, stdout, stderr } = await new Promise((resolve) => {
        execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', INLINE_GPU_CHILD], { env, timeout: 120_000 },
          (error, stdout, stderr) => resolve({ error, stdout, stderr }));
      });
      const how = error ? `exit code ${error.code}, signal ${error.signal}${error.killed ? ' (killed: timed out)' : ''}` : 'exit code 0';
      assert.ok(!error, `run ${run + 1} of 10: ${how}\n${stderr.slice(-2000)}`);
      const out = JSON.parse(stdout);
      assert.equal(out.backend, 'webgpu');
      assert.ok(maxAbsDiff(out.y, fx.expected.predict.y) <= 1e-5, `run ${run + 1}: predict ${out.y}`);
      assert.ok(maxAbsDiff(out.losses, fx.expected.train.losses.slice(0, 5)) <= 1e-4, `run ${run + 1}: losses ${out.losses}`);
    }
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

// webtensor artifacts in Node beside TF.js, measured in the same run on the same workloads:
//
//   - MLP train step: 784 -> 256 -> 256 -> 10 (ReLU), batch 128, softmax cross-entropy on
//     logits, SGD(0.01): forward, backward and update (steps/s);
//   - CNN forward: 32 x 28 x 28 x 1 -> conv3x3 16 (same, ReLU) -> maxpool 2 -> conv3x3 32
//     (same, ReLU) -> maxpool 2 -> dense 10 (images/s);
//   - the fused chain gelu_tanh(x * a + b) * sigmoid(x) on 2^20 float32 elements (ms; webtensor
//     compiles it to one kernel, TF.js runs its ops one by one).
//
// Then, on wasm, a head-to-head of the fused chain, matmul a @ b (float32 N x N, N = 256 and
// 1024) and the CNN forward whose calls alternate between the runtimes (round robin), so that both see the same load
// on a shared machine: webtensor copying (typed arrays in, a fresh Float32Array out per call),
// webtensor resident (inputs written once into the model's WebAssembly memory with
// model.inputTensor(), outputs read in place: run(..., {output: 'view'})), and TF.js-wasm (tensors
// on its backend, result read with data()). It reports the fastest call and the mean of each.
// The artifacts carry module_relaxed.wasm (fused multiply-adds), which runs where the engine has
// relaxed SIMD: Node 20 only with `node --experimental-wasm-relaxed-simd bench/bench_node.mjs`
// (the report names the module that ran).
//
// webtensor runs artifacts exported by bench/export_bench.py (run here with python3) on its
// WebAssembly and WebGPU backends; TF.js (@tensorflow/tfjs 4, dev dependencies only) runs the
// same models from the same initial weights (read from the artifacts) on tfjs-backend-wasm and
// tfjs-backend-webgpu (WebGPU in Node through the npm `webgpu` package's globals, Dawn; on
// SwiftShader without a GPU: `VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`).
// Every timed call includes reading the result back (loss or logits), so queued GPU work is
// counted. The outputs of the two runtimes are compared first (max |difference|).
//
// Usage: node bench/bench_node.mjs [--seconds 2] [--backends wasm,webgpu] [--tfjs-threads N] [--rounds 40]
//                                  [--threads 1]  (webtensor's wasm threads; 1 = issue 16's one-thread comparison)

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../js/node.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const SECONDS = Number(opt('seconds', 2));
const BACKENDS = opt('backends', 'wasm,webgpu').split(',');
const TFJS_THREADS = opt('tfjs-threads', null);
// load()'s default is 'auto' (every core where the artifact has module_threads.wasm): name it, so
// the one-thread comparison stays one thread
const THREADS = ((t) => (t === 'auto' ? t : Number(t)))(opt('threads', '1'));
const ROUNDS = Number(opt('rounds', 40)); // head-to-head: calls of each contender per workload
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'webtensor-bench-'));
execFileSync('python3', [join(here, 'export_bench.py'), out], { stdio: ['ignore', 'inherit', 'inherit'] });

// ---- inputs (deterministic) and weights --------------------------------------------------------
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
const rand = lcg(1);
const MLP = { batch: 128, x: Float32Array.from({ length: 128 * 784 }, () => rand()), y: Int32Array.from({ length: 128 }, () => Math.floor(rand() * 10)) };
const CNN = { batch: 32, x: Float32Array.from({ length: 32 * 28 * 28 }, () => rand()) };
const CHAIN = { n: 1 << 20, b: Float32Array.of(0.25) };
CHAIN.x = Float32Array.from({ length: CHAIN.n }, () => 6 * rand() - 3);
CHAIN.a = Float32Array.from({ length: CHAIN.n }, () => 2 * rand() - 1);
const MATMUL = [256, 1024].map((n) => ({ n, a: Float32Array.from({ length: n * n }, () => 2 * rand() - 1), b: Float32Array.from({ length: n * n }, () => 2 * rand() - 1) }));
const weightsOf = (kind) => webtensor.parseSafetensors(readFileSync(join(out, kind, 'weights.safetensors'))).tensors;

// ---- timing ----------------------------------------------------------------------------------
async function timeit(fn) {
  await fn();
  await fn();
  let reps = 0;
  const t0 = performance.now();
  while (reps < 3 || (performance.now() - t0 < SECONDS * 1000 && reps < 10000)) {
    await fn();
    reps++;
  }
  return (performance.now() - t0) / 1000 / reps; // seconds per call
}

const maxAbs = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// ---- GPU for both runtimes ------------------------------------------------------------------
let gpu = null;
let gpuNote = '';
if (BACKENDS.includes('webgpu')) {
  try {
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    gpu = webgpu.create([]);
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error('no adapter');
    const info = adapter.info ?? {};
    gpuNote = `${info.vendor || '?'} ${info.architecture || ''} ${info.device || ''} ${info.description || ''}`.replace(/\s+/g, ' ').trim();
    if (!globalThis.navigator) globalThis.navigator = {};
    if (!globalThis.navigator.gpu) Object.defineProperty(globalThis.navigator, 'gpu', { value: gpu, configurable: true });
  } catch (e) {
    gpu = null;
    gpuNote = `WebGPU unavailable (${e.message})`;
  }
}

// ---- TF.js ------------------------------------------------------------------------------------
const tf = await import('@tensorflow/tfjs');
const tfWasm = await import('@tensorflow/tfjs-backend-wasm');
let tfWebgpuError = null;
try {
  await import('@tensorflow/tfjs-backend-webgpu');
} catch (e) {
  tfWebgpuError = e.message;
}
if (TFJS_THREADS) tfWasm.setThreadsCount(Number(TFJS_THREADS));

function tfModels() {
  const w = weightsOf('mlp');
  const c = weightsOf('cnn');
  const t = (tensors, name) => {
    const v = tensors.get(name);
    return tf.tensor(new Float32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.byteLength)), v.shape);
  };
  const mlp = tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }),
    tf.layers.dense({ units: 256, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });
  mlp.setWeights(['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias'].map((n) => t(w, n)));
  const cnn = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 10 }),
  ] });
  cnn.setWeights(['conv2d/kernel', 'conv2d/bias', 'conv2d_1/kernel', 'conv2d_1/bias', 'dense/kernel', 'dense/bias'].map((n) => t(c, n)));
  return { mlp, cnn };
}

async function benchTfjs(backend) {
  if (backend === 'webgpu' && (tfWebgpuError || !gpu)) return { error: tfWebgpuError ?? gpuNote };
  try {
    if (!(await tf.setBackend(backend))) return { error: `tf.setBackend('${backend}') failed` };
    await tf.ready();
  } catch (e) {
    return { error: e.message };
  }
  const { mlp, cnn } = tfModels();
  const x = tf.tensor(MLP.x, [MLP.batch, 784]);
  const y = tf.oneHot(tf.tensor1d(MLP.y, 'int32'), 10);
  const opt = tf.train.sgd(0.01);
  const lossFn = () => tf.losses.softmaxCrossEntropy(y, mlp.apply(x));
  const step = async () => {
    const loss = opt.minimize(lossFn, true);
    const v = (await loss.data())[0];
    loss.dispose();
    return v;
  };
  const xc = tf.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
  const forward = async () => {
    const out = cnn.predict(xc);
    const v = await out.data();
    out.dispose();
    return v;
  };
  const [cx, ca, cb] = [tf.tensor(CHAIN.x), tf.tensor(CHAIN.a), tf.tensor(CHAIN.b)];
  const chain = async () => {
    const out = tf.tidy(() => {
      const z = cx.mul(ca).add(cb);
      const inner = z.add(z.mul(z).mul(z).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
      return z.mul(0.5).mul(tf.tanh(inner).add(1)).mul(tf.sigmoid(cx));
    });
    const v = await out.data();
    out.dispose();
    return v;
  };
  const logits = await forward();
  const chainOut = await chain();
  const firstLoss = await step();
  for (let i = 0; i < 3; i++) await step();
  const fifthLoss = await step();
  const result = { stepS: await timeit(step), forwardS: await timeit(forward), chainS: await timeit(chain), logits, chainOut, firstLoss, fifthLoss };
  if (backend === 'wasm') result.threads = tfWasm.getThreadsCount();
  tf.disposeVariables();
  tf.dispose([x, y, xc, cx, ca, cb]);
  return result;
}

// which module ran and on how many threads (the report's note)
const moduleNote = (model) => `${model.stats().wasmModule}, ${model.stats().wasmThreads ?? 1} thread(s)`;

// ---- webtensor --------------------------------------------------------------------------------
async function benchWebtensor(backend) {
  if (backend === 'webgpu' && !gpu) return { error: gpuNote };
  const options = backend === 'webgpu' ? { backend, gpu } : { backend, threads: THREADS };
  const t0 = performance.now();
  const mlp = await webtensor.load(join(out, 'mlp'), options);
  const cnn = await webtensor.load(join(out, 'cnn'), options);
  const chainModel = await webtensor.load(join(out, 'chain'), options);
  const loadS = (performance.now() - t0) / 1000;
  const x = webtensor.tensor(MLP.x, [MLP.batch, 784]);
  const xc = webtensor.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
  const step = async () => (await mlp.trainStep(x, MLP.y)).dataSync()[0];
  const forward = async () => (await cnn.predict(xc)).dataSync();
  const chain = async () => (await chainModel.predict([CHAIN.x, CHAIN.a, CHAIN.b])).dataSync();
  const logits = await forward();
  const chainOut = await chain();
  const firstLoss = await step();
  for (let i = 0; i < 3; i++) await step();
  const fifthLoss = await step();
  const result = { stepS: await timeit(step), forwardS: await timeit(forward), chainS: await timeit(chain), logits, chainOut, firstLoss, fifthLoss, loadS };
  result.module = mlp.stats().wasmModule && moduleNote(mlp);
  mlp.dispose();
  cnn.dispose();
  chainModel.dispose();
  return result;
}

// ---- head-to-head on wasm: calls alternate between the contenders ------------------------------
async function headToHead() {
  if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') failed");
  await tf.ready();
  const same = (u, v) => u.length === v.length && u.every((e, i) => Object.is(e, v[i]));
  const workloads = [];
  const disposers = [];
  const add = async (name, dir, inputs, shapes, tfjs, unit) => {
    const model = await webtensor.load(join(out, dir), { backend: 'wasm', threads: THREADS });
    const sig = model.signatures.predict;
    const outName = sig.outputs[0].name;
    const resident = sig.inputs.map((spec, k) => model.inputTensor('predict', spec.name).write(inputs[k]));
    const ts = inputs.map((v, k) => tf.tensor(v, shapes[k]));
    disposers.push(() => { model.dispose(); tf.dispose(ts); });
    const fns = {
      'webtensor copying': async () => (await model.run('predict', inputs))[outName].dataSync(),
      'webtensor resident': async () => (await model.run('predict', resident, { output: 'view' }))[outName].dataSync(),
      'TF.js': async () => {
        const o = tfjs(...ts);
        const v = await o.data();
        o.dispose();
        return v;
      },
    };
    const copied = await fns['webtensor copying']();
    if (!same(await fns['webtensor resident'](), copied)) throw new Error(`${name}: the resident path differs from the copying path`);
    workloads.push({ name, fns, unit, module: moduleNote(model), diff: maxAbs(copied, await fns['TF.js']()) });
  };
  const chainTf = (x, a, b) => tf.tidy(() => {
    const z = x.mul(a).add(b);
    const inner = z.add(z.mul(z).mul(z).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return z.mul(0.5).mul(tf.tanh(inner).add(1)).mul(tf.sigmoid(x));
  });
  await add('fused chain (2^20)', 'chain', [CHAIN.x, CHAIN.a, CHAIN.b], [[CHAIN.n], [CHAIN.n], [1]], chainTf, (s) => `${(s * 1e3).toFixed(2)} ms`);
  for (const { n, a, b } of MATMUL) {
    await add(`matmul ${n}`, `matmul${n}`, [a, b], [[n, n], [n, n]], (p, q) => tf.matMul(p, q), (s) => `${fmt(2 * n ** 3 / s / 1e9)} GFLOP/s`);
  }
  const tfNets = tfModels();
  disposers.push(() => { tfNets.mlp.dispose(); tfNets.cnn.dispose(); });
  await add(`CNN forward (b=${CNN.batch})`, 'cnn', [CNN.x], [[CNN.batch, 28, 28, 1]], (xc) => tfNets.cnn.predict(xc), (s) => `${fmt(CNN.batch / s)} images/s`);
  console.log(`head-to-head on wasm, ${ROUNDS} rounds, calls alternating (TF.js-wasm ${tfWasm.getThreadsCount()} thread(s)); fastest call / mean:`);
  console.log('workload                  contender            fastest              mean                 vs TF.js (fastest / mean)');
  for (const w of workloads) {
    const names = Object.keys(w.fns);
    const best = Object.fromEntries(names.map((k) => [k, Infinity]));
    const total = Object.fromEntries(names.map((k) => [k, 0]));
    for (const k of names) { await w.fns[k](); await w.fns[k](); } // warm up
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of r % 2 ? names.slice().reverse() : names) {
        const t0 = performance.now();
        await w.fns[k]();
        const dt = (performance.now() - t0) / 1000;
        best[k] = Math.min(best[k], dt);
        total[k] += dt;
      }
    }
    for (const k of names) {
      const mean = total[k] / ROUNDS;
      const vs = k === 'TF.js' ? '' : `${(best['TF.js'] / best[k]).toFixed(2)}x / ${(total['TF.js'] / total[k]).toFixed(2)}x`;
      console.log(`${w.name.padEnd(26)}${k.padEnd(21)}${w.unit(best[k]).padEnd(21)}${w.unit(mean).padEnd(21)}${vs}`);
    }
    console.log(`  (${w.module}; max |webtensor - TF.js| = ${w.diff.toExponential(2)})`);
  }
  for (const d of disposers) d();
}

// ---- run and report --------------------------------------------------------------------------
const fmt = (v, d = 1) => (v >= 100 ? v.toFixed(0) : v.toFixed(d));
console.log(`Node ${process.version}, ${SECONDS} s per measurement; GPU: ${gpu ? gpuNote : gpuNote || 'not requested'}`);
console.log('workload                           runtime       backend   rate                vs TF.js');
const rows = [];
for (const backend of BACKENDS) {
  const ours = await benchWebtensor(backend);
  const theirs = await benchTfjs(backend);
  for (const [who, r] of [['webtensor', ours], ['TF.js', theirs]]) {
    if (r.error) {
      console.log(`${'(both workloads)'.padEnd(35)}${who.padEnd(14)}${backend.padEnd(10)}unavailable: ${r.error}`);
      continue;
    }
    const note = who === 'TF.js' && r.threads ? ` (${r.threads} threads)` : who === 'webtensor' ? ` (load ${r.loadS.toFixed(2)} s${r.module ? `, ${r.module}` : ''})` : '';
    const ratio = (mine, ref) => (who === 'webtensor' && !theirs.error ? `${(ref / mine).toFixed(2)}x` : '');
    console.log(`${'MLP train step (b=128)'.padEnd(35)}${who.padEnd(14)}${backend.padEnd(10)}${`${fmt(1 / r.stepS)} steps/s`.padEnd(20)}${ratio(r.stepS, theirs.stepS)}${note}`);
    console.log(`${'CNN forward (b=32, 28x28)'.padEnd(35)}${who.padEnd(14)}${backend.padEnd(10)}${`${fmt(CNN.batch / r.forwardS)} images/s`.padEnd(20)}${ratio(r.forwardS, theirs.forwardS)}`);
    console.log(`${'fused chain (2^20 elements)'.padEnd(35)}${who.padEnd(14)}${backend.padEnd(10)}${`${(r.chainS * 1e3).toFixed(2)} ms`.padEnd(20)}${ratio(r.chainS, theirs.chainS)}`);
    rows.push({ who, backend, ...r });
  }
  if (!ours.error && !theirs.error) {
    console.log(`  check (${backend}): CNN logits max |webtensor - TF.js| = ${maxAbs(ours.logits, theirs.logits).toExponential(2)}, ` +
      `MLP loss at steps 1 and 5: ${ours.firstLoss.toFixed(6)}, ${ours.fifthLoss.toFixed(6)} vs ` +
      `${theirs.firstLoss.toFixed(6)}, ${theirs.fifthLoss.toFixed(6)}; fused chain max |difference| = ` +
      `${maxAbs(ours.chainOut, theirs.chainOut).toExponential(2)}`);
  }
}
if (BACKENDS.includes('wasm')) await headToHead();
if (tfWebgpuError) console.log(`TF.js WebGPU backend could not be imported in Node: ${tfWebgpuError}`);
rmSync(out, { recursive: true, force: true });

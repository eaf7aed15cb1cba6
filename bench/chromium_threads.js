// The page side of bench/bench_chromium_threads.py (served cross-origin isolated, in headless
// Chromium): webtensor's artifacts (bench/export_bench.py) on `threads` Web Workers and on one
// thread, TF.js-wasm (tfjs-backend-wasm's threaded SIMD build, setThreadsCount) and ONNX Runtime
// Web (ort.env.wasm.numThreads) on `threads` threads, on matmul 1024 and the CNN forward (batch
// 32), and webtensor alone on the MLP train step (batch 128) and the 6-layer encoder, calls alternating between the contenders (round robin, each round in a new order) so that
// all see the same load.
// Every contender's inputs stay where its runtime keeps them (webtensor: resident tensors in the
// model's memory; TF.js: tensors on its backend; ONNX Runtime: its feeds, copied in by run(), as
// its API does) and every timed call reads the whole result back into a fresh array.
//
// window.runBench({threads, rounds, peers, settle}) resolves to {threads: {contender: n}, rows: [{workload,
// times: {contender: [ms...]}, after: {contender: [the contender run before each call...]},
// check: {contender: max |difference| from webtensor}}]}.

/* global tf, ort */
import * as webtensor from './vendor/webtensor/js/index.js';

function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
const rand = lcg(1);
const N = 1024;
const A = Float32Array.from({ length: N * N }, () => 2 * rand() - 1);
const B = Float32Array.from({ length: N * N }, () => 2 * rand() - 1);
const X = Float32Array.from({ length: 32 * 28 * 28 }, () => rand()); // NHWC (and NCHW: one channel)

const shuffleRand = lcg(7);
function shuffled(xs) { // Fisher-Yates
  const ys = [...xs];
  for (let i = ys.length - 1; i > 0; i--) {
    const j = Math.floor(shuffleRand() * (i + 1));
    [ys[i], ys[j]] = [ys[j], ys[i]];
  }
  return ys;
}
const maxAbs = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// Inputs for a signature the Node bench feeds too (bench/bench_threads.mjs): float32 sin(i), int32 i % 10.
function inputData(model, name) {
  return model.signatures[name].inputs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = s.dtype === 'int32' ? Int32Array.from({ length: n }, (_, i) => i % 10) : Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    return { data, shape: s.shape, dtype: s.dtype };
  });
}

// webtensor only (no peer runs them here): the MLP train step (batch 128) and the 6-layer encoder.
const OWN = [['mlp', 'models/mlp/', 'train_step'], ['encoder', 'models/encoder/', 'predict']];

async function webtensorContender(threads) {
  const mm = await webtensor.load('models/matmul1024/', { backend: 'wasm', threads });
  const cnn = await webtensor.load('models/cnn/', { backend: 'wasm', threads });
  const a = mm.inputTensor('predict', 0).write(A);
  const b = mm.inputTensor('predict', 1).write(B);
  const x = cnn.inputTensor('predict', 0).write(X);
  const own = {}, models = [mm, cnn];
  for (const [workload, dir, sig] of OWN) {
    const m = await webtensor.load(dir, { backend: 'wasm', threads });
    const ins = inputData(m, sig).map((d, i) => m.inputTensor(sig, i).write(d.data));
    own[workload] = async () => Object.values(await m.run(sig, ins))[0].dataSync();
    models.push(m);
  }
  return {
    threads: mm.stats().wasmThreads,
    matmul: async () => Object.values(await mm.run('predict', [a, b]))[0].dataSync(),
    cnn: async () => Object.values(await cnn.run('predict', [x]))[0].dataSync(),
    ...own,
    dispose: () => { for (const m of models) m.dispose(); },
  };
}

// The model in a Web Worker ({worker: true}), its threads nested Workers: the driver blocks while
// it waits for them instead of spinning on the page's main thread. Inputs are copied to the worker
// per call (resident tensors need the model on this thread).
async function webtensorWorkerContender(threads) {
  const mm = await webtensor.load('models/matmul1024/', { backend: 'wasm', threads, worker: true });
  const cnn = await webtensor.load('models/cnn/', { backend: 'wasm', threads, worker: true });
  const a = webtensor.tensor(A, [N, N]), b = webtensor.tensor(B, [N, N]), x = webtensor.tensor(X, [32, 28, 28, 1]);
  await mm.run('predict', [a, b]);
  const own = {}, models = [mm, cnn];
  for (const [workload, dir, sig] of OWN) {
    const m = await webtensor.load(dir, { backend: 'wasm', threads, worker: true });
    const ins = inputData(m, sig).map((d) => webtensor.tensor(d.data, d.shape, d.dtype));
    own[workload] = async () => Object.values(await m.run(sig, ins))[0].dataSync();
    models.push(m);
  }
  return {
    threads: mm.stats().wasmThreads,
    matmul: async () => Object.values(await mm.run('predict', [a, b]))[0].dataSync(),
    cnn: async () => Object.values(await cnn.run('predict', [x]))[0].dataSync(),
    ...own,
    dispose: () => { for (const m of models) m.dispose(); },
  };
}

async function tfjsContender(threads) {
  tf.wasm.setWasmPaths('tfjs/');
  tf.wasm.setThreadsCount(threads);
  await tf.setBackend('wasm');
  const weights = webtensor.parseSafetensors(new Uint8Array(await (await fetch('models/cnn/weights.safetensors')).arrayBuffer())).tensors;
  const t = (name) => {
    const v = weights.get(name);
    return tf.tensor(new Float32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.byteLength)), v.shape);
  };
  const net = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 10 }),
  ] });
  net.setWeights(['conv2d/kernel', 'conv2d/bias', 'conv2d_1/kernel', 'conv2d_1/bias', 'dense/kernel', 'dense/bias'].map(t));
  const a = tf.tensor(A, [N, N]), b = tf.tensor(B, [N, N]), x = tf.tensor(X, [32, 28, 28, 1]);
  const read = async (y) => { const d = await y.data(); y.dispose(); return d; };
  return {
    threads: tf.wasm.getThreadsCount(),
    matmul: () => read(tf.matMul(a, b)),
    cnn: () => read(net.predict(x)),
    dispose: () => { tf.dispose([a, b, x]); net.dispose(); },
  };
}

async function ortContender(threads) {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  const mm = await ort.InferenceSession.create('onnx/matmul1024.onnx', { executionProviders: ['wasm'] });
  const cnn = await ort.InferenceSession.create('onnx/cnn.onnx', { executionProviders: ['wasm'] });
  const mmFeeds = { a: new ort.Tensor('float32', A, [N, N]), b: new ort.Tensor('float32', B, [N, N]) };
  const cnnFeeds = { x: new ort.Tensor('float32', X, [32, 1, 28, 28]) };
  return {
    threads: ort.env.wasm.numThreads,
    matmul: async () => (await mm.run(mmFeeds)).y.data,
    cnn: async () => (await cnn.run(cnnFeeds)).y.data,
    dispose: () => { mm.release(); cnn.release(); },
  };
}

window.runBench = async ({ threads = 2, rounds = 20, peers = true, settle = 0, loop = 0 } = {}) => {
  const contenders = {
    [`webtensor ${threads}T`]: await webtensorContender(threads),
    'webtensor 1T': await webtensorContender(1),
    [`webtensor ${threads}T worker`]: await webtensorWorkerContender(threads),
    ...(peers ? {
      [`TF.js-wasm ${threads}T`]: await tfjsContender(threads),
      [`ORT-web ${threads}T`]: await ortContender(threads),
    } : {}),
  };
  const rows = [];
  for (const workload of ['matmul', 'cnn', ...OWN.map((w) => w[0])]) {
    const names = Object.keys(contenders).filter((n) => contenders[n][workload]);
    const times = Object.fromEntries(names.map((n) => [n, []]));
    const after = Object.fromEntries(names.map((n) => [n, []])); // the contender that ran just before each call
    let prev = null;
    const outs = {};
    for (const n of names) outs[n] = await contenders[n][workload](); // warm-up, and the outputs compared
    for (let r = 0; r < rounds; r++) {
      // each round in another (seeded) order: a runtime whose thread pool spins after its call
      // (ONNX Runtime's: measured in Node, 5-16 ms of CPU in the 20-40 ms after a call) slows
      // whatever runs next, which a fixed order made always the same contender (webtensor's, whose
      // CNN call takes ~3 ms); `settle` ms of idleness before each call remove that (all start cold)
      for (const n of shuffled(names)) {
        if (settle) await new Promise((resolve) => setTimeout(resolve, settle));
        // `loop` calls back to back (as a predict or training loop runs), timed together: per call
        const calls = Math.max(loop, 1);
        const t0 = performance.now();
        for (let i = 0; i < calls; i++) await contenders[n][workload]();
        times[n].push((performance.now() - t0) / calls);
        after[n].push(prev);
        prev = n;
      }
    }
    const ref = outs[names[0]];
    rows.push({ workload, times, after, check: Object.fromEntries(names.slice(1).map((n) => [n, maxAbs(outs[n], ref)])) });
  }
  const threadCounts = Object.fromEntries(Object.entries(contenders).map(([n, c]) => [n, c.threads]));
  for (const c of Object.values(contenders)) c.dispose();
  return { threads: threadCounts, isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, rows };
};
window.benchReady = true;

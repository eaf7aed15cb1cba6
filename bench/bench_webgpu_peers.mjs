// webtensor's WebGPU artifacts beside jax-js (@jax-js/jax, jit-compiled) and TF.js
// (tfjs-backend-webgpu) in one Node process, on the same WebGPU adapter (the npm `webgpu`
// package: Dawn; on SwiftShader without a GPU), same workloads, same initial weights:
//
//   - matmul N x N x N float32, N = 256 and 1024 (GFLOP/s);
//   - MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, softmax cross-entropy, SGD(0.01)
//     (steps/s);
//   - CNN forward, batch 32: conv3x3 16 (same, ReLU) -> maxpool 2 -> conv3x3 32 (same, ReLU) ->
//     maxpool 2 -> dense 10 (images/s);
//   - the chain gelu_tanh(x * a + b) * sigmoid(x) on 2^20 float32 elements (ms).
//
// webtensor runs the artifacts of bench/export_bench.py (`--peers` adds the matmuls). Every timed
// call reads its result back (loss, logits, product), so queued GPU work is counted. Dispatches and
// queue submits per call are counted for all three runtimes by wrapping the adapter's
// GPUComputePassEncoder.dispatchWorkgroups and GPUQueue.submit. Outputs are compared with
// webtensor's first (max |difference|; MLP losses at steps 1 and 5).
//
// The runtimes take turns, round by round (--repeats rounds of --seconds each per workload); a rate
// is the median round's, a ratio (webtensor's rate / the peer's, > 1: webtensor faster) the median
// of the per-round ratios, so that load from other processes falls on all runtimes alike.
//
// Usage: node bench/bench_webgpu_peers.mjs [--seconds 1] [--repeats 3] [--peers jax,tfjs]
//                                          [--workloads matmul256,matmul1024,mlp,cnn,chain]

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
const SECONDS = Number(opt('seconds', 1));
const REPEATS = Number(opt('repeats', 3));
const PEERS = opt('peers', 'jax,tfjs').split(',').filter(Boolean);
const WORKLOADS = opt('workloads', 'matmul256,matmul1024,mlp,cnn,chain').split(',');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'webtensor-peers-'));
// the repository's .venv where there is one (webtensor installed from this checkout), else python3
const python = process.env.PYTHON ?? (existsSync(join(here, '..', '.venv', 'bin', 'python')) ? join(here, '..', '.venv', 'bin', 'python') : 'python3');
execFileSync(python, [join(here, 'export_bench.py'), out, '--peers'], { stdio: ['ignore', 'inherit', 'inherit'] });

// ---- the adapter, shared by the three runtimes; dispatch and submit counters -------------------
const webgpu = await import('webgpu');
Object.assign(globalThis, webgpu.globals);
const gpu = webgpu.create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error('no WebGPU adapter (the npm `webgpu` package found none)');
const info = adapter.info ?? {};
const adapterName = `${info.vendor || '?'} ${info.architecture || ''} ${info.device || ''} ${info.description || ''}`.replace(/\s+/g, ' ').trim();
// jax-js reads navigator.userAgent when it loads; Node 20 has no navigator.
if (!globalThis.navigator) globalThis.navigator = { userAgent: `Node.js ${process.version}` };
if (!globalThis.navigator.gpu) Object.defineProperty(globalThis.navigator, 'gpu', { value: gpu, configurable: true });
const counts = { dispatches: 0, submits: 0 };
for (const [cls, method, key] of [[GPUComputePassEncoder, 'dispatchWorkgroups', 'dispatches'],
  [GPUComputePassEncoder, 'dispatchWorkgroupsIndirect', 'dispatches'], [GPUQueue, 'submit', 'submits']]) {
  const orig = cls.prototype[method];
  cls.prototype[method] = function counted(...a) {
    counts[key]++;
    return orig.apply(this, a);
  };
}
async function countCalls(fn) {
  const before = { ...counts };
  await fn();
  return { dispatches: counts.dispatches - before.dispatches, submits: counts.submits - before.submits };
}

// ---- inputs (deterministic) and weights --------------------------------------------------------
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
const rand = lcg(1);
const uniform = (n, lo = 0, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
const MLP = { batch: 128, x: uniform(128 * 784), y: Int32Array.from({ length: 128 }, () => Math.floor(rand() * 10)) };
MLP.onehot = new Float32Array(128 * 10);
MLP.y.forEach((c, i) => { MLP.onehot[i * 10 + c] = 1; });
const CNN = { batch: 32, x: uniform(32 * 28 * 28) };
const CHAIN = { n: 1 << 20, x: uniform(1 << 20, -3, 3), a: uniform(1 << 20, -1, 1), b: Float32Array.of(0.25) };
const MATMUL = Object.fromEntries([256, 1024].map((n) => [n, { n, a: uniform(n * n, -1, 1), b: uniform(n * n, -1, 1) }]));
const weights = (kind) => {
  const tensors = webtensor.parseSafetensors(readFileSync(join(out, kind, 'weights.safetensors'))).tensors;
  return (name) => {
    const v = tensors.get(name);
    return { shape: v.shape, data: new Float32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.byteLength)) };
  };
};
const MLP_W = ['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias'];
const CNN_W = ['conv2d/kernel', 'conv2d/bias', 'conv2d_1/kernel', 'conv2d_1/bias', 'dense/kernel', 'dense/bias'];

// ---- timing -----------------------------------------------------------------------------------
// Runtimes take turns: each round times every runtime for SECONDS on one workload, so load from
// other processes on a shared machine falls on all of them; a ratio is the median of per-round ratios.
async function round(fn) {
  let reps = 0;
  const t0 = performance.now();
  while (reps < 2 || (performance.now() - t0 < SECONDS * 1000 && reps < 10000)) {
    await fn();
    reps++;
  }
  return (performance.now() - t0) / 1000 / reps; // seconds per call
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const maxAbs = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

// Each runtime gives, per workload, an async function returning the result as a Float32Array
// (the loss, for the train step) and optionally dispose().
async function measureAll(makers) {
  const fns = {};
  const res = {};
  for (const [name, make] of Object.entries(makers)) {
    try {
      fns[name] = await make();
      res[name] = {};
    } catch (e) {
      if (process.env.BENCH_DEBUG) console.error(e);
      res[name] = { error: firstLine(e) };
    }
  }
  for (const w of WORKLOADS) {
    const live = [];
    for (const name of Object.keys(fns)) {
      const fn = fns[name][w];
      if (!fn) continue;
      try {
        const first = await fn();
        let fifth = null;
        if (w === 'mlp') {
          for (let i = 0; i < 3; i++) await fn();
          fifth = await fn();
        }
        const calls = await countCalls(fn);
        await fn();
        res[name][w] = { first, fifth, calls, rounds: [] };
        live.push(name);
      } catch (e) {
        if (process.env.BENCH_DEBUG) console.error(e);
        res[name][w] = { error: firstLine(e) };
      }
    }
    for (let r = 0; r < REPEATS; r++) {
      for (const name of live) res[name][w].rounds.push(await round(fns[name][w]));
    }
    for (const name of live) res[name][w].seconds = median(res[name][w].rounds);
  }
  for (const f of Object.values(fns)) f.dispose?.();
  return res;
}

// ---- webtensor -----------------------------------------------------------------------------------
async function webtensorFns() {
  const options = { backend: 'webgpu', gpu };
  const load = (kind) => webtensor.load(join(out, kind), options);
  const [mlp, cnn, chain, mm256, mm1024] = await Promise.all(['mlp', 'cnn', 'chain', 'matmul256', 'matmul1024'].map(load));
  const x = webtensor.tensor(MLP.x, [MLP.batch, 784]);
  const xc = webtensor.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
  const mm = (model, n) => async () => (await model.predict([MATMUL[n].a, MATMUL[n].b])).dataSync();
  return {
    matmul256: mm(mm256, 256),
    matmul1024: mm(mm1024, 1024),
    mlp: async () => (await mlp.trainStep(x, MLP.y)).dataSync(),
    cnn: async () => (await cnn.predict(xc)).dataSync(),
    chain: async () => (await chain.predict([CHAIN.x, CHAIN.a, CHAIN.b])).dataSync(),
    dispose: () => [mlp, cnn, chain, mm256, mm1024].forEach((m) => m.dispose()),
  };
}

// ---- jax-js: jit-compiled functions, NCHW convolutions (its layout) -----------------------------
async function jaxFns() {
  const jax = await import('@jax-js/jax');
  const devices = await jax.init();
  if (!devices.includes('webgpu')) throw new Error(`jax-js found no WebGPU device (devices: ${devices})`);
  jax.defaultDevice('webgpu');
  const { numpy: np, nn, tree, jit, valueAndGrad, lax } = jax;
  const arr = ({ shape, data }) => np.array(data).reshape(shape);
  const mw = weights('mlp');
  let params = Object.fromEntries(MLP_W.map((n, i) => [`p${i}`, arr(mw(n))]));
  const x = np.array(MLP.x).reshape([MLP.batch, 784]);
  const y = np.array(MLP.onehot).reshape([MLP.batch, 10]);
  const loss = (p, xb, yb) => {
    const h1 = nn.relu(np.matmul(xb, p.p0).add(p.p1));
    const h2 = nn.relu(np.matmul(h1, p.p2).add(p.p3));
    const logp = nn.logSoftmax(np.matmul(h2, p.p4).add(p.p5), -1);
    return np.sum(logp.mul(yb)).mul(-1 / MLP.batch);
  };
  const step = jit((p, xb, yb) => {
    const [l, g] = valueAndGrad(loss)(tree.ref(p), xb, yb);
    return [l, tree.map((w, gw) => w.sub(gw.mul(0.01)), p, g)];
  });
  const cw = weights('cnn');
  const oihw = (w) => arr(w).transpose([3, 2, 0, 1]); // Keras HWIO -> OIHW
  const c = { k1: oihw(cw(CNN_W[0])), b1: arr(cw(CNN_W[1])).reshape([1, 16, 1, 1]), k2: oihw(cw(CNN_W[2])),
    b2: arr(cw(CNN_W[3])).reshape([1, 32, 1, 1]), wd: arr(cw(CNN_W[4])), bd: arr(cw(CNN_W[5])) };
  const pool = (t, n, ch, s) => np.max(t.reshape([n, ch, s / 2, 2, s / 2, 2]), [3, 5]);
  const forward = jit((p, xb) => {
    let h = nn.relu(lax.conv(xb, p.k1, [1, 1], 'SAME').add(p.b1));
    h = pool(h, CNN.batch, 16, 28);
    h = nn.relu(lax.conv(h, p.k2, [1, 1], 'SAME').add(p.b2));
    h = pool(h, CNN.batch, 32, 14);
    // Keras flattens NHWC
    return np.matmul(h.transpose([0, 2, 3, 1]).reshape([CNN.batch, 7 * 7 * 32]), p.wd).add(p.bd);
  });
  const xc = np.array(CNN.x).reshape([CNN.batch, 1, 28, 28]);
  const chain = jit((xv, av, bv) => {
    const z = xv.ref.mul(av).add(bv);
    const inner = z.ref.add(z.ref.mul(z.ref).mul(z.ref).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return z.mul(0.5).mul(np.tanh(inner).add(1)).mul(nn.sigmoid(xv));
  });
  const [cx, ca, cb] = [np.array(CHAIN.x), np.array(CHAIN.a), np.array(CHAIN.b)];
  const matmul = jit((a, b) => np.matmul(a, b));
  const mm = Object.fromEntries([256, 1024].map((n) => [n, [np.array(MATMUL[n].a).reshape([n, n]), np.array(MATMUL[n].b).reshape([n, n])]]));
  const read = (t) => t.data(); // data() consumes its array
  return {
    matmul256: () => read(matmul(mm[256][0].ref, mm[256][1].ref)),
    matmul1024: () => read(matmul(mm[1024][0].ref, mm[1024][1].ref)),
    mlp: async () => {
      const [l, next] = step(params, x.ref, y.ref);
      params = next;
      return read(l);
    },
    cnn: () => read(forward(tree.ref(c), xc.ref)),
    chain: () => read(chain(cx.ref, ca.ref, cb.ref)),
  };
}

// ---- TF.js WebGPU ---------------------------------------------------------------------------------
async function tfjsFns() {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') failed");
  await tf.ready();
  const t = (w) => tf.tensor(w.data, w.shape);
  const mw = weights('mlp');
  const cw = weights('cnn');
  const mlp = tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }),
    tf.layers.dense({ units: 256, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });
  mlp.setWeights(MLP_W.map((n) => t(mw(n))));
  const cnn = tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 10 }),
  ] });
  cnn.setWeights(CNN_W.map((n) => t(cw(n))));
  const x = tf.tensor(MLP.x, [MLP.batch, 784]);
  const y = tf.tensor(MLP.onehot, [MLP.batch, 10]);
  const sgd = tf.train.sgd(0.01);
  const xc = tf.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
  const [cx, ca, cb] = [tf.tensor(CHAIN.x), tf.tensor(CHAIN.a), tf.tensor(CHAIN.b)];
  const mm = Object.fromEntries([256, 1024].map((n) => [n, [tf.tensor(MATMUL[n].a, [n, n]), tf.tensor(MATMUL[n].b, [n, n])]]));
  const read = async (r) => { const d = await r.data(); r.dispose(); return d; };
  return {
    matmul256: () => read(tf.matMul(...mm[256])),
    matmul1024: () => read(tf.matMul(...mm[1024])),
    mlp: () => read(sgd.minimize(() => tf.losses.softmaxCrossEntropy(y, mlp.apply(x)), true)),
    cnn: () => read(cnn.predict(xc)),
    chain: () => read(tf.tidy(() => {
      const z = cx.mul(ca).add(cb);
      const inner = z.add(z.mul(z).mul(z).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
      return z.mul(0.5).mul(tf.tanh(inner).add(1)).mul(tf.sigmoid(cx));
    })),
  };
}

// ---- run and report --------------------------------------------------------------------------------
const RATE = {
  matmul256: ['GFLOP/s', (s) => (2 * 256 ** 3) / s / 1e9],
  matmul1024: ['GFLOP/s', (s) => (2 * 1024 ** 3) / s / 1e9],
  mlp: ['steps/s', (s) => 1 / s],
  cnn: ['images/s', (s) => CNN.batch / s],
  chain: ['calls/s', (s) => 1 / s],
};
const makers = { webtensor: webtensorFns };
if (PEERS.includes('jax')) makers['jax-js'] = jaxFns;
if (PEERS.includes('tfjs')) makers['TF.js'] = tfjsFns;
const results = await measureAll(makers);

const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
console.log(`Node ${process.version}; adapter: ${adapterName}; median of ${REPEATS} x ${SECONDS} s`);
const who = Object.keys(results);
console.log(`${'workload'.padEnd(12)}${who.map((w) => `${w} (rate, dispatches/submits)`.padEnd(38)).join('')}` +
  who.slice(1).map((w) => `wt / ${w}`.padEnd(14)).join(''));
for (const w of WORKLOADS) {
  const [unit, rate] = RATE[w];
  const cells = who.map((r) => {
    const m = results[r].error ? { error: results[r].error } : results[r][w];
    if (!m) return '-'.padEnd(38);
    if (m.error) return `error: ${m.error}`.slice(0, 36).padEnd(38);
    return `${fmt(rate(m.seconds))} ${unit}, ${m.calls.dispatches}/${m.calls.submits}`.padEnd(38);
  });
  const ours = results.webtensor[w];
  const ratios = who.slice(1).map((r) => {
    const m = results[r][w];
    if (!ours?.seconds || !m?.seconds) return '-'.padEnd(14);
    return `${median(m.rounds.map((t, i) => t / ours.rounds[i])).toFixed(2)}x`.padEnd(14);
  });
  console.log(`${w.padEnd(12)}${cells.join('')}${ratios.join('')}`);
}
for (const r of who.slice(1)) {
  if (results[r].error) {
    console.log(`${r}: unavailable (${results[r].error})`);
    continue;
  }
  const diffs = WORKLOADS.filter((w) => w !== 'mlp' && results[r][w]?.first && results.webtensor[w]?.first)
    .map((w) => `${w} ${maxAbs(results.webtensor[w].first, results[r][w].first).toExponential(1)}`);
  const a = results.webtensor.mlp;
  const b = results[r].mlp;
  const losses = a?.first && b?.first ? `; MLP loss at steps 1, 5: ${a.first[0].toFixed(5)}, ${a.fifth[0].toFixed(5)} vs ${b.first[0].toFixed(5)}, ${b.fifth[0].toFixed(5)}` : '';
  console.log(`check vs ${r}: max |difference| ${diffs.join(', ')}${losses}`);
}
rmSync(out, { recursive: true, force: true });
process.exit(0);

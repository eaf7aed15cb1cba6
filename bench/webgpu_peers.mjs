// The workloads of the WebGPU peer benchmark, written once for Node (bench/bench_webgpu_peers.mjs)
// and headless Chromium (bench/webgpu_peers.html, driven by bench/bench_webgpu_peers_chromium.py):
// webtensor's artifacts (bench/export_bench.py --peers), jax-js (@jax-js/jax, jit-compiled) and
// TF.js (tfjs-backend-webgpu) on the same WebGPU adapter, same workloads, same initial weights:
//
//   - matmul N x N x N float32, N = 256 and 1024 (GFLOP/s);
//   - MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, softmax cross-entropy, SGD(0.01)
//     (steps/s);
//   - CNN forward, batch 32: conv3x3 16 (same, ReLU) -> maxpool 2 -> conv3x3 32 (same, ReLU) ->
//     maxpool 2 -> dense 10 (images/s);
//   - the chain gelu_tanh(x * a + b) * sigmoid(x) on 2^20 float32 elements (ms).
//
// Every timed call reads its result back (loss, logits, product), so queued GPU work is counted.
// Dispatches and queue submits per call are counted for all three runtimes by wrapping the global
// GPUComputePassEncoder.dispatchWorkgroups and GPUQueue.submit. Outputs are compared with
// webtensor's first (max |difference|; MLP losses at steps 1 and 5).
//
// The runtimes take turns, round by round (`repeats` rounds of `seconds` each per workload); a rate
// is the median round's, a ratio (webtensor's rate / the peer's, > 1: webtensor faster) the median
// of the per-round ratios, so that load from other processes falls on all runtimes alike. With
// `best` (on a machine shared with other work), a rate is the fastest round's and a ratio the
// ratio of the fastest rounds: each runtime's least disturbed round.
//
// This module imports nothing: the environment hands it the runtimes (webtensor's module, jax-js's,
// TF.js with its WebGPU backend registered) and a reader of artifact files.

export const WORKLOADS = ['matmul256', 'matmul1024', 'mlp', 'cnn', 'chain'];

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
const MLP_W = ['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias'];
const CNN_W = ['conv2d/kernel', 'conv2d/bias', 'conv2d_1/kernel', 'conv2d_1/bias', 'dense/kernel', 'dense/bias'];
// the artifact each workload runs (bench/export_bench.py's folder names)
const ARTIFACT = { matmul256: 'matmul256', matmul1024: 'matmul1024', mlp: 'mlp', cnn: 'cnn', chain: 'chain' };

/** name -> {shape, data: Float32Array} of artifact `kind`'s weights.safetensors (`readFile(path)`: bytes). */
async function weights(webtensor, readFile, kind) {
  const tensors = webtensor.parseSafetensors(await readFile(`${kind}/weights.safetensors`)).tensors;
  return (name) => {
    const v = tensors.get(name);
    return { shape: v.shape, data: new Float32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.byteLength)) };
  };
}

// ---- dispatch and submit counters on the global WebGPU classes --------------------------------
const counts = { dispatches: 0, submits: 0 };
let countersInstalled = false;
function installCounters() {
  if (countersInstalled) return;
  countersInstalled = true;
  for (const [cls, method, key] of [[globalThis.GPUComputePassEncoder, 'dispatchWorkgroups', 'dispatches'],
    [globalThis.GPUComputePassEncoder, 'dispatchWorkgroupsIndirect', 'dispatches'], [globalThis.GPUQueue, 'submit', 'submits']]) {
    const orig = cls.prototype[method];
    cls.prototype[method] = function counted(...a) {
      counts[key]++;
      return orig.apply(this, a);
    };
  }
}
async function countCalls(fn) {
  const before = { ...counts };
  await fn();
  return { dispatches: counts.dispatches - before.dispatches, submits: counts.submits - before.submits };
}

// ---- timing -----------------------------------------------------------------------------------
async function round(fn, seconds) {
  let reps = 0;
  const t0 = performance.now();
  while (reps < 2 || (performance.now() - t0 < seconds * 1000 && reps < 10000)) {
    await fn();
    reps++;
  }
  return (performance.now() - t0) / 1000 / reps; // seconds per call
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const maxAbs = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const firstLine = (e) => String(e?.message ?? e).split('\n')[0];

/**
 * Measure every runtime of `makers` ({name: async (workloads) => {workload: async () => Float32Array,
 * dispose?}}) on `workloads`, taking turns round by round. Returns {name: {error} | {workload:
 * {first, fifth, calls: {dispatches, submits}, rounds: [s], seconds, best} | {error}}}; `seconds` is
 * the median round's, or with `best` the fastest round's.
 */
export async function measureAll(makers, { workloads = WORKLOADS, repeats = 3, seconds = 1, best = false, log = () => {} } = {}) {
  installCounters();
  const fns = {};
  const res = {};
  for (const [name, make] of Object.entries(makers)) {
    try {
      fns[name] = await make(workloads);
      res[name] = {};
    } catch (e) {
      log(e);
      res[name] = { error: firstLine(e) };
    }
  }
  for (const w of workloads) {
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
        res[name][w] = { first, fifth, calls, rounds: [], best };
        live.push(name);
      } catch (e) {
        log(e);
        res[name][w] = { error: firstLine(e) };
      }
    }
    for (let r = 0; r < repeats; r++) {
      for (const name of live) res[name][w].rounds.push(await round(fns[name][w], seconds));
    }
    for (const name of live) res[name][w].seconds = best ? Math.min(...res[name][w].rounds) : median(res[name][w].rounds);
  }
  for (const f of Object.values(fns)) f.dispose?.();
  return res;
}

// ---- webtensor -----------------------------------------------------------------------------------
/** webtensor's calls: `load(kind)` resolves to the loaded artifact `kind` (on WebGPU). */
export function webtensorMaker(webtensor, load) {
  return async (workloads) => {
    const kinds = [...new Set(workloads.map((w) => ARTIFACT[w]))];
    const models = Object.fromEntries(await Promise.all(kinds.map(async (k) => [k, await load(k)])));
    const x = webtensor.tensor(MLP.x, [MLP.batch, 784]);
    const xc = webtensor.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
    const mm = (n) => async () => (await models[`matmul${n}`].predict([MATMUL[n].a, MATMUL[n].b])).dataSync();
    const calls = {
      matmul256: mm(256),
      matmul1024: mm(1024),
      mlp: async () => (await models.mlp.trainStep(x, MLP.y)).dataSync(),
      cnn: async () => (await models.cnn.predict(xc)).dataSync(),
      chain: async () => (await models.chain.predict([CHAIN.x, CHAIN.a, CHAIN.b])).dataSync(),
    };
    return { ...Object.fromEntries(workloads.map((w) => [w, calls[w]])), dispose: () => Object.values(models).forEach((m) => m.dispose()) };
  };
}

// ---- jax-js: jit-compiled functions, NCHW convolutions (its layout) -----------------------------
/** jax-js's calls (`jax`: the `@jax-js/jax` module); `webtensor` parses the weights, `readFile` reads them. */
export function jaxMaker(jax, webtensor, readFile) {
  return async (workloads) => {
    const devices = await jax.init();
    if (!devices.includes('webgpu')) throw new Error(`jax-js found no WebGPU device (devices: ${devices})`);
    jax.defaultDevice('webgpu');
    const { numpy: np, nn, tree, jit, valueAndGrad, lax } = jax;
    const arr = ({ shape, data }) => np.array(data).reshape(shape);
    const read = (t) => t.data(); // data() consumes its array
    const calls = {};
    if (workloads.includes('mlp')) {
      const mw = await weights(webtensor, readFile, 'mlp');
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
      calls.mlp = async () => {
        const [l, next] = step(params, x.ref, y.ref);
        params = next;
        return read(l);
      };
    }
    if (workloads.includes('cnn')) {
      const cw = await weights(webtensor, readFile, 'cnn');
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
      calls.cnn = () => read(forward(tree.ref(c), xc.ref));
    }
    if (workloads.includes('chain')) {
      const chain = jit((xv, av, bv) => {
        const z = xv.ref.mul(av).add(bv);
        const inner = z.ref.add(z.ref.mul(z.ref).mul(z.ref).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
        return z.mul(0.5).mul(np.tanh(inner).add(1)).mul(nn.sigmoid(xv));
      });
      const [cx, ca, cb] = [np.array(CHAIN.x), np.array(CHAIN.a), np.array(CHAIN.b)];
      calls.chain = () => read(chain(cx.ref, ca.ref, cb.ref));
    }
    const matmul = jit((a, b) => np.matmul(a, b));
    for (const n of [256, 1024]) {
      if (!workloads.includes(`matmul${n}`)) continue;
      const [a, b] = [np.array(MATMUL[n].a).reshape([n, n]), np.array(MATMUL[n].b).reshape([n, n])];
      calls[`matmul${n}`] = () => read(matmul(a.ref, b.ref));
    }
    return calls;
  };
}

// ---- TF.js WebGPU ---------------------------------------------------------------------------------
/** TF.js's calls (`tf`: TF.js with tfjs-backend-webgpu registered). */
export function tfjsMaker(tf, webtensor, readFile) {
  return async (workloads) => {
    if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') failed");
    await tf.ready();
    const t = (w) => tf.tensor(w.data, w.shape);
    const read = async (r) => { const d = await r.data(); r.dispose(); return d; };
    const calls = {};
    if (workloads.includes('mlp')) {
      const mw = await weights(webtensor, readFile, 'mlp');
      const mlp = tf.sequential({ layers: [
        tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }),
        tf.layers.dense({ units: 256, activation: 'relu' }),
        tf.layers.dense({ units: 10 }),
      ] });
      mlp.setWeights(MLP_W.map((n) => t(mw(n))));
      const x = tf.tensor(MLP.x, [MLP.batch, 784]);
      const y = tf.tensor(MLP.onehot, [MLP.batch, 10]);
      const sgd = tf.train.sgd(0.01);
      calls.mlp = () => read(sgd.minimize(() => tf.losses.softmaxCrossEntropy(y, mlp.apply(x)), true));
    }
    if (workloads.includes('cnn')) {
      const cw = await weights(webtensor, readFile, 'cnn');
      const cnn = tf.sequential({ layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10 }),
      ] });
      cnn.setWeights(CNN_W.map((n) => t(cw(n))));
      const xc = tf.tensor(CNN.x, [CNN.batch, 28, 28, 1]);
      calls.cnn = () => read(cnn.predict(xc));
    }
    if (workloads.includes('chain')) {
      const [cx, ca, cb] = [tf.tensor(CHAIN.x), tf.tensor(CHAIN.a), tf.tensor(CHAIN.b)];
      calls.chain = () => read(tf.tidy(() => {
        const z = cx.mul(ca).add(cb);
        const inner = z.add(z.mul(z).mul(z).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
        return z.mul(0.5).mul(tf.tanh(inner).add(1)).mul(tf.sigmoid(cx));
      }));
    }
    for (const n of [256, 1024]) {
      if (!workloads.includes(`matmul${n}`)) continue;
      const [a, b] = [tf.tensor(MATMUL[n].a, [n, n]), tf.tensor(MATMUL[n].b, [n, n])];
      calls[`matmul${n}`] = () => read(tf.matMul(a, b));
    }
    return calls;
  };
}

// ---- report --------------------------------------------------------------------------------------
const RATE = {
  matmul256: ['GFLOP/s', (s) => (2 * 256 ** 3) / s / 1e9],
  matmul1024: ['GFLOP/s', (s) => (2 * 1024 ** 3) / s / 1e9],
  mlp: ['steps/s', (s) => 1 / s],
  cnn: ['images/s', (s) => CNN.batch / s],
  chain: ['calls/s', (s) => 1 / s],
};

/** webtensor's rate / `peer`'s on workload `w` (the median per-round ratio, or with `best` the
 * fastest rounds' ratio), or null. */
export function ratio(results, peer, w) {
  const ours = results.webtensor?.[w];
  const m = results[peer]?.[w];
  if (!ours?.seconds || !m?.seconds) return null;
  return ours.best ? m.seconds / ours.seconds : median(m.rounds.map((t, i) => t / ours.rounds[i]));
}

/** The table of `measureAll`'s results (rates, dispatches/submits per call, ratios) and the output checks, as lines. */
export function report(results, workloads = WORKLOADS) {
  const lines = [];
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const who = Object.keys(results);
  lines.push(`${'workload'.padEnd(12)}${who.map((w) => `${w} (rate, dispatches/submits)`.padEnd(38)).join('')}` +
    who.slice(1).map((w) => `wt / ${w}`.padEnd(14)).join(''));
  for (const w of workloads) {
    const [unit, rate] = RATE[w];
    const cells = who.map((r) => {
      const m = results[r].error ? { error: results[r].error } : results[r][w];
      if (!m) return '-'.padEnd(38);
      if (m.error) return `error: ${m.error}`.slice(0, 36).padEnd(38);
      return `${fmt(rate(m.seconds))} ${unit}, ${m.calls.dispatches}/${m.calls.submits}`.padEnd(38);
    });
    const ratios = who.slice(1).map((r) => {
      const v = ratio(results, r, w);
      return (v === null ? '-' : `${v.toFixed(2)}x`).padEnd(14);
    });
    lines.push(`${w.padEnd(12)}${cells.join('')}${ratios.join('')}`);
  }
  for (const r of who.slice(1)) {
    if (results[r].error) {
      lines.push(`${r}: unavailable (${results[r].error})`);
      continue;
    }
    const diffs = workloads.filter((w) => w !== 'mlp' && results[r][w]?.first && results.webtensor[w]?.first)
      .map((w) => `${w} ${maxAbs(results.webtensor[w].first, results[r][w].first).toExponential(1)}`);
    const a = results.webtensor.mlp;
    const b = results[r].mlp;
    const losses = a?.first && b?.first ? `; MLP loss at steps 1, 5: ${a.first[0].toFixed(5)}, ${a.fifth[0].toFixed(5)} vs ${b.first[0].toFixed(5)}, ${b.fifth[0].toFixed(5)}` : '';
    lines.push(`check vs ${r}: max |difference| ${diffs.join(', ')}${losses}`);
  }
  return lines;
}

/** Max |difference| between webtensor's first output and `peer`'s on workload `w` (null when either is missing). */
export function difference(results, peer, w) {
  const a = results.webtensor?.[w]?.first;
  const b = results[peer]?.[w]?.first;
  return a && b ? maxAbs(a, b) : null;
}

/** "vendor architecture device description" of a GPUAdapter. */
export function adapterName(adapter) {
  const info = adapter.info ?? {};
  return `${info.vendor || '?'} ${info.architecture || ''} ${info.device || ''} ${info.description || ''}`.replace(/\s+/g, ' ').trim();
}

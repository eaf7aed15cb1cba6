// Issue 15's LSTM speed target in Node: an LSTM layer (batch 32, 64 steps, hidden 256; 64 input
// features) forward, and forward + backward (the gradients of sum(LSTM(x)) with respect to its three
// weights), webtensor's exported artifact (bench/export_rnn.py, run here with python3: the time loop
// and its backward loop are loops of the artifact's control flow, one host call per step) beside
// TF.js-wasm's tf.layers.lstm (its gradients by tf.variableGrads) with the same weights (read from
// the artifact's weights.safetensors) and the same input. Both results are checked first: webtensor's
// against Python-wasmtime running the same artifact (bit for bit), TF.js' against webtensor's
// (relative error). Then the calls alternate between the two (round robin, reversed every other
// round) so both see the same load on a shared machine; it prints the fastest call and the mean of
// each and TF.js' time over webtensor's (above 1: webtensor is faster). webtensor's input is a
// webtensor.tensor made once (a signature with control flow has no resident input slot), its
// outputs are read in place ({ output: 'view' }); TF.js keeps its input on its backend; every call
// reads its results back.
//
// Usage: node bench/bench_rnn.mjs [--rounds 10] [--tfjs-threads N]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../js/node.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROUNDS = Number(opt('rounds', 10));
const TFJS_THREADS = opt('tfjs-threads', null);
const [N, T, F, U] = [32, 64, 64, 256];

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'webtensor-bench-rnn-'));
execFileSync('python3', [join(here, 'export_rnn.py'), out], { stdio: ['ignore', 'inherit', 'inherit'] });
const expected = JSON.parse(readFileSync(join(out, 'expected.json'), 'utf8'));
const x = Float32Array.from(expected.x);

const tf = await import('@tensorflow/tfjs');
const tfWasm = await import('@tensorflow/tfjs-backend-wasm');
if (TFJS_THREADS) tfWasm.setThreadsCount(Number(TFJS_THREADS));
if (!(await tf.setBackend('wasm'))) throw new Error("tf.setBackend('wasm') failed");
await tf.ready();

// ---- webtensor --------------------------------------------------------------------------------
const model = await webtensor.load(join(out, 'lstm'), { backend: 'wasm' });
const xw = webtensor.tensor(x, [N, T, F]);  // a signature with control flow takes tensors (no resident input slot)
const ours = {
  forward: async () => {
    const { output_0 } = await model.run('forward', [xw], { output: 'view' });
    return [output_0.dataSync()];
  },
  gradients: async () => {
    const o = await model.run('gradients', [xw], { output: 'view' });
    return ['output_0', 'output_1', 'output_2'].map((k) => o[k].dataSync());
  },
};

// ---- TF.js ------------------------------------------------------------------------------------
const weights = webtensor.parseSafetensors(readFileSync(join(out, 'lstm', 'weights.safetensors'))).tensors;
const names = [...weights.keys()];
const pick = (suffix) => names.find((n) => n.endsWith(suffix) && !(suffix === '/kernel' && n.endsWith('recurrent_kernel')));
const tfTensor = (name) => {
  const v = weights.get(name);
  return tf.tensor(new Float32Array(v.bytes.buffer.slice(v.bytes.byteOffset, v.bytes.byteOffset + v.bytes.byteLength)), v.shape);
};
const lstm = tf.layers.lstm({ units: U, inputShape: [T, F], recurrentActivation: 'sigmoid',   // TF.js' default: hardSigmoid
  kernelInitializer: 'zeros', recurrentInitializer: 'zeros' });   // set below
const xt = tf.tensor(x, [N, T, F]);
tf.dispose(lstm.apply(xt));
lstm.setWeights(['/kernel', '/recurrent_kernel', '/bias'].map((s) => tfTensor(pick(s))));
const theirs = {
  forward: async () => {
    const o = lstm.apply(xt);
    const v = await o.data();
    o.dispose();
    return [v];
  },
  gradients: async () => {
    const { value, grads } = tf.variableGrads(() => tf.sum(lstm.apply(xt)));
    const order = lstm.trainableWeights.map((w) => grads[w.val.name]);
    const vs = await Promise.all(order.map((g) => g.data()));
    tf.dispose([value, ...Object.values(grads)]);
    return vs;
  },
};

// ---- check, then time ------------------------------------------------------------------------
const same = (u, v) => u.length === v.length && u.every((e, i) => Object.is(e, Float32Array.from(v)[i]));
const relErr = (a, b) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
};
const want = { forward: [expected.forward], gradients: expected.gradients };
for (const kind of ['forward', 'gradients']) {
  const got = await ours[kind]();
  got.forEach((g, k) => {
    if (!same(g, want[kind][k])) throw new Error(`${kind}: Node's output_${k} differs from Python-wasmtime's`);
  });
  const tfGot = await theirs[kind]();
  const err = Math.max(...got.map((g, k) => relErr(tfGot[k], g)));
  console.log(`${kind}: Node equals Python-wasmtime bit for bit; TF.js' max relative difference ${err.toExponential(1)}`);
}

console.log(`LSTM(${U}) on (${N}, ${T}, ${F}), Node ${process.version}, ${ROUNDS} rounds alternating; webtensor 1 thread, `
  + `TF.js-wasm ${tfWasm.getThreadsCount()} thread(s); module ${model.stats().wasmModule}`);
console.log('workload              webtensor fastest / mean     TF.js-wasm fastest / mean    TF.js / webtensor (fastest / mean)');
for (const kind of ['forward', 'gradients']) {
  const fns = { webtensor: ours[kind], tfjs: theirs[kind] };
  const best = { webtensor: Infinity, tfjs: Infinity };
  const total = { webtensor: 0, tfjs: 0 };
  for (const f of Object.values(fns)) { await f(); await f(); }
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of r % 2 ? ['tfjs', 'webtensor'] : ['webtensor', 'tfjs']) {
      const t0 = performance.now();
      await fns[k]();
      const dt = performance.now() - t0;
      best[k] = Math.min(best[k], dt);
      total[k] += dt;
    }
  }
  const ms = (k) => `${best[k].toFixed(1)} / ${(total[k] / ROUNDS).toFixed(1)} ms`;
  const label = kind === 'forward' ? 'forward' : 'forward + backward';
  console.log(`${label.padEnd(22)}${ms('webtensor').padEnd(29)}${ms('tfjs').padEnd(29)}`
    + `${(best.tfjs / best.webtensor).toFixed(2)}x / ${(total.tfjs / total.webtensor).toFixed(2)}x`);
}
model.dispose();
tf.disposeVariables();
rmSync(out, { recursive: true, force: true });

// Threads in Node (docs/architecture.md, "Threads"): the artifacts of bench/export_bench.py loaded
// with {threads: 1} and {threads: N}, their calls alternating (round robin) so both see the same
// load on a shared machine: matmul 1024 (predict), MLP train step (784-256-256-10, batch 128),
// CNN forward (batch 32) and a 6-layer transformer encoder forward (batch 16 x 64 tokens). Prints the best and median call of each and the ratio 1-thread / N-thread
// (of the best calls, of the medians, and "pairs": the median over rounds of a 1-thread call over the
// N-thread call right after it, the steadiest where the machine's speed drifts within seconds).
// No driver-CPU column (bench/bench_threads.py prints one, from CLOCK_THREAD_CPUTIME_ID): Node has no
// per-thread CPU clock, and /proc's schedstat for the running thread lags by up to a scheduler tick,
// which made the column implausible (0.33-0.40x) for calls of a few ms.
//
// --resident: inputs kept in each model's memory (inputTensor().write()) and outputs read as views, as
// Python's in-process executables run: no per-call copy on the driver thread (the MLP's 401 kB input).
//
// --loop K: each round runs K calls of one model back to back, then K of the other (which goes first
// alternates), as fit() and a predict loop call a model; the figures are per call (a block's time / K)
// and pairs are of blocks. Without it every N-thread call follows a 1-thread call of 2-4 ms, through
// which its threads slept: on a VM a thread asleep for more than ~0.5 ms takes ~150 us to wake
// (--wake measures it), which the first round of each call pays.
//
// --wake: no models; how long a Worker asleep in Atomics.wait takes to run after Atomics.notify,
// against how long it slept (the machine's wake-up latency, which a thread pool pays per call).
//
// Usage: node bench/bench_threads.mjs [--threads 2] [--rounds 20] [--resident] [--loop K] [--wake]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../js/node.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt('threads', 2);
const ROUNDS = opt('rounds', 20);
const RESIDENT = args.includes('--resident');
const LOOP = opt('loop', 0);

if (args.includes('--wake')) {
  await wakeLatency();
  process.exit(0);
}
const out = mkdtempSync(join(tmpdir(), 'webtensor-bench-threads-'));
execFileSync('python3', [join(dirname(fileURLToPath(import.meta.url)), 'export_bench.py'), out], { stdio: 'inherit' });

function inputsFor(model, name) {
  return model.signatures[name].inputs.map((s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const data = s.dtype === 'int32' ? Int32Array.from({ length: n }, (_, i) => i % 10) : Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    return webtensor.tensor(data, s.shape, s.dtype);
  });
}

/** --wake: a Worker waits in Atomics.wait; this thread busy-waits `gap` ms, notifies, and times until the Worker runs. */
async function wakeLatency() {
  const { Worker } = await import('node:worker_threads');
  const sab = new SharedArrayBuffer(32);
  const i32 = new Int32Array(sab, 0, 4);
  const at = new Float64Array(sab, 16, 2); // [notified, woke], ms since the epoch (timeOrigin + now)
  const worker = new Worker(`
    const { workerData: sab } = require('node:worker_threads');
    const i32 = new Int32Array(sab, 0, 4), at = new Float64Array(sab, 16, 2);
    for (let seen = 0; ;) {
      Atomics.wait(i32, 0, seen);
      seen = Atomics.load(i32, 0);
      at[1] = performance.timeOrigin + performance.now();
      if (i32[2]) break;
      Atomics.store(i32, 1, seen);
    }`, { eval: true, workerData: sab });
  await new Promise((r) => setTimeout(r, 100));
  console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}; wake-up latency of a sleeping Worker, ${ROUNDS} wakes each`);
  for (const gap of [0.02, 0.1, 0.5, 1, 2, 4]) {
    const us = [];
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      while (performance.now() - t0 < gap);
      at[0] = performance.timeOrigin + performance.now();
      Atomics.add(i32, 0, 1);
      Atomics.notify(i32, 0);
      while (Atomics.load(i32, 1) !== Atomics.load(i32, 0));
      us.push((at[1] - at[0]) * 1e3);
    }
    us.sort((a, b) => a - b);
    const q = (p) => us[Math.floor(p * (us.length - 1))].toFixed(1).padStart(6);
    console.log(`asleep ${String(gap).padStart(4)} ms: woke after ${q(0.1)} us (10th percentile) ${q(0.5)} us (median) ${q(0.9)} us (90th)`);
  }
  i32[2] = 1;
  Atomics.add(i32, 0, 1);
  Atomics.notify(i32, 0);
  await worker.terminate();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function race(label, dir, signature) {
  const models = { 1: await webtensor.load(join(out, dir), { backend: 'wasm', threads: 1 }), [N]: await webtensor.load(join(out, dir), { backend: 'wasm', threads: N }) };
  const times = { 1: [], [N]: [] };
  const inputs = inputsFor(models[1], signature);
  const feeds = { 1: inputs, [N]: inputs };
  if (RESIDENT) {
    for (const k of [1, N]) {
      feeds[k] = models[k].signatures[signature].inputs.map((spec, i) => models[k].inputTensor(signature, spec.name).write(inputs[i].dataSync()));
    }
  }
  const options = RESIDENT ? { output: 'view' } : undefined;
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of (LOOP && r % 2 ? [N, 1] : [1, N])) {
      const t = performance.now();
      for (let i = 0; i < Math.max(LOOP, 1); i++) await models[k].run(signature, feeds[k], options);
      times[k].push((performance.now() - t) / Math.max(LOOP, 1));
    }
  }
  const b1 = Math.min(...times[1]), bn = Math.min(...times[N]);
  const m1 = median(times[1]), mn = median(times[N]);
  // each 1-thread call over the N-thread call right after it: both see the machine at the same moment
  const pairs = median(times[1].map((t1, i) => t1 / times[N][i]));
  console.log(`${label.padEnd(34)} 1 thread ${b1.toFixed(2).padStart(8)} ms (median ${m1.toFixed(2)})   ${models[N].stats().wasmThreads} threads ${bn.toFixed(2).padStart(8)} ms (median ${mn.toFixed(2)})   ratio best ${(b1 / bn).toFixed(2)}x  median ${(m1 / mn).toFixed(2)}x  pairs ${pairs.toFixed(2)}x`);
  models[1].dispose();
  models[N].dispose();
}

console.log(`${RESIDENT ? 'resident inputs, output views; ' : ''}${LOOP ? `loops of ${LOOP} calls; ` : ''}load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
try {
  await race('matmul 1024', 'matmul1024', 'predict');
  await race('MLP train step (batch 128)', 'mlp', 'train_step');
  await race('CNN forward (batch 32)', 'cnn', 'predict');
  await race('encoder 6 layers (16 x 64 tokens)', 'encoder', 'predict');
} finally {
  rmSync(out, { recursive: true, force: true });
}

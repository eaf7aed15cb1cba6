// Epilogue fusion (core/compile.py: a reduction's elementwise consumers computed in its kernel) A/B:
// the artifacts of bench/export_bench.py exported twice, with epilogues and without
// (core.compile.EPILOGUES = False: the programs before epilogue fusion, byte for byte), run in one
// Node process on the same backend, taking turns round by round:
//
//   - MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, SGD (steps/s);
//   - CNN forward, batch 32 (images/s).
//
// For each backend (WebGPU: Dawn, on SwiftShader without a GPU; wasm: one thread, plain SIMD module)
// it prints both rates (median round), the dispatches and submits per call (WebGPU; counted by
// wrapping GPUComputePassEncoder.dispatchWorkgroups and GPUQueue.submit), the ratio fused / unfused
// (median of per-round ratios, > 1: fusion faster) with its range over rounds, and checks that both
// variants give the same bits (the loss after 5 steps, the logits).
//
// Usage: node bench/bench_fusion.mjs [--seconds 1] [--repeats 5] [--backends webgpu,wasm]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
const REPEATS = Number(opt('repeats', 5));
const BACKENDS = opt('backends', 'webgpu,wasm').split(',');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
const python = process.env.PYTHON ?? (existsSync(join(here, '..', '.venv', 'bin', 'python')) ? join(here, '..', '.venv', 'bin', 'python') : 'python3');
const out = mkdtempSync(join(tmpdir(), 'webtensor-fusion-'));
for (const [variant, epilogues] of [['fused', 'True'], ['unfused', 'False']]) {
  execFileSync(python, ['-c', `import sys; sys.path.insert(0, sys.argv[1]); import webtensor.core.compile as C; C.EPILOGUES = ${epilogues}; import export_bench; export_bench.main(sys.argv[2])`,
    here, join(out, variant)], { stdio: ['ignore', 'inherit', 'inherit'] });
}

let gpu = null;
const counts = { dispatches: 0, submits: 0 };
if (BACKENDS.includes('webgpu')) {
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  gpu = webgpu.create([]);
  for (const [cls, method, key] of [[GPUComputePassEncoder, 'dispatchWorkgroups', 'dispatches'], [GPUQueue, 'submit', 'submits']]) {
    const orig = cls.prototype[method];
    cls.prototype[method] = function counted(...a) {
      counts[key]++;
      return orig.apply(this, a);
    };
  }
}

function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
const rand = lcg(1);
const uniform = (n) => Float32Array.from({ length: n }, () => rand());
const xm = webtensor.tensor(uniform(128 * 784), [128, 784]);
const ym = Int32Array.from({ length: 128 }, () => Math.floor(rand() * 10));
const xc = webtensor.tensor(uniform(32 * 28 * 28), [32, 28, 28, 1]);

async function round(fn) {
  let reps = 0;
  const t0 = performance.now();
  while (reps < 2 || (performance.now() - t0 < SECONDS * 1000 && reps < 10000)) {
    await fn();
    reps++;
  }
  return (performance.now() - t0) / 1000 / reps;
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

console.log(`Node ${process.version}; median of ${REPEATS} rounds x ${SECONDS} s per variant, alternating`);
console.log('backend  workload  fused (rate, dispatches/submits)   unfused (rate, dispatches/submits)   fused/unfused (range)   same bits');
for (const backend of BACKENDS) {
  const options = backend === 'webgpu' ? { backend, gpu } : { backend };
  const models = {};
  for (const v of ['fused', 'unfused']) {
    models[v] = { mlp: await webtensor.load(join(out, v, 'mlp'), options), cnn: await webtensor.load(join(out, v, 'cnn'), options) };
  }
  const fn = (v, w) => (w === 'mlp' ? async () => (await models[v].mlp.trainStep(xm, ym)).dataSync()
    : async () => (await models[v].cnn.predict(xc)).dataSync());
  for (const [w, unit, per] of [['mlp', 'steps/s', 1], ['cnn', 'images/s', 32]]) {
    const res = {};
    for (const v of ['fused', 'unfused']) {
      let r = null;
      for (let i = 0; i < 5; i++) r = await fn(v, w)();   // the loss after 5 steps (same initial weights)
      const before = { ...counts };
      await fn(v, w)();
      res[v] = { result: r, calls: `${counts.dispatches - before.dispatches}/${counts.submits - before.submits}`, rounds: [] };
    }
    for (let r = 0; r < REPEATS; r++) {
      for (const v of ['fused', 'unfused']) res[v].rounds.push(await round(fn(v, w)));
    }
    const ratios = res.fused.rounds.map((t, i) => res.unfused.rounds[i] / t);
    const rate = (v) => `${(per / median(res[v].rounds)).toPrecision(3)} ${unit}${backend === 'webgpu' ? `, ${res[v].calls}` : ''}`;
    console.log(`${backend.padEnd(8)} ${w.padEnd(9)} ${rate('fused').padEnd(34)} ${rate('unfused').padEnd(36)} `
      + `${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`.padEnd(24)
      + `${same(res.fused.result, res.unfused.result)}`);
  }
  for (const m of Object.values(models)) Object.values(m).forEach((x) => x.dispose());
}
rmSync(out, { recursive: true, force: true });

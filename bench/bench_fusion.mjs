// Fusion A/B (core/compile.py: a reduction's elementwise consumers computed in its kernel, optimizer
// siblings; core/runtime/artifacts.py: variables updated in place): the artifacts of
// bench/export_bench.py exported three times, run in one Node process on the same backend, taking
// turns round by round:
//
//   - fused: as exported today;
//   - copies: variable updates through a temporary and a copy (core.runtime.artifacts.INPLACE = False:
//     the plans before in-place updates, byte for byte);
//   - unfused: also without epilogues (core.compile.EPILOGUES = False: the programs before epilogue
//     fusion, byte for byte);
//
// on the workloads
//
//   - MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, SGD (steps/s);
//   - the same MLP with Adam (mlp_adam; steps/s);
//   - CNN forward, batch 32 (images/s).
//
// For each backend (WebGPU: Dawn, on SwiftShader without a GPU; wasm: one thread, plain SIMD module)
// it prints each variant's rate (median round), its dispatches and submits per call (WebGPU; counted
// by wrapping GPUComputePassEncoder.dispatchWorkgroups and GPUQueue.submit), the ratios fused / copies
// and fused / unfused (median of per-round ratios, > 1: fused faster) with their ranges over rounds,
// and checks that all variants give the same bits (the loss after 5 steps, the logits).
//
// With --best a round's time is its fastest call, not its mean (less sensitive to other jobs on the
// machine). Usage: node bench/bench_fusion.mjs [--seconds 1] [--repeats 5] [--backends webgpu,wasm] [--best]

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
const BEST = args.includes('--best');   // each round's fastest call instead of its mean (steadier on a loaded machine)
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
const python = process.env.PYTHON ?? (existsSync(join(here, '..', '.venv', 'bin', 'python')) ? join(here, '..', '.venv', 'bin', 'python') : 'python3');
const out = mkdtempSync(join(tmpdir(), 'webtensor-fusion-'));
const VARIANTS = { fused: [true, true], copies: [true, false], unfused: [false, false] };   // [EPILOGUES, INPLACE]
const py = (b) => (b ? 'True' : 'False');
for (const [variant, [epilogues, inplace]] of Object.entries(VARIANTS)) {
  execFileSync(python, ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); import webtensor.core.compile as C; '
    + `import webtensor.core.runtime.artifacts as A; C.EPILOGUES = ${py(epilogues)}; A.INPLACE = ${py(inplace)}; `
    + "import export_bench; export_bench.main(sys.argv[2], only=('mlp', 'mlp_adam', 'cnn'))",
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
  let best = Infinity;
  const t0 = performance.now();
  while (reps < 2 || (performance.now() - t0 < SECONDS * 1000 && reps < 10000)) {
    const t = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t);
    reps++;
  }
  return BEST ? best / 1000 : (performance.now() - t0) / 1000 / reps;
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

console.log(`Node ${process.version}; median of ${REPEATS} rounds x ${SECONDS} s per variant, alternating${BEST ? '; a round: its fastest call' : ''}`);
const names = Object.keys(VARIANTS);
const WORKLOADS = [['mlp', 'steps/s', 1], ['mlp_adam', 'steps/s', 1], ['cnn', 'images/s', 32]];
console.log(`backend  workload  ${names.map((v) => `${v} (rate, dispatches/submits)`.padEnd(36)).join('')}fused/copies (range)  fused/unfused (range)  same bits`);
for (const backend of BACKENDS) {
  const options = backend === 'webgpu' ? { backend, gpu } : { backend, threads: 1 };   // one thread: load()'s 'auto' would split kernels
  const models = {};
  for (const v of names) {
    models[v] = {};
    for (const [w] of WORKLOADS) models[v][w] = await webtensor.load(join(out, v, w), options);
  }
  const fn = (v, w) => (w === 'cnn' ? async () => (await models[v].cnn.predict(xc)).dataSync()
    : async () => (await models[v][w].trainStep(xm, ym)).dataSync());
  for (const [w, unit, per] of WORKLOADS) {
    const res = {};
    for (const v of names) {
      let r = null;
      for (let i = 0; i < 5; i++) r = await fn(v, w)();   // the loss after 5 steps (same initial weights)
      const before = { ...counts };
      await fn(v, w)();
      res[v] = { result: r, calls: `${counts.dispatches - before.dispatches}/${counts.submits - before.submits}`, rounds: [] };
    }
    for (let r = 0; r < REPEATS; r++) {
      for (const v of names) res[v].rounds.push(await round(fn(v, w)));
    }
    const ratio = (ref) => {
      const rs = res.fused.rounds.map((t, i) => res[ref].rounds[i] / t);
      return `${median(rs).toFixed(2)}x (${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)})`;
    };
    const rate = (v) => `${(per / median(res[v].rounds)).toPrecision(3)} ${unit}${backend === 'webgpu' ? `, ${res[v].calls}` : ''}`;
    console.log(`${backend.padEnd(8)} ${w.padEnd(9)} ${names.map((v) => rate(v).padEnd(36)).join('')}`
      + `${ratio('copies').padEnd(22)}${ratio('unfused').padEnd(23)}`
      + `${names.every((v) => same(res[v].result, res.fused.result))}`);
  }
  for (const m of Object.values(models)) Object.values(m).forEach((x) => x.dispose());
}
rmSync(out, { recursive: true, force: true });

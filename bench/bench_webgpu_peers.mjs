// webtensor's WebGPU artifacts beside jax-js (@jax-js/jax, jit-compiled) and TF.js
// (tfjs-backend-webgpu) in one Node process, on the same WebGPU adapter (the npm `webgpu`
// package: Dawn; on SwiftShader without a GPU), same workloads, same initial weights. The
// workloads, counters, timing and report are bench/webgpu_peers.mjs's (shared with the headless
// Chromium run, bench/bench_webgpu_peers_chromium.py); webtensor runs the artifacts of
// bench/export_bench.py (`--peers` adds the matmuls).
//
// Usage: node bench/bench_webgpu_peers.mjs [--seconds 1] [--repeats 3] [--best] [--peers jax,tfjs]
//                                          [--workloads matmul256,matmul1024,mlp,cnn,chain]
//                                          [--webgpu-adapter cpu|integrated-gpu|discrete-gpu|unknown]
//                                          [--compare-adapters integrated-gpu,discrete-gpu]
// --webgpu-adapter: the adapter class webtensor's WGSL is tuned for (export's webgpu_adapter;
// default unknown, the portable choice; SwiftShader is a "cpu" adapter). --compare-adapters: also
// run webtensor's artifacts exported for these classes, as further columns of the same run.
// --best: rates and ratios from each runtime's fastest round (on a machine shared with other work)
// instead of the median round and the median per-round ratio.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../js/node.js';
import { WORKLOADS, adapterName, jaxMaker, measureAll, report, tfjsMaker, webtensorMaker } from './webgpu_peers.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const SECONDS = Number(opt('seconds', 1));
const REPEATS = Number(opt('repeats', 3));
const BEST = args.includes('--best');
const PEERS = opt('peers', 'jax,tfjs').split(',').filter(Boolean);
const workloads = opt('workloads', WORKLOADS.join(',')).split(',');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'webtensor-peers-'));
// the repository's .venv where there is one (webtensor installed from this checkout), else python3
const python = process.env.PYTHON ?? (existsSync(join(here, '..', '.venv', 'bin', 'python')) ? join(here, '..', '.venv', 'bin', 'python') : 'python3');
const exportFor = (dir, cls) => execFileSync(python, [join(here, 'export_bench.py'), dir, '--peers', '--webgpu-adapter', cls],
  { stdio: ['ignore', 'inherit', 'inherit'] });
exportFor(out, opt('webgpu-adapter', 'unknown'));
const COMPARE = opt('compare-adapters', '').split(',').filter(Boolean);
for (const cls of COMPARE) exportFor(join(out, `class-${cls}`), cls);

// ---- the adapter, shared by the three runtimes ------------------------------------------------
const webgpu = await import('webgpu');
Object.assign(globalThis, webgpu.globals);
const gpu = webgpu.create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error('no WebGPU adapter (the npm `webgpu` package found none)');
// jax-js reads navigator.userAgent when it loads; Node 20 has no navigator.
if (!globalThis.navigator) globalThis.navigator = { userAgent: `Node.js ${process.version}` };
if (!globalThis.navigator.gpu) Object.defineProperty(globalThis.navigator, 'gpu', { value: gpu, configurable: true });

const readFile = async (name) => readFileSync(join(out, name));
const makers = { webtensor: webtensorMaker(webtensor, (kind) => webtensor.load(join(out, kind), { backend: 'webgpu', gpu })) };
for (const cls of COMPARE) {
  makers[`webtensor ${cls}`] = webtensorMaker(webtensor, (kind) => webtensor.load(join(out, `class-${cls}`, kind), { backend: 'webgpu', gpu }));
}
if (PEERS.includes('jax')) makers['jax-js'] = jaxMaker(await import('@jax-js/jax'), webtensor, readFile);
if (PEERS.includes('tfjs')) {
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-webgpu');
  makers['TF.js'] = tfjsMaker(tf, webtensor, readFile);
}
const log = process.env.BENCH_DEBUG ? (e) => console.error(e) : () => {};
const results = await measureAll(makers, { workloads, repeats: REPEATS, seconds: SECONDS, best: BEST, log });
console.log(`Node ${process.version}; adapter: ${adapterName(adapter)}; ${BEST ? 'best' : 'median'} of ${REPEATS} x ${SECONDS} s`);
for (const line of report(results, workloads)) console.log(line);
rmSync(out, { recursive: true, force: true });
process.exit(0);

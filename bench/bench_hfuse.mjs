// Horizontal fusion (webgpu/group.py) in Node/Dawn: an MLP train step (784-256-256-10, batch 128)
// exported per optimizer with grouped update kernels and without (group.HORIZONTAL = False), timed
// in alternating rounds in one process on the same adapter (SwiftShader without a GPU).
//
// Usage: node bench/bench_hfuse.mjs [--rounds 5] [--steps 10] [--optimizers adam,sgd_momentum,sgd]
//                                   [--widths 784,256,256,10] [--batch 128]
// (small widths and batch: the steps' dispatch costs, not their matmuls, dominate)

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as webtensor from '../js/node.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const ROUNDS = Number(opt('rounds', 5));
const STEPS = Number(opt('steps', 10));
const OPTS = opt('optimizers', 'adam,sgd_momentum,sgd').split(',');
const WIDTHS = opt('widths', '784,256,256,10').split(',').map(Number);
const BATCH = Number(opt('batch', 128));
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
process.env.XDG_RUNTIME_DIR ??= tmpdir();

const EXPORT = `
import sys, webtensor as wt
from webtensor.webgpu import group
out = sys.argv[1]
make = {"adam": lambda: wt.optimizers.Adam(0.001), "sgd": lambda: wt.optimizers.SGD(0.01),
        "sgd_momentum": lambda: wt.optimizers.SGD(0.01, momentum=0.9)}
for name in sys.argv[2].split(","):
    for variant, on in (("plain", False), ("fused", True)):
        group.HORIZONTAL = on
        wt.set_seed(0)
        w = [int(n) for n in sys.argv[3].split(",")]
        m = wt.nn.Sequential([wt.nn.Input((w[0],))] + [wt.nn.Dense(n, activation="relu") for n in w[1:-1]] +
                             [wt.nn.Dense(w[-1])])
        m.compile(make[name](), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.export(f"{out}/{name}/{variant}", batch_size=int(sys.argv[4]), signatures=["train_step"], backends=("webgpu",))
`;

const out = mkdtempSync(join(tmpdir(), 'webtensor-hfuse-bench-'));
try {
  execFileSync('python3', ['-c', EXPORT, out, OPTS.join(','), WIDTHS.join(','), String(BATCH)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const webgpu = await import('webgpu');
  const gpu = webgpu.create([]);
  const { globals } = webgpu;
  let dispatches = 0;
  const orig = globals.GPUComputePassEncoder.prototype.dispatchWorkgroups;
  globals.GPUComputePassEncoder.prototype.dispatchWorkgroups = function counted(...a) { dispatches++; return orig.apply(this, a); };
  const x = webtensor.tensor(Float32Array.from({ length: BATCH * WIDTHS[0] }, (_, i) => Math.sin(i)), [BATCH, WIDTHS[0]]);
  const y = Int32Array.from({ length: BATCH }, (_, i) => i % WIDTHS[WIDTHS.length - 1]);
  for (const name of OPTS) {
    const models = {};
    for (const v of ['plain', 'fused']) models[v] = await webtensor.load(join(out, name, v), { backend: 'webgpu', gpu });
    const best = { plain: Infinity, fused: Infinity };
    const count = {};
    for (const v of ['plain', 'fused']) {           // warm up, and dispatches per step
      const d0 = dispatches;
      (await models[v].trainStep(x, y)).dataSync();
      count[v] = dispatches - d0;
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of r % 2 ? ['fused', 'plain'] : ['plain', 'fused']) {
        const t = performance.now();
        let loss;
        for (let s = 0; s < STEPS; s++) loss = await models[v].trainStep(x, y);
        loss.dataSync();
        best[v] = Math.min(best[v], (performance.now() - t) / STEPS);
      }
    }
    console.log(`${name.padEnd(13)} dispatches ${count.plain} -> ${count.fused}; best ms/step ${best.plain.toFixed(2)} -> ` +
      `${best.fused.toFixed(2)} (plain/fused ${(best.plain / best.fused).toFixed(3)}x)`);
    Object.values(models).forEach((m) => m.dispose());
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

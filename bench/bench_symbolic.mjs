// bench/bench_symbolic.py's comparison on the JS loader (Node, wasm backend on this thread): a
// symbolic-batch artifact (predict compiled for a chunk of rows; a last partial chunk runs its own
// rows through the rows driver, docs/artifact.md "Run-time rows") against fixed-shape artifacts
// compiled for exactly the batch. Prints, per workload and batch, the ratio symbolic / fixed of the
// mean predict call (the fastest of 5 blocks of --calls calls, after a warm-up), measured
// alternately in the same run; the range over --rounds rounds. The artifacts are exported with
// bench/bench_symbolic.py's models (run here with python3: put the webtensor you measure first on
// PATH).
//
// Usage: node bench/bench_symbolic.mjs [--chunk 128] [--rounds 5] [--calls 200] [--batches 1,32,128]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../js/node.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const chunk = Number(opt('chunk', 128));
const rounds = Number(opt('rounds', 5));
const calls = Number(opt('calls', 200));
const batches = opt('batches', '1,32,128').split(',').map(Number);

const here = dirname(fileURLToPath(import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'webtensor-bench-symbolic-'));
execFileSync('python3', ['-c', `
import sys; sys.path.insert(0, ${JSON.stringify(here)})
from bench_symbolic import model
for kind in ("mlp", "cnn"):
    m = model(kind)
    m.export(f"${out}/{kind}_sym", batch_size=${chunk}, backends=("wasm",), signatures=["predict"])
    for b in (${batches.join(', ')},):
        m.export(f"${out}/{kind}_fixed_{b}", batch_size=b, backends=("wasm",), signatures=["predict"], symbolic_batch=False)
`], { stdio: ['ignore', 'inherit', 'inherit'] });

// the fastest of 5 blocks' mean call (ms): a block with a garbage collection in it is left out
async function mean(model, x) {
  let best = Infinity;
  for (let block = 0; block < 5; block++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await model.run('predict', [x]);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / calls / 1e6);
  }
  return best;
}

console.log(`symbolic (chunk ${chunk}) / fixed-shape predict time, JS wasm loader (Node ${process.version}); range over ${rounds} rounds`);
for (const [kind, row] of [['mlp', [784]], ['cnn', [28, 28, 1]]]) {
  const sym = await webtensor.load(join(out, `${kind}_sym`), { backend: 'wasm', threads: 1 });
  for (const batch of batches) {
    const fixed = await webtensor.load(join(out, `${kind}_fixed_${batch}`), { backend: 'wasm', threads: 1 });
    const size = batch * row.reduce((a, b) => a * b, 1);
    const x = webtensor.tensor(Float32Array.from({ length: size }, (_, i) => Math.sin(i)), [batch, ...row]);
    const a = Object.values(await sym.run('predict', [x]))[0].dataSync();
    const b = Object.values(await fixed.run('predict', [x]))[0].dataSync();
    const diff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    await mean(fixed, x);           // warm-up: the JIT, the caches
    await mean(sym, x);
    const ratios = [];
    let tf = 0;
    for (let r = 0; r < rounds; r++) {
      tf = await mean(fixed, x);
      ratios.push(await mean(sym, x) / tf);
    }
    console.log(`${kind} batch ${String(batch).padStart(4)}: rows ${Math.min(...ratios).toFixed(2)}x .. ${Math.max(...ratios).toFixed(2)}x  (fixed ${tf.toFixed(3)} ms; max |sym - fixed| ${diff.toExponential(1)})`);
    fixed.dispose();
  }
  sym.dispose();
}
rmSync(out, { recursive: true, force: true });
process.exit(0);

// Node half of bench/bench_load.py: load time of an artifact directory with
// this tree's npm runtime beside the runtime at a baseline revision.
//   node bench/bench_load.mjs ARTIFACT_DIR BASELINE_JS_DIR LABEL [REPEAT]
// Prints one row: best of REPEAT loads (read, hash, check, compile,
// instantiate) with each, alternating, and the ratio.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dir, baseDir, label, repeat = '15'] = process.argv.slice(2);
const now = await import('../js/node.js');
const then = await import(pathToFileURL(join(resolve(baseDir), 'js', 'node.js')).href);

async function best(load, n) {
  let t = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const m = await load(dir, { backend: 'wasm' });
    t = Math.min(t, performance.now() - t0);
    m.dispose();
  }
  return t;
}
let a = Infinity, b = Infinity;
for (let k = 0; k < 3; k++) { // alternate, so drift on a shared machine hits both alike
  a = Math.min(a, await best(now.load, Math.ceil(Number(repeat) / 3)));
  b = Math.min(b, await best(then.load, Math.ceil(Number(repeat) / 3)));
}
console.log(`${`node: load ${label}`.padEnd(40)} checked ${a.toFixed(2).padStart(10)}  before ${b.toFixed(2).padStart(10)}   ms`);
console.log(`${''.padEnd(40)} checked / before = ${(a / b).toFixed(3)}`);

// Relaxed SIMD (docs/artifact.md, "Bitwise reproducibility"): an artifact exported with
// wasm_fma=True carries module.wasm and module_relaxed.wasm. Engines with relaxed SIMD run the
// latter, and on one machine its outputs are the same bits in Python's wasmtime, Node and
// Chromium; engines without it (Node 20 without --experimental-wasm-relaxed-simd) run module.wasm,
// whose outputs are the same bits as Python's from an artifact exported without fused multiply-adds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CHROMIUM, runPage } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
let out, expected;
before(() => {
  out = mkdtempSync(join(tmpdir(), 'webtensor-relaxed-'));
  execFileSync('python3', [join(here, 'fixtures', 'make_relaxed.py'), out], { stdio: ['ignore', 'inherit', 'inherit'] });
  expected = JSON.parse(readFileSync(join(out, 'expected.json'), 'utf8'));
});
after(() => rmSync(out, { recursive: true, force: true }));

// Runs every signature of an artifact; prints {module, hasRelaxedSimd, <signature>: [output bits]}.
const RUNNER = `
import * as webtensor from ${JSON.stringify(join(here, '..', 'node.js'))};
import { hasRelaxedSimd } from ${JSON.stringify(join(here, '..', 'backends', 'wasm.js'))};
import { readFileSync } from 'node:fs';
const [dir, expectedJson] = process.argv.slice(1); // with -e, argv[1] is the first argument
const { inputs } = JSON.parse(readFileSync(expectedJson, 'utf8'));
const model = await webtensor.load(dir, { backend: 'wasm' });
const result = { module: model.stats().wasmModule, hasRelaxedSimd: hasRelaxedSimd() };
for (const [name, arrs] of Object.entries(inputs)) {
  const outs = await model.run(name, arrs.map((a) => new Float32Array(a)));
  result[name] = Object.values(outs).map((t) => Array.from(new Uint32Array(t.dataSync().buffer)));
}
console.log(JSON.stringify(result));
`;

function runNode(flags, kind) {
  return JSON.parse(execFileSync(process.execPath, [...flags, '--input-type=module', '-e', RUNNER, join(out, kind), join(out, 'expected.json')],
    { maxBuffer: 1 << 26 }).toString());
}

function sameBits(got, want, what) {
  for (const name of Object.keys(expected.inputs)) {
    want[name].forEach((bits, k) => {
      const diff = bits.reduce((n, b, i) => n + (b !== got[name][k][i]), 0);
      assert.equal(diff, 0, `${what}: signature '${name}' output ${k}: ${diff} of ${bits.length} elements differ`);
    });
  }
}

test('the fixture can fail: fused multiply-adds change the bits, and Python ran the relaxed module', () => {
  assert.equal(expected.relaxed.module, 'module_relaxed.wasm');
  assert.equal(expected.plain.module, 'module.wasm');
  for (const name of Object.keys(expected.inputs)) {
    const changed = expected.relaxed[name][0].filter((b, i) => b !== expected.plain[name][0][i]).length;
    assert.ok(changed > 0, `signature '${name}': no output bit changed with fma`);
  }
});

test('Node with relaxed SIMD runs module_relaxed.wasm: the same bits as Python-wasmtime', () => {
  const r = runNode(['--experimental-wasm-relaxed-simd'], 'relaxed');
  assert.equal(r.hasRelaxedSimd, true);
  assert.equal(r.module, 'module_relaxed.wasm');
  sameBits(r, expected.relaxed, 'Node (relaxed SIMD) vs Python');
});

test('Node without relaxed SIMD falls back to module.wasm: the bits of an artifact exported without fma', () => {
  const r = runNode(['--no-experimental-wasm-relaxed-simd'], 'relaxed');
  assert.equal(r.hasRelaxedSimd, false);
  assert.equal(r.module, 'module.wasm');
  sameBits(r, expected.plain, 'Node (fallback) vs Python (plain artifact)');
  const old = runNode(['--experimental-wasm-relaxed-simd'], 'plain'); // an artifact without the relaxed module
  assert.equal(old.module, 'module.wasm');
  sameBits(old, expected.plain, 'Node vs Python (plain artifact)');
});

test('Chromium runs module_relaxed.wasm: the same bits as Python-wasmtime and Node', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed`);
  const page = `<!doctype html><script type="module">
import * as webtensor from '/js/index.js';
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const e = await (await fetch('/fixtures/expected.json')).json();
  const model = await webtensor.load('/fixtures/relaxed', { backend: 'wasm' });
  const result = { module: model.stats().wasmModule };
  for (const [name, arrs] of Object.entries(e.inputs)) {
    const outs = await model.run(name, arrs.map((a) => new Float32Array(a)));
    result[name] = Object.values(outs).map((t) => Array.from(new Uint32Array(t.dataSync().buffer)));
  }
  await report(result);
} catch (err) {
  await report({ error: String(err && err.stack || err) });
}
</script>`;
  const r = await runPage(t, page, out);
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.module, 'module_relaxed.wasm');
  sameBits(r, expected.relaxed, 'Chromium vs Python');
});

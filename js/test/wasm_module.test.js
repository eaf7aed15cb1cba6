// checkModule (js/backends/wasm_module.js), the structure check of an
// artifact's module.wasm: the same messages as the Python checker
// (wasm/module_check.py) on every case of tests/wasm/test_module_check.py and
// on 2,000 bit flips made there, and only 'module.wasm: ' Errors on 10,000
// seeded bit flips made here.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { checkModule } from '../backends/wasm_module.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRIVERS = ['predict', 'train_step'];
const HDR = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

let cases = null;

before(() => {
  // One Python run: every case with the Python checker's message (null when it accepts).
  const out = execFileSync('python3', [join(root, 'tests', 'wasm', 'test_module_check.py')], { maxBuffer: 1 << 26 });
  cases = JSON.parse(out.toString()).map((c) => ({ ...c, bytes: Uint8Array.from(Buffer.from(c.hex, 'hex')) }));
});

function message(bytes, drivers, pages) {
  try {
    checkModule(bytes, drivers, pages);
    return null;
  } catch (e) {
    assert.ok(e instanceof Error && e.message.startsWith('module.wasm: '), `not a module.wasm Error: ${e}`);
    return e.message;
  }
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('JavaScript and Python give the same message for every case and Python-made bit flip', () => {
  assert.ok(cases.length > 2000);
  const differ = cases.filter((c) => message(c.bytes, c.drivers, c.pages) !== c.message)
    .map((c) => `${c.label}: js ${JSON.stringify(message(c.bytes, c.drivers, c.pages))} python ${JSON.stringify(c.message)}`);
  assert.deepEqual(differ, []);
  assert.ok(cases.some((c) => c.message === null) && cases.some((c) => c.message?.includes(' has type ')));
});

test('the text examples: predict (param i32) is rejected naming its type', () => {
  const c = cases.find((x) => x.label === 'predict (param i32)');
  assert.throws(() => checkModule(c.bytes, DRIVERS, 1),
    { message: "module.wasm: export 'predict' has type (i32) -> (), a driver must be () -> ()" });
});

test('the modules both checkers accept are valid for the engine, with function drivers and only env.memory imported', () => {
  for (const c of cases.filter((x) => x.message === null && !x.label.startsWith('mutant'))) {
    const mod = new WebAssembly.Module(c.bytes);
    assert.deepEqual(WebAssembly.Module.imports(mod), [{ module: 'env', name: 'memory', kind: 'memory' }], c.label);
    const kinds = new Map(WebAssembly.Module.exports(mod).map((e) => [e.name, e.kind]));
    for (const d of c.drivers) assert.equal(kinds.get(d), 'function', `${c.label}: ${d}`);
  }
});

test('every truncation of a valid module throws a module.wasm Error', () => {
  const valid = cases.find((c) => c.label === 'valid, more pages provided').bytes; // no trailing custom section
  checkModule(valid, DRIVERS, 16);
  checkModule(valid.buffer.slice(valid.byteOffset, valid.byteOffset + valid.length), DRIVERS, 16); // an ArrayBuffer
  for (let n = 0; n < valid.length; n++) {
    assert.notEqual(message(valid.subarray(0, n), DRIVERS, 16), null, `cut at ${n}`);
  }
});

test('LEB128: 5 bytes at most, 2^32-1 at most, padded encodings allowed', () => {
  const type0 = [0x60, 0x00, 0x00];
  assert.throws(() => checkModule(Uint8Array.from([...HDR, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), [], 1),
    { message: 'module.wasm: LEB128 integer at byte 9 is longer than 5 bytes' });
  assert.throws(() => checkModule(Uint8Array.from([...HDR, 0x01, 0xff, 0xff, 0xff, 0xff, 0x1f]), [], 1),
    { message: 'module.wasm: LEB128 integer at byte 9 exceeds 2^32-1' });
  assert.throws(() => checkModule(Uint8Array.from([...HDR, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]), [], 1),
    { message: 'module.wasm: type section at byte 8 has size 4294967295, past the end of the module' });
  // a type section of size 8 whose count 1 is written in 5 bytes, then env.memory: accepted
  const envMemory = [0x02, 0x0f, 0x01, 0x03, ...Buffer.from('env'), 0x06, ...Buffer.from('memory'), 0x02, 0x00, 0x01];
  assert.equal(checkModule(Uint8Array.from([...HDR, 0x01, 0x08, 0x81, 0x80, 0x80, 0x80, 0x00, ...type0, ...envMemory]), [], 1), undefined);
});

test('10,000 seeded bit flips: success or a module.wasm Error, nothing else', () => {
  const valid = cases.find((c) => c.label === 'valid').bytes;
  const random = rng(2024);
  let accepted = 0, engineChecked = 0;
  for (let i = 0; i < 10000; i++) {
    const b = valid.slice();
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) b[Math.floor(random() * b.length)] ^= 1 << Math.floor(random() * 8);
    if (message(b, DRIVERS, 1) !== null) continue;
    accepted++;
    if (!WebAssembly.validate(b)) continue;
    engineChecked++;
    const mod = new WebAssembly.Module(b);
    assert.deepEqual(WebAssembly.Module.imports(mod), [{ module: 'env', name: 'memory', kind: 'memory' }]);
    const kinds = new Map(WebAssembly.Module.exports(mod).map((e) => [e.name, e.kind]));
    for (const d of DRIVERS) assert.equal(kinds.get(d), 'function');
  }
  assert.ok(accepted > 100 && engineChecked > 50, `accepted ${accepted}, valid for the engine ${engineChecked}`);
});

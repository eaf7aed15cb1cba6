// Threads (wasm/threads.py, backends/wasm.js, js/thread.js): artifacts exported with
// wasm_threads=True (tests/threads_fixtures.py) give bitwise the outputs of one-thread module.wasm
// (computed by Python) on 1, 2, 3 and 4 threads, and their Workers end with dispose().

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as webtensor from '../node.js';
import { pythonFixture } from './helpers.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tests', 'threads_fixtures.py');

let out, expected;
before(() => ({ out, expected } = pythonFixture(SCRIPT, 'webtensor-threads-')));
after(() => rmSync(out, { recursive: true, force: true }));

const TYPED = { float32: Float32Array, int32: Int32Array };

async function outputs(model, name, e) {
  const specs = model.signatures[e.signature].inputs;
  const inputs = specs.map((s, k) => webtensor.tensor(TYPED[s.dtype].from(e.inputs[k]), s.shape, s.dtype));
  const outs = Object.values(await model.run(e.signature, inputs)).map((t) => Float32Array.from(t.dataSync()));
  if (name === 'mlp') {
    const w = await model.getWeights();
    outs.push(Float32Array.from(w[Object.keys(w).sort()[0]].dataSync()));
  }
  return outs;
}

test('exported models: bitwise the one-thread outputs on 1, 2, 3 and 4 threads', async () => {
  assert.ok(expected.mlp.tiled >= 3 && expected.ops.tiled >= 1 && expected.seq.tiled >= 2, 'kernels large enough are split');
  for (const [name, e] of Object.entries(expected)) {
    for (const threads of [1, 2, 3, 4]) {
      const model = await webtensor.load(join(out, name), { backend: 'wasm', threads });
      try {
        assert.equal(model.stats().wasmThreads, threads);
        const got = await outputs(model, name, e);
        got.forEach((o, k) => assert.deepEqual(o, Float32Array.from(e.outputs[k]), `${name}, ${threads} threads, output ${k}`));
      } finally {
        model.dispose();
      }
    }
  }
});

test('threads: a bad count is refused', async () => {
  for (const threads of [0, 17, 1.5, '2', 'max']) {
    await assert.rejects(webtensor.load(join(out, 'ops'), { backend: 'wasm', threads }), /threads must be 'auto' or an integer in \[1, 16\]/);
  }
});

test('worker: true with threads: bitwise the one-thread outputs, the threads nested in the model\'s worker', async () => {
  for (const [name, e] of Object.entries(expected)) {
    const model = await webtensor.load(join(out, name), { backend: 'wasm', worker: true, threads: 3 });
    try {
      const got = await outputs(model, name, e);
      assert.equal(model.stats().wasmThreads, 3);
      assert.equal(model.threadsNotice, null);
      got.forEach((o, k) => assert.deepEqual(o, Float32Array.from(e.outputs[k]), `${name}, worker, 3 threads, output ${k}`));
    } finally {
      model.dispose();
    }
  }
});

test("threads: 'auto' is os.availableParallelism() at most AUTO_MAX_THREADS", async () => {
  const { availableParallelism } = await import('node:os');
  const { AUTO_MAX_THREADS } = await import('../model.js');
  const model = await webtensor.load(join(out, 'ops'), { backend: 'wasm', threads: 'auto' });
  try {
    assert.equal(model.stats().wasmThreads, Math.min(availableParallelism(), AUTO_MAX_THREADS));
    assert.equal(model.threadsNotice, null);
  } finally {
    model.dispose();
  }
});

// the 'ops' artifact's files as load() takes them, without module_threads.wasm and the threads sections
async function withoutThreads() {
  const { readdirSync, readFileSync, statSync } = await import('node:fs');
  const files = Object.fromEntries(readdirSync(join(out, 'ops'), { recursive: true })
    .filter((f) => !f.includes('_threads') && statSync(join(out, 'ops', f)).isFile())
    .map((f) => [f, new Uint8Array(readFileSync(join(out, 'ops', f)))]));
  const manifest = JSON.parse(new TextDecoder().decode(files['manifest.json']));
  for (const sig of Object.values(manifest.signatures)) delete sig.wasm.threads;
  delete manifest.files['module_threads.wasm'];
  files['manifest.json'] = new TextEncoder().encode(JSON.stringify(manifest));
  return files;
}

test('threads: an artifact without module_threads.wasm runs on one thread, with a notice and a warning', async () => {
  const files = await withoutThreads();
  const warnings = [];
  const warn = console.warn;
  console.warn = (m) => warnings.push(m);
  let model;
  try {
    model = await webtensor.load(files, { backend: 'wasm', threads: 3 });
  } finally {
    console.warn = warn;
  }
  const notice = 'webtensor.load: 3 threads were asked for, but the model runs on 1: the artifact has no module_threads.wasm (export it with wasm_threads=True)';
  assert.equal(model.stats().wasmThreads, 1);
  assert.equal(model.threadsNotice, notice);
  assert.deepEqual(warnings, [notice]);
  model.dispose();
});

test("threads: the default is 'auto' for a threaded artifact; silently one thread without module_threads.wasm", async () => {
  const { availableParallelism } = await import('node:os');
  const { AUTO_MAX_THREADS } = await import('../model.js');
  const model = await webtensor.load(join(out, 'ops'), { backend: 'wasm' });
  try {
    assert.equal(model.stats().wasmThreads, Math.min(availableParallelism(), AUTO_MAX_THREADS));
    assert.equal(model.threadsNotice, null);
  } finally {
    model.dispose();
  }
  const files = await withoutThreads();
  const warnings = [];
  const warn = console.warn;
  console.warn = (m) => warnings.push(m);
  for (const worker of [false, true]) {
    const plain = await webtensor.load(files, { backend: 'wasm', worker }).finally(() => { console.warn = warn; });
    console.warn = (m) => warnings.push(m);
    assert.equal(plain.stats().wasmThreads, 1);
    assert.equal(plain.threadsNotice, null, `worker: ${worker}`);
    plain.dispose();
  }
  console.warn = warn;
  assert.deepEqual(warnings, []);
});

test('a threaded model never disposed does not keep Node alive (its thread Workers are unref()ed)', async () => {
  const { execFileSync } = await import('node:child_process');
  const node = join(dirname(fileURLToPath(import.meta.url)), '..', 'node.js');
  const script = `const wt = await import(${JSON.stringify(node)});
    const m = await wt.load(${JSON.stringify(join(out, 'ops'))}, { backend: 'wasm', threads: 2 });
    if (m.stats().wasmThreads !== 2) throw new Error('expected 2 threads');
    console.log('loaded');`;
  const { writeFileSync } = await import('node:fs');
  const file = join(out, 'never_disposed.mjs');       // a file: Workers inherit -e's --input-type
  writeFileSync(file, script);
  const t = performance.now();
  const printed = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 60000 });
  assert.equal(printed.trim(), 'loaded');
  assert.ok(performance.now() - t < 30000, 'the process exited by itself');
});

test('1,000 load/dispose cycles leak no Worker, no memory and no heap', async () => {
  // Every Worker that came online exits; every model's shared WebAssembly.Memory is collected (a
  // FinalizationRegistry: Node's memoryUsage() does not count shared memories); the heap and the
  // RSS grow by no more than bounds set from measurement (Node 20, 2 vCPUs: after 100 warm-up
  // cycles, heapUsed +0.1-0.3 MiB and RSS +5-15 MiB over the next 900 (allocator and thread-stack
  // caches); one leaked Worker per cycle would be gigabytes, one leaked model ~0.1 MiB each).
  const { Worker } = await import('node:worker_threads');
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc'); // a context made after the flag has gc()
  const settle = async () => { // full collections, with turns for finalizers and exit events
    for (let i = 0; i < 4; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }
  };
  const live = new Set(); // Workers that came online during this test and have not exited
  let started = 0, exited = 0, collected = 0;
  const memories = new FinalizationRegistry(() => { collected++; });
  const orig = Worker.prototype.emit;
  Worker.prototype.emit = function (event, ...args) { // sees every Worker's online and exit events
    if (event === 'online') { started++; live.add(this); }
    if (event === 'exit' && live.delete(this)) exited++;
    return orig.call(this, event, ...args);
  };
  const CYCLES = 1000, WARM = 100;
  let before;
  try {
    for (let i = 0; i < CYCLES; i++) {
      if (i === WARM) {
        await settle();
        before = process.memoryUsage();
      }
      const model = await webtensor.load(join(out, 'ops'), { backend: 'wasm', threads: 2 });
      memories.register(model._backend.memory, i);
      model.dispose();
    }
    for (let t = 0; t < 200 && exited < started; t++) await new Promise((r) => setTimeout(r, 50));
    for (let t = 0; t < 50 && collected < CYCLES; t++) await settle();
  } finally {
    Worker.prototype.emit = orig;
  }
  const after = process.memoryUsage();
  assert.equal(started, CYCLES);
  assert.equal(exited, CYCLES);
  assert.equal(collected, CYCLES, 'every model\'s shared memory is collected');
  const MiB = 2 ** 20;
  const grew = (key) => (after[key] - before[key]) / MiB;
  assert.ok(grew('heapUsed') < 2, `heapUsed grew ${grew('heapUsed').toFixed(2)} MiB over ${CYCLES - WARM} cycles`);
  assert.ok(grew('rss') < 64, `RSS grew ${grew('rss').toFixed(1)} MiB over ${CYCLES - WARM} cycles`);
});

test('checkModule: a threaded module needs shared=true, and a plain one fails it', async () => {
  const { checkModule } = await import('../backends/wasm_module.js');
  const { readFileSync } = await import('node:fs');
  const threaded = new Uint8Array(readFileSync(join(out, 'ops', 'module_threads.wasm')));
  const plain = new Uint8Array(readFileSync(join(out, 'ops', 'module.wasm')));
  checkModule(threaded, ['predict'], 64, true);
  checkModule(plain, ['predict'], 64);
  assert.throws(() => checkModule(threaded, ['predict'], 64), /only 0x00 and 0x01/);
  assert.throws(() => checkModule(plain, ['predict'], 64, true), /must be shared \(limits flag 0x03\)/);
  // wake () -> () is optional (older artifacts): a module without it passes
  const i = Buffer.from(threaded).indexOf('wake');
  assert.ok(i > 0);
  const older = threaded.slice();
  older[i] = 'x'.charCodeAt(0);
  checkModule(older, ['predict'], 64, true);
  // present, it must be () -> (): 'wake' retargeted to worker's function, (i32) -> ()
  const indexAt = (name) => { // the export entry's function index (LEB128): [start, end)
    const key = Buffer.concat([Buffer.from([name.length]), Buffer.from(name), Buffer.from([0])]);
    const start = Buffer.from(threaded).indexOf(key) + key.length;
    let end = start;
    while (threaded[end] & 0x80) end++;
    return [start, end + 1];
  };
  const [a, b] = indexAt('wake');
  const [c, d] = indexAt('worker');
  assert.equal(b - a, d - c);
  const retargeted = Uint8Array.from([...threaded.subarray(0, a), ...threaded.subarray(c, d), ...threaded.subarray(b)]);
  assert.throws(() => checkModule(retargeted, ['predict'], 64, true), /export 'wake' must be a function of type \(\) -> \(\)/);
});

test('a threads workspace past 4 GiB is an ArtifactError, before any memory is made', async () => {
  const { cpSync, readFileSync, writeFileSync } = await import('node:fs');
  const withStride = (dir, stride) => { // the manifest is not hashed: the loader must check it
    const dst = join(out, dir);
    cpSync(join(out, 'ops'), dst, { recursive: true });
    const man = JSON.parse(readFileSync(join(dst, 'manifest.json'), 'utf8'));
    for (const sig of Object.values(man.signatures)) sig.wasm.threads.stride = stride;
    writeFileSync(join(dst, 'manifest.json'), JSON.stringify(man));
    return [dst, man.signatures.predict.wasm.threads.scratch];
  };
  const [half, scratch] = withStride('stride-2gib', 2 ** 31); // 2 threads fit, 3 do not
  assert.ok(scratch + 2 ** 31 <= 2 ** 32 && scratch + 2 ** 32 > 2 ** 32);
  (await webtensor.load(half, { backend: 'wasm', threads: 1 })).dispose(); // the workspace is unused
  await assert.rejects(webtensor.load(half, { backend: 'wasm', threads: 3 }), (e) => e.name === 'ArtifactError' &&
    e.message.includes(`3 threads need ${scratch + 2 ** 32} bytes of memory (scratch + 2 x stride), more than WebAssembly's 4 GiB; load it with fewer threads`));
  const [full] = withStride('stride-4gib', 2 ** 32);
  for (const threads of [1, 2]) {
    await assert.rejects(webtensor.load(full, { backend: 'wasm', threads }), (e) => e.name === 'ArtifactError' &&
      e.message.includes(`threads {"scratch": ${scratch}, "stride": 4294967296}: a second thread's workspace ends past WebAssembly's 4 GiB memory`));
  }
});

test("threads.rounds: a signature that splits no kernel does not wake the threads; results unchanged", async () => {
  const { cpSync, readFileSync, writeFileSync } = await import('node:fs');
  for (const name of ['ops', 'seq']) { // one signature each: its rounds are the module's split calls
    const man = JSON.parse(readFileSync(join(out, name, 'manifest.json'), 'utf8'));
    assert.equal(man.signatures[expected[name].signature].wasm.threads.rounds, expected[name].tiled, name);
  }
  const dst = join(out, 'rounds-0'); // the manifest is not hashed: a copy that says 0 rounds
  cpSync(join(out, 'ops'), dst, { recursive: true });
  const man = JSON.parse(readFileSync(join(dst, 'manifest.json'), 'utf8'));
  man.signatures.predict.wasm.threads.rounds = 0;
  writeFileSync(join(dst, 'manifest.json'), JSON.stringify(man));
  for (const bad of [-1, 1.5, '2', null]) { // a loader checks the field (the manifest is not hashed)
    const broken = join(out, 'rounds-bad');
    cpSync(join(out, 'ops'), broken, { recursive: true });
    writeFileSync(join(broken, 'manifest.json'), JSON.stringify({ ...man, signatures: { predict: { ...man.signatures.predict, wasm: { ...man.signatures.predict.wasm, threads: { ...man.signatures.predict.wasm.threads, rounds: bad } } } } }));
    await assert.rejects(webtensor.load(broken, { backend: 'wasm', threads: 2 }), (e) => e.name === 'ArtifactError' && /rounds/.test(e.message), String(bad));
  }
  for (const [dir, wakes] of [[join(out, 'ops'), true], [dst, false]]) {
    const model = await webtensor.load(dir, { backend: 'wasm', threads: 2 });
    try {
      assert.equal(model._backend.signatures.get('predict').wakes, wakes);
      const got = await outputs(model, 'ops', expected.ops);
      got.forEach((o, k) => assert.deepEqual(o, Float32Array.from(expected.ops.outputs[k]), `${dir}, output ${k}`));
    } finally {
      model.dispose();
    }
  }
});

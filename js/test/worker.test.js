// load(source, {worker: true, timeout}): the WebAssembly runs in a worker_threads
// Worker; results are bit-identical to the in-thread backend, a driver that
// never returns is stopped by the timeout (TimeoutError, worker terminated),
// errors inside the worker keep their name and message, and no worker outlives
// dispose() (or keeps an idle process alive).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import * as browser from '../index.js';
import * as webtensor from '../node.js';
import { CHROMIUM, buildFixtures, readDir, resign, runPage } from './helpers.js';
import { modelSuite } from './model_suite.js';

const nodeEntry = fileURLToPath(new URL('../node.js', import.meta.url));

// A hand-assembled module.wasm: imports env.memory (1 page) and exports one
// `() -> ()` function per entry of `bodies` (name -> instruction bytes);
// `start` names one of them as the module's start function.
const leb = (n) => {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
const vec = (items) => [...leb(items.length), ...items.flat()];
const str = (s) => vec([...new TextEncoder().encode(s)].map((b) => [b]));
function driverModule(bodies, start = null) {
  const names = Object.keys(bodies);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 0x00, 0x00]])), // type 0: () -> ()
    ...section(2, vec([[...str('env'), ...str('memory'), 0x02, 0x00, 0x01]])), // env.memory, min 1 page
    ...section(3, vec(names.map(() => [0x00]))),
    ...section(7, vec(names.map((n, i) => [...str(n), 0x00, ...leb(i)]))),
    ...(start === null ? [] : section(8, leb(names.indexOf(start)))),
    ...section(10, vec(names.map((n) => {
      const body = [0x00, ...bodies[n], 0x0b]; // no locals, the instructions, end
      return [...leb(body.length), ...body];
    }))),
  ]);
}
const LOOP_FOREVER = [0x03, 0x40, 0x0c, 0x00, 0x0b]; // loop br 0 end
const UNREACHABLE = [0x00];

let fx, files;
before(() => {
  fx = buildFixtures();
  files = readDir(fx.dir);
});
after(() => fx.cleanup());

/** The fixture with its module.wasm replaced (the manifest re-signed). */
const withModule = (bodies, start) => resign({ ...files, 'module.wasm': driverModule(bodies, start) });
const inWorker = (source, extra = {}) => webtensor.load(source, { backend: 'wasm', worker: true, ...extra });
const bytesOf = (t) => new Uint8Array(t.dataSync().buffer, t.dataSync().byteOffset, t.dataSync().byteLength);
const sameTensor = (a, b, what) => {
  assert.equal(a.dtype, b.dtype, what);
  assert.deepEqual(a.shape, b.shape, what);
  assert.deepEqual(bytesOf(a), bytesOf(b), what);
};

/**
 * Run `code` (an ES module importing the Node entry as `webtensor`) in a fresh
 * node (from a file: a worker cannot start under `node --input-type=module -e`,
 * whose flags it inherits); resolves to {code, stdout, stderr, ms}.
 */
let scripts = 0;
function runNode(code, timeoutMs = 20_000) {
  const file = join(fx.out, `script_${scripts++}.mjs`);
  writeFileSync(file, `import * as webtensor from ${JSON.stringify(pathToFileURL(nodeEntry).href)};\n${code}`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.killed ? 'killed (the process did not exit)' : err.code) : 0, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

describe('worker: true gives the in-thread results', () => {
  test('predict, classify, trainStep, getWeights, setWeights, saveWeights and stats are bit-identical over 20 steps', async () => {
    const ref = await webtensor.load(files, { backend: 'wasm' });
    const w = await inWorker(files, { timeout: 10_000 });
    try {
      assert.equal(w.backend, 'wasm');
      assert.equal(w.adapterInfo, null);
      assert.deepEqual(w.signatures, ref.signatures);
      assert.deepEqual(w.variables, ref.variables);
      assert.deepEqual(w.stats(), ref.stats());
      const labels = webtensor.tensor(fx.labels, [8], 'int32');
      for (let s = 0; s < 20; s++) {
        sameTensor(await w.predict(fx.x), await ref.predict(fx.x), `predict, step ${s}`);
        const [a, b] = [await w.run('classify', { x: fx.x, labels }), await ref.run('classify', { x: fx.x, labels })];
        sameTensor(a.classes, b.classes, `classes, step ${s}`);
        sameTensor(a.correct, b.correct, `correct (bool), step ${s}`);
        sameTensor(await w.trainStep(fx.x, fx.t), await ref.trainStep(fx.x, fx.t), `loss, step ${s}`);
      }
      const [ww, rw] = [await w.getWeights(), await ref.getWeights()];
      assert.deepEqual(Object.keys(ww), Object.keys(rw));
      for (const name of Object.keys(rw)) sameTensor(ww[name], rw[name], `weight ${name} after 20 steps`);
      assert.deepEqual(Array.from(ww['optimizer/iterations'].dataSync()), [20]);
      assert.deepEqual(await w.saveWeights(), await ref.saveWeights());
      // the inputs were copied, not transferred: the caller's arrays are intact
      assert.equal(fx.x.length, 32);
      assert.deepEqual(Array.from(fx.x), fx.expected.x.map(Math.fround));

      const initial = {
        'dense/kernel': webtensor.tensor(fx.expected.initial['dense/kernel'], [4, 3]),
        'dense/bias': new Float32Array(fx.expected.initial['dense/bias']),
        'optimizer/iterations': new Int32Array([0]),
      };
      await Promise.all([w.setWeights(initial), ref.setWeights(initial)]);
      assert.equal(initial['dense/bias'].length, 3);
      const y = await w.predict(fx.x);
      assert.deepEqual(Array.from(y.dataSync()), fx.expected.predict.y);
      sameTensor(y, await ref.predict(fx.x), 'predict after setWeights');
      for (let s = 0; s < 5; s++) sameTensor(await w.trainStep(fx.x, fx.t), await ref.trainStep(fx.x, fx.t), `loss after setWeights, step ${s}`);
      assert.deepEqual(await w.saveWeights(), await ref.saveWeights());
      await assert.rejects(w.setWeights({ 'dense/bias': new Float32Array(4) }), /'dense\/bias': expected 3 values/);
      assert.deepEqual({ ...w.stats(), runs: 0 }, { ...ref.stats(), runs: 0 });
      assert.equal(w.stats().runs, ref.stats().runs);
    } finally {
      w.dispose();
      ref.dispose();
    }
  });

  test("backend 'auto' with worker: true runs wasm (no GPU is asked for), from a path too", async () => {
    let asked = 0;
    const gpu = { requestAdapter: async () => { asked++; return null; } };
    const m = await webtensor.load(fx.dir, { worker: true, gpu });
    assert.equal(m.backend, 'wasm');
    assert.equal(asked, 0);
    assert.deepEqual(Array.from((await m.predict(fx.x)).dataSync()), fx.expected.predict.y);
    m.dispose();
  });

  test('calls made without awaiting run in order', async () => {
    const m = await inWorker(files);
    const before = m.predict(fx.x);
    const steps = Array.from({ length: 5 }, () => m.trainStep(fx.x, fx.t));
    const w = m.getWeights();
    const afterSteps = m.predict(fx.x);
    assert.deepEqual(Array.from((await before).dataSync()), fx.expected.predict.y);
    assert.deepEqual((await Promise.all(steps)).map((l) => l.dataSync()[0]), fx.expected.train.losses.slice(0, 5).map(Math.fround));
    assert.deepEqual(Array.from((await w)['optimizer/iterations'].dataSync()), [5]);
    assert.notDeepEqual(Array.from((await afterSteps).dataSync()), fx.expected.predict.y);
    m.dispose();
  });
});

describe('a driver that never returns', () => {
  const hostile = () => withModule({ predict: LOOP_FOREVER, classify: [], train_step: [] });

  test('times out: TimeoutError within timeout + 1 s, the main thread keeps running, the model then refuses calls', async () => {
    const m = await inWorker(hostile(), { timeout: 100 });
    let ticks = 0;
    const ticker = setInterval(() => { ticks++; }, 10);
    const t0 = performance.now();
    const pending = m.predict(fx.x);
    const queued = m.run('classify', { x: fx.x, labels: fx.labels }); // queued behind the hung predict
    await assert.rejects(pending, (e) => {
      assert.equal(e.name, 'TimeoutError');
      assert.equal(e.message, "webtensor: signature 'predict' did not finish within 100 ms; the model's worker was terminated");
      assert.ok(e instanceof Error);
      return true;
    });
    const ms = performance.now() - t0;
    clearInterval(ticker);
    assert.ok(ms >= 95 && ms < 1100, `rejected after ${ms} ms`);
    assert.ok(ticks >= 3, `the main thread ran ${ticks} timer ticks while the driver looped`);
    const terminated = /the model's worker was terminated after a timeout \(signature 'predict' did not finish within 100 ms\)/;
    await assert.rejects(queued, terminated);
    await assert.rejects(m.predict(fx.x), terminated);
    await assert.rejects(m.trainStep(fx.x, fx.t), terminated);
    await assert.rejects(m.getWeights(), terminated);
    await assert.rejects(m.setWeights({ 'dense/bias': new Float32Array(3) }), terminated);
    assert.equal(m.stats().wasmMemoryBytes, 65536); // the last report before the timeout
    m.dispose();
    m.dispose();
    assert.equal(m.isDisposed, true);
    await assert.rejects(m.predict(fx.x), /disposed/);
  });

  test("a fresh model of the same artifact: the other signatures work", async () => {
    const m = await inWorker(hostile(), { timeout: 1000 });
    const out = await m.run('classify', { x: fx.x, labels: fx.labels });
    assert.deepEqual(out.classes.shape, [8]);
    assert.equal((await m.trainStep(fx.x, fx.t)).shape.length, 0);
    const w = await m.getWeights();
    assert.deepEqual(Array.from(w['dense/bias'].dataSync()), fx.expected.initial['dense/bias'].map(Math.fround));
    assert.equal(m.stats().runs, 2);
    m.dispose();
  });

  test('without a timeout, dispose() ends the hung call and the worker', async () => {
    const m = await inWorker(hostile());
    const pending = m.predict(fx.x);
    await new Promise((resolve) => setTimeout(resolve, 50));
    m.dispose();
    await assert.rejects(pending, /signature 'predict': the model was disposed/);
  });

  test('a start function that never returns: load does not hang', async () => {
    // Loading in the worker is bounded by the timeout too. (A loader that
    // checks module.wasm's sections refuses a start section before
    // instantiating it; either way load rejects, and quickly.)
    const looping = withModule({ predict: [], classify: [], train_step: [], start: LOOP_FOREVER }, 'start');
    const t0 = performance.now();
    await assert.rejects(inWorker(looping, { timeout: 200 }), (e) => {
      if (e.name === 'TimeoutError') {
        assert.equal(e.message, "webtensor: loading the model (compiling and instantiating module.wasm) did not finish within 200 ms; the model's worker was terminated");
      } else {
        assert.equal(e.name, 'ArtifactError');
        assert.match(e.message, /module\.wasm.*start/);
      }
      return true;
    });
    assert.ok(performance.now() - t0 < 5000);
  });

  test('a process whose model timed out exits on its own (no worker thread is left running)', async () => {
    const r = await runNode(`
      const files = ${JSON.stringify(Object.fromEntries(Object.entries(hostile()).map(([k, v]) => [k, Array.from(v)])))};
      const bytes = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, new Uint8Array(v)]));
      const m = await webtensor.load(bytes, { backend: 'wasm', worker: true, timeout: 100 });
      try { await m.predict(new Float32Array(32)); } catch (e) { console.log(e.name); }
    `);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'TimeoutError');
  });
});

describe('errors inside the worker keep their name and message', () => {
  test('a driver that traps (unreachable): the WebAssembly trap message, as in-thread; the model keeps working', async () => {
    const trapping = withModule({ predict: UNREACHABLE, classify: [], train_step: [] });
    const ref = await webtensor.load(trapping, { backend: 'wasm' });
    const w = await inWorker(trapping, { timeout: 5000 });
    let expected;
    await assert.rejects(ref.predict(fx.x), (e) => { expected = e; return true; });
    assert.match(expected.message, /^webtensor: signature 'predict': the WebAssembly driver \w+ \(unreachable\)$/);
    await assert.rejects(w.predict(fx.x), (e) => {
      assert.equal(Object.getPrototypeOf(e), Object.getPrototypeOf(expected));
      assert.equal(e.name, expected.name);
      assert.equal(e.message, expected.message);
      return true;
    });
    await w.run('classify', { x: fx.x, labels: fx.labels }); // a trap does not end the worker
    ref.dispose();
    w.dispose();
  });

  const manifestEdit = (edit) => resign(files, edit);
  const damaged = {
    'missing driver export': () => manifestEdit((m) => { m.signatures.predict.wasm.driver = 'forward'; }),
    'overlapping variables': () => manifestEdit((m) => {
      for (const s of Object.values(m.signatures)) if (s.wasm.variables['1'] !== undefined) s.wasm.variables['1'] = 1040;
    }),
    'no wasm section': () => manifestEdit((m) => { delete m.signatures.classify.wasm; }),
    'a module with another import': () => {
      const f = withModule({ predict: [], classify: [], train_step: [] });
      const bytes = f['module.wasm'];
      const i = bytes.indexOf('memory'.charCodeAt(0), 8);
      bytes[i] = 'n'.charCodeAt(0); // env.nemory
      return resign(f);
    },
  };
  for (const [name, make] of Object.entries(damaged)) {
    test(`artifact errors from createWasmBackend (${name}) read as on the main thread`, async () => {
      let expected;
      await assert.rejects(webtensor.load(make(), { backend: 'wasm' }), (e) => { expected = e; return true; });
      assert.match(expected.message, /^webtensor: artifact \(in memory\): /);
      await assert.rejects(inWorker(make(), { timeout: 5000 }), (e) => {
        assert.equal(e.name, expected.name);
        assert.equal(e.message, expected.message);
        assert.equal(Object.getPrototypeOf(e), Object.getPrototypeOf(expected));
        return true;
      });
    });
  }

  test('damage found by readArtifact is reported before any worker starts', async () => {
    await assert.rejects(inWorker({ ...files, 'module.wasm': undefined }), /artifact \(in memory\): module\.wasm is missing/);
  });
});

describe('option errors', () => {
  test('timeout needs worker: true; bad values; webgpu in a worker; no Worker in the browser entry under Node', async () => {
    const needsWorker = /`timeout` needs `worker: true`: WebAssembly running on the main thread cannot be interrupted/;
    await assert.rejects(webtensor.load(files, { backend: 'wasm', timeout: 100 }), needsWorker);
    await assert.rejects(webtensor.load(files, { timeout: 100, worker: false }), needsWorker);
    await assert.rejects(browser.load(files, { backend: 'wasm', timeout: 100 }), needsWorker);
    for (const bad of [0, -5, Number.NaN, Infinity, 2 ** 31, '100', null]) {
      await assert.rejects(inWorker(files, { timeout: bad }), /timeout must be a number of milliseconds in \(0, 2147483647\], got/, String(bad));
    }
    await assert.rejects(webtensor.load(files, { worker: 'yes' }), /worker must be true or false, got "yes"/);
    await assert.rejects(webtensor.load(files, { backend: 'webgpu', worker: true }),
      /`worker: true` runs WebAssembly only; backend 'webgpu' in a worker is not supported yet/);
    await assert.rejects(browser.load(files, { backend: 'wasm', worker: true }), /`worker: true` needs Web Workers, which this environment lacks/);
  });
});

test('npm pack publishes js/worker.js (the workers load it by URL, not by import) and js/backends/worker.js', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const [info] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  const published = info.files.map((f) => f.path);
  for (const f of ['js/worker.js', 'js/backends/worker.js', 'js/backends/wasm.js']) assert.ok(published.includes(f), `${f} is not published`);
});

describe('no worker outlives its model', () => {
  test('a process that disposes its worker models, or just leaves them idle, exits on its own', async () => {
    const r = await runNode(`
      const dir = ${JSON.stringify(fx.dir)};
      const a = await webtensor.load(dir, { backend: 'wasm', worker: true, timeout: 5000 });
      await a.predict(new Float32Array(32));
      a.dispose();
      const b = await webtensor.load(dir, { backend: 'wasm', worker: true });
      await b.trainStep(new Float32Array(32), new Float32Array(24));
      console.log('done'); // b is never disposed: its idle worker must not keep the process alive
    `);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'done');
  });

  test('a pending call keeps the process alive until it settles', async () => {
    const r = await runNode(`
      const m = await webtensor.load(${JSON.stringify(fx.dir)}, { backend: 'wasm', worker: true });
      m.predict(new Float32Array(32)).then((y) => console.log('predicted', y.shape.join('x')));
    `);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'predicted 8x3');
  });
});

// The browser entry: a module Web Worker (index.js's spawnWorker, worker.js's `self` channel) in headless Chromium.
const PAGE = `<!doctype html><script type="module">
import * as webtensor from '/js/index.js';
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
const caught = async (promise) => { try { await promise; return null; } catch (e) { return { name: e.name, message: e.message }; } };
try {
  const e = await (await fetch('/fixtures/expected.json')).json();
  const x = new Float32Array(e.x), t = new Float32Array(e.t);
  const model = await webtensor.load('/fixtures/linear', { backend: 'wasm', worker: true, timeout: 10000 });
  const y = Array.from((await model.predict(x)).dataSync());
  const losses = [];
  for (let s = 0; s < 5; s++) losses.push((await model.trainStep(x, t)).dataSync()[0]);
  const kernel = Array.from((await model.getWeights())['dense/kernel'].dataSync());
  const stats = model.stats();
  model.dispose();
  const hostile = await webtensor.load('/fixtures/hostile', { backend: 'wasm', worker: true, timeout: 200 });
  const t0 = performance.now();
  const timedOut = await caught(hostile.predict(x));
  const ms = performance.now() - t0;
  const after = await caught(hostile.getWeights());
  hostile.dispose();
  const trapping = await webtensor.load('/fixtures/trapping', { backend: 'wasm', worker: true });
  const trap = await caught(trapping.predict(x));
  const inThread = await webtensor.load('/fixtures/trapping', { backend: 'wasm' });
  const trapInThread = await caught(inThread.predict(x));
  trapping.dispose();
  inThread.dispose();
  await report({ y, losses, kernel, stats, timedOut, ms, after, trap, trapInThread });
} catch (err) {
  await report({ error: String(err && err.stack || err) });
}
</script>`;

test('browser entry: the model runs in a module Web Worker in headless Chromium, and its timeout works', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed`);
  for (const [name, bodies] of [['hostile', { predict: LOOP_FOREVER, classify: [], train_step: [] }], ['trapping', { predict: UNREACHABLE, classify: [], train_step: [] }]]) {
    for (const [file, bytes] of Object.entries(withModule(bodies))) {
      mkdirSync(dirname(join(fx.out, name, file)), { recursive: true });
      writeFileSync(join(fx.out, name, file), bytes);
    }
  }
  const r = await runPage(t, PAGE, fx.out, ['--disable-gpu']);
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.y, fx.expected.predict.y);
  assert.deepEqual(r.losses, fx.expected.train.losses.slice(0, 5));
  assert.equal(r.stats.backend, 'wasm');
  assert.equal(r.stats.wasmMemoryBytes, 65536);
  assert.deepEqual(r.timedOut, { name: 'TimeoutError', message: "webtensor: signature 'predict' did not finish within 200 ms; the model's worker was terminated" });
  assert.ok(r.ms < 1200, `timed out after ${r.ms} ms`);
  assert.match(r.after.message, /the model's worker was terminated after a timeout/);
  assert.match(r.trap.message, /^webtensor: signature 'predict': the WebAssembly driver \w+ \(unreachable\)$/);
  assert.deepEqual(r.trap, r.trapInThread);
});

// Every backend test, with the model in a worker (and a timeout that a correct model never reaches).
modelSuite('wasm', { options: async () => ({ backend: 'wasm', worker: true, timeout: 30_000 }), tol: 0 });

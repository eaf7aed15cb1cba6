// The hostile-artifact corpus (tests/artifact_corpus/make_corpus.py) through
// the Node entry: every case must end in an allowed outcome (load, run every
// signature on zeros, dispose: 'ok' or the error's `name`) within 5 s, with no
// error quoting the secret file and no file opened outside the case directory
// (fs is spied on; opens of the secret, /dev, /etc are also refused), and no
// unhandled rejection. WebAssembly cases load with {backend: 'wasm', worker:
// true, timeout: 1000}, WebGPU cases with {backend: 'webgpu', gpu} (Dawn on
// SwiftShader, helpers.js; a missing adapter fails them). Cases run in a
// harness child process, killed (outcome 'Hang') if a case never settles and
// replaced if one crashes it (outcome 'HarnessCrash'). Python's loader runs the
// same corpus (tests/artifact_corpus/corpus_harness.py) and must agree case by
// case. Last, an HTTP test: file names that are URLs or leave the model's path
// must not make the URL reader fetch anything outside it.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const MAKE_CORPUS = join(repo, 'tests', 'artifact_corpus', 'make_corpus.py');
const PY_HARNESS = join(repo, 'tests', 'artifact_corpus', 'corpus_harness.py');
const NODE_ENTRY = pathToFileURL(join(repo, 'js', 'node.js')).href;
const HELPERS = pathToFileURL(join(here, 'helpers.js')).href;
const TIME_LIMIT_MS = 5000;
const CAP_MS = 8000; // a case not settled by then is a hang: its harness process is killed
const RSS_LIMIT_KIB = 2 * 1024 * 1024;

/**
 * The fs spy and the outcome rule, as one function of `require`: the harness
 * child process runs its source text, this file uses unstickFifos. Returns
 * {installSpy, runCase, unstickFifos}.
 */
function harnessModule(require) {
  const fs = require('node:fs');
  const path = require('node:path');
  const os = require('node:os');
  const url = require('node:url');
  const { syncBuiltinESMExports } = require('node:module');
  const original = { realpathSync: fs.realpathSync, openSync: fs.openSync, closeSync: fs.closeSync, lstatSync: fs.lstatSync, readdirSync: fs.readdirSync };
  const refusedPath = path.join(os.tmpdir(), `webtensor-corpus-refused-${process.pid}`, 'refused-by-the-corpus-test');
  let active = null; // {caseDir, corpus, ignore, outside, refused}

  const inside = (p, root) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

  /** Real path of a possibly missing path: the longest existing prefix resolved. */
  function real(p) {
    const tail = [];
    let head = p;
    for (;;) {
      try {
        return path.join(original.realpathSync(head), ...tail.reverse());
      } catch {
        const parent = path.dirname(head);
        if (parent === head) return path.join(head, ...tail.reverse());
        tail.push(path.basename(head));
        head = parent;
      }
    }
  }

  function pathOf(p) {
    if (typeof p === 'string') return p;
    if (Buffer.isBuffer(p)) return p.toString();
    if (p instanceof URL || (p && typeof p.href === 'string' && p.protocol === 'file:')) {
      try { return url.fileURLToPath(p); } catch { return String(p.href); }
    }
    return null; // a file descriptor or FileHandle
  }

  /** Record an open of `p`; return the path to really open (a missing one when refused). */
  function check(op, p, flags) {
    const a = active;
    const given = pathOf(p);
    if (!a || given === null || given.includes('\0')) return p;
    const full = path.resolve(given);
    const nofollow = typeof flags === 'number' && (flags & fs.constants.O_NOFOLLOW) !== 0;
    const resolved = nofollow ? path.join(real(path.dirname(full)), path.basename(full)) : real(full);
    if (inside(resolved, a.caseDir)) return p;
    const dangerous = inside(resolved, a.corpus) || /^\/(dev|proc|sys|etc)\//.test(resolved);
    if (!dangerous && a.ignore.some((d) => inside(resolved, d) || inside(full, d))) return p; // the runtime's own modules
    a.outside.push(`${op}(${given})${resolved === given ? '' : ' -> ' + resolved}`);
    if (!dangerous) return p;
    a.refused.push(resolved);
    return refusedPath;
  }

  function installSpy() {
    const wrap = (obj, name, flagsAt) => {
      const fn = obj[name];
      obj[name] = function spied(p, ...rest) {
        return fn.call(this, check(name, p, rest[flagsAt]), ...rest);
      };
    };
    wrap(fs.promises, 'open', 0);
    wrap(fs.promises, 'readFile', -1);
    wrap(fs, 'readFileSync', -1);
    wrap(fs, 'openSync', 0);
    wrap(fs, 'createReadStream', -1);
    wrap(fs, 'open', 0);
    wrap(fs, 'readFile', -1);
    syncBuiltinESMExports();
  }

  const TYPES = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };
  function refusal(msg) {
    const e = new Error(`the harness will not build an input of ${msg}`);
    e.name = 'HarnessRefused';
    return e;
  }
  function zeros(spec) {
    const dtype = spec?.dtype;
    const shape = spec?.shape;
    if (typeof dtype !== 'string' || !Object.hasOwn(TYPES, dtype)) throw refusal(`dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 32 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= 2 ** 31 - 1)) {
      throw refusal(`shape ${JSON.stringify(shape)?.slice(0, 80)}`);
    }
    const n = shape.reduce((x, d) => x * d, 1);
    if (n > 2 ** 24) throw refusal(`${n} elements`);
    return new TYPES[dtype](n);
  }

  const fromError = (e) => ({
    outcome: e !== null && typeof e === 'object' && typeof e.name === 'string' ? e.name : `thrown ${typeof e}`,
    message: String(e?.message ?? e),
  });

  /** {outcome, message} of one case (the rule in make_corpus.py). */
  async function outcome(webtensor, dir, backend, gpu) {
    let model;
    try {
      model = await webtensor.load(dir, backend === 'webgpu' ? { backend, gpu } : { backend, worker: true, timeout: 1000 });
    } catch (e) {
      return fromError(e);
    }
    let result = { outcome: 'ok', message: '' };
    try {
      for (const [name, sig] of Object.entries(model.signatures)) await model.run(name, sig.inputs.map(zeros));
    } catch (e) {
      result = fromError(e);
    }
    try {
      await model.dispose();
    } catch (e) {
      if (result.outcome === 'ok') result = fromError(e);
    }
    return result;
  }

  async function runCase(webtensor, entry, corpus, gpu, ignore) {
    const caseDir = path.join(corpus, entry.dir);
    active = { caseDir: original.realpathSync(caseDir), corpus: original.realpathSync(corpus), ignore, outside: [], refused: [] };
    const a = active;
    const t0 = performance.now();
    try {
      const r = await outcome(webtensor, caseDir, entry.backend, gpu);
      return { ...r, ms: Math.round(performance.now() - t0), outside: a.outside, refused: a.refused };
    } finally {
      active = null;
    }
  }

  /** Wake any reader blocked opening a FIFO of the case (it then reads end-of-file). */
  function unstickFifos(caseDir) {
    const walk = (d) => {
      let names = [];
      try { names = original.readdirSync(d); } catch { return; }
      for (const n of names) {
        const p = path.join(d, n);
        let st;
        try { st = original.lstatSync(p); } catch { continue; }
        if (st.isDirectory()) walk(p);
        else if (st.isFIFO()) {
          try { original.closeSync(original.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)); } catch { /* ENXIO: nobody waits */ }
        }
      }
    };
    walk(caseDir);
  }

  return { installSpy, runCase, unstickFifos };
}

// The harness child process: imports the Node entry after installing the spy,
// then runs one case per IPC message. A separate process, not a Worker, so that
// a case that aborts or kills its process (a native assertion, OOM) is reported
// as 'HarnessCrash' instead of ending the test run. Unhandled rejections are
// recorded against the case (a loader that leaves one crashes a default Node).
const CHILD_SOURCE = `
const h = (${harnessModule.toString()})(require);
h.installSpy();
let stray = [];
process.on('unhandledRejection', (e) => { stray.push(String(e && e.stack || e)); });
const [entryUrl, helpersUrl] = JSON.parse(process.env.WEBTENSOR_CORPUS_CHILD);
(async () => {
  const webtensor = await import(entryUrl);
  let gpuInfo = null;
  process.on('message', async ({ entry, corpus, ignore }) => {
    stray = [];
    let gpu = null;
    if (entry.backend === 'webgpu') {
      gpuInfo ??= await (await import(helpersUrl)).getGPU().catch((e) => ({ gpu: null, reason: e.message }));
      gpu = gpuInfo.gpu;
    }
    const r = gpu || entry.backend !== 'webgpu'
      ? await h.runCase(webtensor, entry, corpus, gpu, ignore)
      : { outcome: 'NoAdapter', message: String(gpuInfo.reason), ms: 0, outside: [], refused: [] };
    await new Promise((res) => setTimeout(res, 20)); // let stray rejections surface
    process.send({ ...r, stray, maxRSS: process.resourceUsage().maxRSS });
  });
  process.send({ ready: true });
})().catch((e) => process.send({ ready: false, error: String(e && e.stack || e) }));
`;

class HarnessChild {
  constructor() {
    this.child = null;
    this.maxRSS = 0;
  }

  start() {
    const env = { ...process.env, WEBTENSOR_CORPUS_CHILD: JSON.stringify([NODE_ENTRY, HELPERS]) };
    delete env.NODE_TEST_CONTEXT; // the child is not a node:test file
    const child = spawn(process.execPath, ['-e', CHILD_SOURCE], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env });
    child.stderrTail = '';
    child.stderr.on('data', (d) => { child.stderrTail = (child.stderrTail + d).slice(-4000); });
    this.child = child;
    this.ready = new Promise((res, rej) => {
      child.once('message', (m) => (m.ready ? res() : rej(new Error(`harness child: ${m.error}`))));
      child.once('exit', (code, signal) => rej(new Error(`harness child exited (${code ?? signal}): ${child.stderrTail}`)));
    });
  }

  /** Run a case; one that does not settle within CAP_MS or ends the child ends it (a fresh child runs the next). */
  async run(entry, corpus, ignore) {
    if (!this.child) this.start();
    await this.ready;
    const child = this.child;
    const result = await new Promise((res) => {
      const done = (r) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        res(r);
      };
      const onMessage = (m) => done(m);
      const onExit = (code, signal) => done({ outcome: 'HarnessCrash', message: `the harness process died (${signal ?? `exit code ${code}`}): ${child.stderrTail}`,
        ms: 0, outside: [], refused: [], stray: [], dead: true });
      const timer = setTimeout(() => done({ outcome: 'Hang', message: `no outcome after ${CAP_MS} ms`, ms: CAP_MS, outside: [], refused: [], stray: [], dead: true }), CAP_MS);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ entry, corpus, ignore });
    });
    if (result.dead) {
      this.child = null;
      child.kill('SIGKILL');
    }
    this.maxRSS = Math.max(this.maxRSS, result.maxRSS ?? 0);
    return result;
  }

  stop() {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

// ---- the corpus (built once, before the tests are declared) -----------------------------------------

const root = mkdtempSync(join(tmpdir(), 'webtensor-corpus-js-'));
const corpus = join(root, 'corpus');
execFileSync('python3', [MAKE_CORPUS, corpus], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
const index = JSON.parse(readFileSync(join(corpus, 'index.json'), 'utf8'));
const secret = JSON.parse(readFileSync(join(corpus, 'secret.json'), 'utf8'));

// Python's loader on its own copy of the corpus, concurrently (FIFO cases must not share readers).
const pythonOutcomes = new Promise((res) => {
  execFile('python3', [PY_HARNESS, '--build'], { maxBuffer: 1 << 26, timeout: 600_000 }, (error, stdout, stderr) => {
    res(error ? { error: `${error.message}\n${stderr}`.slice(0, 4000) } : { outcomes: JSON.parse(stdout) });
  });
});

const h = harnessModule(createRequire(import.meta.url));
const webtensor = await import(NODE_ENTRY);
const ignore = [join(repo, 'js'), join(repo, 'node_modules')]; // the runtime's own modules
const harness = new HarnessChild();
const jsOutcomes = {};

after(() => {
  harness.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('hostile artifact corpus', () => {
  for (const entry of index) {
    test(`${entry.name}: ${entry.desc}`, { timeout: 60_000 }, async () => {
      const r = await harness.run(entry, corpus, ignore);
      assert.notEqual(r.outcome, 'NoAdapter', `a WebGPU adapter is required (WebGPU cases are not skipped): ${r.message}`);
      h.unstickFifos(join(corpus, entry.dir));
      jsOutcomes[entry.name] = r.outcome;
      const where = `${entry.name} (${entry.desc})`;
      assert.ok(!r.message.includes(secret.token), `${where}: the error quotes the secret file: ${r.message.slice(0, 300)}`);
      assert.ok(!r.message.toLowerCase().includes(secret.sha256), `${where}: the error quotes the secret file's SHA-256`);
      assert.deepEqual(r.outside, [], `${where}: opened outside the case directory`);
      assert.ok(entry.expect.includes(r.outcome), `${where}: outcome ${r.outcome} (${r.message.slice(0, 400)}), expected one of ${entry.expect}`);
      assert.ok(r.ms < TIME_LIMIT_MS, `${where}: took ${r.ms} ms`);
      assert.deepEqual(r.stray, [], `${where}: unhandled promise rejections`);
    });
  }

  test('Python and JS agree on every case', { timeout: 600_000 }, async () => {
    const py = await pythonOutcomes;
    assert.ok(py.outcomes, `the Python run failed: ${py.error}`);
    const differ = index.filter((e) => py.outcomes[e.name] !== jsOutcomes[e.name])
      .map((e) => `${e.name}: python ${py.outcomes[e.name]}, js ${jsOutcomes[e.name]}`);
    assert.deepEqual(differ, [], `${differ.length} case(s) differ:\n${differ.join('\n')}`);
  });

  test('peak RSS stayed under 2 GiB', () => {
    const peak = Math.max(process.resourceUsage().maxRSS, harness.maxRSS);
    assert.ok(peak < RSS_LIMIT_KIB, `peak RSS ${Math.round(peak / 1024)} MiB (this process or the harness process)`);
  });
});

// ---- URLs in file names (the URL reader) ---------------------------------------------------------------

describe('file names that leave the model over HTTP', () => {
  test('URL, protocol-relative, absolute and encoded names, redirects: ArtifactError, nothing fetched outside the model', { timeout: 60_000 }, async () => {
    const base = join(corpus, index[0].dir);
    const files = {
      'manifest.json': readFileSync(join(base, 'manifest.json')),
      'module.wasm': readFileSync(join(base, 'module.wasm')),
      'weights.safetensors': readFileSync(join(base, 'weights.safetensors')),
    };
    for (const k of Object.keys(JSON.parse(files['manifest.json']).files)) files[k] ??= readFileSync(join(base, k));

    const hitsB = [];
    const serverB = createServer((req, res) => { hitsB.push(req.url); res.end('secret from B'); });
    const hitsA = [];
    let manifests = {};
    const serverA = createServer((req, res) => {
      hitsA.push(req.url);
      const redirect = { '/m/redirect/weights.safetensors': `http://127.0.0.1:${portB}/secret`, '/m/redirect2/weights.safetensors': '/secret' }[req.url];
      if (redirect) { res.writeHead(302, { location: redirect }); res.end(); return; }
      const m = /^\/m\/(\w+)\/(.*)$/.exec(req.url);
      const name = m && decodeURIComponent(m[2]);
      const body = !m ? null : name === 'manifest.json' ? manifests[m[1]] : Object.hasOwn(files, name) ? files[name] : null;
      if (!body) { res.statusCode = 404; res.end(); return; }
      res.end(body);
    });
    const listen = (s) => new Promise((res) => s.listen(0, '127.0.0.1', () => res(s.address().port)));
    let portB;
    portB = await listen(serverB);
    const portA = await listen(serverA);
    try {
      const names = [`http://127.0.0.1:${portB}/secret`, `//127.0.0.1:${portB}/secret`, '/secret',
        '%2e%2e/%2e%2e/secret', `\\\\127.0.0.1:${portB}\\secret`, '../../secret', `HTTP://127.0.0.1:${portB}/secret`];
      const manifest = JSON.parse(files['manifest.json']);
      manifests = Object.fromEntries(names.map((n, k) => [String(k), JSON.stringify({
        ...manifest, files: { ...manifest.files, [n]: { bytes: 13, sha256: '5'.repeat(64) } },
      })]));
      manifests.base = manifests.redirect = manifests.redirect2 = files['manifest.json'];
      names.push(null, null); // 'redirect': weights.safetensors answers 302 to server B; 'redirect2': 302 to /secret on A
      const browser = await import('../index.js');
      const entries = [['node.js', webtensor.load], ['index.js', browser.load]];
      for (const [entry, load] of entries) { // the control: the unchanged artifact loads over HTTP
        const model = await load(`http://127.0.0.1:${portA}/m/base/`, { backend: 'wasm' });
        model.dispose();
      }
      for (const [i, n] of names.entries()) {
        const k = n !== null ? String(i) : i === names.length - 2 ? 'redirect' : 'redirect2';
        for (const [entry, load] of entries) {
          hitsA.length = 0;
          const error = await load(`http://127.0.0.1:${portA}/m/${k}/`, { backend: 'wasm' }).then((m) => { m.dispose(); return null; }, (e) => e);
          const what = `${entry}, ${n !== null ? `a manifest listing ${JSON.stringify(n)}` : `a redirect (${k})`}`;
          assert.deepEqual(hitsB, [], `${what}: server B (the URL's target) got requests`);
          assert.deepEqual(hitsA.filter((u) => !u.startsWith(`/m/${k}/`)), [], `${what}: server A got requests outside /m/${k}/`);
          assert.ok(error, `${what}: loaded`);
          assert.equal(error.name, 'ArtifactError', `${what}: ${error.name}: ${error.message}`);
        }
      }
    } finally {
      serverA.close();
      serverB.close();
    }
  });
});

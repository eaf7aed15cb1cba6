// Shared test helpers: fixture artifacts (built by fixtures/make_fixtures.py),
// damaging them, Python interop, and a Dawn (npm `webgpu`) GPU on SwiftShader.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFile, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { tensor } from '../node.js';

const here = dirname(fileURLToPath(import.meta.url));
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

let fixtures = null;

/** Build the fixtures once per test process: {dir (the 'linear' artifact), expected, cleanup()}. */
export function buildFixtures() {
  if (fixtures) return fixtures;
  const out = mkdtempSync(join(tmpdir(), 'webtensor-js-'));
  execFileSync('python3', [join(here, 'fixtures', 'make_fixtures.py'), out], { stdio: ['ignore', 'inherit', 'inherit'] });
  const e = JSON.parse(readFileSync(join(out, 'expected.json'), 'utf8'));
  fixtures = {
    out,
    dir: join(out, 'linear'),
    expected: e,
    x: new Float32Array(e.x),
    t: new Float32Array(e.t),
    labels: new Int32Array(e.labels),
    cleanup: () => rmSync(out, { recursive: true, force: true }),
  };
  return fixtures;
}

/** Run a Python fixture script (`python3 script OUT`) into a new temporary folder: {out, expected}
 * (its `expected.json`). The caller removes `out` when done. */
export function pythonFixture(script, prefix) {
  const out = mkdtempSync(join(tmpdir(), prefix));
  execFileSync('python3', [script, out], { stdio: ['ignore', 'inherit', 'inherit'] });
  return { out, expected: JSON.parse(readFileSync(join(out, 'expected.json'), 'utf8')) };
}

/** Every file of an artifact directory as {relative name: Uint8Array}. */
export function readDir(dir) {
  const files = {};
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files[relative(dir, p).split('\\').join('/')] = new Uint8Array(readFileSync(p));
    }
  };
  walk(dir);
  return files;
}

/** Apply `edit(manifest)` to the manifest and re-list every file's size and SHA-256 (a consistent, re-signed artifact). */
export function resign(files, edit = () => {}) {
  const manifest = JSON.parse(new TextDecoder().decode(files['manifest.json']));
  edit(manifest);
  for (const name of Object.keys(manifest.files)) {
    if (!files[name]) continue;
    manifest.files[name] = { bytes: files[name].length, sha256: createHash('sha256').update(files[name]).digest('hex') };
  }
  return { ...files, 'manifest.json': new TextEncoder().encode(JSON.stringify(manifest)) };
}

/** Run Python code with `input` on stdin; return its stdout parsed as JSON. */
export function python(code, input) {
  return JSON.parse(execFileSync('python3', ['-c', code], { input, maxBuffer: 1 << 26 }).toString());
}

let gpuPromise = null;

/** Whether these tests run in CI (CI=true there): a missing WebGPU adapter is then a failure. */
export const IN_CI = !['', '0', 'false'].includes(String(process.env.CI ?? '').toLowerCase());

/**
 * A GPU object from the npm `webgpu` package (Dawn) whose adapter exists, or
 * null with a reason (then WebGPU tests are skipped, with that reason). In CI
 * (`process.env.CI` set) there is no skipping: a missing adapter rejects, and
 * the tests that asked for it fail. Without a GPU, Dawn needs SwiftShader's
 * Vulkan driver, which Debian's chromium package ships.
 */
export function getGPU() {
  return findGPU().then((r) => {
    if (r.gpu) return r;
    if (IN_CI) throw new Error(`${r.reason}: in CI (CI=${process.env.CI}) a missing WebGPU adapter is a failure, not a skip`);
    return { gpu: null, reason: `${r.reason}; skipped (CI is not set; in CI this is a failure)` };
  });
}

function findGPU() {
  gpuPromise ??= (async () => {
    if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
    process.env.XDG_RUNTIME_DIR ??= tmpdir();
    let webgpu;
    try {
      webgpu = await import('webgpu');
    } catch (e) {
      return { gpu: null, reason: `npm 'webgpu' is not installed (${e.message})` };
    }
    const gpu = webgpu.create([]);
    const adapter = await gpu.requestAdapter();
    return adapter ? { gpu, reason: null } : { gpu: null, reason: 'no WebGPU adapter (Dawn found no Vulkan driver)' };
  })();
  return gpuPromise;
}

/** Largest |a[i] - b[i]|. */
export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Debian's Chromium, for the browser tests (skipped where it is not installed). */
export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless=new', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * Serve `page` (an HTML string) at / of a 127.0.0.1 server that also serves
 * js/ at /js/ and `fixturesDir` at /fixtures/, open it in headless Chromium
 * (with `flags` added), and resolve to the JSON the page POSTs to /result
 * ({error} when Chromium exits first or after 90 s). Cleans up the browser's
 * process group, the server and the profile.
 */
export async function runPage(t, page, fixturesDir, flags = []) {
  const jsDir = join(here, '..');
  const types = { '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };
  let resolveResult;
  const result = new Promise((resolve) => { resolveResult = resolve; });
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => { res.end(); resolveResult(JSON.parse(body)); });
      return;
    }
    if (path === '/') { res.writeHead(200, { 'content-type': 'text/html' }).end(page); return; }
    const file = path.startsWith('/js/') ? join(jsDir, normalize(path.slice(4)))
      : path.startsWith('/fixtures/') ? join(fixturesDir, normalize(path.slice(10))) : null;
    if (!file || file.includes('..')) { res.writeHead(404).end(); return; }
    readFile(file, (err, data) => {
      if (err) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(data);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const profile = mkdtempSync(join(tmpdir(), 'webtensor-chromium-'));
  const chromium = spawn(CHROMIUM, [...CHROMIUM_FLAGS, ...flags, `--user-data-dir=${profile}`, `http://127.0.0.1:${server.address().port}/`],
    { stdio: 'ignore', detached: true });
  const exited = new Promise((resolve) => chromium.on('exit', (code) => resolve({ error: `chromium exited (${code}) before the page reported` })));
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve({ error: 'no result from the page in 90 s' }), 90_000); });
  try {
    return await Promise.race([result, exited, timeout]);
  } finally {
    clearTimeout(timer);
    // Chromium's GPU and renderer processes outlive the browser process for a moment and
    // keep writing the profile: end the whole process group, then remove it with retries.
    try { process.kill(-chromium.pid, 'SIGKILL'); } catch { /* already gone */ }
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    server.close();
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    } catch (err) {
      t.diagnostic(`could not remove the Chromium profile ${profile}: ${err.message}`);
    }
  }
}

/** A train step per batch of `expected.batches` ({x, y}: `expected.batch` rows of `expected.inputs`,
 * tests/export_fixtures_inplace.py's format): {losses, weights: {name: number[]}} after the last. */
export async function trainOnBatches(model, expected) {
  const losses = [];
  for (const b of expected.batches) {
    const loss = await model.trainStep(tensor(new Float32Array(b.x), [expected.batch, expected.inputs]), new Int32Array(b.y));
    losses.push(loss.dataSync()[0]);
  }
  const weights = await model.getWeights();
  return { losses, weights: Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, Array.from(v.dataSync())])) };
}

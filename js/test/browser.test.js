// The browser entry in headless Chromium (Debian's /usr/bin/chromium, WebGPU on
// SwiftShader): a page served from 127.0.0.1 loads the fixture artifact by URL
// with backend 'auto' (WebGPU) and 'wasm', predicts and trains, and posts its
// results back. Skipped when Chromium is not installed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFile, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';

import { buildFixtures } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
  '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];
const jsDir = join(dirname(fileURLToPath(import.meta.url)), '..');

const PAGE = `<!doctype html><script type="module">
import * as webtensor from '/js/index.js';
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const e = await (await fetch('/fixtures/expected.json')).json();
  const results = {};
  for (const backend of ['auto', 'wasm']) {
    const model = await webtensor.load('/fixtures/linear', { backend });
    const y = await model.predict(webtensor.tensor(new Float32Array(e.x), [8, 4]));
    const losses = [];
    for (let s = 0; s < 50; s++) losses.push((await model.trainStep(new Float32Array(e.x), new Float32Array(e.t))).dataSync()[0]);
    const w = await model.getWeights();
    results[backend] = { backend: model.backend, adapterInfo: model.adapterInfo, y: Array.from(y.dataSync()), losses,
      kernel: Array.from(w['dense/kernel'].dataSync()), saved: (await model.saveWeights()).length };
    model.dispose();
  }
  await report({ results, hasGPU: 'gpu' in navigator });
} catch (err) {
  await report({ error: String(err && err.stack || err) });
}
</script>`;

let fx;
before(() => { fx = buildFixtures(); });
after(() => fx.cleanup());

test('the browser entry runs the artifact in headless Chromium (WebGPU and wasm)', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed`);
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
    if (path === '/') { res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE); return; }
    const file = path.startsWith('/js/') ? join(jsDir, normalize(path.slice(4)))
      : path.startsWith('/fixtures/') ? join(fx.out, normalize(path.slice(10))) : null;
    if (!file || file.includes('..')) { res.writeHead(404).end(); return; }
    readFile(file, (err, data) => {
      if (err) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(data);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const profile = mkdtempSync(join(tmpdir(), 'webtensor-chromium-'));
  const chromium = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, `http://127.0.0.1:${server.address().port}/`], { stdio: 'ignore', detached: true });
  const exited = new Promise((resolve) => chromium.on('exit', (code) => resolve({ error: `chromium exited (${code}) before the page reported` })));
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve({ error: 'no result from the page in 90 s' }), 90_000); });
  try {
    const r = await Promise.race([result, exited, timeout]);
    assert.equal(r.error, undefined, r.error);
    const { expected } = fx;
    assert.equal(r.results.wasm.backend, 'wasm');
    assert.deepEqual(r.results.wasm.y, expected.predict.y);
    assert.deepEqual(r.results.wasm.losses, expected.train.losses);
    assert.deepEqual(r.results.wasm.kernel, expected.train['dense/kernel']);
    if (r.hasGPU) {
      assert.equal(r.results.auto.backend, 'webgpu');
      assert.equal(typeof r.results.auto.adapterInfo.vendor, 'string');
    }
    const auto = r.results.auto;
    auto.y.forEach((v, i) => assert.ok(Math.abs(v - expected.predict.y[i]) <= 1e-5, `y[${i}]`));
    auto.losses.forEach((v, i) => assert.ok(Math.abs(v - expected.train.losses[i]) <= 1e-4, `loss ${i}`));
    assert.ok(auto.saved > 0);
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
});

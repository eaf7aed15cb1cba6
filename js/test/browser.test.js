// The browser entry in headless Chromium (Debian's /usr/bin/chromium, WebGPU on
// SwiftShader): a page served from 127.0.0.1 loads the fixture artifact by URL
// with backend 'webgpu', 'auto' (wasm on SwiftShader, a software adapter) and
// 'wasm', predicts and trains, and posts its results back. Skipped when
// Chromium is not installed.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { CHROMIUM, buildFixtures, runPage } from './helpers.js';

const FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'];

const PAGE = `<!doctype html><script type="module">
import * as webtensor from '/js/index.js';
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const e = await (await fetch('/fixtures/expected.json')).json();
  const results = {};
  const hasGPU = 'gpu' in navigator;
  const software = hasGPU && webtensor.isSoftwareAdapter((await navigator.gpu.requestAdapter())?.info);
  for (const backend of hasGPU ? ['webgpu', 'auto', 'wasm'] : ['auto', 'wasm']) {
    const model = await webtensor.load('/fixtures/linear', { backend });
    const y = await model.predict(webtensor.tensor(new Float32Array(e.x), [8, 4]));
    const losses = [];
    for (let s = 0; s < 50; s++) losses.push((await model.trainStep(new Float32Array(e.x), new Float32Array(e.t))).dataSync()[0]);
    const w = await model.getWeights();
    results[backend] = { backend: model.backend, adapterInfo: model.adapterInfo, y: Array.from(y.dataSync()), losses,
      kernel: Array.from(w['dense/kernel'].dataSync()), saved: (await model.saveWeights()).length };
    model.dispose();
  }
  await report({ results, hasGPU, software });
} catch (err) {
  await report({ error: String(err && err.stack || err) });
}
</script>`;

let fx;
before(() => { fx = buildFixtures(); });
after(() => fx.cleanup());

test('the browser entry runs the artifact in headless Chromium (WebGPU and wasm)', { timeout: 120_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) return t.skip(`${CHROMIUM} is not installed`);
  const r = await runPage(t, PAGE, fx.out, FLAGS);
  assert.equal(r.error, undefined, r.error);
  const { expected } = fx;
  assert.equal(r.results.wasm.backend, 'wasm');
  assert.deepEqual(r.results.wasm.y, expected.predict.y);
  assert.deepEqual(r.results.wasm.losses, expected.train.losses);
  assert.deepEqual(r.results.wasm.kernel, expected.train['dense/kernel']);
  if (r.hasGPU) {
    assert.equal(r.results.webgpu.backend, 'webgpu');
    assert.equal(r.results.webgpu.adapterInfo.architecture, 'swiftshader'); // FLAGS choose SwiftShader
    assert.equal(r.software, true);
    assert.equal(r.results.auto.backend, 'wasm'); // 'auto' does not pick a software adapter
  } else {
    assert.equal(r.results.auto.backend, 'wasm');
  }
  for (const run of [r.results.webgpu, r.results.auto].filter(Boolean)) {
    run.y.forEach((v, i) => assert.ok(Math.abs(v - expected.predict.y[i]) <= 1e-5, `${run.backend} y[${i}]`));
    run.losses.forEach((v, i) => assert.ok(Math.abs(v - expected.train.losses[i]) <= 1e-4, `${run.backend} loss ${i}`));
    assert.ok(run.saved > 0);
  }
});

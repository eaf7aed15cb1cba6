// The model server under load: `webtensor serve` (js/serve.js) answering TF Serving REST predict
// requests for the digits MLP (8x8x1 -> 128 -> 64 -> 10, the main job's model, exported at batch
// 32), loaded by autocannon on 127.0.0.1 with 1 and 64 concurrent connections, one 8x8 image per
// request. Reference, measured in the same run: the same model's predict called in-process (one
// 32-row batch per call), so the ratio says how much of the engine's throughput reaches clients.
//
// The Python server (`python -m webtensor serve`, webtensor.serving) is loaded the same way.
//
// Usage: node bench/bench_serve.mjs [--seconds 5] [--wait-ms 0]

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import autocannon from 'autocannon';

import * as webtensor from '../js/node.js';
import { serve } from '../js/serve.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = opt('seconds', 5);
const WAIT_MS = opt('wait-ms', 0);
const BATCH = 32;

const out = mkdtempSync(join(tmpdir(), 'webtensor-bench-serve-'));
execFileSync('python3', ['-c', `
import sys, webtensor as wt
from webtensor.__main__ import build_model
wt.set_seed(0)
m = build_model("mlp")
m.compile(wt.optimizers.Adam(1e-3), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
m.export(sys.argv[1], batch_size=${BATCH}, signatures=["predict"])
`, join(out, 'digits', '1')], { stdio: ['ignore', 'inherit', 'inherit'] });

// In-process reference: predict on full batches, rows/s.
const model = await webtensor.load(join(out, 'digits', '1'), { backend: 'wasm' });
const x = webtensor.tensor(Float32Array.from({ length: BATCH * 64 }, (_, i) => (i % 17) / 16), [BATCH, 8, 8, 1]);
for (let i = 0; i < 20; i++) await model.predict(x);
let calls = 0;
const t0 = performance.now();
while (performance.now() - t0 < SECONDS * 1000) {
  await model.predict(x);
  calls++;
}
const directRows = (calls * BATCH) / ((performance.now() - t0) / 1000);
model.dispose();

async function load(server, port) {
  for (const connections of [1, 64]) {
    const r = await autocannon({
      url: `http://127.0.0.1:${port}/v1/models/digits:predict`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections,
      duration: SECONDS,
    });
    console.log(`${server.padEnd(6)} | ${String(connections).padStart(11)} | ${r.requests.average.toFixed(0).padStart(10)} | ${String(r.latency.p50).padStart(6)} | ${String(r.latency.p99).padStart(6)} | ${String(r.errors + r.timeouts).padStart(6)} | ${String(r.non2xx).padStart(7)} | ${(r.requests.average / directRows).toFixed(3)}`);
  }
}

const image = Array.from({ length: 8 }, (_, i) => Array.from({ length: 8 }, (_, j) => [((i * 8 + j) % 17) / 16]));
const body = JSON.stringify({ instances: [image] });
console.log(`digits MLP (batch ${BATCH} artifact, wasm), one image per request, ${SECONDS} s per run, batch wait ${WAIT_MS} ms`);
console.log(`in-process predict (Node): ${directRows.toFixed(0)} rows/s (reference)`);
console.log('server | connections | requests/s | p50 ms | p99 ms | errors | non-2xx | requests/s / in-process rows/s');

const srv = await serve([{ basePath: join(out, 'digits') }], { port: 0, maxBatchWaitMs: WAIT_MS });
await load('node', srv.port);
await srv.close();

const py = spawn('python3', ['-m', 'webtensor', 'serve', join(out, 'digits'), '--port', '0', '--max_batch_wait_ms', String(WAIT_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
const pyPort = await new Promise((resolve, reject) => {
  let text = '';
  py.stdout.on('data', (d) => {
    text += d;
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    if (m) resolve(Number(m[1]));
  });
  py.on('exit', (code) => reject(new Error(`python server exited ${code}: ${text}`)));
});
await load('python', pyPort);
py.kill('SIGTERM');
await new Promise((resolve) => py.on('exit', resolve));
rmSync(out, { recursive: true, force: true });

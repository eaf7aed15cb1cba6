// The model server (js/serve.js, `webtensor serve`): TensorFlow Serving's folder layout and REST API
// on the hand-built linear artifact (y = x @ W + b, x [8, 4] -> y [8, 3]; the batch is 8 rows). Each
// row of y depends only on its row of x, so every served row must equal the expected row exactly,
// whatever batch it shared with other requests and whatever padding filled it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import autocannon from 'autocannon';

import { serve } from '../serve.js';
import { buildFixtures } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', 'bin', 'webtensor.js');
// The bad requests both servers (this one and python/serving.py) must answer alike.
const CASES = JSON.parse(readFileSync(join(here, '..', '..', 'tests', 'serving_cases.json'), 'utf8')).cases;
const D = 4;
const M = 3;

let fx, base, x, y;
before(() => {
  fx = buildFixtures();
  base = mkdtempSync(join(tmpdir(), 'webtensor-serve-'));
  // Versions 1 and 3 (3 is served), a non-numeric folder and a file that are not versions.
  for (const v of ['1', '3']) cpSync(fx.dir, join(base, 'linear', v), { recursive: true });
  mkdirSync(join(base, 'linear', 'tmp'));
  writeFileSync(join(base, 'linear', '7'), 'a file, not a version folder');
  mkdirSync(join(base, 'empty'));
  x = Array.from({ length: 8 }, (_, i) => Array.from(fx.x.subarray(i * D, (i + 1) * D)));
  y = Array.from({ length: 8 }, (_, i) => fx.expected.predict.y.slice(i * M, (i + 1) * M));
});
after(() => rmSync(base, { recursive: true, force: true }));

/** {status, body (parsed JSON), headers} of one request. */
function call(port, method, path, body, { raw = false } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : raw ? body : JSON.stringify(body);
    const req = request({ host: '127.0.0.1', port, method, path, headers: data === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode, headers: res.headers, body: JSON.parse(text) });
      });
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Float32 rows as the server computes them (JSON numbers are the float32 values exactly). */
const f32 = (rows) => rows.map((r) => r.map((v) => Math.fround(v)));

describe('webtensor serve', () => {
  let srv;
  before(async () => {
    srv = await serve([{ basePath: join(base, 'linear') }], { port: 0, maxBatchWaitMs: 20, maxBodyBytes: 4096 });
  });
  after(() => srv.close());

  test('model status and metadata follow TF Serving (the highest version folder is served)', async () => {
    const status = await call(srv.port, 'GET', '/v1/models/linear');
    assert.equal(status.status, 200);
    assert.deepEqual(status.body, { model_version_status: [{ version: '3', state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }] });
    assert.equal((await call(srv.port, 'GET', '/v1/models/linear/versions/3')).status, 200);
    const meta = await call(srv.port, 'GET', '/v1/models/linear/metadata');
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.body.model_spec, { name: 'linear', signature_name: '', version: '3' });
    const sig = meta.body.metadata.signature_def.signature_def.serving_default;
    assert.deepEqual(sig.inputs.x, { dtype: 'DT_FLOAT', tensor_shape: { dim: [{ size: '-1', name: '' }, { size: '4', name: '' }], unknown_rank: false }, name: 'x' });
    assert.deepEqual(Object.keys(sig.outputs), ['y']);
    assert.equal(sig.method_name, 'tensorflow/serving/predict');
  });

  test('row format: {"instances"} -> {"predictions"}, one row each, exact', async () => {
    const r = await call(srv.port, 'POST', '/v1/models/linear:predict', { instances: x.slice(0, 3) });
    assert.equal(r.status, 200);
    assert.deepEqual(f32(r.body.predictions), f32(y.slice(0, 3)));
    const named = await call(srv.port, 'POST', '/v1/models/linear/versions/3:predict', { signature_name: 'serving_default', instances: [{ x: x[5] }] });
    assert.deepEqual(f32(named.body.predictions), f32([y[5]]));
  });

  test('columnar format: {"inputs"} -> {"outputs"}, more rows than one batch', async () => {
    const rows = [...x, ...x.slice(0, 3)]; // 11 rows: two runs of the 8-row artifact
    const r = await call(srv.port, 'POST', '/v1/models/linear:predict', { inputs: rows });
    assert.equal(r.status, 200);
    assert.deepEqual(f32(r.body.outputs), f32([...y, ...y.slice(0, 3)]));
    const byName = await call(srv.port, 'POST', '/v1/models/linear:predict', { inputs: { x: [x[7]] } });
    assert.deepEqual(f32(byName.body.outputs), f32([y[7]]));
  });

  test('concurrent requests are batched on the server and each gets its own rows', async () => {
    const model = srv.models.get('linear').model;
    const before = model.stats().runs;
    const order = Array.from({ length: 24 }, (_, i) => (i * 5) % 8);
    const replies = await Promise.all(order.map((i) => call(srv.port, 'POST', '/v1/models/linear:predict', { instances: [x[i]] })));
    replies.forEach((r, k) => {
      assert.equal(r.status, 200);
      assert.deepEqual(f32(r.body.predictions), f32([y[order[k]]]));
    });
    const runs = model.stats().runs - before;
    assert.ok(runs >= 3 && runs < 24, `24 one-row requests took ${runs} runs of the 8-row model`);
  });

  test('bad requests get TF Serving error bodies, and the server keeps serving', async () => {
    for (const c of CASES) {
      const r = await call(srv.port, c.method, c.path, c.raw ?? c.body, { raw: c.raw !== undefined });
      assert.equal(r.status, c.status, `${c.method} ${c.path} ${c.raw ?? JSON.stringify(c.body)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(Object.keys(r.body), ['error']);
      assert.match(r.body.error, new RegExp(c.error));
    }
    const big = await call(srv.port, 'POST', '/v1/models/linear:predict', { instances: Array(300).fill(x[0]) });
    assert.equal(big.status, 413);
    assert.match(big.body.error, /over the limit of 4096/);
    const ok = await call(srv.port, 'POST', '/v1/models/linear:predict', { instances: [x[2]] });
    assert.deepEqual(f32(ok.body.predictions), f32([y[2]]));
  });

  test('under load (autocannon, 64 connections): no request lost or failed', async () => {
    const result = await autocannon({
      url: `http://127.0.0.1:${srv.port}/v1/models/linear:predict`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [x[1]] }),
      connections: 64,
      amount: 640,
    });
    assert.equal(result.errors, 0);
    assert.equal(result.timeouts, 0);
    assert.equal(result.non2xx, 0);
    assert.equal(result['2xx'], 640);
  });
});

test('close() finishes in-flight requests, then refuses connections', async () => {
  const srv = await serve([{ basePath: join(base, 'linear'), name: 'lin' }], { port: 0, maxBatchWaitMs: 300 });
  const pending = call(srv.port, 'POST', '/v1/models/lin:predict', { instances: [x[4]] }); // waits for its batch
  await new Promise((r) => setTimeout(r, 50));
  const closed = srv.close();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.deepEqual(f32(r.body.predictions), f32([y[4]]));
  await closed;
  await assert.rejects(call(srv.port, 'GET', '/v1/models/lin'), /ECONNREFUSED/);
  assert.equal(srv.models.get('lin').model.isDisposed, true);
});

test('serve() refuses a base path without version folders, and two models of one name', async () => {
  await assert.rejects(serve([{ basePath: join(base, 'empty') }], { port: 0 }), /no version folder/);
  await assert.rejects(serve([{ basePath: join(base, 'missing') }], { port: 0 }), /cannot read model base path/);
  await assert.rejects(serve([{ basePath: join(base, 'linear') }, { basePath: join(base, 'linear') }], { port: 0 }), /two models are named 'linear'/);
});

test('the command line: `webtensor serve PATH --port 0 --model_name NAME`, SIGTERM stops it', async () => {
  const child = spawn(process.execPath, [BIN, 'serve', join(base, 'linear'), '--port', '0', '--model_name=digits'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  assert.match(out, /serving model 'digits' version 3/);
  const r = await call(port, 'POST', '/v1/models/digits:predict', { instances: [x[6]] });
  assert.deepEqual(f32(r.body.predictions), f32([y[6]]));
  const code = await new Promise((resolve) => {
    child.on('exit', resolve);
    child.kill('SIGTERM');
  });
  assert.equal(code, 0);
  const usage = spawn(process.execPath, [BIN, 'serve', '--port', 'x', join(base, 'linear')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  usage.stderr.on('data', (d) => { err += d; });
  assert.equal(await new Promise((resolve) => usage.on('exit', resolve)), 2);
  assert.match(err, /--port: not a valid number/);
});

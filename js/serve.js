// A model server in TensorFlow Serving's image: its folder layout (MODEL_BASE_PATH/<version>/, each
// version an exported artifact; the highest is served) and its REST API
// (https://www.tensorflow.org/tfx/serving/api_rest):
//
//   GET  /v1/models/NAME[/versions/V]            model status (GetModelStatusResponse as JSON)
//   GET  /v1/models/NAME[/versions/V]/metadata   the 'serving_default' signature (GetModelMetadataResponse)
//   POST /v1/models/NAME[/versions/V]:predict    {"instances": [...]} (row format) or {"inputs": ...}
//                                                (columnar) -> {"predictions": [...]} or {"outputs": ...}
//
// Errors answer {"error": "..."} with 400 (bad JSON, shapes, dtypes), 404 (unknown model, version or
// path), 405, 413 (body over maxBodyBytes) or 500, as TF Serving does; a request never takes the
// server down. Concurrent predict requests are batched on the server: their rows fill the artifact's
// fixed batch (the leading dimension of every predict input and output) in arrival order, the rest
// of a batch is padded with zeros, and each request gets its own rows back. Node's `http` module
// serves; `close()` stops accepting and resolves once in-flight requests are answered.

import { readdir, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { basename, join, resolve } from 'node:path';

import { load } from './node.js';
import { ARRAY_TYPES, sizeOf } from './tensor.js';

const TF_DTYPES = { float32: 'DT_FLOAT', int32: 'DT_INT32', bool: 'DT_BOOL' };
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** An error answered with an HTTP status and TF Serving's body {"error": message}. */
export class ServingError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ServingError';
    this.status = status;
  }
}

/**
 * The version folders of a model base path: directories named by a non-negative integer, highest
 * first. Throws a ServingError(404-like) message when there is none.
 */
export async function findVersions(basePath) {
  let names;
  try {
    names = await readdir(basePath);
  } catch (e) {
    throw new Error(`webtensor serve: cannot read model base path ${basePath} (${e.code})`);
  }
  const versions = [];
  for (const name of names) {
    if (!/^\d{1,15}$/.test(name)) continue;
    if ((await stat(join(basePath, name))).isDirectory()) versions.push(Number(name));
  }
  if (versions.length === 0) {
    throw new Error(`webtensor serve: no version folder (a directory named by a number, e.g. 1/) in ${basePath}`);
  }
  return versions.sort((a, b) => b - a);
}

/** One served model: the highest version's artifact, its 'predict' signature and a batcher. */
class Servable {
  constructor(name, version, model, { maxBatchWaitMs }) {
    this.name = name;
    this.version = version;
    this.model = model;
    const sig = model.signatures.predict;
    if (!sig) throw new Error(`webtensor serve: model '${name}' version ${version} has no 'predict' signature`);
    this.inputs = sig.inputs;
    this.outputs = sig.outputs;
    const leading = [...sig.inputs, ...sig.outputs].map((s) => (s.shape.length > 0 ? s.shape[0] : -1));
    // Batchable when every input and output shares one leading (batch) dimension.
    this.batchSize = leading.length > 0 && leading.every((d) => d === leading[0] && d > 0) ? leading[0] : 0;
    this.maxBatchWaitMs = maxBatchWaitMs;
    this.queue = []; // {rows: [typed array per input], n, done, out: [typed array per output], filled, resolve, reject}
    this.timer = null;
    this.running = false;
  }

  /** Run `n` rows (typed arrays per input, n rows each); resolves to typed arrays per output (n rows each). */
  predict(rows, n) {
    if (!this.batchSize) {
      return this.model.run('predict', rows).then((out) => this.outputs.map((s) => out[s.name].dataSync()));
    }
    return new Promise((resolvePromise, reject) => {
      const out = this.outputs.map((s) => new ARRAY_TYPES[s.dtype](n * rowSize(s)));
      this.queue.push({ rows, n, taken: 0, filled: 0, out, resolve: resolvePromise, reject });
      this._schedule();
    });
  }

  _pendingRows() {
    return this.queue.reduce((sum, r) => sum + r.n - r.taken, 0);
  }

  _schedule() {
    if (this.running) return;
    if (this._pendingRows() >= this.batchSize) this._flush();
    else if (!this.timer) {
      // A partial batch waits: with 0 ms, until the requests already received in this turn of the
      // event loop are parsed (setImmediate); otherwise up to maxBatchWaitMs for more to arrive.
      this.timer = this.maxBatchWaitMs > 0 ? setTimeout(() => this._flush(), this.maxBatchWaitMs) : setImmediate(() => this._flush());
    }
  }

  async _flush() {
    clearTimeout(this.timer);
    clearImmediate(this.timer);
    this.timer = null;
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const B = this.batchSize;
    const batch = this.inputs.map((s) => new ARRAY_TYPES[s.dtype](B * rowSize(s))); // zero padding
    const parts = []; // [request, its first row, batch row, count]
    let used = 0;
    for (const req of this.queue) {
      if (used === B) break;
      const count = Math.min(B - used, req.n - req.taken);
      if (count === 0) continue;
      this.inputs.forEach((s, k) => {
        const size = rowSize(s);
        batch[k].set(req.rows[k].subarray(req.taken * size, (req.taken + count) * size), used * size);
      });
      parts.push([req, req.taken, used, count]);
      req.taken += count;
      used += count;
    }
    this.queue = this.queue.filter((r) => r.taken < r.n);
    try {
      const out = await this.model.run('predict', batch);
      for (const [req, first, at, count] of parts) {
        this.outputs.forEach((s, k) => {
          const size = rowSize(s);
          req.out[k].set(out[s.name].dataSync().subarray(at * size, (at + count) * size), first * size);
        });
        req.filled += count;
        if (req.filled === req.n) req.resolve(req.out);
      }
    } catch (e) {
      for (const [req] of parts) {
        req.reject(e);
        req.failed = true;
      }
      this.queue = this.queue.filter((r) => !r.failed);
    } finally {
      this.running = false;
    }
    if (this.queue.length) this._schedule();
  }

  status() {
    return { model_version_status: [{ version: String(this.version), state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }] };
  }

  metadata() {
    const spec = (s) => ({
      dtype: TF_DTYPES[s.dtype] ?? 'DT_INVALID',
      tensor_shape: { dim: s.shape.map((d, i) => ({ size: String(i === 0 && this.batchSize ? -1 : d), name: '' })), unknown_rank: false },
      name: s.name,
    });
    const map = (specs) => Object.fromEntries(specs.map((s) => [s.name, spec(s)]));
    return {
      model_spec: { name: this.name, signature_name: '', version: String(this.version) },
      metadata: {
        signature_def: {
          signature_def: {
            serving_default: { inputs: map(this.inputs), outputs: map(this.outputs), method_name: 'tensorflow/serving/predict' },
          },
        },
      },
    };
  }
}

const rowSize = (spec) => sizeOf(spec.shape.slice(1));

/** Write the JSON value `value` (nested lists of shape `dims`) into `out` from `at`; returns the next index. */
function flatten(value, dims, out, at, dtype, where) {
  if (dims.length === 0) {
    out[at] = scalar(value, dtype, where);
    return at + 1;
  }
  if (!Array.isArray(value) || value.length !== dims[0]) {
    const got = Array.isArray(value) ? `a list of ${value.length}` : typeof value === 'object' ? (value === null ? 'null' : 'an object') : `a ${typeof value}`;
    throw new ServingError(400, `${where}: expected a list of ${dims[0]} (shape [${dims}]), got ${got}`);
  }
  for (const item of value) at = flatten(item, dims.slice(1), out, at, dtype, where);
  return at;
}

function scalar(v, dtype, where) {
  if (dtype === 'bool') {
    if (typeof v !== 'boolean') throw new ServingError(400, `${where}: expected true or false, got ${JSON.stringify(v)?.slice(0, 40)}`);
    return v ? 1 : 0;
  }
  if (typeof v !== 'number') throw new ServingError(400, `${where}: expected a number, got ${JSON.stringify(v)?.slice(0, 40) ?? typeof v}`);
  if (dtype === 'int32' && !(Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX)) {
    throw new ServingError(400, `${where}: expected an int32 integer, got ${v}`);
  }
  return v;
}

/** Nested lists of shape `dims` from `data` (bool storage as true/false). */
function unflatten(data, dims, dtype, at = 0) {
  if (dims.length === 0) return dtype === 'bool' ? data[at] !== 0 : data[at];
  const step = sizeOf(dims.slice(1));
  return Array.from({ length: dims[0] }, (_, i) => unflatten(data, dims.slice(1), dtype, at + i * step));
}

/**
 * A predict request's rows: {rows: [typed array per input], n, columnar}. Row format: "instances" is
 * a list with one item per row (a value when the signature has one input, else an object keyed by
 * input name). Columnar: "inputs" is one value with a leading batch dimension (one input) or an
 * object keyed by input name.
 */
export function parsePredict(body, servable) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ServingError(400, 'the request body must be a JSON object with "instances" or "inputs"');
  }
  const hasInstances = Object.hasOwn(body, 'instances');
  const hasInputs = Object.hasOwn(body, 'inputs');
  if (hasInstances === hasInputs) throw new ServingError(400, 'the request must have exactly one of "instances" (row format) or "inputs" (columnar format)');
  if (body.signature_name !== undefined && !['', 'serving_default', 'predict'].includes(body.signature_name)) {
    throw new ServingError(400, `signature '${String(body.signature_name).slice(0, 60)}' not found (this model serves 'serving_default')`);
  }
  const specs = servable.inputs;
  const B = servable.batchSize;
  const single = specs.length === 1;
  const perRow = specs.map((s) => (B ? s.shape.slice(1) : s.shape));
  if (hasInstances) {
    const instances = body.instances;
    if (!Array.isArray(instances) || instances.length === 0) throw new ServingError(400, '"instances" must be a non-empty list, one item per row');
    if (!B && instances.length !== 1) throw new ServingError(400, `this model takes exactly one instance of fixed shape (its predict inputs have no shared batch dimension)`);
    const n = instances.length;
    const rows = specs.map((s, k) => new ARRAY_TYPES[s.dtype](n * sizeOf(perRow[k])));
    instances.forEach((inst, i) => {
      const byName = namedValues(inst, specs, single, `instance ${i}`);
      specs.forEach((s, k) => flatten(byName[k], perRow[k], rows[k], i * sizeOf(perRow[k]), s.dtype, `instance ${i}, input '${s.name}'`));
    });
    return { rows, n, columnar: false };
  }
  const byName = namedValues(body.inputs, specs, single, '"inputs"');
  let n = null;
  const rows = specs.map((s, k) => {
    const v = byName[k];
    const len = B ? (Array.isArray(v) ? v.length : -1) : 1;
    if (B && len < 1) throw new ServingError(400, `input '${s.name}': expected a list of rows (shape [N, ${perRow[k]}]), got ${typeof v}`);
    if (n === null) n = len;
    else if (len !== n) throw new ServingError(400, `inputs have different numbers of rows (${n} and ${len} for '${s.name}')`);
    const out = new ARRAY_TYPES[s.dtype](len * sizeOf(perRow[k]));
    flatten(v, B ? [len, ...perRow[k]] : s.shape, out, 0, s.dtype, `input '${s.name}'`);
    return out;
  });
  return { rows, n, columnar: true };
}

/** The values of one instance (or of "inputs") in signature order. */
function namedValues(value, specs, single, where) {
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  if (single && !isObject) return [value]; // a tensor value is a number, boolean or list, never an object
  if (!isObject) {
    throw new ServingError(400, `${where}: expected an object keyed by input name (${specs.map((s) => `'${s.name}'`).join(', ')})`);
  }
  for (const key of Object.keys(value)) {
    if (!specs.some((s) => s.name === key)) throw new ServingError(400, `${where}: unknown input '${key.slice(0, 60)}' (inputs: ${specs.map((s) => `'${s.name}'`).join(', ')})`);
  }
  return specs.map((s) => {
    if (!Object.hasOwn(value, s.name)) throw new ServingError(400, `${where}: input '${s.name}' is missing`);
    return value[s.name];
  });
}

/** The response body of a predict: row format {"predictions"} or columnar {"outputs"}. */
function predictResponse(servable, outs, n, columnar) {
  const specs = servable.outputs;
  const B = servable.batchSize;
  const dimsOf = (s) => (B ? s.shape.slice(1) : s.shape);
  if (columnar) {
    const value = (s, k) => unflatten(outs[k], B ? [n, ...dimsOf(s)] : s.shape, s.dtype);
    return { outputs: specs.length === 1 ? value(specs[0], 0) : Object.fromEntries(specs.map((s, k) => [s.name, value(s, k)])) };
  }
  const row = (i) => {
    const one = (s, k) => unflatten(outs[k], dimsOf(s), s.dtype, i * sizeOf(dimsOf(s)));
    return specs.length === 1 ? one(specs[0], 0) : Object.fromEntries(specs.map((s, k) => [s.name, one(s, k)]));
  };
  return { predictions: Array.from({ length: n }, (_, i) => row(i)) };
}

const ROUTE = /^\/v1\/models\/([^/:]+)(?:\/versions\/(\d+))?(?:\/(metadata)|:(predict|classify|regress))?\/?$/;

/**
 * Start a server. `models`: [{basePath, name?}] (name defaults to the base path's folder name);
 * options: {port = 8501 (0 picks a free one), host = '127.0.0.1', backend = 'wasm' (load option),
 * maxBatchWaitMs = 0 (how long a partial batch waits for more rows; 0: only for the requests already received), maxBodyBytes = 16 MiB}.
 * Resolves to {server, port, models: Map(name -> Servable), close()}; `close()` stops accepting,
 * lets in-flight requests finish, then frees the models.
 */
export async function serve(models, options = {}) {
  const { port = 8501, host = '127.0.0.1', backend = 'wasm', maxBatchWaitMs = 0, maxBodyBytes = 16 << 20, log = () => {} } = options;
  if (!Array.isArray(models) || models.length === 0) throw new Error('webtensor serve: give at least one model base path');
  const servables = new Map();
  try {
    for (const { basePath, name = basename(resolve(basePath)) } of models) {
      if (servables.has(name)) throw new Error(`webtensor serve: two models are named '${name}' (use --model_name)`);
      const [version] = await findVersions(basePath);
      const model = await load(join(basePath, String(version)), { backend });
      servables.set(name, new Servable(name, version, model, { maxBatchWaitMs }));
      log(`serving model '${name}' version ${version} from ${join(basePath, String(version))} (${model.backend}, batch ${servables.get(name).batchSize || 'fixed'})`);
    }
  } catch (e) {
    for (const s of servables.values()) s.model.dispose();
    throw e;
  }

  let closing = null;
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => reply(res, e instanceof ServingError ? e.status : 500, { error: e instanceof ServingError ? e.message : `internal error: ${e.message}` }));
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  function reply(res, status, body) {
    if (res.headersSent) return;
    const data = JSON.stringify(body);
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    if (closing || status === 413) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(data);
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://localhost');
    const m = ROUTE.exec(url.pathname);
    if (!m) throw new ServingError(404, `not found: ${url.pathname.slice(0, 100)} (paths: /v1/models/NAME, /v1/models/NAME/metadata, /v1/models/NAME:predict)`);
    const [, rawName, version, metadata, verb] = m;
    const name = decodeURIComponent(rawName);
    const servable = servables.get(name);
    if (!servable) throw new ServingError(404, `Servable not found for request: Latest(${name.slice(0, 100)})`);
    if (version !== undefined && Number(version) !== servable.version) {
      throw new ServingError(404, `Servable not found for request: Specific(${name}, ${version})`);
    }
    if (verb) {
      if (req.method !== 'POST') throw new ServingError(405, `${verb} takes POST, got ${req.method}`);
      if (verb !== 'predict') throw new ServingError(400, `${verb} is not supported: webtensor serves predict`);
      const body = await readJSON(req, maxBodyBytes);
      const { rows, n, columnar } = parsePredict(body, servable);
      const outs = await servable.predict(rows, n);
      return reply(res, 200, predictResponse(servable, outs, n, columnar));
    }
    if (req.method !== 'GET') throw new ServingError(405, `${url.pathname} takes GET, got ${req.method}`);
    req.resume();
    return reply(res, 200, metadata ? servable.metadata() : servable.status());
  }

  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok();
    });
  });

  // Graceful: stop accepting connections, answer the requests already received (their responses
  // carry `Connection: close`), then free the models once every connection has ended.
  function close() {
    closing ??= new Promise((ok) => {
      server.close(() => ok());
      server.closeIdleConnections();
    }).then(() => {
      for (const s of servables.values()) s.model.dispose();
    });
    return closing;
  }

  return { server, port: server.address().port, models: servables, close };
}

/** The request body parsed as JSON, at most `limit` bytes (413 beyond it, 400 when not JSON). */
function readJSON(req, limit) {
  return new Promise((ok, fail) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume();
      fail(new ServingError(413, `the request body is ${declared} bytes, over the limit of ${limit}`));
      return;
    }
    const chunks = [];
    let size = 0;
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        // Answer now (the connection closes after the answer); the rest of the body is read and dropped.
        req.off('data', onData);
        req.resume();
        fail(new ServingError(413, `the request body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('error', (e) => fail(new ServingError(400, `reading the request failed: ${e.message}`)));
    req.on('end', () => {
      if (size > limit) return;
      try {
        ok(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        fail(new ServingError(400, `JSON Parse error: ${e.message}`));
      }
    });
  });
}

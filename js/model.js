// A loaded artifact on one backend: run its signatures, read, write and save
// its variables. Every call that touches the backend is queued, so calls run
// one at a time in the order they were made.

import { ArtifactError, objectReader, readArtifact } from './artifact.js';
import { expandControl, runControl } from './control.js';
import { createWasmBackend } from './backends/wasm.js';
import { MAX_TIMEOUT_MS, createWorkerBackend } from './backends/worker.js';
import { createWebGPUBackend, isSoftwareAdapter, webgpuShortfall } from './backends/webgpu.js';
import { OutputView, ResidentTensor, storageView } from './resident.js';
import { writeSafetensors } from './safetensors.js';
import { ARRAY_TYPES, Tensor, dtypeOfArray, fromStorage, sizeOf, toStorage } from './tensor.js';

/** The runtime's version (package.json "version"). */
export const VERSION = '0.1.0';

// Safety net for models that are never disposed: free their GPU buffers and
// device (or wasm memory) once the Model object is garbage-collected.
const registry = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry((backend) => backend.dispose()) : null;

const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);
const fmt = (shape, dtype) => `[${shape}] ${dtype}`;
/** A signature's inputs that callers give: all but a batch's row count (batch.rows_input, set by the runtime). */
const publicInputs = (sig) => (sig.batch?.rows_input === undefined ? sig.inputs
  : sig.inputs.filter((_, i) => i !== sig.batch.rows_input));

/**
 * The storage bytes of one input or variable value, checked against `spec`
 * ({name, dtype, shape}); a ResidentTensor of `model` is returned as is (the
 * run reads its slot when it executes).
 */
/**
 * `data` (a typed array of `shape` with `have` rows in `axis`) with `want` rows there: zero rows
 * added at the end of the axis, or the rows past `want` cut.
 */
function resize(data, shape, axis, have, want, dtype) {
  const blocks = sizeOf(shape.slice(0, axis));
  const row = sizeOf(shape.slice(axis + 1));
  const out = new ARRAY_TYPES[dtype](blocks * want * row);
  const keep = Math.min(have, want) * row;
  for (let b = 0; b < blocks; b++) out.set(data.subarray(b * have * row, b * have * row + keep), b * want * row);
  return out;
}

function checkValue(value, spec, what, model = null) {
  if (value instanceof ResidentTensor) {
    if (model === null) throw new Error(`webtensor: ${what}: a resident tensor cannot be used here (read it with dataSync())`);
    if (value._model !== model) throw new Error(`webtensor: ${what}: the resident tensor belongs to another model (resident tensors live in their own model's memory; pass dataSync() to copy it)`);
    if (value.isDisposed) throw new Error(`webtensor: ${what}: the resident tensor was disposed`);
    if (value.dtype !== spec.dtype || !sameShape(value.shape, spec.shape)) {
      throw new Error(`webtensor: ${what}: expected ${fmt(spec.shape, spec.dtype)}, got ${fmt(value.shape, value.dtype)}`);
    }
    return value;
  }
  if (value instanceof Tensor) {
    if (value.isDisposed) throw new Error(`webtensor: ${what}: the tensor was disposed`);
    if (value.dtype !== spec.dtype || !sameShape(value.shape, spec.shape)) {
      throw new Error(`webtensor: ${what}: expected ${fmt(spec.shape, spec.dtype)}, got ${fmt(value.shape, value.dtype)}`);
    }
    return toStorage(value.dataSync(), spec.dtype);
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const dtype = dtypeOfArray(value);
    if (dtype !== spec.dtype) {
      throw new Error(`webtensor: ${what}: expected ${spec.dtype} data (${ARRAY_TYPES[spec.dtype].name}), got ${value.constructor.name}`);
    }
    if (value.length !== sizeOf(spec.shape)) {
      throw new Error(`webtensor: ${what}: expected ${sizeOf(spec.shape)} values for ${fmt(spec.shape, spec.dtype)}, got ${value.length}`);
    }
    return toStorage(value, spec.dtype);
  }
  throw new Error(`webtensor: ${what}: expected a webtensor.tensor or a typed array, got ${Object.prototype.toString.call(value)}`);
}

export class Model {
  constructor(manifest, backend, adapterInfo) {
    this._manifest = manifest;
    this._backend = backend;
    this._queue = Promise.resolve();
    this._runs = 0;
    this._pending = 0; // queued calls not yet settled
    this._generation = 0; // runs started: an output view is valid while it is unchanged
    this._lastRun = null; // the signature that ran last (its region of the memory holds its data)
    this._resident = new Map(); // 'signature\0index' -> the live ResidentTensor of that input slot
    /** 'wasm' or 'webgpu': the backend this model runs on. */
    this.backend = backend.kind;
    /** The WebGPU adapter's {vendor, architecture, device, description}, or null on wasm. */
    this.adapterInfo = adapterInfo;
    /**
     * Why `load(..., {threads})` got fewer threads than it asked for (the page is not
     * cross-origin isolated, the artifact has no threaded module, ...), or null.
     */
    this.threadsNotice = backend.threadsNotice ?? null;
    registry?.register(this, backend, this);
  }

  /** {name: {inputs: [{name, dtype, shape}], outputs: [...]}} of every signature. */
  get signatures() {
    const copy = (specs) => specs.map(({ name, dtype, shape }) => ({ name, dtype, shape: shape.slice() }));
    return Object.fromEntries(Object.entries(this._manifest.signatures).map(
      ([name, s]) => [name, { inputs: copy(publicInputs(s)), outputs: copy(s.outputs),
        ...(s.length ? { length: { maximum: s.length.maximum, inputs: s.length.inputs.slice(), outputs: s.length.outputs.slice() } } : {}) }]));
  }

  /** [{name, dtype, shape, trainable}] of the variables (parameters and optimizer state). */
  get variables() {
    return this._manifest.variables.map(({ name, dtype, shape, trainable }) => ({ name, dtype, shape: shape.slice(), trainable: !!trainable }));
  }

  get isDisposed() { return this._backend === null; }

  _serial(what, fn) {
    if (this._backend === null) return Promise.reject(new Error(`webtensor: ${what}: the model was disposed`));
    this._pending++;
    const result = this._queue.then(() => {
      if (this._backend === null) throw new Error(`webtensor: ${what}: the model was disposed`);
      return fn(this._backend);
    }).finally(() => { this._pending--; });
    this._queue = result.catch(() => {});
    return result;
  }

  /**
   * Run signature `name`. `inputs`: an array in the signature's input order,
   * an object {inputName: value}, or a single value for a one-input
   * signature; each value a Tensor, a typed array of the input's dtype and
   * size, or a ResidentTensor of this model (inputTensor(): a run given the
   * one for its own slot copies nothing). Resolves to {outputName: Tensor}.
   * `options.output`: 'copy' (default: fresh typed arrays) or 'view' (wasm
   * on this thread only: Tensors viewing the output slots in the model's
   * memory, valid until the next run on this model; bool outputs are still
   * copied, their storage being int32); `options.into`: {outputName: typed
   * array of the output's dtype and size} to copy those outputs into (the
   * returned Tensors wrap them). Throws (rejects) an Error naming the
   * signature and input when a shape, dtype or name is wrong, or a resident
   * tensor is disposed, stale or another model's. Typed arrays are read (not
   * copied) when the queued call runs: do not change them before the promise
   * settles.
   */
  async run(name, inputs, options = {}) {
    const sig = this._manifest.signatures[name];
    if (!sig || !Object.hasOwn(this._manifest.signatures, name)) {
      throw new Error(`webtensor: no signature '${name}' (this model has: ${Object.keys(this._manifest.signatures).join(', ')})`);
    }
    const specs = publicInputs(sig);
    const names = specs.map((s) => `'${s.name}'`).join(', ');
    let list;
    if (inputs instanceof Tensor || inputs instanceof ResidentTensor || ArrayBuffer.isView(inputs)) list = [inputs];
    else if (Array.isArray(inputs)) list = inputs;
    else if (inputs !== null && typeof inputs === 'object') {
      for (const key of Object.keys(inputs)) {
        if (!specs.some((s) => s.name === key)) throw new Error(`webtensor: signature '${name}' has no input '${key}' (inputs: ${names})`);
      }
      list = specs.map((s) => {
        if (!Object.hasOwn(inputs, s.name)) throw new Error(`webtensor: signature '${name}': input '${s.name}' is missing`);
        return inputs[s.name];
      });
    } else if (inputs === undefined && specs.length === 0) list = [];
    else throw new Error(`webtensor: signature '${name}': inputs must be an array, an object {name: tensor} or a tensor`);
    if (list.length !== specs.length) {
      throw new Error(`webtensor: signature '${name}' takes ${specs.length} input(s) (${names}), got ${list.length}`);
    }
    if (sig.batch?.rows_input !== undefined) return this._runRows(name, sig, list, options);
    // a symbolic batch of exactly the compiled rows (or resident tensors) runs as is, with every option
    const compiled = (v, spec) => v instanceof ResidentTensor || (v instanceof Tensor && sameShape(v.shape, spec.shape)) ||
      (ArrayBuffer.isView(v) && v.length === sizeOf(spec.shape));
    // a length first: with a symbolic batch too, _runLength pads the steps and chunks the rows
    if (sig.length && !specs.every((spec, k) => compiled(list[k], spec))) return this._runLength(name, sig, list, options);
    if (sig.batch && !specs.every((spec, k) => compiled(list[k], spec))) return this._runChunks(name, sig, list, options);
    return this._runList(name, sig, list, options);
  }

  /**
   * A signature with a symbolic length (docs/artifact.md "Symbolic length"): Tensors (or typed arrays
   * of the input's dtype whose size fixes the length) of any length L in [1, length.maximum] (the
   * same in every input that has one; else a RangeError naming the maximum) are padded with zero
   * rows to the maximum, the loops over the length run L steps, and the outputs are cut to L: exact,
   * the exporter having proved that no step reads a later one. With a symbolic batch too (docs/artifact.md
   * "Symbolic batch and length"), axis 0 takes any rows (Tensors only: a typed array's size would not
   * say which is which), and the padded rows run in chunks (_runChunks).
   */
  async _runLength(name, sig, list, options) {
    const ln = sig.length;
    if (options !== undefined && (options === null || typeof options !== 'object' || options.output === 'view' || options.into !== undefined)) {
      throw new Error(`webtensor: signature '${name}' takes any length: its outputs are always copied (no 'view' or 'into')`);
    }
    const batch = sig.batch !== undefined;
    const shown = (spec, ax) => fmt(spec.shape.map((d, i) => (i === ax ? 'length' : batch && i === 0 ? 'batch' : d)), spec.dtype);
    const sizes = [];
    const rows = [];
    list = list.slice();
    sig.inputs.forEach((spec, k) => {
      const ax = ln.inputs[k];
      const what = `signature '${name}', input '${spec.name}'`;
      if (ax < 0 && !batch) return;
      const per = sizeOf(spec.shape) / (ax < 0 ? 1 : ln.maximum);  // values per step
      if (!batch && ArrayBuffer.isView(list[k]) && !(list[k] instanceof DataView) && dtypeOfArray(list[k]) === spec.dtype && per > 0 && list[k].length % per === 0) {
        list[k] = new Tensor(list[k], spec.shape.map((d, i) => (i === ax ? list[k].length / per : d)), spec.dtype);
      }
      const v = list[k];
      if (!(v instanceof Tensor)) {
        throw new Error(`webtensor: ${what}: expected a tensor ${shown(spec, ax)}${batch ? '' : ` (or a typed array of ${spec.dtype} holding whole steps of ${per} values)`}`);
      }
      if (v.isDisposed) throw new Error(`webtensor: ${what}: the tensor was disposed`);
      if (v.dtype !== spec.dtype || v.shape.length !== spec.shape.length || v.shape.some((d, i) => i !== ax && !(batch && i === 0) && d !== spec.shape[i])) {
        throw new Error(`webtensor: ${what}: expected ${shown(spec, ax)}, got ${fmt(v.shape, v.dtype)}`);
      }
      if (batch) rows.push(v.shape[0]);
      if (ax >= 0) sizes.push(v.shape[ax]);
    });
    const n = sizes[0];
    if (sizes.some((m) => m !== n)) throw new Error(`webtensor: signature '${name}': inputs have different lengths (${sizes.join(', ')})`);
    if (!(n >= 1 && n <= ln.maximum)) {
      throw new RangeError(`webtensor: signature '${name}': length ${n} is outside [1, ${ln.maximum}]${n > ln.maximum ? " (the artifact's declared maximum length)" : ''}`);
    }
    const m = rows[0];
    if (rows.some((r) => r !== m)) throw new Error(`webtensor: signature '${name}': inputs have different batch sizes (${rows.join(', ')})`);
    const max = sig.batch?.maximum ?? Infinity;
    if (batch && !(m >= 1 && m <= max)) {
      throw new Error(`webtensor: signature '${name}': batch size ${m} is outside [1, ${max === Infinity ? 'any' : max}]${m > max ? " (the artifact's declared maximum)" : ''}`);
    }
    const at = (spec, ax, k) => spec.shape.map((d, i) => (batch && i === 0 ? m : i === ax ? k : d));  // the shape run
    const args = sig.inputs.map((spec, k) => {
      const ax = ln.inputs[k];
      if (ax < 0) return list[k];
      const data = resize(list[k].dataSync(), at(spec, ax, n), ax, n, ln.maximum, spec.dtype);
      return new Tensor(data, at(spec, ax, ln.maximum), spec.dtype);
    });
    const out = batch ? await this._runChunks(name, sig, args, {}, n) : await this._runList(name, sig, args, {}, n);
    return Object.fromEntries(sig.outputs.map((spec, k) => {
      const ax = ln.outputs[k];
      const t = out[spec.name];
      if (ax < 0) return [spec.name, t];
      return [spec.name, new Tensor(resize(t.dataSync(), at(spec, ax, ln.maximum), ax, ln.maximum, n, spec.dtype), at(spec, ax, n), spec.dtype)];
    }));
  }

  /** run() on the checked list of inputs, at the signature's compiled shapes (`length`: a symbolic length's run). */
  async _runList(name, sig, list, options, length = undefined) {
    const specs = sig.inputs;
    const data = specs.map((spec, k) => checkValue(list[k], spec, `signature '${name}', input '${spec.name}'`, this));
    const { output, into } = this._outputOptions(name, sig, options);
    return this._serial(`signature '${name}'`, async (backend) => {
      const resident = typeof backend.inputSlot === 'function';
      const args = data.map((d, k) => (d instanceof ResidentTensor ? d._source(`signature '${name}', input '${specs[k].name}'`) : d));
      if (resident) {
        this._generation++;
        this._lastRun = name;
        for (const r of this._resident.values()) if (r.signature !== name) r._staleBy = name;
      }
      const outputs = sig.control !== undefined ? await runControl(name, sig.control, backend, args, length)
        : await backend.run(name, args, resident && (output === 'view' || into.size > 0));
      this._runs++;
      return Object.fromEntries(sig.outputs.map((spec, k) => {
        const target = into.get(spec.name);
        let values;
        if (target) {
          values = target;
          const stored = storageView(outputs[k], spec.dtype);
          if (stored) target.set(stored);
          else target.set(fromStorage(outputs[k], spec.dtype));
        } else if (output === 'view' && spec.dtype !== 'bool') {
          return [spec.name, new OutputView(storageView(outputs[k], spec.dtype), spec.shape.slice(), spec.dtype, this, this._generation)];
        } else values = fromStorage(outputs[k], spec.dtype);
        return [spec.name, new Tensor(values, spec.shape.slice(), spec.dtype)];
      }));
    });
  }

  /**
   * The rows of a symbolic batch's inputs (`specs`: Tensors, or typed arrays holding whole rows) and
   * their number n (the same in each; 1 <= n <= max, else a `TooMany` error naming the maximum).
   */
  _batchRows(name, specs, list, options, max, TooMany) {
    if (options !== undefined && (options === null || typeof options !== 'object' || options.output === 'view' || options.into !== undefined)) {
      throw new Error(`webtensor: signature '${name}' takes any batch size: its outputs are always copied (no 'view' or 'into')`);
    }
    const rows = specs.map((spec, k) => {
      const v = list[k];
      const what = `signature '${name}', input '${spec.name}'`;
      const per = sizeOf(spec.shape.slice(1));
      let data;
      if (v instanceof Tensor) {
        if (v.isDisposed) throw new Error(`webtensor: ${what}: the tensor was disposed`);
        if (v.dtype !== spec.dtype || v.shape.length !== spec.shape.length || !sameShape(v.shape.slice(1), spec.shape.slice(1))) {
          throw new Error(`webtensor: ${what}: expected ${fmt(['batch', ...spec.shape.slice(1)], spec.dtype)}, got ${fmt(v.shape, v.dtype)}`);
        }
        data = v.dataSync();
      } else if (ArrayBuffer.isView(v) && !(v instanceof DataView) && dtypeOfArray(v) === spec.dtype && per > 0 && v.length % per === 0) {
        data = v;
      } else {
        throw new Error(`webtensor: ${what}: expected a tensor ${fmt(['batch', ...spec.shape.slice(1)], spec.dtype)} (or a typed array of whole rows of ${per} values)`);
      }
      return { data, per, n: per > 0 ? data.length / per : v.shape[0] };
    });
    const n = rows.length ? rows[0].n : 0;
    if (rows.some((r) => r.n !== n)) throw new Error(`webtensor: signature '${name}': inputs have different batch sizes (${rows.map((r) => r.n).join(', ')})`);
    if (!(n >= 1 && n <= max)) {
      throw new (n > max ? TooMany : Error)(`webtensor: signature '${name}': batch size ${n} is outside [1, ${max === Infinity ? 'any' : max}]${n > max ? " (the artifact's declared maximum)" : ''}`);
    }
    return { rows, n };
  }

  /**
   * A train step that takes any batch up to its chunk (docs/artifact.md "Symbolic batch: train
   * steps"): n rows (1 <= n <= batch.maximum, else a RangeError) are padded to the chunk with copies
   * of the first row (padding computes only what a real row does), or run as they are where the
   * backend takes rows at run time (a wasm rows driver, docs/artifact.md "Run-time rows"), and the
   * row count input is set to n, so the loss and the update count the first n rows only. Outputs are
   * returned whole.
   */
  async _runRows(name, sig, list, options) {
    const { chunk, maximum, rows_input: k } = sig.batch;
    const specs = publicInputs(sig);
    const { rows, n } = this._batchRows(name, specs, list, options, maximum, RangeError);
    if (n < chunk && typeof this._backend?.takesRows === 'function' && this._backend.takesRows(name)) {
      const inputs = specs.map((spec, j) => {
        const shape = [n, ...spec.shape.slice(1)];
        return checkValue(new Tensor(rows[j].data.slice(0, n * rows[j].per), shape, spec.dtype), { ...spec, shape },
          `signature '${name}', input '${spec.name}'`, this);
      });
      inputs.splice(k, 0, checkValue(new Tensor(new Int32Array([n]), [], 'int32'), sig.inputs[k], `signature '${name}', row count`, this));
      const out = await this._serial(`signature '${name}'`, async (backend) => {
        if (typeof backend.inputSlot === 'function') { // its slots change, as in _runList
          this._generation++;
          this._lastRun = name;
          for (const r of this._resident.values()) if (r.signature !== name) r._staleBy = name;
        }
        const o = await backend.run(name, inputs, false, n);
        this._runs++;
        return o;
      });
      return Object.fromEntries(sig.outputs.map((spec, i) => [spec.name, new Tensor(fromStorage(out[i], spec.dtype), spec.shape.slice(), spec.dtype)]));
    }
    const args = specs.map((spec, j) => {
      const { data, per } = rows[j];
      const piece = new ARRAY_TYPES[spec.dtype](chunk * per);
      piece.set(data.subarray(0, n * per));
      for (let r = n; r < chunk; r++) piece.copyWithin(r * per, 0, per);
      return new Tensor(piece, spec.shape.slice(), spec.dtype);
    });
    args.splice(k, 0, new Tensor(new Int32Array([n]), [], 'int32'));
    return this._runList(name, sig, args, {});
  }

  /**
   * A signature with a symbolic batch (format version 2, docs/artifact.md "Symbolic batch"): n rows
   * run as ceil(n / chunk) runs of the compiled chunk, the last padded with zeros and its outputs
   * sliced (or, with a rows driver or WebGPU kernels with "rows", run with its own rows); exact, the exporter having proved the rows independent. Inputs: Tensors (or typed
   * arrays holding whole rows) with the same n, 1 <= n <= batch.maximum (if declared). Exactly the
   * compiled rows run as a fixed-shape signature (run()), options and resident tensors included.
   * `length`: a symbolic length's run (its inputs already padded to the maximum: _runLength).
   */
  async _runChunks(name, sig, list, options, length = undefined) {
    const { chunk } = sig.batch;
    const { rows, n } = this._batchRows(name, sig.inputs, list, options, sig.batch.maximum ?? Infinity, Error);
    const parts = sig.outputs.map(() => []);
    // the wasm backend (on this thread or in a worker; a rows driver) and the webgpu backend (kernels
    // with "rows") run a last partial chunk with its own rows (kernels that take their rows at run
    // time, docs/artifact.md "Run-time rows"), else it is padded
    const partial = sig.control === undefined && length === undefined && typeof this._backend?.takesRows === 'function' && this._backend.takesRows(name);
    for (let start = 0; start < n; start += chunk) {
      const take = Math.min(chunk, n - start);
      if (partial && take < chunk) {
        // _batchRows checked each input's dtype and rows: a view of its rows (the backend copies them)
        const inputs = sig.inputs.map((spec, k) => {
          const { data, per } = rows[k];
          return toStorage(data.subarray(start * per, (start + take) * per), spec.dtype);
        });
        const out = await this._serial(`signature '${name}'`, async (backend) => {
          if (typeof backend.inputSlot === 'function') { // its slots change, as in _runList
            this._generation++;
            this._lastRun = name;
            for (const r of this._resident.values()) if (r.signature !== name) r._staleBy = name;
          }
          const o = await backend.run(name, inputs, false, take);
          this._runs++;
          return o;
        });
        sig.outputs.forEach((spec, k) => parts[k].push(fromStorage(out[k], spec.dtype)));
        continue;
      }
      const args = sig.inputs.map((spec, k) => {
        const { data, per } = rows[k];
        const piece = new ARRAY_TYPES[spec.dtype](chunk * per);     // zero rows pad the last chunk
        piece.set(data.subarray(start * per, (start + take) * per));
        return new Tensor(piece, spec.shape.slice(), spec.dtype);
      });
      const out = await this._runList(name, sig, args, {}, length);
      sig.outputs.forEach((spec, k) => {
        const t = out[spec.name];
        parts[k].push(t.dataSync().subarray(0, take * sizeOf(spec.shape.slice(1))));
      });
    }
    return Object.fromEntries(sig.outputs.map((spec, k) => {
      const per = sizeOf(spec.shape.slice(1));
      // one run of its own rows: fromStorage's array is already the whole output (its own buffer)
      let values = parts[k][0];
      if (parts[k].length > 1 || values.length !== n * per || values.byteLength !== values.buffer.byteLength) {
        values = new ARRAY_TYPES[spec.dtype](n * per);
        let at = 0;
        for (const p of parts[k]) { values.set(p, at); at += p.length; }
      }
      return [spec.name, new Tensor(values, [n, ...spec.shape.slice(1)], spec.dtype)];
    }));
  }

  /** run()'s options, checked: {output: 'copy' | 'view', into: Map outputName -> typed array}. */
  _outputOptions(name, sig, options) {
    if (options === null || typeof options !== 'object') throw new Error(`webtensor: signature '${name}': options must be an object {output, into}`);
    for (const key of Object.keys(options)) {
      if (key !== 'output' && key !== 'into') throw new Error(`webtensor: signature '${name}': unknown option '${key}' (options: output, into)`);
    }
    const output = options.output ?? 'copy';
    if (output !== 'copy' && output !== 'view') throw new Error(`webtensor: signature '${name}': output must be 'copy' or 'view', got ${JSON.stringify(output)}`);
    if (output === 'view' && typeof this._backend?.inputSlot !== 'function') {
      throw new Error(`webtensor: signature '${name}': {output: 'view'} needs the wasm backend on this thread (this model runs on ${this.backend}${this.backend === 'wasm' ? ' in a worker' : ''}); use {into} or the default copies`);
    }
    const into = new Map();
    for (const [key, target] of Object.entries(options.into ?? {})) {
      const spec = sig.outputs.find((s) => s.name === key);
      if (!spec) throw new Error(`webtensor: signature '${name}' has no output '${key}' (outputs: ${sig.outputs.map((s) => `'${s.name}'`).join(', ')})`);
      const Type = ARRAY_TYPES[spec.dtype];
      if (!(target instanceof Type)) throw new Error(`webtensor: signature '${name}', into '${key}': expected a ${Type.name} (${spec.dtype}), got ${Object.prototype.toString.call(target)}`);
      if (target.length !== sizeOf(spec.shape)) throw new Error(`webtensor: signature '${name}', into '${key}': expected ${sizeOf(spec.shape)} values for ${fmt(spec.shape, spec.dtype)}, got ${target.length}`);
      into.set(key, target);
    }
    return { output, into };
  }

  /**
   * The resident tensor of signature `signature`'s input `input` (a name or
   * an index): that input's slot in the model's WebAssembly memory, the same
   * object until it is disposed. Fill it with write() or view(); run() given
   * it copies nothing. It starts with the slot's current contents (stale if
   * another signature ran last). Needs the wasm backend on this thread.
   * Throws for an unknown signature or input, or another backend.
   */
  inputTensor(signature = 'predict', input = 0) {
    if (this._backend === null) throw new Error('webtensor: inputTensor: the model was disposed');
    if (typeof this._backend.inputSlot !== 'function') {
      throw new Error(`webtensor: inputTensor: resident tensors need the wasm backend on this thread (this model runs on ${this.backend}${this.backend === 'wasm' ? ' in a worker' : ''})`);
    }
    const sig = Object.hasOwn(this._manifest.signatures, signature) ? this._manifest.signatures[signature] : null;
    if (!sig) throw new Error(`webtensor: inputTensor: no signature '${signature}' (this model has: ${Object.keys(this._manifest.signatures).join(', ')})`);
    if (sig.control !== undefined) throw new Error(`webtensor: inputTensor: signature '${signature}' holds control flow, whose inputs have no one slot in memory; pass tensors to run()`);
    const k = typeof input === 'number' ? input : sig.inputs.findIndex((s) => s.name === input);
    if (!Number.isInteger(k) || k < 0 || k >= sig.inputs.length) {
      throw new Error(`webtensor: inputTensor: signature '${signature}' has no input ${JSON.stringify(input)} (inputs: ${sig.inputs.map((s) => `'${s.name}'`).join(', ')})`);
    }
    const key = `${signature}\0${k}`;
    let r = this._resident.get(key);
    if (!r) {
      r = new ResidentTensor(this, signature, k, sig.inputs[k], this._backend.inputSlot(signature, k));
      if (this._lastRun !== null && this._lastRun !== signature) r._staleBy = this._lastRun;
      this._resident.set(key, r);
    }
    return r;
  }

  _residentMemory() { return this._backend.memory.buffer; }

  _forgetResident(r) { this._resident.delete(`${r.signature}\0${r._index}`); }

  _checkIdle(what) {
    if (this._pending > 0) throw new Error(`webtensor: ${what}: a run is queued on the model; await it before touching its resident tensors`);
  }

  /**
   * run('predict', inputs); resolves to its output Tensor (an array of Tensors if it has several).
   * A model with several inputs takes them as run() does (an array in input order, or an object
   * keyed by input name: the Keras model's Input names) or as arguments: predict(a, b, c).
   */
  async predict(...inputs) {
    const out = await this.run('predict', inputs.length === 1 ? inputs[0] : inputs);
    const tensors = this._manifest.signatures.predict.outputs.map((spec) => out[spec.name]);
    return tensors.length === 1 ? tensors[0] : tensors;
  }

  /**
   * run('train_step', [inputs, targets]): one optimizer step; resolves to the loss Tensor (its first
   * output). A model with several inputs takes `inputs` as an array in input order or an object keyed
   * by input name (the targets are the signature's last input). A train step with a row count
   * (batch.rows_input) takes any n rows up to batch.maximum (_runRows).
   */
  async trainStep(inputs, targets) {
    const specs = Object.hasOwn(this._manifest.signatures, 'train_step') ? publicInputs(this._manifest.signatures.train_step) : [];
    let args = [inputs, targets];
    if (Array.isArray(inputs) && specs.length > 2 && inputs.length === specs.length - 1) args = [...inputs, targets];
    else if (inputs !== null && typeof inputs === 'object' && !Array.isArray(inputs) && !(inputs instanceof Tensor)
      && !(inputs instanceof ResidentTensor) && !ArrayBuffer.isView(inputs) && specs.length > 0) args = { ...inputs, [specs[specs.length - 1].name]: targets };
    const out = await this.run('train_step', args);
    return out[this._manifest.signatures.train_step.outputs[0].name];
  }

  /** Resolves to {variableName: Tensor} with copies of every variable's current value. */
  async getWeights() {
    const vars = this._manifest.variables;
    return this._serial('getWeights', async (backend) => {
      const bytes = await backend.readVariables(vars.map((_, i) => i));
      return Object.fromEntries(vars.map((v, i) => [v.name, new Tensor(fromStorage(bytes[i], v.dtype), v.shape.slice(), v.dtype)]));
    });
  }

  /**
   * Overwrite variables: `weights` is {name: Tensor | typed array} (or a
   * Map) naming any subset of the variables. Checks every name, dtype and
   * shape before writing any.
   */
  async setWeights(weights) {
    const vars = this._manifest.variables;
    const entries = weights instanceof Map ? [...weights] : Object.entries(weights ?? {});
    const writes = entries.map(([name, value]) => {
      const i = vars.findIndex((v) => v.name === name);
      if (i < 0) throw new Error(`webtensor: setWeights: no variable '${name}' (variables: ${vars.map((v) => `'${v.name}'`).join(', ')})`);
      return [i, checkValue(value, vars[i], `setWeights: variable '${name}'`).slice()];
    });
    return this._serial('setWeights', async (backend) => {
      for (const [i, data] of writes) await backend.writeVariable(i, data); // a worker backend's writes are requests
    });
  }

  /** Resolves to safetensors bytes (Uint8Array) of every variable, as python/safetensors_io.save writes them. */
  async saveWeights() {
    const weights = await this.getWeights();
    const tensors = new Map();
    for (const v of this._manifest.variables) {
      const data = weights[v.name].dataSync();
      tensors.set(v.name, { dtype: v.dtype, shape: v.shape, bytes: data });
    }
    return writeSafetensors(tensors, { format: 'webtensor-weights', format_version: '1', webtensor_version: VERSION });
  }

  /**
   * Counters for tests and leak checks: {backend, runs, wasmMemoryBytes}
   * (wasm) or {backend, runs, gpuBuffers, gpuBufferBytes} (webgpu).
   */
  stats() {
    return { backend: this.backend, runs: this._runs, ...(this._backend ? this._backend.stats() : {}) };
  }

  /** Free the backend's memory now (GPU buffers and, if created by `load`, the device). Idempotent. */
  dispose() {
    if (this._backend === null) return;
    registry?.unregister(this);
    this._backend.dispose();
    this._backend = null;
  }
}

function adapterInfoOf(adapter, device) {
  const info = adapter?.info ?? device?.adapterInfo;
  if (!info) return null;
  const { vendor = '', architecture = '', device: name = '', description = '' } = info;
  return { vendor, architecture, device: name, description };
}

/**
 * Load an artifact and create a Model on the requested backend. `source`:
 * a location string handed to `readerFor` (URL in browsers, path or URL in
 * Node), or {'manifest.json': Uint8Array, ...}. `options.backend`: 'auto'
 * (default: WebGPU when a hardware adapter exists and meets the artifact's
 * needs, else WebAssembly, which is faster than a software adapter such as
 * SwiftShader or llvmpipe: see isSoftwareAdapter), 'webgpu' (any adapter) or
 * 'wasm'; `options.gpu`: a GPU object (default navigator.gpu; the model keeps
 * it alive until dispose()); `options.device`: a GPUDevice to use instead of
 * requesting one (not destroyed by dispose(); the caller keeps the GPU object
 * it came from alive).
 * `options.worker`: true runs the model's WebAssembly in a Worker (a module
 * Web Worker in browsers, worker_threads in Node; `spawnWorker()` from the
 * entry point creates it): the artifact is checked here, then its module and
 * weights go to the worker, and every call becomes a message (backend 'wasm',
 * or 'auto', which then means wasm; 'webgpu' in a worker is not supported
 * yet). `options.timeout`: with `worker: true`, a limit in ms for loading
 * (compiling and instantiating module.wasm, once the worker has started) and
 * for each later request (a signature run, reading or writing variables); a
 * request over it terminates the worker and rejects with an Error named
 * 'TimeoutError', and the model's later calls reject (dispose() still works).
 * A timeout needs `worker: true`: WebAssembly on the main thread cannot be
 * interrupted.
 * `options.threads`: threads per kernel for the wasm backend (an integer in [1, 16], or 'auto':
 * the logical cores `cores()` reports (navigator.hardwareConcurrency, os.availableParallelism())
 * capped at AUTO_MAX_THREADS; the default, 'auto' where the artifact has a threaded module): with more than one, an artifact exported with
 * `wasm_threads=True` runs its module_threads.wasm on a shared memory, this thread driving and
 * threads-1 Workers (js/thread.js) taking tiles of each large kernel; results are bitwise those
 * of one thread. Needs shared memory (browsers: a cross-origin isolated page, COOP/COEP headers);
 * where it is missing, or the artifact has no threaded module, the model runs on one thread
 * (`stats().wasmThreads` says how many) and, where `threads` was given, warns on the console
 * and says why in `model.threadsNotice` (the default falls back silently).  Node's thread
 * Workers are unref()'d: a model that was never disposed does not keep the process alive. dispose() ends the Workers. With `worker: true` the threads are Workers
 * of the model's worker, whose driver waits for them blocked (a page's main thread must spin).
 */
/** The most threads `load(..., {threads})` accepts (wasm/threads.py MAX_THREADS). */
export const MAX_THREADS = 16;
/**
 * The most threads `threads: 'auto'` picks: ONNX Runtime Web's cap (it picks min(4, ceil(cores / 2)));
 * the thread tests cover 1-4 threads.
 */
export const AUTO_MAX_THREADS = 4;

export async function loadModel(source, options = {}, readerFor, spawnWorker, cores = () => 1) {
  const backend = options.backend ?? 'auto';
  if (!['auto', 'wasm', 'webgpu'].includes(backend)) {
    throw new Error(`webtensor.load: backend must be 'auto', 'webgpu' or 'wasm', got ${JSON.stringify(backend)}`);
  }
  const { worker = false, timeout } = options;
  // the default is 'auto' (issue 16): an artifact with a threaded module uses the cores; where threads
  // cannot run, the default falls back to one thread silently (a warning only when threads were asked)
  const quiet = options.threads == null; // not given (undefined or null)
  let threads = options.threads ?? 'auto';
  if (threads === 'auto') {
    const n = Number(cores());
    threads = Number.isInteger(n) && n > 1 ? Math.min(n, AUTO_MAX_THREADS) : 1;
  } else if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new Error(`webtensor.load: threads must be 'auto' or an integer in [1, ${MAX_THREADS}], got ${JSON.stringify(threads)}`);
  }
  if (typeof worker !== 'boolean') throw new Error(`webtensor.load: worker must be true or false, got ${JSON.stringify(worker)}`);
  if (timeout !== undefined) {
    if (!worker) {
      throw new Error('webtensor.load: `timeout` needs `worker: true`: WebAssembly running on the main thread cannot be interrupted, so the model must run in a Worker that can be terminated');
    }
    if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_TIMEOUT_MS)) {
      throw new Error(`webtensor.load: timeout must be a number of milliseconds in (0, ${MAX_TIMEOUT_MS}], got ${typeof timeout === 'number' ? timeout : JSON.stringify(timeout)}`);
    }
  }
  if (worker && backend === 'webgpu') {
    throw new Error("webtensor.load: `worker: true` runs WebAssembly only; backend 'webgpu' in a worker is not supported yet (use backend 'wasm' or 'auto' with worker: true, or drop worker)");
  }
  if (worker && typeof spawnWorker !== 'function') throw new Error('webtensor.load: `worker: true` needs an entry point that can create workers');
  let read, where;
  if (typeof source === 'string' || typeof source?.href === 'string') { // a string, URL or Location
    const location = typeof source === 'string' ? source : source.href;
    read = readerFor(location);
    where = `'${location}'`;
  } else if (source !== null && typeof source === 'object' && !ArrayBuffer.isView(source)) {
    read = objectReader(source);
    where = '(in memory)';
  } else {
    throw new Error(`webtensor.load: source must be a URL or path string or an object {'manifest.json': bytes, ...}, got ${Object.prototype.toString.call(source)}`);
  }
  const checked = await readArtifact(read, where);
  const fail = (msg) => { throw new ArtifactError(`webtensor: artifact ${where}: ${msg}`); };
  const artifact = { ...checked, manifest: expandControl(checked.manifest, fail) }; // control flow: its pieces
  if (worker) return new Model(checked.manifest, await createWorkerBackend(artifact, fail, { spawn: spawnWorker, timeout, threads, quiet }), null);

  let adapter = null, gpu = null;
  const device = options.device ?? null;
  if (backend !== 'wasm' && !device) {
    gpu = options.gpu ?? globalThis.navigator?.gpu ?? null;
    if (gpu) {
      try {
        adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      } catch (e) {
        if (backend === 'webgpu') throw new Error(`webtensor.load: requesting a WebGPU adapter failed (${e.message})`);
      }
    }
    if (!adapter && backend === 'webgpu') {
      throw new Error(gpu ? 'webtensor.load: backend \'webgpu\' was requested, but no WebGPU adapter is available (requestAdapter() returned null)'
        : "webtensor.load: backend 'webgpu' was requested, but WebGPU is not available (no navigator.gpu and no `gpu` option; in Node pass {gpu: create([])} from the npm 'webgpu' package)");
    }
  }
  const gpuTarget = device ?? adapter;
  const useGPU = gpuTarget && (backend === 'webgpu' || (!isSoftwareAdapter(adapter?.info ?? device?.adapterInfo)
    && !webgpuShortfall(artifact, gpuTarget.limits, gpuTarget.features)));
  const created = useGPU
    ? await createWebGPUBackend(artifact, fail, { gpu, adapter, device })
    : await createWasmBackend(artifact, fail, { threads, quiet, spawnThread: spawnWorker && (() => spawnWorker('thread.js')) });
  return new Model(checked.manifest, created, useGPU ? adapterInfoOf(adapter, device) : null);
}

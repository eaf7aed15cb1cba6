// Tensors that live in a model's WebAssembly memory (as TF.js keeps its
// tensors on its backend): a resident input is one signature input's slot, so
// a run given it copies nothing; output views read the output slots in place.
// Lifetimes (docs/artifact.md, "Resident tensors"):
//   - a resident input holds its values until it is disposed, its model is
//     disposed, or a run of ANOTHER signature of that model (whose memory
//     region overlaps: signatures run one at a time and share it) makes it
//     stale; a stale one throws until write() fills it again. Runs of its own
//     signature never write their input slots, so its values survive them.
//   - an output view (run(name, inputs, {output: 'view'})) is valid until the
//     next run on that model, or its dispose().

import { ARRAY_TYPES, Tensor, dtypeOfArray, sizeOf } from './tensor.js';

/** The typed array class that views a dtype's storage (bool is stored as 4-byte 0/1). */
const STORAGE_TYPES = { float32: Float32Array, int32: Int32Array, bool: Int32Array };

/**
 * An input slot of a model's signature, in the model's WebAssembly memory.
 * Made by `model.inputTensor(signature, input)`; not constructed directly.
 */
export class ResidentTensor {
  constructor(model, signature, index, spec, slot) {
    this.shape = spec.shape.slice();
    this.dtype = spec.dtype;
    this.size = sizeOf(spec.shape);
    this.signature = signature;
    this.input = spec.name;
    this._model = model;
    this._index = index;
    this._slot = slot; // {addr, bytes}
    this._staleBy = null; // the signature whose run may have overwritten the slot
    this._disposed = false;
  }

  get rank() { return this.shape.length; }

  get isDisposed() { return this._disposed || this._model.isDisposed; }

  /** Whether a run of another signature may have overwritten the values (write() fills it again). */
  get isStale() { return this._staleBy !== null; }

  _memory(what) {
    if (this._disposed) throw new Error(`webtensor: ${what}: the resident tensor was disposed`);
    if (this._model.isDisposed) throw new Error(`webtensor: ${what}: the resident tensor's model was disposed`);
    return this._model._residentMemory();
  }

  /** The slot's address after checking that the tensor can be read (used by Model.run). */
  _source(what) {
    this._memory(what);
    if (this._staleBy !== null) {
      throw new Error(`webtensor: ${what}: the resident tensor for '${this.signature}' input '${this.input}' is stale: `
        + `a run of signature '${this._staleBy}' reused its memory (write() it again)`);
    }
    return this._slot;
  }

  /**
   * The slot as a typed array over the model's memory (Float32Array for
   * float32, Int32Array for int32 and bool, whose storage is 0/1 int32):
   * writing it sets the input without a copy. Valid until this tensor or its
   * model is disposed (the memory never grows). Throws while a run is queued
   * on the model (it would race with the run) or when stale.
   */
  view() {
    const buffer = this._memory('view');
    this._model._checkIdle('view');
    const { addr } = this._source('view');
    return new STORAGE_TYPES[this.dtype](buffer, addr, this.size);
  }

  /**
   * Copy `values` (a typed array of the dtype's type and this size, or a
   * Tensor of this dtype and shape) into the slot; makes a stale tensor
   * valid again. Returns this. Throws while a run is queued on the model.
   */
  write(values) {
    const buffer = this._memory('write');
    this._model._checkIdle('write');
    let data = values;
    if (values instanceof Tensor) {
      if (values.dtype !== this.dtype || values.shape.length !== this.shape.length || values.shape.some((d, i) => d !== this.shape[i])) {
        throw new Error(`webtensor: write: expected [${this.shape}] ${this.dtype}, got [${values.shape}] ${values.dtype}`);
      }
      data = values.dataSync();
    } else if (!ArrayBuffer.isView(values) || dtypeOfArray(values) !== this.dtype) {
      throw new Error(`webtensor: write: expected a ${ARRAY_TYPES[this.dtype].name} (${this.dtype}) or a Tensor, got ${Object.prototype.toString.call(values)}`);
    }
    if (data.length !== this.size) throw new Error(`webtensor: write: expected ${this.size} values for [${this.shape}] ${this.dtype}, got ${data.length}`);
    const dst = new STORAGE_TYPES[this.dtype](buffer, this._slot.addr, this.size);
    if (this.dtype === 'bool') for (let i = 0; i < data.length; i++) dst[i] = data[i] ? 1 : 0;
    else dst.set(data);
    this._staleBy = null;
    return this;
  }

  /** A copy of the values as a host typed array (Uint8Array 0/1 for bool), as TF.js's dataSync. */
  dataSync() {
    const buffer = this._memory('dataSync');
    const { addr } = this._source('dataSync');
    const stored = new STORAGE_TYPES[this.dtype](buffer, addr, this.size);
    return this.dtype === 'bool' ? Uint8Array.from(stored, (v) => (v !== 0 ? 1 : 0)) : stored.slice();
  }

  /** dataSync(), as a promise. */
  async data() { return this.dataSync(); }

  /** Release the slot (the model hands out a new resident tensor for it afterwards). Idempotent. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    this._model._forgetResident(this);
  }

  toString() {
    return `ResidentTensor(${this.dtype}, [${this.shape}], '${this.signature}' input '${this.input}'${this.isDisposed ? ', disposed' : ''})`;
  }
}

/**
 * A host Tensor whose data is a view of an output slot: valid until the next
 * run on its model (or the model's dispose()); reading it later throws.
 */
export class OutputView extends Tensor {
  constructor(data, shape, dtype, model, generation) {
    super(data, shape, dtype);
    this._model = model;
    this._generation = generation;
  }

  dataSync() {
    if (this._data !== null && (this._model.isDisposed || this._model._generation !== this._generation)) {
      throw new Error('webtensor: this output view expired: a later run (or dispose) of its model reused its memory (use {output: \'copy\'} or {into} to keep outputs)');
    }
    return super.dataSync();
  }
}

/** The values of storage bytes `bytes` (a view of the model's memory) as a view of `dtype`, or null for bool (stored as int32). */
export function storageView(bytes, dtype) {
  if (dtype === 'bool') return null;
  return new ARRAY_TYPES[dtype](bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

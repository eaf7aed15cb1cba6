// Host tensors: a typed array, a shape and a dtype. Model inputs are given as
// tensors (or plain typed arrays), and outputs come back as tensors.

/** dtype name -> typed array class of a tensor's data (bool: one byte 0/1, as in TF.js). */
export const ARRAY_TYPES = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };

/** Number of elements of `shape` (1 for a scalar `[]`). */
export function sizeOf(shape) {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The dtype of a typed array (`Float32Array` -> 'float32', ...), or null. */
export function dtypeOfArray(data) {
  for (const [dtype, Type] of Object.entries(ARRAY_TYPES)) if (data instanceof Type) return dtype;
  return null;
}

function checkShape(shape) {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`webtensor.tensor: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shape.slice();
}

/**
 * A host tensor. `data()` / `dataSync()` return the backing typed array
 * (Float32Array for float32, Int32Array for int32, Uint8Array for bool)
 * without copying.
 */
export class Tensor {
  constructor(data, shape, dtype) {
    this.shape = shape;
    this.dtype = dtype;
    this.size = data.length;
    this._data = data;
  }

  get rank() { return this.shape.length; }

  get isDisposed() { return this._data === null; }

  /** The values (async, as in TF.js; the data is already on the host). */
  async data() { return this.dataSync(); }

  /** The values, synchronously. */
  dataSync() {
    if (this._data === null) throw new Error('webtensor: this tensor was disposed');
    return this._data;
  }

  /** The values as a nested JS array (scalars as a number). */
  arraySync() {
    const data = Array.from(this.dataSync());
    const nest = (offset, dims) => {
      if (dims.length === 0) return data[offset];
      const step = sizeOf(dims.slice(1));
      return Array.from({ length: dims[0] }, (_, i) => nest(offset + i * step, dims.slice(1)));
    };
    return nest(0, this.shape);
  }

  /** Drop the reference to the data; later reads throw. */
  dispose() { this._data = null; }

  toString() {
    return `Tensor(${this.dtype}, [${this.shape}]${this._data === null ? ', disposed' : ''})`;
  }
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** A number as int32 by webtensor's cast rule (the same on every device): truncate toward zero, saturate, NaN -> 0. */
function castInt32(v) {
  return Number.isNaN(v) ? 0 : Math.min(INT32_MAX, Math.max(INT32_MIN, Math.trunc(v)));
}

/** A plain value as int32: an integer outside int32's range is an error (as Python's OverflowError), not a wrap. */
function checkedInt32(v) {
  const n = Number(v);
  if (Number.isInteger(n) && (n < INT32_MIN || n > INT32_MAX)) {
    throw new RangeError(`webtensor.tensor: ${v} is outside int32's range [${INT32_MIN}, ${INT32_MAX}]`);
  }
  return castInt32(n);
}

/**
 * Make a tensor. `data`: a typed array (used as is when its type matches
 * `dtype`, converted otherwise) or a (nested) array of numbers/booleans;
 * `shape`: defaults to the nested array's shape or `[data.length]`;
 * `dtype`: 'float32' | 'int32' | 'bool', defaults to the typed array's dtype
 * or 'float32'. Values becoming int32 follow webtensor's rules: an integer
 * outside [-2**31, 2**31 - 1] throws a RangeError (no silent wrap); other
 * numbers (and float typed arrays) truncate toward zero and saturate, NaN -> 0.
 * Throws an Error when the size does not match the shape.
 */
export function tensor(data, shape, dtype) {
  let inferred = null;
  if (Array.isArray(data)) {
    inferred = [];
    for (let a = data; Array.isArray(a); a = a[0]) inferred.push(a.length);
    data = data.flat(Infinity);
  } else if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    if (typeof data === 'number' || typeof data === 'boolean') {
      inferred = [];
      data = [data];
    } else {
      throw new Error(`webtensor.tensor: data must be a typed array or an array of numbers, got ${Object.prototype.toString.call(data)}`);
    }
  }
  dtype = dtype ?? dtypeOfArray(data) ?? 'float32';
  const Type = ARRAY_TYPES[dtype];
  if (!Type) throw new Error(`webtensor.tensor: unsupported dtype '${dtype}' (supported: ${Object.keys(ARRAY_TYPES).join(', ')})`);
  shape = checkShape(shape ?? inferred ?? [data.length]);
  if (!(data instanceof Type)) {
    const convert = dtype === 'bool' ? (v) => (v ? 1 : 0)
      : dtype === 'int32' ? (ArrayBuffer.isView(data) ? castInt32 : checkedInt32) : Number;
    data = Type.from(data, convert);
  }
  if (data.length !== sizeOf(shape)) {
    throw new Error(`webtensor.tensor: ${data.length} values do not fit shape [${shape}] (${sizeOf(shape)} elements)`);
  }
  return new Tensor(data, shape, dtype);
}

// Backend storage: 4 bytes per element on both backends; bool is a 0/1 int32.

/** The storage bytes (a Uint8Array view, or a converted copy for bool) of a tensor's typed array. */
export function toStorage(data, dtype) {
  if (dtype === 'bool') data = Int32Array.from(data, (v) => (v ? 1 : 0));
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A typed array of `dtype` with the values of the storage bytes `bytes` (a Uint8Array; taken over if it spans its whole buffer, else copied). */
export function fromStorage(bytes, dtype) {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const copy = whole ? bytes.buffer : bytes.slice().buffer;
  if (dtype === 'bool') return Uint8Array.from(new Int32Array(copy), (v) => (v !== 0 ? 1 : 0));
  return new ARRAY_TYPES[dtype](copy);
}

// webtensor.tensor and Tensor.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Tensor, tensor } from '../index.js';

test('tensor() from typed arrays keeps the array; from nested arrays infers the shape', () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  const a = tensor(data, [2, 3]);
  assert.ok(a instanceof Tensor);
  assert.equal(a.dataSync(), data);
  assert.deepEqual([a.dtype, a.shape, a.size, a.rank], ['float32', [2, 3], 6, 2]);
  assert.deepEqual(a.arraySync(), [[1, 2, 3], [4, 5, 6]]);
  const b = tensor([[1, 2], [3, 4], [5, 6]]);
  assert.deepEqual([b.dtype, b.shape], ['float32', [3, 2]]);
  assert.ok(b.dataSync() instanceof Float32Array);
  const c = tensor([1.7, -2.2], undefined, 'int32');
  assert.deepEqual(Array.from(c.dataSync()), [1, -2]);
  assert.ok(c.dataSync() instanceof Int32Array);
  assert.equal(tensor(new Int32Array(3)).dtype, 'int32');
  const m = tensor([true, false, 2], [3], 'bool');
  assert.deepEqual([m.dtype, Array.from(m.dataSync())], ['bool', [1, 0, 1]]);
  assert.ok(m.dataSync() instanceof Uint8Array);
  const s = tensor(3.5);
  assert.deepEqual([s.shape, s.arraySync()], [[], 3.5]);
  const f = tensor(new Int32Array([1, 2]), [2], 'float32');
  assert.ok(f.dataSync() instanceof Float32Array);
  assert.equal(String(a), 'Tensor(float32, [2,3])');
});

test('data() resolves to the values; dispose() makes later reads throw', async () => {
  const a = tensor(new Float32Array([1, 2]));
  assert.deepEqual(Array.from(await a.data()), [1, 2]);
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.dataSync(), /disposed/);
  await assert.rejects(a.data(), /disposed/);
});

test('tensor() errors', () => {
  assert.throws(() => tensor(new Float32Array(6), [4, 2]), /6 values do not fit shape \[4,2\] \(8 elements\)/);
  assert.throws(() => tensor([1, 2], [2], 'float64'), /unsupported dtype 'float64' \(supported: float32, int32, bool\)/);
  assert.throws(() => tensor([1, 2], [2.5]), /shape must be an array of non-negative integers/);
  assert.throws(() => tensor('abc'), /data must be a typed array or an array of numbers/);
});

test('int32: integers out of range throw (no wrap); other numbers follow the cast rule of every device', () => {
  for (const v of [2 ** 40, -(2 ** 35), 2 ** 31, -(2 ** 31) - 1, 3e9]) {
    assert.throws(() => tensor([v, 5], [2], 'int32'), (e) => e instanceof RangeError && e.message.includes(String(v)) && /int32/.test(e.message));
  }
  assert.deepEqual(Array.from(tensor([2 ** 31 - 1, -(2 ** 31), 5], [3], 'int32').dataSync()), [2 ** 31 - 1, -(2 ** 31), 5]);
  // non-integers: truncate toward zero, saturate, NaN -> 0 (webtensor.cast's rule, as WebAssembly's trunc_sat)
  assert.deepEqual(Array.from(tensor([1.9, -1.9, NaN, Infinity, -Infinity], [5], 'int32').dataSync()),
    [1, -1, 0, 2 ** 31 - 1, -(2 ** 31)]);
  // float typed arrays are data already rounded to float32: they saturate like a cast
  assert.deepEqual(Array.from(tensor(new Float32Array([3e9, -3e9, NaN, 2.5]), [4], 'int32').dataSync()),
    [2 ** 31 - 1, -(2 ** 31), 0, 2]);
});

// safetensors in JS against Python's writer/reader (webtensor.safetensors_io
// and the `safetensors` library), and damaged files.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseSafetensors, writeSafetensors } from '../index.js';
import { python } from './helpers.js';

const bytesOf = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const TENSORS = {
  'b/kernel': { dtype: 'float32', shape: [2, 3], bytes: bytesOf(new Float32Array([1.5, -2, 3e-8, 0, -0, 7])) },
  'a/step': { dtype: 'int32', shape: [], bytes: bytesOf(new Int32Array([-7])) },
  mask: { dtype: 'bool', shape: [3], bytes: new Uint8Array([1, 0, 1]) },
  empty: { dtype: 'float32', shape: [0, 4], bytes: new Uint8Array(0) },
  'ünï': { dtype: 'int32', shape: [2], bytes: bytesOf(new Int32Array([1, 2])) },
};
const META = { format: 'webtensor-weights', z: 'last', a: 'first' };

const PY = `
import json, sys
import numpy as np
from safetensors.numpy import load as st_load
from webtensor import safetensors_io
data = sys.stdin.buffer.read()
tensors, metadata = safetensors_io.load(data)
np_dtype = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
py_bytes = safetensors_io.save({k: (d, s, v) for k, (d, s, v) in tensors.items()}, metadata)
print(json.dumps({
    "same_bytes": py_bytes == data,
    "metadata": metadata,
    "ours": {k: [d, list(s), np.frombuffer(bytes(v), np_dtype[d]).tolist()] for k, (d, s, v) in tensors.items()},
    "theirs": {k: [str(a.dtype), list(a.shape), a.ravel().tolist()] for k, a in st_load(data).items()},
}))
`;

test('JS writes the same bytes as Python, and Python (both readers) reads them', () => {
  const data = writeSafetensors(TENSORS, META);
  const r = python(PY, data);
  assert.equal(r.same_bytes, true);
  assert.deepEqual(r.metadata, META);
  assert.deepEqual(r.ours['b/kernel'], ['float32', [2, 3], Array.from(new Float32Array([1.5, -2, 3e-8, 0, -0, 7]))]);
  assert.deepEqual(r.ours['a/step'], ['int32', [], [-7]]);
  assert.deepEqual(r.ours.mask, ['bool', [3], [true, false, true]]);
  assert.deepEqual(r.ours.empty, ['float32', [0, 4], []]);
  assert.deepEqual(r.ours['ünï'], ['int32', [2], [1, 2]]);
  assert.deepEqual(r.theirs.mask, ['bool', [3], [true, false, true]]);
  assert.deepEqual(r.theirs['a/step'], ['int32', [], [-7]]);
  assert.deepEqual(r.theirs['b/kernel'][2], r.ours['b/kernel'][2]);
});

test('JS reads what JS and Python write', () => {
  const data = writeSafetensors(new Map(Object.entries(TENSORS)), META);
  const { tensors, metadata } = parseSafetensors(data);
  assert.deepEqual(metadata, META);
  for (const [name, t] of Object.entries(TENSORS)) {
    const got = tensors.get(name);
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.deepEqual(Array.from(got.bytes), Array.from(t.bytes), name);
  }
  const fromPython = Buffer.from(python(`
import base64, json, struct
from webtensor import safetensors_io
data = safetensors_io.save({"w": ("float32", (2,), struct.pack("<2f", 0.5, -1.0)), "n": ("int32", (1,), struct.pack("<i", 3))}, {"k": "v"})
print(json.dumps(base64.b64encode(data).decode()))`), 'base64');
  const py = parseSafetensors(new Uint8Array(fromPython));
  assert.deepEqual(py.metadata, { k: 'v' });
  assert.deepEqual(Array.from(new Float32Array(py.tensors.get('w').bytes.slice().buffer)), [0.5, -1]);
  assert.deepEqual(Array.from(new Int32Array(py.tensors.get('n').bytes.slice().buffer)), [3]);
});

test('damaged files throw Errors naming the problem', () => {
  const good = writeSafetensors(TENSORS);
  const header = (obj) => {
    const json = new TextEncoder().encode(JSON.stringify(obj));
    const out = new Uint8Array(8 + json.length + 8);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };
  const cases = [
    [good.slice(0, 5), /5 bytes is too short/],
    [good.slice(0, 20), /header length \d+ runs past the end/],
    [(() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /over the 100000000-byte limit/],
    [header([1, 2]), /header is not a JSON object/],
    [header({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, __metadata__: { a: 1 } }), /'__metadata__' must map strings to strings/],
    [header({ x: { dtype: 'F99', shape: [2], data_offsets: [0, 8] } }), /tensor 'x': unknown dtype "F99"/],
    [header({ x: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }), /tensor 'x': shape must be non-negative integers/],
    [header({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }), /tensor 'x': data_offsets \[0,4\] span 4 bytes, but shape \[2\] of F32 needs 8/],
    [header({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), /tensor 'x': data_offsets \[4, 8\] leave a gap after byte 0/],
    [header({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), /overlap the previous tensor/],
    [header({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }), /tensors cover 4 bytes but the data buffer has 8/],
  ];
  for (const [data, message] of cases) assert.throws(() => parseSafetensors(data, 'w.st'), (e) => e.message.startsWith('w.st: ') && message.test(e.message));
  assert.throws(() => writeSafetensors({ x: { dtype: 'float32', shape: [3], bytes: new Uint8Array(8) } }), /tensor 'x': 8 bytes, but shape \[3\] of float32 needs 12/);
  assert.throws(() => writeSafetensors({ x: { dtype: 'complex64', shape: [], bytes: new Uint8Array(8) } }), /unknown dtype 'complex64'/);
});

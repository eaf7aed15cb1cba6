"""Kernel IR -> WebAssembly (wasm/lower.py, wasm/analysis.py) against the IR's numpy evaluator.

Shapes are chosen to hit the 4-lane bodies and the scalar tails, strided and gathered lane
loads, per-lane integer fallbacks, and each reduction strategy.
"""
import numpy as np
import pytest
import wasmtime

import webtensor as wt
from webtensor.core import kernel_ir as K
from webtensor.core import ops as F
from webtensor.core.dtypes import as_dtype, bool_, float32, int32
from webtensor.core.op import Aval
from webtensor.wasm import text
from webtensor.wasm.analysis import analyze, is_copy
from webtensor.wasm.lower import kernel_module

ENGINE = wasmtime.Engine(wasmtime.Config())
_cfg = wasmtime.Config()
_cfg.wasm_relaxed_simd = True
ENGINE_FMA = wasmtime.Engine(_cfg)


def run_kernel(k, arrays, splits=None, fma=False, splat=True):
    """Run kernel ``k`` on numpy ``arrays``; ``splits(rows)`` gives row-range bounds for several calls;
    ``fma`` lowers with relaxed-SIMD multiply-adds (run on an engine with that feature); ``splat``:
    ``kernel_module``'s matmul broadcast choice."""
    m, lw = kernel_module(k, fma=fma, splat=splat)
    data = m.emit()
    engine = ENGINE_FMA if fma else ENGINE
    wasmtime.Module.validate(engine, data)
    relaxed = any("relaxed" in mn for g in m.functions for mn, _, _ in g.instrs)
    assert relaxed <= fma, "relaxed SIMD emitted without fma=True"
    store = wasmtime.Store(engine)
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(64, None)))
    fn = wasmtime.Instance(store, wasmtime.Module(engine, data), [mem]).exports(store)["kernel"]
    view = np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),))
    off, addrs = 64, []
    for a in arrays:
        a = np.ascontiguousarray(a)
        b = (a.astype(np.int32) if a.dtype == np.bool_ else a).view(np.uint8).ravel()
        view[off:off + b.size] = b
        addrs.append(off)
        off += -(-b.size // 64) * 64 + 64
    n = int(np.prod(k.out.shape))
    view[off:off + 4 * n + 64] = 0xAB
    bounds = [0, lw.rows] if splits is None else splits(lw.rows)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        fn(store, off, *addrs, lo, hi, off + 4 * n + 128)
    assert (view[off + 4 * n:off + 4 * n + 64] == 0xAB).all(), "kernel wrote past its output"
    r = view[off:off + 4 * n].view(np.float32 if k.out.dtype.kind == "f" else np.int32).reshape(k.out.shape)
    return (r != 0) if k.out.dtype == bool_ else r.copy(), lw


def check(k, arrays, rtol=1e-6, atol=1e-6, splits=None, fma=False):
    got, lw = run_kernel(k, arrays, splits, fma)
    want = K.evaluate(k, [np.asarray(a) for a in arrays])
    assert got.dtype == want.dtype or (got.dtype == np.int32 and want.dtype == np.int32)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return got, lw


def op_kernel(op, arrays, **attrs):
    avals = [Aval(tuple(a.shape), as_dtype(a.dtype)) for a in arrays]
    return op.kernel(avals, op.infer(*avals, **attrs), **attrs)


rng = np.random.default_rng(0)


def f32(*s):
    return rng.standard_normal(s).astype(np.float32)


def i32(*s, lo=-20, hi=20):
    return rng.integers(lo, hi, s).astype(np.int32)


# ---- maps ------------------------------------------------------------------------------------

def test_broadcast_chain_collapses_and_vectorises():
    x, y, z = f32(6, 37), f32(37), f32(6, 1)
    dims = [K.idx(0), K.idx(1)]
    e = (K.load(0, dims, float32) * K.load(1, (dims[1],), float32) + K.load(2, (dims[0], 0), float32))
    k = K.map_kernel([K.Buffer(x.shape, float32), K.Buffer(y.shape, float32), K.Buffer(z.shape, float32)],
                     K.Buffer((6, 37), float32), K.exp(K.tanh(e)))
    check(k, [x, y, z], rtol=2e-6)
    a = f32(5, 4, 9)      # (5*4, 9) and (9,) broadcast: dims 0, 1 merge, 2 stays
    k = op_kernel(F.elementwise.add, [a, f32(4, 9)])
    assert analyze(k).ext == [5, 36]
    check(k, [a, f32(4, 9)])


@pytest.mark.parametrize("fma", [False, True])
def test_transcendental_chain_with_and_without_fma(fma):
    x, a = f32(3, 1031) * 3, f32(1031)
    k = op_kernel(F.elementwise.mul, [x, a])
    e = k.expr
    chain = K.exp(K.tanh(e) * 2.0) + K.erf(e) * K.log(K.unary("abs", e) + 1.0) + K.unary("sin", e)
    k = K.map_kernel(k.inputs, k.out, chain)
    check(k, [x, a], rtol=3e-6, atol=3e-6, fma=fma)


def test_rows_split_matches_one_call():
    x = f32(10, 13)
    k = op_kernel(F.elementwise.sin, [x])
    check(k, [x], splits=lambda n: [0, 3, 4, 9, n], atol=2e-7)
    k = op_kernel(F.reduction.reduce_sum, [x], axes=(0,), keepdims=False)
    check(k, [x], splits=lambda n: [0, 5, 6, n])


@pytest.mark.parametrize("shape,perm", [((2, 3, 4), (2, 0, 1)), ((5, 9), (1, 0)), ((3, 4, 5, 6), (0, 3, 1, 2))])
def test_transpose_strided_lanes(shape, perm):
    x = f32(*shape)
    check(op_kernel(F.movement.transpose_op, [x], perm=perm), [x])


def test_negative_step_slice_and_pad():
    x = f32(9, 23)
    check(op_kernel(F.movement.slice_op, [x], spec=tuple(slice(*s).indices(n) for s, n in
                                                         zip(((8, None, -2), (21, 0, -3)), x.shape))), [x])
    check(op_kernel(F.movement.pad_op, [x], paddings=((1, 2), (5, 3)), constant_value=0.5), [x])


def test_reshape_is_a_copy_and_simplifies():
    x = f32(3, 10)
    k = op_kernel(F.movement.reshape_op, [x], shape=(5, 6))
    a = analyze(k)
    assert is_copy(a) and a.ext == [30]
    check(k, [x])
    k = op_kernel(F.movement.reshape_op, [f32(2, 3, 4)], shape=(4, 6))
    assert is_copy(analyze(k))


def test_valid_patches_lose_their_bounds_checks():
    x = f32(2, 9, 9, 3)
    k = op_kernel(F.nn.extract_patches, [x], ksize=(3, 3), strides=(1, 1), dilations=(1, 1),
                  pads=((0, 0), (0, 0)), pad_value=0.0)
    assert "where" not in str(analyze(k).expr)
    check(k, [x])
    k = op_kernel(F.nn.extract_patches, [x], ksize=(3, 3), strides=(2, 2), dilations=(1, 1),
                  pads=((1, 1), (1, 1)), pad_value=-1.0)
    check(k, [x])


def test_gather_along_the_vector_dim_and_one_hot():
    p, i = f32(13, 7), i32(3, 11, lo=-2, hi=15)
    check(op_kernel(F.movement.gather_op, [p, i], axis=0), [p, i])
    p2, i2 = f32(4, 30), i32(9, lo=0, hi=30)
    check(op_kernel(F.movement.gather_op, [p2, i2], axis=1), [p2, i2])
    j = i32(5, 3, lo=-1, hi=12)
    check(op_kernel(F.movement.one_hot_op, [j], depth=11, axis=2, dtype=float32), [j])
    check(op_kernel(F.movement.one_hot_op, [j], depth=11, axis=0, dtype=int32), [j])


def test_integer_floor_division_modulo_and_power():
    a = np.concatenate([i32(41), np.int32([-2**31, 7, -7, 7, -7, 0, 5])])
    b = np.concatenate([i32(41), np.int32([-1, 2, 2, -2, -2, 3, 0])])
    ins = [K.Buffer(a.shape, int32), K.Buffer(b.shape, int32)]
    for op in ("idiv", "mod"):
        e = K.binary(op, K.load(0, (K.idx(0),), int32), K.load(1, (K.idx(0),), int32))
        with np.errstate(all="ignore"):
            check(K.map_kernel(ins, K.Buffer(a.shape, int32), e), [a, b])
    base, ex = i32(23, lo=-4, hi=5), i32(23, lo=0, hi=9)
    e = K.binary("pow", K.load(0, (K.idx(0),), int32), K.load(1, (K.idx(0),), int32))
    check(K.map_kernel([K.Buffer(base.shape, int32)] * 2, K.Buffer(base.shape, int32), e), [base, ex])
    # the scalar tail: 3 elements
    check(K.map_kernel([K.Buffer((3,), int32)] * 2, K.Buffer((3,), int32), e), [base[:3], ex[:3]])


def test_float_floor_division_modulo():
    a, b = f32(33) * 10, np.where(rng.random(33) > 0.5, 3.0, -2.5).astype(np.float32)
    ins = [K.Buffer(a.shape, float32)] * 2
    for op in ("idiv", "mod"):
        e = K.binary(op, K.load(0, (K.idx(0),), float32), K.load(1, (K.idx(0),), float32))
        check(K.map_kernel(ins, K.Buffer(a.shape, float32), e), [a, b], atol=1e-5)


def test_bools_casts_and_where():
    x, c = f32(3, 21), rng.random((3, 21)) > 0.5
    i = i32(3, 21, lo=-3, hi=3)
    d = (K.idx(0), K.idx(1))
    xb, cb, ib = K.load(0, d, float32), K.load(1, d, bool_), K.load(2, d, int32)
    ins = [K.Buffer(x.shape, float32), K.Buffer(c.shape, bool_), K.Buffer(i.shape, int32)]
    exprs = {
        bool_: K.binary("or", K.binary("and", cb, K.unary("not", xb > 0.3)), K.binary("eq", ib, K.const(0))),
        float32: K.where(cb, K.cast(ib, float32), K.cast(cb, float32) - xb) + K.cast(K.cast(xb * 3, int32), float32),
        int32: K.cast(cb, int32) * 3 + K.cast(K.cast(ib, bool_), int32) + K.unary("abs", ib),
    }
    for dt, e in exprs.items():
        check(K.map_kernel(ins, K.Buffer(x.shape, dt), e), [x, c, i])
    r = K.unary("round", K.load(0, d, float32) * 2.5)   # half to even
    h = (np.arange(63, dtype=np.float32).reshape(3, 21) - 30) * 0.2
    check(K.map_kernel(ins[:1], K.Buffer(x.shape, float32), r), [h])


def test_scalar_output_and_empty():
    x = f32(1)
    check(op_kernel(F.elementwise.exp, [x.reshape(())]), [x.reshape(())])
    e = f32(0, 5)
    got, lw = run_kernel(op_kernel(F.elementwise.exp, [e]), [e])
    assert got.shape == (0, 5) and lw.rows == 0


# ---- reductions --------------------------------------------------------------------------------

RED = [("sum", F.reduction.reduce_sum), ("prod", F.reduction.reduce_prod), ("max", F.reduction.reduce_max),
       ("min", F.reduction.reduce_min)]


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (1, 2), (0, 1, 2)])
@pytest.mark.parametrize("name,op", RED, ids=[r[0] for r in RED])
def test_reductions_every_axis(name, op, axes):
    x = f32(5, 6, 11) * (0.3 if name == "prod" else 1)
    check(op_kernel(op, [x], axes=axes, keepdims=False), [x], rtol=2e-6, atol=1e-6)
    xi = i32(5, 6, 11, lo=-3, hi=4)
    if name != "prod" or len(axes) == 1:
        check(op_kernel(op, [xi], axes=axes, keepdims=True), [xi])


@pytest.mark.parametrize("shape,axis", [((7, 33), 0), ((7, 33), 1), ((3, 2, 5), 2), ((41,), 0), ((9, 3), 1)])
@pytest.mark.parametrize("opname", ["argmax", "argmin"])
def test_argmax_argmin_first_index_on_ties(shape, axis, opname):
    op = F.reduction.argmax_op if opname == "argmax" else F.reduction.argmin_op
    x = rng.integers(-2, 3, shape).astype(np.float32)      # many ties
    check(op_kernel(op, [x], axis=axis), [x])
    xi = x.astype(np.int32)
    check(op_kernel(op, [xi], axis=axis), [xi])


@pytest.mark.parametrize("shape,axis", [((7, 33), 0), ((7, 33), 1), ((3, 2, 5), 2), ((41,), 0), ((9, 3), 1)])
@pytest.mark.parametrize("opname", ["argmax", "argmin"])
def test_argmax_argmin_pick_the_first_nan_like_numpy(shape, axis, opname):
    op = F.reduction.argmax_op if opname == "argmax" else F.reduction.argmin_op
    x = rng.integers(-2, 3, shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, max(2, flat.size // 5), replace=False)] = np.nan   # some rows: several nans
    flat[rng.choice(flat.size, 2, replace=False)] = -np.inf if opname == "argmax" else np.inf
    want = (np.argmax if opname == "argmax" else np.argmin)(x, axis=axis)
    assert np.isnan(np.take_along_axis(x, np.expand_dims(want, axis), axis)).any()   # nan matters here
    check(op_kernel(op, [x], axis=axis), [x])


def test_argmax_over_two_reduced_axes_flattens():
    x = rng.integers(0, 3, (4, 5, 6)).astype(np.float32)
    e = K.load(0, (K.idx(0), K.idx(1), K.idx(2)), float32)
    k = K.reduce_kernel([K.Buffer(x.shape, float32)], K.Buffer((4,), int32), (5, 6), e, "argmax")
    check(k, [x])


def test_bool_sum_and_empty_reductions():
    b = rng.random((6, 19)) > 0.4
    check(op_kernel(F.reduction.reduce_sum, [b], axes=(1,), keepdims=False), [b])
    z = f32(3, 0)
    got, _ = check(op_kernel(F.reduction.reduce_sum, [z], axes=(1,), keepdims=False), [z])
    assert (got == 0).all()
    got, _ = check(op_kernel(F.reduction.reduce_prod, [z], axes=(1,), keepdims=False), [z])
    assert (got == 1).all()


def test_softmax_style_fused_reduction():
    x = f32(9, 37) * 30
    d = (K.idx(0), K.idx(1))
    m = K.load(1, (K.idx(0),), float32)
    k = K.reduce_kernel([K.Buffer(x.shape, float32), K.Buffer((9,), float32)], K.Buffer((9,), float32), (37,),
                        K.exp(K.load(0, d, float32) - m), "sum")
    check(k, [x, x.max(1)], rtol=2e-6)


def test_generic_matmul_reduce():
    a, b = f32(5, 7), f32(7, 9)
    k = op_kernel(F.linalg.matmul_op, [a, b], transpose_a=False, transpose_b=False)
    k = K.Kernel(k.kind, k.inputs, k.out, k.space, k.expr, k.combiner)   # without the template hint
    check(k, [a, b], rtol=1e-5)
    ai, bi = i32(4, 6), i32(6, 5)
    check(op_kernel(F.linalg.matmul_op, [ai, bi], transpose_a=False, transpose_b=False), [ai, bi])


# ---- module facts -------------------------------------------------------------------------------

def test_text_dump_of_a_lowered_kernel():
    m, lw = kernel_module(op_kernel(F.elementwise.gelu_tanh, [f32(64)]))
    s = text.dump(m)
    assert '(import "env" "memory"' in s and "f32x4.mul" in s and "v128.load" in s and "(func $kernel" in s
    assert lw.rows == 64 and lw.n_inputs == 1


@pytest.mark.parametrize("axes", [(0,), (1,)])
@pytest.mark.parametrize("name,op", RED[2:], ids=["max", "min"])
def test_max_min_propagate_nan_like_numpy(name, op, axes):
    x = f32(9, 37)
    x[2, 5] = x[7, 30] = np.nan
    got, _ = check(op_kernel(op, [x], axes=axes, keepdims=False), [x])
    assert np.isnan(got).sum() == (2 if axes == (0,) else 2)
    r = K.maximum(K.load(0, (K.idx(0), K.idx(1)), float32), 0.0)      # relu keeps nan
    check(K.map_kernel([K.Buffer(x.shape, float32)], K.Buffer(x.shape, float32), r), [x])


def test_lowering_needs_no_numpy():
    """Compilation (analysis, lowering, vmath, matmul, the binary writer) runs in Pyodide: no numpy."""
    import subprocess
    import sys
    code = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ImportError("numpy is blocked in this test")
sys.meta_path.insert(0, _Block())
import webtensor as wt
from webtensor.core.op import OPS, Aval
from webtensor.core import compile as C, graph as G
from webtensor.wasm.binary import Module
from webtensor.wasm.lower import lower
m = Module()
m.import_memory("env", "memory", 1)
f32 = wt.float32
ks = [OPS["gelu_tanh"].kernel([Aval((5, 33), f32)], Aval((5, 33), f32)),
      OPS["matmul"].kernel([Aval((9, 7), f32), Aval((7, 5), f32)], Aval((9, 5), f32), transpose_a=False,
                           transpose_b=False),
      OPS["reduce_max"].kernel([Aval((6, 7), f32)], Aval((6,), f32), axes=(1,), keepdims=False),
      OPS["argmin"].kernel([Aval((6, 7), f32)], Aval((7,), wt.int32), axis=0)]
for i, k in enumerate(ks):
    lower(m, k, f"k{i}", export=True, fma=i % 2 == 1)
data = m.emit()
assert data[:4] == b"\\0asm" and "numpy" not in sys.modules
print("ok", len(data))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")

"""The kernel IR that the WebAssembly and WGSL backends lower, checked with its numpy evaluator.

1. Every primitive op in ``OPS``: its kernel (``op.kernel``) evaluated with
   ``kernel_ir.evaluate`` equals ``op.reference`` on random inputs of several shapes.
2. Fused programs: functions traced with ``webtensor.function`` (and gradients), compiled
   with ``compile_graph`` and run with ``run_with_numpy``, give what calling the function
   gives; fusion really happens; ``plan_arena`` never overlaps two buffers live together.
"""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import kernel_ir as K
from webtensor.core.compile import compile_graph, plan_arena, run_with_numpy
from webtensor.core.dtypes import as_dtype
from webtensor.core.op import OPS, Aval


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def _f(rng, shape, lo=-3.0, hi=3.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def _i(rng, shape, lo=-4, hi=5):
    return rng.integers(lo, hi, shape).astype(np.int32)


def _b(rng, shape):
    return rng.random(shape) < 0.5


# ---- cases: op name -> list of functions rng -> (inputs, attrs) --------------------------------

PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((0, 3), (1, 3)), ((1,), (5,))]
UNARY_SHAPES = [(), (1,), (7,), (3, 4), (2, 1, 3), (2, 0, 3)]

UNARY_DOMAINS = {  # op -> input generator (default: floats in [-3, 3])
    "log": lambda r, s: _f(r, s, 0.1, 3), "sqrt": lambda r, s: _f(r, s, 0.1, 3),
    "rsqrt": lambda r, s: _f(r, s, 0.1, 3), "reciprocal": lambda r, s: _f(r, s, 0.5, 3),
    "floor": lambda r, s: (_i(r, s, -8, 9) / 2).astype(np.float32),
    "ceil": lambda r, s: (_i(r, s, -8, 9) / 2).astype(np.float32),
    "round": lambda r, s: (_i(r, s, -8, 9) / 2).astype(np.float32),
    "sign": lambda r, s: _i(r, s, -2, 3).astype(np.float32),
    "logical_not": _b,
}
UNARY_OPS = ["neg", "abs", "sign", "square", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh",
             "erf", "sigmoid", "relu", "gelu_tanh", "gelu_erf", "floor", "ceil", "round", "logical_not",
             "stop_gradient", "identity"]
INT_UNARY = ["neg", "abs", "sign", "square", "relu", "exp", "logical_not", "floor"]  # int32 inputs too
BINARY_OPS = {  # op -> (lhs generator, rhs generator)
    "add": (_f, _f), "sub": (_f, _f), "mul": (_f, _f), "div": (_f, lambda r, s: _f(r, s, 0.5, 3)),
    "pow": (lambda r, s: _f(r, s, 0.1, 3), _f), "maximum": (_i, _f), "minimum": (_f, _f),
    "equal": (_i, _i), "not_equal": (_i, _i), "less": (_i, _f), "less_equal": (_f, _f),
    "greater": (_i, _i), "greater_equal": (_f, _i), "logical_and": (_b, _b), "logical_or": (_b, _b),
}
INT_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "less", "equal"]


def _cases():
    cases: dict[str, list] = {}

    def add(name, fn):
        cases.setdefault(name, []).append(fn)

    for name in UNARY_OPS:
        gen = UNARY_DOMAINS.get(name, _f)
        for s in UNARY_SHAPES:
            add(name, lambda r, s=s, gen=gen: ([gen(r, s)], {}))
    for name in INT_UNARY:
        add(name, lambda r: ([_i(r, (3, 4))], {}))
    for name, (ga, gb) in BINARY_OPS.items():
        for sa, sb in PAIRS:
            add(name, lambda r, sa=sa, sb=sb, ga=ga, gb=gb: ([ga(r, sa), gb(r, sb)], {}))
    for name in INT_BINARY:
        add(name, lambda r: ([_i(r, (2, 3)), _i(r, (3,), 1, 5)], {}))
    add("pow", lambda r: ([_i(r, (4,), -3, 4), _i(r, (3, 1), 0, 4)], {}))

    for s in [((2, 3), (2, 3), (2, 3)), ((3, 1), (1, 4), ()), ((4,), (2, 1), (1, 4))]:
        add("where", lambda r, s=s: ([_b(r, s[0]), _f(r, s[1]), _i(r, s[2])], {}))
    for dt, gen in itertools.product(["float32", "int32", "bool"], [_f, _i, _b]):
        add("cast", lambda r, dt=dt, gen=gen: ([gen(r, (3, 4))], {"dtype": as_dtype(dt)}))
    add("cast", lambda r: ([np.array([-1.7, -0.5, 0.0, 0.5, 2.9], np.float32)], {"dtype": wt.int32}))

    for name in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min"):
        for shape, axes in [((2, 3, 4), (0, 1, 2)), ((2, 3, 4), (1,)), ((2, 3, 4), (0, 2)), ((5,), (0,)),
                            ((1, 3, 1), (0, 2)), ((), ())]:
            for keep in (False, True):
                add(name, lambda r, shape=shape, axes=axes, keep=keep: (
                    [_f(r, shape, 0.5, 1.5) if name == "reduce_prod" else _f(r, shape)],
                    {"axes": axes, "keepdims": keep}))
        add(name, lambda r: ([_i(r, (3, 4))], {"axes": (1,), "keepdims": False}))
    for name in ("reduce_sum", "reduce_prod"):
        add(name, lambda r: ([np.zeros((0, 3), np.float32)], {"axes": (0,), "keepdims": False}))
    add("reduce_sum", lambda r: ([_b(r, (3, 4))], {"axes": (0, 1), "keepdims": True}))
    for name in ("argmax", "argmin"):
        for shape, axis in [((7,), 0), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 1), ((1, 5), 0)]:
            add(name, lambda r, shape=shape, axis=axis: ([_i(r, shape, -2, 3).astype(np.float32)], {"axis": axis}))

    for shape, new in [((2, 3, 4), (6, 4)), ((2, 3, 4), (4, 3, 2)), ((), (1, 1)), ((5,), (5, 1)), ((0, 3), (3, 0))]:
        add("reshape", lambda r, shape=shape, new=new: ([_f(r, shape)], {"shape": new}))
    for shape, perm in [((2, 3, 4), (2, 0, 1)), ((3, 5), (1, 0)), ((2, 1, 3, 2), (3, 1, 0, 2))]:
        add("transpose", lambda r, shape=shape, perm=perm: ([_f(r, shape)], {"perm": perm}))
    for shape, new in [((3, 1), (2, 3, 4)), ((), (2, 2)), ((1, 4), (3, 4)), ((1,), (3, 0))]:
        add("broadcast_to", lambda r, shape=shape, new=new: ([_f(r, shape)], {"shape": new}))
    for shape, key in [((4, 5), np.s_[1:3, ::2]), ((4, 5), np.s_[::-1, 4:0:-2]), ((6,), np.s_[5::-3,]),
                       ((3, 4, 2), np.s_[1:1, :, ::-1]), ((4,), np.s_[-3:,])]:
        spec = tuple(sl.indices(n) for sl, n in zip(key, shape))
        out = tuple(len(range(*s)) for s in spec)
        add("slice", lambda r, shape=shape, spec=spec: ([_f(r, shape)], {"spec": spec}))
        add("slice_grad", lambda r, shape=shape, spec=spec, out=out: ([_f(r, out)], {"spec": spec, "shape": shape}))
    for shape, paddings, value in [((2, 3), ((1, 0), (2, 3)), 0.0), ((2, 3, 1), ((0, 0), (1, 1), (0, 2)), -1.5),
                                   ((4,), ((0, 0),), 0.0), ((0, 3), ((1, 1), (0, 1)), 2.0)]:
        add("pad", lambda r, shape=shape, paddings=paddings, value=value: (
            [_f(r, shape)], {"paddings": paddings, "constant_value": value}))
    add("pad", lambda r: ([_b(r, (2, 2))], {"paddings": ((1, 1), (0, 1)), "constant_value": True}))
    for shapes, axis in [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 2)], 1), ([(0, 3), (2, 3)], 0),
                         ([(2, 0), (2, 3), (2, 0)], 1), ([(1, 2, 1), (1, 2, 3)], 2)]:
        add("concat", lambda r, shapes=shapes, axis=axis: ([_f(r, s) for s in shapes], {"axis": axis}))
    for shape, ishape, axis in [((5, 3), (4,), 0), ((5, 3), (2, 2), 1), ((2, 4, 3), (3, 1), 1), ((6,), (), 0)]:
        add("gather", lambda r, shape=shape, ishape=ishape, axis=axis: (
            [_f(r, shape), _i(r, ishape, -2, shape[axis] + 2)], {"axis": axis}))  # out of range: clamped
    for ishape, depth, axis in [((4,), 3, 1), ((2, 2), 4, 0), ((2, 2), 4, 1), ((), 5, 0)]:
        for dt in (wt.float32, wt.int32):
            add("one_hot", lambda r, ishape=ishape, depth=depth, axis=axis, dt=dt: (
                [_i(r, ishape, -1, depth + 1)], {"depth": depth, "axis": axis, "dtype": dt}))
    for sa, sb, ta, tb in [((3, 4), (4, 5), False, False), ((4, 3), (5, 4), True, True),
                           ((2, 1, 3, 4), (5, 4, 2), False, False), ((1, 4, 3), (6, 5, 4), True, True),
                           ((3, 0), (0, 2), False, False), ((2, 3), (2, 4), True, False)]:
        add("matmul", lambda r, sa=sa, sb=sb, ta=ta, tb=tb: (
            [_f(r, sa), _f(r, sb)], {"transpose_a": ta, "transpose_b": tb}))
    add("matmul", lambda r: ([_i(r, (3, 4)), _i(r, (4, 2))], {"transpose_a": False, "transpose_b": False}))

    def _qmm(r, m, k, n, ta):   # the int8 matrix's bytes, four to a little-endian int32 word
        w8 = r.integers(-128, 128, k * n + (-k * n) % 4).astype(np.int8)
        return ([_f(r, (k, m) if ta else (m, k)), w8.view("<i4"), _f(r, (n,), 0.1, 2.0)], {"transpose_a": ta, "n": n})
    for m, k, n, ta in [(3, 5, 4, False), (2, 3, 3, True), (1, 1, 1, False)]:
        add("quantized_matmul", lambda r, m=m, k=k, n=n, ta=ta: _qmm(r, m, k, n, ta))

    def _qgather(r, rows, depth, ishape):   # a depth x rows int8 table; indices in and out of range
        w8 = r.integers(-128, 128, depth * rows + (-depth * rows) % 4).astype(np.int8)
        return ([w8.view("<i4"), _f(r, (rows,), 0.1, 2.0), _i(r, ishape, -rows - 2, rows + 2)], {"depth": depth})
    for rows, depth, ishape in [(5, 3, (4,)), (7, 4, (2, 3)), (1, 1, ())]:
        add("quantized_gather", lambda r, rows=rows, depth=depth, ishape=ishape: _qgather(r, rows, depth, ishape))
    for xs, ks, st, dil, pads, pv in [((2, 5, 6, 3), (3, 3), (1, 1), (1, 1), ((0, 0), (0, 0)), 0.0),
                                      ((1, 7, 6, 2), (3, 2), (2, 3), (1, 1), ((1, 1), (0, 2)), 0.0),
                                      ((1, 9, 8, 1), (3, 3), (2, 1), (2, 3), ((2, 2), (3, 3)), -np.inf),
                                      ((1, 4, 4, 2), (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), 0.0)]:
        attrs = {"ksize": ks, "strides": st, "dilations": dil, "pads": pads}
        add("extract_patches", lambda r, xs=xs, attrs=attrs, pv=pv: ([_f(r, xs)], {**attrs, "pad_value": pv}))
        out = OPS["extract_patches"].infer(Aval(xs, wt.float32), **attrs, pad_value=pv).shape
        add("extract_patches_grad", lambda r, xs=xs, attrs=attrs, out=out: (
            [_f(r, out)], {**attrs, "shape": xs}))
        attrs = {"strides": st, "dilations": dil, "pads": pads}
        add("conv2d_direct", lambda r, xs=xs, ks=ks, attrs=attrs: ([_f(r, xs), _f(r, ks + (xs[3], 3))], attrs))
        add("depthwise_conv2d_native", lambda r, xs=xs, ks=ks, attrs=attrs: ([_f(r, xs), _f(r, ks + (xs[3], 2))], attrs))
    return cases


def _more_movement_cases():
    """Issue 14's primitives (sorting, scans, index tuples), out-of-range index entries included."""
    cases: dict[str, list] = {}

    def add(name, fn):
        cases.setdefault(name, []).append(fn)

    def nan_ties(r, shape):
        x = _i(r, shape, -2, 3).astype(np.float32)
        x.reshape(-1)[r.choice(x.size, x.size // 4, replace=False)] = np.nan
        return x

    def perms(r, shape, axis):
        return np.argsort(r.random(shape), axis=axis).astype(np.int32)

    for shape, axis in [((7,), 0), ((3, 5), 1), ((4, 3), 0), ((2, 3, 4), 1), ((2, 0), 1)]:
        for desc in (False, True):
            add("sort_rank", lambda r, shape=shape, axis=axis, desc=desc: (
                [nan_ties(r, shape)], {"axis": axis, "descending": desc}))
        add("invert_permutation_along", lambda r, shape=shape, axis=axis: ([perms(r, shape, axis)], {"axis": axis}))
        add("permute_along_axis", lambda r, shape=shape, axis=axis: (
            [_f(r, shape), perms(r, shape, axis)], {"axis": axis}))
        for comb, ex, rev in itertools.product(("sum", "prod"), (False, True), (False, True)):
            add("cumulative", lambda r, shape=shape, axis=axis, comb=comb, ex=ex, rev=rev: (
                [_f(r, shape, 0.5, 1.5)], {"axis": axis, "combiner": comb, "exclusive": ex, "reverse": rev}))
    add("sort_rank", lambda r: ([_i(r, (3, 6), -2, 3)], {"axis": 1, "descending": True}))
    add("cumulative", lambda r: ([_i(r, (3, 4))], {"axis": 1, "combiner": "sum", "exclusive": True, "reverse": False}))
    for ps, ishape in [((1, 4, 3), (1, 5, 2)), ((2, 3, 2), (2, 4, 1)), ((1, 3), (1, 2, 0)), ((1, 0, 2), (1, 3, 1))]:
        k, u = ishape[2], ishape[1]
        add("gather_nd_op", lambda r, ps=ps, ishape=ishape: (
            [_f(r, ps), _i(r, ishape, -5, 5)], {}))                 # out of range: zeros
        shape = ps
        add("scatter_nd_op", lambda r, shape=shape, ishape=ishape, k=k, u=u: (
            [_i(r, ishape, -5, 5), _f(r, (shape[0], u) + shape[1 + k:])], {"shape": shape}))   # out of range: dropped
        add("scatter_nd_winner", lambda r, shape=shape, ishape=ishape, k=k: (
            [_i(r, ishape, -4, 4)], {"shape": shape[:1 + k]}))
    add("scatter_nd_op", lambda r: ([_i(r, (1, 0, 1)), _f(r, (1, 0, 2))], {"shape": (1, 3, 2)}))
    add("scatter_nd_winner", lambda r: ([_i(r, (1, 0, 2))], {"shape": (1, 2, 2)}))
    return cases


CASES = _cases()
CASES.update(_more_movement_cases())
from kernels_more_math import CASES as _MORE_MATH  # noqa: E402  (issue 14's ops)
CASES.update(_MORE_MATH)
ALL = [(name, k) for name in sorted(CASES) for k in range(len(CASES[name]))]


def test_every_primitive_has_kernel_cases():
    assert set(OPS) == set(CASES), (sorted(set(OPS) - set(CASES)), sorted(set(CASES) - set(OPS)))
    assert all(OPS[name].kernel is not None for name in OPS)


def _aval(a):
    return Aval(tuple(a.shape), as_dtype(a.dtype))


def check_ir(kernel: K.Kernel) -> None:
    """The kernel uses only the IR's vocabulary, with consistent dtypes (what backends rely on)."""
    space, nout = kernel.space, len(kernel.out.shape)
    if kernel.kind == "map":
        assert space == kernel.out.shape and kernel.combiner is None
    else:
        assert kernel.kind == "reduce" and kernel.combiner in K.COMBINERS and space[:nout] == kernel.out.shape
    if kernel.combiner not in ("argmax", "argmin") and kernel.epilogue is None:
        assert kernel.expr.dtype == kernel.out.dtype, (kernel.expr.dtype, kernel.out.dtype)
    if kernel.epilogue is not None:   # a map over the output; its last input is the reduced value
        e = kernel.epilogue
        assert kernel.kind == "reduce" and e.kind == "map" and e.space == kernel.out.shape and e.out == kernel.out
        assert e.inputs == kernel.inputs + (K.Buffer(kernel.out.shape, kernel.expr.dtype),)
        check_ir(e)
    seen, stack = set(), [kernel.expr]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen.add(e)
        stack.extend(e.args)
        dts = [a.dtype for a in e.args]
        if e.op == "const":
            assert not e.args and isinstance(e.arg, (bool, int, float))
        elif e.op == "idx":
            assert e.dtype == wt.int32 and 0 <= e.arg < len(space)
        elif e.op == "load":
            buf = kernel.inputs[e.arg]
            assert e.dtype == buf.dtype and len(e.args) == len(buf.shape), (e, buf)
            assert all(d == wt.int32 for d in dts)
        elif e.op == "cast":
            assert len(e.args) == 1
        elif e.op == "where":
            assert dts[0] == wt.bool and dts[1] == dts[2] == e.dtype
        elif e.op in K.UNARY:
            assert len(e.args) == 1 and e.dtype == (wt.bool if e.op == "not" else dts[0])
            assert e.op != "not" or dts[0] == wt.bool
        elif e.op in K.BINARY:
            assert len(e.args) == 2 and dts[0] == dts[1], e
            logical = e.op in K.COMPARISONS or e.op in ("and", "or")
            assert e.dtype == (wt.bool if logical else dts[0])
            assert e.op not in ("and", "or") or dts[0] == wt.bool
            assert e.op not in ("idiv", "mod") or dts[0] == wt.int32
        else:
            raise AssertionError(f"{e.op!r} is not in the kernel IR's vocabulary")


@pytest.mark.parametrize("name,k", ALL, ids=[f"{n}-{k}" for n, k in ALL])
def test_kernel_matches_reference(name, k):
    op = OPS[name]
    inputs, attrs = CASES[name][k](_rng(f"{name}-{k}"))
    avals = [_aval(a) for a in inputs]
    out = op.infer(*avals, **attrs)
    kernel = op.kernel(avals, out, **attrs)
    assert isinstance(kernel, K.Kernel)
    assert [tuple(b.shape) for b in kernel.inputs] == [a.shape for a in avals]
    assert kernel.out.shape == tuple(out.shape) and kernel.out.dtype == out.dtype
    check_ir(kernel)
    if name == "matmul":  # the heavy op carries its template hint (backends pick a tuned lowering)
        assert kernel.kind == "reduce" and kernel.template == "matmul"
        assert kernel.param("transpose_a") == attrs["transpose_a"]
    got = K.evaluate(kernel, inputs)
    want = np.asarray(op.reference(*inputs, **attrs))
    assert got.shape == want.shape == tuple(out.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


# ---- fused programs -----------------------------------------------------------------------------

def _program(fn, *args, fuse=True):
    """Trace ``fn``, compile its optimised graph, run it with the IR evaluator."""
    f = fn if isinstance(fn, wt.Function) else wt.function(fn)
    c = f.get_concrete(*args)
    g = c.graph
    prog = compile_graph(g, fuse=fuse)
    inputs = [np.asarray(a.numpy() if isinstance(a, wt.Tensor) else a) for a in args
              if isinstance(a, (wt.Tensor, np.ndarray)) and not isinstance(a, wt.Variable)]
    captures = [var.numpy() for _, var in g.captures]
    outs, updates = run_with_numpy(prog, inputs, captures)
    return f, g, prog, outs


def _flat(x):
    if isinstance(x, (tuple, list)):
        return [t for e in x for t in _flat(e)]
    return [x]


def _assert_arena_is_safe(prog):
    for step in prog.steps:
        check_ir(step.kernel)  # fused kernels stay within the IR too
    offsets, size = plan_arena(prog)
    temps = [b for b in prog.bufs if b.role == "temp"]
    assert set(offsets) == {b.id for b in temps}
    for b in temps:
        assert 0 <= offsets[b.id] and offsets[b.id] + b.nbytes <= size
        assert offsets[b.id] % 16 == 0
    for a, b in itertools.combinations(temps, 2):
        live_together = not (a.last < b.first or b.last < a.first)
        if live_together and a.nbytes and b.nbytes:
            disjoint = offsets[a.id] + a.nbytes <= offsets[b.id] or offsets[b.id] + b.nbytes <= offsets[a.id]
            assert disjoint, f"b{a.id} [{a.first},{a.last}] and b{b.id} [{b.first},{b.last}] share arena bytes"
    return size


def _check_program(fn, *args, rtol=1e-5, atol=1e-5):
    f, g, prog, outs = _program(fn, *args)
    expected = [t.numpy() for t in _flat(f(*args))]
    assert len(outs) == len(expected)
    for got, want in zip(outs, expected):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert len(prog.steps) < len(g.nodes), f"no fusion: {len(prog.steps)} kernels for {len(g.nodes)} nodes"
    _assert_arena_is_safe(prog)
    # Without fusion the same graph gives the same values, one kernel per materialised node.
    _, _, plain, outs2 = _program(f, *args, fuse=False)
    for got, want in zip(outs2, expected):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    _assert_arena_is_safe(plain)
    return g, prog


def _mlp_data(seed=0):
    r = np.random.default_rng(seed)
    x = wt.tensor(r.normal(size=(6, 8)).astype(np.float32))
    labels = wt.tensor(r.integers(0, 4, 6).astype(np.int32))
    params = [wt.tensor(r.normal(size=s).astype(np.float32) * 0.5) for s in [(8, 16), (16,), (16, 4), (4,)]]
    return x, labels, params


def _mlp_loss(w1, b1, w2, b2, x, labels):
    h = wt.relu(x @ w1 + b1)
    return wt.mean(wt.sparse_softmax_cross_entropy(labels, h @ w2 + b2))


def test_program_mlp_forward_and_loss():
    x, labels, (w1, b1, w2, b2) = _mlp_data()
    v1, v2 = wt.Variable(w1, name="w1"), wt.Variable(w2, name="w2")  # captures, read by reference
    g, prog = _check_program(lambda x, labels: (_mlp_loss(v1, b1, v2, b2, x, labels),
                                                wt.softmax(wt.relu(x @ v1 + b1) @ v2 + b2)), x, labels)
    assert len(g.captures) == 2
    # eager oracle, independent of tracing
    logits = np.maximum(x.numpy() @ w1.numpy() + b1.numpy(), 0) @ w2.numpy() + b2.numpy()
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    want = -logp[np.arange(6), labels.numpy()].mean()
    _, _, _, outs = _program(lambda x, labels: _mlp_loss(v1, b1, v2, b2, x, labels), x, labels)
    np.testing.assert_allclose(outs[0], want, rtol=1e-5)


def test_program_mlp_gradients():
    x, labels, params = _mlp_data(1)
    g, prog = _check_program(wt.value_and_grad(_mlp_loss, argnums=(0, 1, 2, 3)), *params, x, labels)
    # the eager tape gives the same gradients
    with wt.GradientTape() as tape:
        tape.watch(params)
        loss = _mlp_loss(*params, x, labels)
    eager = tape.gradient(loss, params)
    _, _, _, outs = _program(wt.grad(_mlp_loss, argnums=(0, 1, 2, 3)), *params, x, labels)
    for got, want in zip(outs, eager):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def _cnn(x, filters, w, b):
    h = wt.relu(wt.conv2d(x, filters, padding="same"))
    h = wt.max_pool2d(h, 2)
    h = wt.avg_pool2d(h, 2, strides=1, padding="same")
    return wt.log_softmax(wt.flatten(h) @ w + b)


def _cnn_data():
    r = np.random.default_rng(2)
    return [wt.tensor(r.normal(size=s).astype(np.float32)) for s in [(2, 8, 8, 3), (3, 3, 3, 4), (64, 5), (5,)]]


def test_program_conv_pool_dense():
    _check_program(_cnn, *_cnn_data(), rtol=1e-4)


def test_program_conv_pool_dense_gradients():
    args = _cnn_data()
    labels = wt.tensor([1, 4])
    loss = lambda x, f, w, b, labels: wt.mean(-wt.take_along_axis(_cnn(x, f, w, b), wt.expand_dims(labels, -1), 1))
    _check_program(wt.grad(loss, argnums=(1, 2, 3)), *args, labels, rtol=1e-4, atol=1e-5)


def _movement_chain(x, b):
    y = wt.transpose(wt.reshape(x, (4, 6)))                 # (6, 4)
    y = y * wt.expand_dims(b, 0) + wt.broadcast_to(wt.reshape(b, (1, 4)), (6, 4))
    z = wt.exp(-wt.square(y))[::-1, 1:] + wt.sum(x, axis=(0, 1))[None, :3]
    w = wt.concat([z, wt.pad(z[:2], [(0, 0), (1, 1)])[:, 1:4]], axis=0)
    return wt.tanh(wt.transpose(w)).reshape(-1), wt.max(w, axis=0, keepdims=True) - wt.min(w)


def test_program_reshape_transpose_broadcast_chain():
    r = np.random.default_rng(3)
    x, b = wt.tensor(r.normal(size=(2, 3, 4)).astype(np.float32)), wt.tensor(r.normal(size=(4,)).astype(np.float32))
    g, prog = _check_program(_movement_chain, x, b)
    # nearly all of it is elementwise or data movement: very few kernels materialise
    assert len(prog.steps) <= len(g.nodes) // 2, (len(prog.steps), len(g.nodes))
    _check_program(wt.grad(lambda x, b: wt.sum(_movement_chain(x, b)[0] * 2.0) + wt.sum(_movement_chain(x, b)[1]),
                           argnums=(0, 1)), x, b)


def test_program_assign_updates():
    v = wt.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")

    @wt.function
    def step(x):
        v.assign_add(x * 2.0)
        return wt.sum(v.read_value())

    x = wt.tensor(np.ones((2, 3), np.float32))
    c = step.get_concrete(x)
    prog = compile_graph(c.graph)
    outs, updates = run_with_numpy(prog, [x.numpy()], [v.numpy()])
    np.testing.assert_allclose(updates[0], v.numpy() + 2.0)
    np.testing.assert_allclose(outs[0], (v.numpy() + 2.0).sum())
    _assert_arena_is_safe(prog)


def test_arena_reuses_memory_of_dead_buffers():
    # Without fusion a long chain materialises every step; only two buffers are ever live together.
    def chain(x):
        for _ in range(8):
            x = wt.exp(-wt.square(x)) + 1.0
        return x
    x = wt.tensor(np.linspace(-1, 1, 256, dtype=np.float32))
    _, g, prog, outs = _program(chain, x, fuse=False)
    np.testing.assert_allclose(outs[0], wt.function(chain)(x).numpy(), rtol=1e-6)
    size = _assert_arena_is_safe(prog)
    total = sum(b.nbytes for b in prog.bufs if b.role == "temp")
    assert len(prog.steps) >= 16 and size <= 3 * 256 * 4 < total, (size, total)

"""Every differentiable op's gradient (and the composites') against central finite differences.

Everything runs inside ``float64_reference()``: the reference device stores float32
tensors as float64, so a central difference with step 1e-5 is accurate to ~1e-10 and the
comparison can be tight. For a random output projection ``u`` the tape's vector-Jacobian
product ``u^T J`` is compared with finite differences of ``x -> sum(u * f(x))``: along every
coordinate for small inputs (the full row), along random directions for larger ones.
Input domains avoid non-differentiable points (relu/abs away from 0, max with distinct
values, log/sqrt of positives).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import webtensor as wt
from webtensor.core.numpy_util import float64_reference
from webtensor.core.ops.elementwise import identity as _identity

FULL = 24        # inputs up to this size get a finite difference per coordinate
DIRECTIONS = 3   # larger ones: this many random directions
EPS = 1e-5


@pytest.fixture(autouse=True)
def _reference_float64():
    with wt.device("reference"), float64_reference():
        yield


def _rng(key):
    return np.random.default_rng(zlib.crc32(key.encode()))


def sample(rng, shape, domain="any"):
    if domain == "any":
        return rng.uniform(-2, 2, shape)
    if domain == "pos":
        return rng.uniform(0.3, 2, shape)
    if domain == "away":          # |x| >= 0.2: away from the kinks of relu, abs, and zeros of division
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2, shape)
    if domain == "distinct":      # all values distinct, 0.25 apart: max/min/maximum have no ties
        n = int(np.prod(shape))
        return ((rng.permutation(n) - n / 2) * 0.25 + 0.05).reshape(shape)
    if domain == "grid_a":        # pairs grid_a/grid_b never come within 0.1 of each other
        return rng.integers(-4, 5, shape) * 0.4
    if domain == "grid_b":
        return rng.integers(-4, 5, shape) * 0.4 + 0.2
    if domain == "probs":         # rows on the simplex
        p = rng.uniform(0.1, 1, shape)
        return p / p.sum(-1, keepdims=True)
    if domain.startswith("int<"):
        return rng.integers(0, int(domain[4:]), shape).astype(np.int32)
    raise AssertionError(domain)


def check_grad(fn, xs, key, wrt=None, rtol=1e-6, atol=1e-8):
    """Compare the tape's gradient of ``sum(u * fn(*xs))`` with central differences.

    ``xs``: numpy arrays (float64 ones are differentiated, int32 ones are not, unless ``wrt``
    names the positions).
    """
    rng = _rng(key)
    ts = [wt.tensor(x) for x in xs]
    wrt = [i for i, x in enumerate(xs) if x.dtype.kind == "f"] if wrt is None else wrt
    u = rng.normal(size=fn(*ts).shape)

    def loss(arrays):
        y = fn(*[wt.tensor(a) for a in arrays]).numpy()
        assert y.dtype == np.float64, "float64_reference is not in effect"
        return float(np.sum(y * u))

    with wt.GradientTape() as tape:
        tape.watch(ts)
        y = fn(*ts)
        scalar = wt.sum(y * wt.tensor(u))
    grads = tape.gradient(scalar, ts)
    for i in wrt:
        g = grads[i]
        assert g is not None, f"input {i}: no gradient"
        g = g.numpy()
        assert g.shape == xs[i].shape and g.dtype == np.float64, (g.shape, g.dtype)
        n = xs[i].size
        dirs = np.eye(n) if n <= FULL else rng.normal(size=(DIRECTIONS, n))
        for v in dirs:
            v = v.reshape(xs[i].shape)
            plus, minus = list(xs), list(xs)
            plus[i], minus[i] = xs[i] + EPS * v, xs[i] - EPS * v
            numeric = (loss(plus) - loss(minus)) / (2 * EPS)
            analytic = float(np.sum(g * v))
            assert abs(analytic - numeric) <= atol + rtol * max(abs(numeric), 1.0), \
                f"input {i}: autodiff {analytic!r} vs finite differences {numeric!r}"
    return grads


def _cases(table):
    return pytest.mark.parametrize("fn,specs", [c[1:] for c in table], ids=[c[0] for c in table])


# ---- unary ----------------------------------------------------------------------------------

UNARY = [  # (id, fn, [(shape, domain), ...])
    ("neg", wt.neg, [((3, 4), "any")]),
    ("abs", wt.abs, [((3, 4), "away")]),
    ("square", wt.square, [((3, 4), "any")]),
    ("exp", wt.exp, [((3, 4), "any")]),
    ("log", wt.log, [((3, 4), "pos")]),
    ("sqrt", wt.sqrt, [((3, 4), "pos")]),
    ("rsqrt", wt.rsqrt, [((3, 4), "pos")]),
    ("reciprocal", wt.reciprocal, [((3, 4), "away")]),
    ("sin", wt.sin, [((3, 4), "any")]),
    ("cos", wt.cos, [((3, 4), "any")]),
    ("tanh", wt.tanh, [((3, 4), "any")]),
    ("erf", wt.erf, [((3, 4), "any")]),
    ("sigmoid", wt.sigmoid, [((3, 4), "any")]),
    ("relu", wt.relu, [((3, 4), "away")]),
    ("gelu_tanh", lambda x: wt.gelu(x, approximate=True), [((3, 4), "any")]),
    ("gelu_erf", wt.gelu, [((3, 4), "any")]),
    ("cast_float", lambda x: wt.cast(x, wt.float32) * 2.0, [((5,), "any")]),
    ("identity", lambda x: _identity(x) * x, [((3, 4), "any")]),   # a Variable's read on a tape
    ("scalar_0d", lambda x: wt.exp(x) * x, [((), "any")]),
    ("chain", lambda x: wt.tanh(wt.sigmoid(x) * wt.exp(-wt.square(x))), [((2, 5), "any")]),
]


@_cases(UNARY)
def test_unary(fn, specs, request):
    rng = _rng(request.node.name)
    check_grad(fn, [sample(rng, s, d) for s, d in specs], request.node.name)


@pytest.mark.parametrize("fn", [wt.floor, wt.ceil, wt.round, wt.sign, wt.stop_gradient,
                                lambda x: wt.cast(wt.cast(x, wt.int32), wt.float32),
                                lambda x: wt.argmax(x, axis=0)],
                         ids=["floor", "ceil", "round", "sign", "stop_gradient", "cast_int", "argmax"])
def test_ops_without_gradient_give_none(fn):
    x = wt.tensor([0.3, -1.2, 2.6])
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        z = wt.sum(wt.cast(y, wt.float32) * 3.0) if y.dtype != wt.float32 else wt.sum(y * 3.0)
    assert tape.gradient(z, x) is None


def test_stop_gradient_blocks_one_path():
    x = np.array([0.5, -1.0, 2.0])
    grads = check_grad(lambda x: x * wt.stop_gradient(x) + 0 * x, [x], "stop", rtol=np.inf, atol=np.inf)
    np.testing.assert_allclose(grads[0].numpy(), x * _rng("stop").normal(size=3), rtol=1e-12)


# ---- binary (with broadcasting) ---------------------------------------------------------------

BCAST = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3), ()), ((4,), (2, 3, 4)), ((2, 1, 3), (4, 1))]
BINARY = [  # (name, fn, lhs domain, rhs domain)
    ("add", wt.add, "any", "any"),
    ("sub", wt.sub, "any", "any"),
    ("mul", wt.mul, "any", "any"),
    ("div", wt.div, "any", "away"),
    ("pow", wt.pow, "pos", "any"),
    ("maximum", wt.maximum, "grid_a", "grid_b"),
    ("minimum", wt.minimum, "grid_a", "grid_b"),
]


@pytest.mark.parametrize("shapes", BCAST, ids=str)
@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=[b[0] for b in BINARY])
def test_binary(name, fn, da, db, shapes, request):
    rng = _rng(request.node.name)
    check_grad(fn, [sample(rng, shapes[0], da), sample(rng, shapes[1], db)], request.node.name)


MORE_BINARY = [
    ("where", lambda c, a, b: wt.where(wt.cast(c, wt.bool), a, b), [((3, 1), "int<2"), ((1, 4), "any"), ((3, 4), "any")]),
    ("where_scalar", lambda c, a: wt.where(wt.cast(c, wt.bool), a, 2.0), [((2, 3), "int<2"), ((3,), "any")]),
    ("python_scalars", lambda x: (2.0 - x) * 3.0 / (x + 5.0) + x ** 2, [((4,), "pos")]),
    ("int_operand", lambda x, i: x * wt.cast(i, wt.float32) + i, [((2, 3), "any"), ((3,), "int<4")]),
    ("self_broadcast", lambda x: x * wt.transpose(x) - x, [((3, 3), "any")]),
]


@_cases(MORE_BINARY)
def test_more_binary(fn, specs, request):
    rng = _rng(request.node.name)
    check_grad(fn, [sample(rng, s, d) for s, d in specs], request.node.name)


# ---- reductions --------------------------------------------------------------------------------

REDUCE_AXES = [(None, False), (0, False), (-1, True), ((0, 2), False), ((2, 0), True)]
REDUCTIONS = [("sum", wt.sum, "any"), ("mean", wt.mean, "any"), ("prod", wt.prod, "away"),
              ("max", wt.max, "distinct"), ("min", wt.min, "distinct")]


@pytest.mark.parametrize("axis,keepdims", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("name,fn,domain", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction(name, fn, domain, axis, keepdims, request):
    rng = _rng(request.node.name)
    check_grad(lambda x: fn(x, axis=axis, keepdims=keepdims), [sample(rng, (2, 3, 4), domain)], request.node.name)


def test_max_ties_share_the_gradient():
    x = wt.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = wt.max(x, axis=1)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0, 0.5, 0.5], [0.5, 0, 0.5]])


# ---- matmul ------------------------------------------------------------------------------------

MATMUL = [  # (a shape, b shape, transpose_a, transpose_b)
    ((3, 4), (4, 2), False, False), ((4, 3), (4, 2), True, False), ((3, 4), (2, 4), False, True),
    ((4, 3), (2, 4), True, True), ((2, 1, 3, 4), (3, 4, 2), False, False), ((2, 4, 3), (2, 4), True, True),
    ((4,), (4, 3), False, False), ((3, 4), (4,), False, False), ((4,), (4,), False, False),
]


@pytest.mark.parametrize("sa,sb,ta,tb", MATMUL, ids=str)
def test_matmul(sa, sb, ta, tb, request):
    rng = _rng(request.node.name)
    check_grad(lambda a, b: wt.matmul(a, b, transpose_a=ta, transpose_b=tb),
               [sample(rng, sa), sample(rng, sb)], request.node.name)


# ---- movement ----------------------------------------------------------------------------------

MOVEMENT = [
    ("reshape", lambda x: wt.reshape(x, (4, -1)) * wt.arange(6.0), [((2, 3, 4), "any")]),
    ("transpose", lambda x: wt.transpose(x, (2, 0, 1)), [((2, 3, 4), "any")]),
    ("broadcast_to", lambda x: wt.broadcast_to(x, (2, 3, 4)), [((3, 1), "any")]),
    ("expand_squeeze", lambda x: wt.squeeze(wt.expand_dims(x, 1), 1) * wt.expand_dims(x, -1), [((3,), "any")]),
    ("slice_steps", lambda x: x[::2, ::-1, 1:3], [((5, 3, 4), "any")]),
    ("slice_neg_step", lambda x: x[4:0:-3, -1], [((6, 2), "any")]),
    ("slice_index_none", lambda x: x[1:, ::-1, None, ...], [((3, 2, 4), "any")]),
    ("tf_slice", lambda x: wt.slice(x, [1, 0], [2, -1]), [((4, 3), "any")]),
    ("pad", lambda x: wt.pad(x, [(1, 0), (2, 3)], constant_values=0.5), [((2, 3), "any")]),
    ("concat", lambda a, b, c: wt.concat([a, b, c], axis=-1), [((2, 3), "any"), ((2, 1), "any"), ((2, 2), "any")]),
    ("concat_reuse", lambda a: wt.concat([a, a * 2.0], axis=0), [((2, 3), "any")]),
    ("stack", lambda a, b: wt.stack([a, b], axis=1), [((2, 3), "any"), ((2, 3), "any")]),
    ("gather_repeated", lambda p: wt.gather(p, wt.tensor([0, 2, 2, 1, 2]), axis=1), [((3, 4), "any")]),
    ("gather_2d_idx", lambda p: wt.gather(p, wt.tensor([[3, 0], [0, 0]]), axis=0), [((4, 2, 2), "any")]),
    ("gather_indices_int", lambda p, i: wt.gather(p, i, axis=-1), [((2, 5), "any"), ((3,), "int<5")]),
    ("gather_negative", lambda p: wt.gather(p, wt.tensor([-2, 2, -1, -3]), axis=1), [((2, 3), "any")]),
    ("index_array", lambda p: p[[1, 1, 0]], [((3, 2), "any")]),
    ("index_array_negative", lambda p: p[[-1, 0, -1]], [((3, 2), "any")]),
    ("take_along_axis", lambda a, i: wt.take_along_axis(a, i, 1), [((3, 4), "any"), ((3, 5), "int<4")]),
    ("take_along_axis0", lambda a, i: wt.take_along_axis(a, i, 0), [((3, 2, 2), "any"), ((4, 2, 1), "int<3")]),
]


@_cases(MOVEMENT)
def test_movement(fn, specs, request):
    rng = _rng(request.node.name)
    xs = [sample(rng, s, d) for s, d in specs]
    grads = check_grad(fn, xs, request.node.name)
    for x, g in zip(xs, grads):
        if x.dtype.kind == "i":
            assert g is None  # integer inputs (indices) get no gradient


# ---- issue 14: sorting, scans, index tensors, rearranging, contractions, resizing ---------------

_IDX = wt.tensor([[0, 1], [2, -1], [0, 1], [1, 0]])        # repeated and negative index tuples

MORE_MOVEMENT = [
    ("sort", lambda x: wt.sort(x, axis=1), [((3, 5), "distinct")]),
    ("sort_desc_axis0", lambda x: wt.sort(x, axis=0, direction="DESCENDING"), [((4, 3), "distinct")]),
    ("top_k", lambda x: wt.top_k(x, 2).values, [((3, 4), "distinct")]),
    ("cumsum", lambda x: wt.cumsum(x, axis=1), [((3, 4), "any")]),
    ("cumsum_exclusive_reverse", lambda x: wt.cumsum(x, exclusive=True, reverse=True), [((5, 2), "any")]),
    ("cumprod", lambda x: wt.cumprod(x, axis=-1), [((2, 5), "away")]),
    ("cumprod_exclusive", lambda x: wt.cumprod(x, axis=0, exclusive=True), [((4, 3), "away")]),
    ("cumprod_reverse", lambda x: wt.cumprod(x, axis=0, reverse=True), [((4, 2), "away")]),
    ("gather_nd", lambda p: wt.gather_nd(p, _IDX), [((3, 2, 2), "any")]),
    ("gather_nd_batch_dims", lambda p: wt.gather_nd(p, wt.tensor([[[1], [1]], [[0], [-1]]]), batch_dims=1),
     [((2, 3, 2), "any")]),
    ("scatter_nd", lambda u: wt.scatter_nd(_IDX, u, (3, 2, 2)), [((4, 2), "any")]),
    ("tensor_scatter_nd_update", lambda t, u: wt.tensor_scatter_nd_update(t, _IDX, u),
     [((3, 2), "any"), ((4,), "any")]),
    ("tensor_scatter_nd_add", lambda t, u: wt.tensor_scatter_nd_add(t, _IDX, u), [((3, 2, 3), "any"), ((4, 3), "any")]),
    ("unsorted_segment_sum", lambda d: wt.unsorted_segment_sum(d, wt.tensor([2, -1, 0, 2]), 4), [((4, 3), "any")]),
    ("segment_sum", lambda d: wt.segment_sum(d, wt.tensor([0, 0, 2])), [((3, 2), "any")]),
    ("boolean_mask", lambda t: wt.boolean_mask(t, wt.tensor([[True, False], [True, True]]), axis=1),
     [((2, 2, 2, 3), "any")]),
    ("tile", lambda x: wt.tile(x, [2, 1, 3]), [((2, 3, 1), "any")]),
    ("split", lambda x: wt.split(x, [2, -1], axis=1)[1] * wt.split(x, 2, axis=0)[0][:, 2:], [((2, 5), "any")]),
    ("unstack", lambda x: wt.unstack(x, axis=-1)[0] * wt.unstack(x, axis=-1)[2], [((3, 3), "any")]),
    ("reverse", lambda x: wt.reverse(x, [0, 2]) * wt.arange(4.0), [((2, 3, 4), "any")]),
    ("roll", lambda x: wt.roll(x, [1, -2], [0, 1]), [((3, 4), "any")]),
    ("repeat", lambda x: wt.repeat(x, 2, axis=0), [((2, 3), "any")]),
    ("repeat_counts", lambda x: wt.repeat(x, [0, 3, 1], axis=1), [((2, 3), "any")]),
    ("space_to_depth", lambda x: wt.space_to_depth(x, 2), [((1, 4, 2, 2), "any")]),
    ("depth_to_space", lambda x: wt.depth_to_space(x, 2), [((1, 2, 1, 8), "any")]),
    ("einsum", lambda a, b: wt.einsum("bij,bjk->bki", a, b), [((2, 3, 2), "any"), ((2, 2, 4), "any")]),
    ("einsum_diag_sum", lambda a, b: wt.einsum("iij,j", a, b), [((3, 3, 2), "any"), ((2,), "any")]),
    ("tensordot", lambda a, b: wt.tensordot(a, b, [[0, 2], [1, 0]]), [((2, 3, 4), "any"), ((4, 2, 2), "any")]),
    ("resize_bilinear_up", lambda x: wt.image.resize(x, (5, 3)), [((1, 3, 2, 2), "any")]),
    ("resize_bilinear_down", lambda x: wt.image.resize(x, (2, 3)), [((1, 5, 4, 1), "any")]),
    ("resize_antialias", lambda x: wt.image.resize(x, (2, 3), antialias=True), [((1, 5, 4, 1), "any")]),
    ("resize_nearest", lambda x: wt.image.resize(x, (3, 5), method="nearest"), [((2, 2, 3, 1), "any")]),
]


@_cases(MORE_MOVEMENT)
def test_more_movement(fn, specs, request):
    rng = _rng(request.node.name)
    check_grad(fn, [sample(rng, s, d) for s, d in specs], request.node.name)


@pytest.mark.parametrize("exclusive,reverse", [(False, False), (True, False), (False, True), (True, True)])
def test_cumprod_gradient_with_zeros(exclusive, reverse):
    # rows with no zero, one zero (first, middle, last) and two zeros: cumprod is multilinear, so
    # finite differences are exact there, where dividing by x (TF's rule) would give inf/NaN
    x = np.array([[0.5, -1.5, 2.0, 0.7], [0.0, 1.5, -2.0, 0.8], [1.2, 0.0, 0.9, -1.1], [0.6, 1.3, -0.4, 0.0],
                  [1.1, 0.0, 0.0, 0.9]])
    grads = check_grad(lambda t: wt.cumprod(t, axis=1, exclusive=exclusive, reverse=reverse), [x],
                       f"cumprod_zeros/{exclusive}/{reverse}")
    assert np.isfinite(grads[0].numpy()).all()


MORE_SECOND = [   # the gradient rules' own gradient rules: permute's, scatter_nd's, cumulative's
    ("sort", lambda x: wt.square(wt.sort(x)), [((2, 4), "distinct")]),
    ("gather_nd", lambda x: wt.square(wt.gather_nd(x, _IDX)), [((3, 2), "any")]),
    ("cumprod", lambda x: wt.cumprod(x, axis=1), [((2, 3), "away")]),
]


@_cases(MORE_SECOND)
def test_more_movement_second_order(fn, specs, request):
    rng = _rng(request.node.name)
    xs = [sample(rng, s, d) for s, d in specs]
    check_grad(_grad_of(fn, request.node.name), xs, request.node.name + "/outer", rtol=1e-6, atol=1e-7)


# ---- nn: convolution, pooling, softmax family, losses -----------------------------------------

def _conv(strides, padding, dilations, data_format="NHWC"):
    return lambda x, w: wt.conv2d(x, w, strides=strides, padding=padding, dilations=dilations,
                                  data_format=data_format)


NN = [
    ("conv_valid", _conv(1, "valid", 1), [((2, 5, 4, 2), "any"), ((3, 2, 2, 3), "any")]),
    ("conv_stride2_same", _conv(2, "same", 1), [((1, 7, 6, 2), "any"), ((3, 3, 2, 2), "any")]),
    ("conv_dilation2_same", _conv(1, "same", 2), [((1, 6, 7, 2), "any"), ((3, 2, 2, 2), "any")]),
    ("conv_stride2_dilation2_explicit", _conv((2, 1), ((1, 2), (0, 1)), (2, 2)),
     [((1, 7, 6, 1), "any"), ((2, 3, 1, 2), "any")]),
    ("conv_stride2_same_dilation2", _conv(2, "same", 2), [((1, 7, 8, 2), "any"), ((3, 3, 2, 2), "any")]),
    ("conv_nchw_same_stride2", _conv(2, "same", 1, "NCHW"), [((1, 2, 5, 6), "any"), ((3, 3, 2, 2), "any")]),
    ("max_pool", lambda x: wt.max_pool2d(x, 2), [((1, 4, 6, 2), "distinct")]),
    ("max_pool_same", lambda x: wt.max_pool2d(x, 3, strides=2, padding="same"), [((1, 5, 4, 2), "distinct")]),
    ("avg_pool", lambda x: wt.avg_pool2d(x, 2), [((2, 4, 4, 1), "any")]),
    ("avg_pool_same", lambda x: wt.avg_pool2d(x, (2, 3), strides=(1, 2), padding="same"), [((1, 5, 5, 2), "any")]),
    ("softmax", lambda x: wt.softmax(x, axis=-1), [((3, 4), "any")]),
    ("softmax_axis0", lambda x: wt.softmax(x, axis=0), [((3, 4), "any")]),
    ("log_softmax", lambda x: wt.log_softmax(x), [((3, 4), "any")]),
    ("logsumexp", lambda x: wt.logsumexp(x, axis=1), [((2, 3, 4), "any")]),
    ("logsumexp_large", lambda x: wt.logsumexp(x * 300.0, axis=-1), [((2, 3), "any")]),
    ("softmax_cross_entropy", lambda y, z: wt.softmax_cross_entropy(y, z), [((4, 5), "probs"), ((4, 5), "any")]),
    ("softmax_cross_entropy_probs", lambda y, p: wt.softmax_cross_entropy(y, p, from_logits=False),
     [((3, 4), "probs"), ((3, 4), "probs")]),
    ("sparse_softmax_cross_entropy", lambda z, y: wt.sparse_softmax_cross_entropy(y, z),
     [((5, 3), "any"), ((5,), "int<3")]),
    ("mse", lambda a, b: wt.mse(a, b), [((3, 4), "any"), ((3, 4), "any")]),
    ("dense_layer", lambda x, w, b: wt.relu(x @ w + b), [((4, 3), "any"), ((3, 5), "any"), ((5,), "away")]),
]


@_cases(NN)
def test_nn(fn, specs, request):
    rng = _rng(request.node.name)
    check_grad(fn, [sample(rng, s, d) for s, d in specs], request.node.name, rtol=1e-6, atol=1e-7)


# ---- second order: gradients of gradients (the grad rules' own grad rules) -------------------

def _grad_of(fn, key):
    """x -> d sum(u * fn(x)) / dx with an inner tape (u fixed): differentiable again."""
    def g(x, *rest):
        with wt.GradientTape() as tape:
            tape.watch(x)
            y = fn(x, *rest)
            u = _rng(key).normal(size=y.shape)
            s = wt.sum(y * wt.tensor(u))
        return tape.gradient(s, x)
    return g


SECOND = [
    ("tanh", wt.tanh, [((3, 2), "any")]),
    ("sigmoid_exp", lambda x: wt.sigmoid(x) * wt.exp(x), [((4,), "any")]),
    ("gelu", wt.gelu, [((5,), "any")]),
    ("softmax", lambda x: wt.softmax(x), [((2, 4), "any")]),
    ("matmul_self", lambda x: x @ x, [((3, 3), "any")]),
    ("slice_pad", lambda x: wt.square(wt.pad(x[::2, 1:], [(1, 1), (0, 2)])), [((5, 3), "any")]),
    ("gather", lambda x: wt.square(wt.gather(x, wt.tensor([2, 0, 2]))), [((3, 2), "any")]),
    ("conv_stride2_same", lambda x, w: wt.conv2d(wt.square(x), w, strides=2, padding="same"),
     [((1, 5, 4, 1), "any"), ((3, 3, 1, 2), "any")]),
    ("conv_depthwise", lambda x, w: wt.conv2d(wt.square(x), w, padding="same"),
     [((1, 5, 4, 2), "any"), ((3, 3, 1, 4), "any")]),
    ("max_pool", lambda x: wt.square(wt.max_pool2d(x, 2)), [((1, 4, 4, 1), "distinct")]),
    ("cross_entropy", lambda z, y: wt.sparse_softmax_cross_entropy(y, z), [((3, 4), "any"), ((3,), "int<4")]),
]


@_cases(SECOND)
def test_second_order(fn, specs, request):
    rng = _rng(request.node.name)
    xs = [sample(rng, s, d) for s, d in specs]
    # d/dw of dL/dx for conv exercises the gradient rule of extract_patches_grad (col2im)
    check_grad(_grad_of(fn, request.node.name), xs, request.node.name + "/outer", rtol=1e-6, atol=1e-7)


def test_float64_mode_computes_python_scalars_in_float64():
    # 0.1 is not a float32: a scalar first uploaded in float32 mode must not be reused here.
    from webtensor.core import numpy_util
    with pytest.MonkeyPatch.context() as mp:      # briefly back to float32 storage
        mp.setitem(numpy_util._NP, "float32", np.float32)
        assert (wt.tensor([1.0]) * 0.1).numpy().dtype == np.float32
    y = (wt.tensor([1.0]) * 0.1).numpy()
    assert y.dtype == np.float64 and y[0] == 0.1


from gradients_more_math import *  # noqa: E402,F401,F403  (issue 14's ops; run here, with this module's check_grad)

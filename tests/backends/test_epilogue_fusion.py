"""Epilogue fusion (``core/compile.py``): elementwise consumers of a float32 reduction (a matmul's bias,
activation, scaling, residual add; a mean's division) computed in the reduction kernel's store; and
siblings: a stored map computed and stored by the kernel of a later stored map that reads it (an
optimizer's new moments by the kernel of the new weights).

The program is shared by the backends, so each one is held to two things on every kernel shape
class its lowerings have (wasm: the matmul template, batched matmuls, generic reductions; WebGPU:
the direct and tiled matmul plans, split K, the generic reduction, one and two passes):

- bitwise equality with the unfused program (``compile.EPILOGUES = False``, ``compile.SIBLINGS = False``):
  the fused kernel runs the same float32 operations in the same order as the kernels it replaces;
- agreement with numpy in float64, within the error bound of a float32 dot product (Higham,
  "Accuracy and Stability of Numerical Algorithms", 2nd ed., eq. 3.5: |error| <= K u |A||B|, u =
  2^-24, plus a few ulps for the activation; ``_bound``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import compile as C
from webtensor.core import kernel_ir as K
from webtensor.webgpu import reduce as wgsl_reduce
from webtensor.webgpu import wgsl
from webtensor.webgpu.limits import Limits

R = np.random.default_rng(19)


def _f(*shape, scale=1.0):
    return (R.normal(size=shape) * scale).astype(np.float32)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _erf(x):
    return np.vectorize(math.erf)(x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# name -> (function, inputs, numpy float64 reference, the product's |A| @ |B| (error scale), K)
def _dense(act, np_act, m, k, n):
    x, w, b = _f(m, k), _f(k, n, scale=k ** -0.5), _f(n)
    return (lambda x, w, b: act(x @ w + b), [x, w, b],
            lambda x, w, b: np_act(x.astype(np.float64) @ w + b), np.abs(x) @ np.abs(w), k)


CASES = {
    "bias_relu": _dense(wt.relu, lambda z: np.maximum(z, 0), 37, 50, 19),
    "bias_sigmoid": _dense(wt.sigmoid, _sigmoid, 64, 30, 64),
    "bias_gelu_tanh": _dense(lambda z: wt.nn.activations.gelu(z, approximate=True), _gelu_tanh, 128, 40, 24),
    "bias_tanh_matvec": _dense(wt.tanh, np.tanh, 1, 64, 5),           # M = 1: the generic reduction on WebGPU
    "bias_relu_split_k": _dense(wt.relu, lambda z: np.maximum(z, 0), 8, 2048, 8),   # few outputs: split K
    "bias_relu_tiny": _dense(wt.relu, lambda z: np.maximum(z, 0), 4, 9, 3),
}
# the wasm micro-kernel applies these to its accumulators (matmul.register_epilogue: N a multiple of
# 8, K <= 256, per-column inputs): rows that end in a partial tile, a multiply fused into an add
# and into a subtrahend (relaxed multiply-adds in the fma module), erf
CASES["bias_relu_n16_k9"] = _dense(wt.relu, lambda z: np.maximum(z, 0), 37, 9, 16)
CASES["bias_gelu_erf"] = _dense(wt.nn.activations.gelu, lambda z: z * 0.5 * (1 + _erf(z / np.sqrt(2))), 20, 40, 24)
_s = _f(30, 64), _f(64, 32, scale=0.125), _f(32)
CASES["scale_add_bias_tanh"] = (lambda x, w, b: wt.tanh((x @ w) * 0.5 + b), list(_s),
                                lambda x, w, b: np.tanh((x.astype(np.float64) @ w) * 0.5 + b),
                                np.abs(_s[0]) @ np.abs(_s[1]), 64)
CASES["bias_minus_scaled"] = (lambda x, w, b: b - (x @ w) * 0.25, [_s[0], _s[1][:, :8], _s[2][:8]],
                              lambda x, w, b: b - (x.astype(np.float64) @ w) * 0.25,
                              np.abs(_s[0]) @ np.abs(_s[1][:, :8]), 64)
_x, _w, _y = _f(64, 300), _f(300, 64, scale=0.06), _f(64, 64)
CASES["scale_tanh_residual"] = (lambda x, w, y: wt.tanh(0.5 * (x @ w)) + y, [_x, _w, _y],
                                lambda x, w, y: np.tanh(0.5 * (x.astype(np.float64) @ w)) + y,
                                np.abs(_x) @ np.abs(_w), 300)
_p, _q = _f(5, 7), _f(7, 3)
CASES["product_twice"] = (lambda p, q: (p @ q) * (p @ q) + (p @ q), [_p, _q],     # one product, read in 3 places
                          lambda p, q: (p.astype(np.float64) @ q) ** 2 + p.astype(np.float64) @ q,
                          (np.abs(_p) @ np.abs(_q)) * (1 + 2 * np.abs(_p @ _q)), 7)
_a, _b = _f(3, 20, 30), _f(3, 30, 12, scale=0.2)
CASES["batched_sigmoid"] = (lambda a, b: wt.sigmoid(a @ b), [_a, _b], lambda a, b: _sigmoid(a.astype(np.float64) @ b),
                            np.abs(_a) @ np.abs(_b), 30)
_m = _f(40, 33)
CASES["mean_scale"] = (lambda x: wt.mean(x, axis=1) * 3.0, [_m], lambda x: x.astype(np.float64).mean(1) * 3.0,
                       np.abs(_m).mean(1), 33)
_l = _f(2, 40000)
CASES["mean_long_rows"] = (lambda x: wt.exp(wt.mean(x, axis=1)), [_l], lambda x: np.exp(x.astype(np.float64).mean(1)),
                           np.abs(_l).mean(1), 40000)    # two passes on WebGPU


def _run(device, fn, args, epilogues, monkeypatch):
    monkeypatch.setattr(C, "EPILOGUES", epilogues)
    with wt.device(device):
        return wt.function(fn)(*[wt.tensor(a) for a in args]).numpy()


def _bound(scale, k, want):
    """K u |A||B| (the dot products), plus 4 ulps of the result (the activation) and of the inputs."""
    return k * 2.0 ** -24 * scale + 4 * 2.0 ** -24 * (np.abs(want) + 1)


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_equals_unfused_bitwise_and_numpy(device, name, monkeypatch):
    fn, args, ref, scale, k = CASES[name]
    plain = _run(device, fn, args, False, monkeypatch)
    fused = _run(device, fn, args, True, monkeypatch)
    np.testing.assert_array_equal(fused, plain)
    want = ref(*args)
    err = np.abs(fused - want)
    assert (err <= _bound(scale, k, want)).all(), (err.max(), _bound(scale, k, want).min())


@pytest.mark.parametrize("device", ["webgpu"])
def test_tiled_plan_and_split_reduction_with_epilogue(device, monkeypatch, force_tiled_matmul):
    """The shared-memory tiled matmul (its threshold lowered for a test-sized product) and a matrix-vector
    product over a long K (the generic reduction, split in two passes) store through the epilogue."""
    force_tiled_matmul()
    monkeypatch.setattr(wgsl_reduce, "SPLIT_MIN_LENGTH", 1024)
    for fn, np_act, args in [
            (lambda x, w, b: wt.relu(x @ w + b), lambda z: np.maximum(z, 0), [_f(128, 64), _f(64, 128, scale=0.1), _f(128)]),
            (lambda x, w, b: wt.tanh(x @ w + b), np.tanh, [_f(1, 4096), _f(4096, 1, scale=0.02), _f(1)])]:
        plain = _run(device, fn, args, False, monkeypatch)
        fused = _run(device, fn, args, True, monkeypatch)
        np.testing.assert_array_equal(fused, plain)
        x, w, b = args
        want = np_act(x.astype(np.float64) @ w + b)
        assert (np.abs(fused - want) <= _bound(np.abs(x) @ np.abs(w), x.shape[1], want)).all()


def test_program_fuses_epilogues():
    """An MLP's forward pass: bias add and activation ride in their matmul kernels (2 kernels, not 4);
    a consumer that reads the product elsewhere than its own index, or a second user, is left alone."""
    x, w1, b1, w2, b2 = _f(6, 8), _f(8, 16), _f(16), _f(16, 4), _f(4)

    def mlp(x, w1, b1, w2, b2):
        return wt.sigmoid(wt.relu(x @ w1 + b1) @ w2 + b2)

    with wt.device("reference"):
        g = wt.function(mlp).get_concrete(*[wt.tensor(a) for a in (x, w1, b1, w2, b2)]).graph
        prog = C.compile_graph(g)
        assert [s.kernel.template for s in prog.steps] == ["matmul", "matmul"]
        assert all(s.kernel.epilogue is not None for s in prog.steps)
        e = prog.steps[0].kernel
        assert e.epilogue.inputs == e.inputs + (K.Buffer((6, 16), wt.float32),)
        out, _ = C.run_with_numpy(prog, [x, w1, b1, w2, b2], [])
        want = _sigmoid(np.maximum(x.astype(np.float64) @ w1 + b1, 0) @ w2 + b2)
        np.testing.assert_allclose(out[0], want, rtol=1e-6, atol=1e-7)

        # transposed consumer: not an epilogue; a product with two users: materialised once
        g2 = wt.function(lambda x, w: (wt.transpose(x @ w) + 1.0, wt.relu(x @ w) * (x @ w))).get_concrete(
            wt.tensor(x), wt.tensor(w1)).graph
        prog2 = C.compile_graph(g2)
        assert not any(s.kernel.epilogue is not None for s in prog2.steps)


# ---- siblings: a kept map stored by the kernel of a later kept map that reads it (optimizers) -------

OPTIMIZERS = {
    "adam": lambda: wt.optimizers.Adam(0.01),
    "adamw_amsgrad": lambda: wt.optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True),
    "sgd_nesterov": lambda: wt.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: wt.optimizers.RMSprop(0.01, momentum=0.5),
}


def _train(device, make_opt, fused, monkeypatch):
    """A small MLP's weights and optimizer state after a few traced train steps."""
    monkeypatch.setattr(C, "EPILOGUES", fused)
    monkeypatch.setattr(C, "SIBLINGS", fused)
    r = np.random.default_rng(5)
    x, y = r.normal(size=(32, 30)).astype(np.float32), r.integers(0, 5, 32).astype(np.int32)
    with wt.device(device):
        wt.set_seed(0)
        m = wt.nn.Sequential([wt.nn.Input((30,)), wt.nn.Dense(17, activation="relu"), wt.nn.Dense(5)])
        m.compile(make_opt(), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)   # 4 traced train steps
        return [np.asarray(v.numpy()) for v in m.weights + list(m.optimizer.variables)]


@pytest.mark.parametrize("device", ["wasm", "webgpu"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_updates_fused_equal_unfused_bitwise(device, name, monkeypatch):
    plain = _train(device, OPTIMIZERS[name], False, monkeypatch)
    fused = _train(device, OPTIMIZERS[name], True, monkeypatch)
    assert len(plain) == len(fused) > 4
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    ref = _train("reference", OPTIMIZERS[name], True, monkeypatch)   # and the numpy device agrees
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_program_adam_one_kernel_per_parameter():
    """Adam's new moments ride in the kernel of the new weights (siblings), an SGD update in the kernel of
    its gradient (an epilogue): one kernel per parameter for Adam, none of its own for SGD."""
    x = wt.tensor(_f(8, 6))
    counts = {}
    for name, make in [("adam", lambda: wt.optimizers.Adam(0.01)), ("sgd", lambda: wt.optimizers.SGD(0.1))]:
        with wt.device("reference"):
            w, b = wt.Variable(_f(6, 3), name="w"), wt.Variable(_f(3), name="b")
            opt = make()

            def step(x):
                with wt.GradientTape() as tape:
                    loss = wt.reduce_sum(wt.tanh(x @ w + b))
                opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
                return loss
            g = wt.function(step).get_concrete(x).graph
            prog = C.compile_graph(g)
            writes = {s.output for s in prog.steps} | {e for s in prog.steps for e in s.extra}
            assert set(prog.updates) <= writes
            counts[name] = prog
            for s in prog.steps:   # each sibling is a map over its kernel's space and inputs
                for sk in s.kernel.siblings:
                    assert sk.kind == "map" and sk.space == s.kernel.space and sk.inputs == s.kernel.inputs
    adam = counts["adam"]
    by_shape = {}
    for s in adam.steps:
        if s.kernel.kind == "map" and s.kernel.siblings:
            by_shape[s.kernel.space] = len(s.kernel.siblings)
    assert by_shape == {(6, 3): 2, (3,): 2}, by_shape     # m and v with w, for both parameters
    sgd = counts["sgd"]
    assert sum(s.kernel.epilogue is not None and s.output in sgd.updates for s in sgd.steps) == 2
    # a kernel with siblings binds one output each: its WGSL stays within the device's storage
    # buffers (Chromium's default 8, here 5), packing inputs past them (the runtime left Adam's
    # kernel one binding over, an invalid pipeline in the browser)
    for limit in (5, 8):
        for s in adam.steps:
            for p in wgsl.lower(s.kernel, Limits(max_storage_buffers_per_shader_stage=limit)).passes:
                assert len(p.bindings) <= limit, (limit, len(p.bindings), s.kernel)


def test_reduction_behind_a_shared_movement_stays_materialisable():
    """A reduction with an epilogue read through a transpose that two kernels fuse (movements are
    fused into every user): neither user may take it as its own epilogue (PP-OCR's recogniser
    compiled to a missing buffer when the first one did)."""
    x, w = _f(1, 1, 20, 8), _f(1, 1, 8, 6)

    def f(x, w):
        t = wt.transpose((x @ w) / 3.0, (1, 0, 2, 3))          # swaps two extents of 1: own-index loads
        return wt.relu(t) + 1.0, wt.reduce_sum(t * 2.0, axis=-1)

    with wt.device("reference"):
        prog = C.compile_graph(wt.function(f).get_concrete(wt.tensor(x), wt.tensor(w)).graph)
        out, _ = C.run_with_numpy(prog, [x, w], [])
    t = np.transpose((x.astype(np.float64) @ w) / 3.0, (1, 0, 2, 3))
    np.testing.assert_allclose(out[0], np.maximum(t, 0) + 1.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1], (t * 2.0).sum(-1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c, o", [(1, 16), (16, 32), (3, 8)])
def test_conv_epilogue_in_the_micro_kernel(c, o, monkeypatch):
    """wasm: a convolution's bias + ReLU applied to the micro-kernel's accumulators
    (``matmul.register_epilogue``; 126 output pixels: a partial last tile, panels across image rows)
    gives bitwise the unfused program and the epilogue run as its own pass, near the reference."""
    from webtensor.wasm import matmul as MM
    x, k, b = _f(2, 9, 7, c), _f(3, 3, c, o, scale=(9 * c) ** -0.5), _f(o)

    def fn(x, k, b):
        return wt.relu(wt.conv2d(x, k, strides=1, padding="SAME") + b)
    with wt.device("wasm"):
        steps = wt.function(fn).get_concrete(*[wt.tensor(a) for a in (x, k, b)]).exe.program.steps
    assert [MM.register_epilogue(s.kernel) is not None for s in steps] == [True]
    plain = _run("wasm", fn, [x, k, b], False, monkeypatch)
    fused = _run("wasm", fn, [x, k, b], True, monkeypatch)
    monkeypatch.setattr(MM, "REGISTER_EPILOGUES", False)
    own_pass = _run("wasm", fn, [x, k, b], True, monkeypatch)
    np.testing.assert_array_equal(fused, plain)
    np.testing.assert_array_equal(own_pass, plain)
    with wt.device("reference"):
        want = fn(*[wt.tensor(a) for a in (x, k, b)]).numpy()
    np.testing.assert_allclose(fused, want, rtol=1e-5, atol=1e-5)

"""Prologue fusion (``core/compile.py``, ``compile_graph(prologues=True)``, used by the WebGPU runtime):
an elementwise float32 map of one buffer read at its own index (``relu``) is computed in the operand
loads of the matmul templates that read it instead of being materialised by a kernel of its own.

Held to: bitwise equality with the unfused program (``compile.PROLOGUES = False``) on WebGPU for every
matmul lowering the operand can reach (direct and tiled plans, split K, the generic reduction, either
operand, transposed), since the fused load runs the same float32 ops as the map kernel; agreement
with numpy (float64) within the float32 dot product bound (Higham, "Accuracy and Stability of
Numerical Algorithms", 2nd ed., eq. 3.5: K u |A||B|); fewer kernels, with the matmul template (not the
generic reduction) lowering the fused kernels."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn
from webtensor.core import compile as C
from webtensor.nn._export import _train_step_function
from webtensor.webgpu import matmul as wgsl_matmul
from webtensor.webgpu.limits import Limits

R = np.random.default_rng(28)


def _f(*shape, scale=1.0):
    return (R.normal(size=shape) * scale).astype(np.float32)


def _relu(x):
    return np.maximum(x.astype(np.float64), 0)


# name -> (function, inputs, float64 reference of the product and |A| @ |B|, K)
CASES = {
    "relu_a_tiled": (lambda h, w: wt.relu(h) @ w, [_f(64, 40), _f(40, 24)],
                      lambda h, w: (_relu(h) @ w, np.abs(_relu(h)) @ np.abs(w)), 40),
    "tanh_b_transposed": (lambda x, v: x @ wt.transpose(wt.tanh(v)), [_f(32, 50), _f(20, 50)],
                          lambda x, v: (x.astype(np.float64) @ np.tanh(v.astype(np.float64)).T,
                                        np.abs(x) @ np.abs(np.tanh(v)).T), 50),
    "relu_a_transposed_split_k": (lambda h, w: wt.transpose(wt.relu(h)) @ w, [_f(2048, 8), _f(2048, 8)],
                                  lambda h, w: (_relu(h).T @ w, np.abs(_relu(h)).T @ np.abs(w)), 2048),
    "tanh_matvec": (lambda h, w: wt.tanh(h) @ w, [_f(1, 64), _f(64, 5)],      # M = 1: the generic reduction
                    lambda h, w: (np.tanh(h.astype(np.float64)) @ w, np.abs(np.tanh(h)) @ np.abs(w)), 64),
    "relu_twice": (lambda h, w, v: (wt.relu(h) @ w, wt.transpose(wt.relu(h)) @ v), [_f(48, 32), _f(32, 16), _f(48, 8)],
                   lambda h, w, v: (_relu(h) @ w, np.abs(_relu(h)) @ np.abs(w)), 32),   # two products read it
}


def _run(fn, args, fused, monkeypatch):
    monkeypatch.setattr(C, "PROLOGUES", fused)
    with wt.device("webgpu"):
        out = wt.function(fn)(*[wt.tensor(a) for a in args])
        return [np.asarray(o.numpy()) for o in (out if isinstance(out, tuple) else (out,))]


def _graph(fn, args):
    with wt.device("reference"):
        return wt.function(fn).get_concrete(*[wt.tensor(a) for a in args]).graph


@pytest.mark.parametrize("name", list(CASES))
def test_fused_equals_unfused_bitwise_and_numpy(name, monkeypatch, force_tiled_matmul):
    fn, args, ref, k = CASES[name]
    if name == "relu_a_tiled":     # the shared-memory tiled plan (the other products: direct, generic)
        force_tiled_matmul()
    plain = _run(fn, args, False, monkeypatch)
    fused = _run(fn, args, True, monkeypatch)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    want, scale = ref(*args)
    bound = k * 2.0 ** -24 * scale + 4 * 2.0 ** -24 * (np.abs(want) + 1)
    assert (np.abs(fused[0] - want) <= bound).all(), np.abs(fused[0] - want).max()
    g = _graph(fn, args)   # one kernel per product, none for the elementwise operands
    plain_steps, fused_steps = C.compile_graph(g).steps, C.compile_graph(g, prologues=True).steps
    fewer = 2 if name == "relu_twice" else 1      # relu_twice: the relu and its materialised transpose
    assert len(fused_steps) == len(plain_steps) - fewer and all(s.kernel.template == "matmul" for s in fused_steps)


def _mlp_train(device, fused, monkeypatch):
    monkeypatch.setattr(C, "PROLOGUES", fused)
    r = np.random.default_rng(5)
    x, y = r.normal(size=(32, 30)).astype(np.float32), r.integers(0, 5, 32).astype(np.int32)
    with wt.device(device):
        wt.set_seed(0)
        m = nn.Sequential([nn.Input((30,)), nn.Dense(24, activation="relu"), nn.Dense(20, activation="relu"),
                           nn.Dense(5)])
        m.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)   # 4 traced train steps
        return m, [np.asarray(v.numpy()) for v in m.weights]


def test_mlp_train_step_bitwise_and_two_kernels_fewer(monkeypatch):
    """The MLP train step: each hidden ReLU (read by the next layer's product and by its weight gradient)
    rides in both products' operand loads: two kernels fewer, the same weights bit for bit."""
    _, plain = _mlp_train("webgpu", False, monkeypatch)
    m, fused = _mlp_train("webgpu", True, monkeypatch)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    _, ref = _mlp_train("reference", True, monkeypatch)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    with wt.device("webgpu"):        # the model's variables live there
        x, y = wt.tensor(_f(16, 30)), wt.tensor(np.zeros(16, np.int32))
        g = wt.function(_train_step_function(m, False)).get_concrete(x, y).graph
    plain_p, fused_p = C.compile_graph(g), C.compile_graph(g, prologues=True)
    assert len(fused_p.steps) == len(plain_p.steps) - 2
    pro = [s.kernel for s in fused_p.steps if s.kernel.template == "matmul" and
           any(e.op == "max" for e in _nodes(s.kernel.expr))]
    assert len(pro) == 4                          # forward product and weight gradient, per hidden layer
    assert all(wgsl_matmul.lower_matmul(k, Limits()) is not None for k in pro)   # the template, not the fallback


def _nodes(e):
    out = [e]
    for a in e.args:
        out += _nodes(a)
    return out


def test_not_a_prologue():
    """Two buffers, or a broadcast read, stay their own kernel (the single-load rule)."""
    for fn, args in [(lambda h, g, w: (h * g) @ w, [_f(8, 6), _f(8, 6), _f(6, 4)]),
                     (lambda h, b, w: wt.relu(h + b) @ w, [_f(8, 6), _f(6), _f(6, 4)])]:
        g = _graph(fn, args)
        assert len(C.compile_graph(g, prologues=True).steps) == len(C.compile_graph(g).steps) == 2

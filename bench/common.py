"""What the Python benchmarks share: the numpy references they measure beside webtensor, and the
row printer. ``bench_wasm.py`` and ``bench_webgpu.py`` import it (run them from anywhere: a
script's own folder is on ``sys.path``)."""
from __future__ import annotations

import time

import numpy as np

MLP_SIZES = (784, 256, 256, 10)


def best(fn, repeat) -> float:
    """The shortest of ``repeat`` timed calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def row(name, figures, unit, width=40):
    """Print one figure per column, e.g. ``{"wasm": 31.2, "numpy": 95.0}``, then the unit."""
    cells = "  ".join(f"{k} {v:10.2f}" for k, v in figures.items())
    print(f"{name:<{width}} {cells}   {unit}", flush=True)


def gelu_chain_np(x, a, b):
    """The fused-chain workload ``gelu_tanh(x * a + b) * sigmoid(x)`` in float32 numpy."""
    z = x * a + b
    g = 0.5 * z * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (z + np.float32(0.044715) * z ** 3)))
    return g * (1 / (1 + np.exp(-x)))


def init_mlp(rng):
    """He-normal weights and zero biases of the MLP 784 -> 256 -> 256 -> 10 (float32)."""
    ws = []
    for i, o in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        ws.append(rng.standard_normal((i, o)).astype(np.float32) * np.float32(np.sqrt(2 / i)))
        ws.append(np.zeros(o, np.float32))
    return ws


def mlp_step_np(params, x, y, lr):
    """One SGD step of the MLP in numpy (ReLU, softmax cross-entropy, backward by hand), updating
    ``params`` in place; returns the loss before the update."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, 0)
    h2 = np.maximum(h1 @ w2 + b2, 0)
    z = h2 @ w3 + b3
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    n = x.shape[0]
    loss = -np.log(p[np.arange(n), y]).mean()
    g = p
    g[np.arange(n), y] -= 1
    g /= n
    gw3, gb3 = h2.T @ g, g.sum(0)
    g = (g @ w3.T) * (h2 > 0)
    gw2, gb2 = h1.T @ g, g.sum(0)
    g = (g @ w2.T) * (h1 > 0)
    gw1, gb1 = x.T @ g, g.sum(0)
    for w, gw in zip(params, (gw1, gb1, gw2, gb2, gw3, gb3)):
        w -= lr * gw
    return loss

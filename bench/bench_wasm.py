"""Benchmarks of the "wasm" device (WebAssembly in wasmtime, one thread) beside numpy, in one run.

- matmul GFLOP/s at N = 256, 512, 1024 (one eager ``a @ b``: one kernel call);
- the fused chain ``gelu_tanh(x * a + b) * sigmoid(x)`` on 2^20 elements (one kernel), ms and GB/s
  (x, a read and y written: 12 MiB);
- an MLP training step 784 -> 256 -> 256 -> 10, batch 128, softmax cross-entropy, SGD written with
  ``GradientTape`` and ``Variable.assign_sub``, compiled as one ``webtensor.function`` (one host call
  per step), steps/s; numpy runs the same step by hand;
- a small CNN forward, 32x28x28x1 -> conv3x3 16 + relu -> maxpool 2 -> conv3x3 32 + relu -> maxpool 2
  -> dense 10 ('valid' padding, as Keras' default), one ``webtensor.function``, images/s; numpy
  runs it as im2col + matmul.

Each figure is the best of repeated timed runs (``--seconds`` per figure) on the wall clock. The
"wasm cpu" column divides by the process CPU time instead: on a machine shared with other work it
shows what the single WebAssembly thread does when it runs (numpy uses several threads, so only
its wall-clock figure is meaningful). On a busy machine OpenBLAS threads fight for the cores; for
a single-thread numpy baseline set ``OPENBLAS_NUM_THREADS=1``.

Usage: ``[OPENBLAS_NUM_THREADS=1] python bench/bench_wasm.py [--seconds 1.0]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import webtensor as wt
from common import gelu_chain_np, init_mlp, mlp_step_np, row


def timeit(fn, seconds=1.0, min_reps=3):
    """(best wall seconds, best process-CPU seconds) per call, after two warm-up calls."""
    fn()
    fn()
    wall = cpu = float("inf")
    reps, t_end = 0, time.perf_counter() + seconds
    while reps < min_reps or time.perf_counter() < t_end:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
        reps += 1
    return wall, cpu


def bench_matmul(seconds):
    rng = np.random.default_rng(0)
    for n in (256, 512, 1024):
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        ta, tb = wt.tensor(a, device="wasm"), wt.tensor(b, device="wasm")
        err = np.abs((ta @ tb).numpy() - a @ b).max() / np.abs(a @ b).max()
        flop = 2.0 * n ** 3
        w, c = timeit(lambda: ta @ tb, seconds)
        nw, _ = timeit(lambda: a @ b, seconds)
        row(f"matmul {n}^3 (max rel err {err:.0e})",
            {"wasm": flop / w / 1e9, "wasm cpu": flop / c / 1e9, "numpy": flop / nw / 1e9}, "GFLOP/s")


def bench_chain(seconds):
    rng = np.random.default_rng(1)
    n = 1 << 20
    x, a = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    b = rng.standard_normal(1).astype(np.float32)
    tx, ta, tb = (wt.tensor(v, device="wasm") for v in (x, a, b))
    chain = wt.function(lambda x, a, b: wt.gelu_tanh(x * a + b) * wt.sigmoid(x))
    want = gelu_chain_np(x, a, b)
    err = np.abs(chain(tx, ta, tb).numpy() - want).max()
    w, c = timeit(lambda: chain(tx, ta, tb), seconds)
    nw, _ = timeit(lambda: gelu_chain_np(x, a, b), seconds)
    row(f"fused chain 2^20 (max abs err {err:.0e})", {"wasm": w * 1e3, "wasm cpu": c * 1e3, "numpy": nw * 1e3},
        "ms")
    gb = 3 * 4 * n / 1e9
    row("fused chain 2^20 bandwidth", {"wasm": gb / w, "wasm cpu": gb / c, "numpy": gb / nw}, "GB/s")


# ---- MLP training step ---------------------------------------------------------------------------

LR = 0.05


def bench_mlp(seconds):
    rng = np.random.default_rng(2)
    init = init_mlp(rng)
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    params = [wt.Variable(p, device="wasm") for p in init]
    tx, ty = wt.tensor(x, device="wasm"), wt.tensor(y, device="wasm")

    @wt.function
    def train_step(x, y):
        w1, b1, w2, b2, w3, b3 = params
        with wt.GradientTape() as tape:
            h = wt.relu(x @ w1 + b1)
            h = wt.relu(h @ w2 + b2)
            loss = wt.mean(wt.sparse_softmax_cross_entropy(y, h @ w3 + b3))
        for p, g in zip(params, tape.gradient(loss, params)):
            p.assign_sub(g * LR)
        return loss

    ref = [p.copy() for p in init]
    l_wasm, l_np = float(train_step(tx, ty)), float(mlp_step_np(ref, x, y, LR))
    assert abs(l_wasm - l_np) < 1e-3 * max(1.0, abs(l_np)), (l_wasm, l_np)
    w, c = timeit(lambda: train_step(tx, ty), seconds)
    nw, _ = timeit(lambda: mlp_step_np(ref, x, y, LR), seconds)
    n_kernels = len(train_step.get_concrete(tx, ty).exe.program.steps)
    row(f"MLP SGD step ({n_kernels} kernels, 1 call)", {"wasm": 1 / w, "wasm cpu": 1 / c, "numpy": 1 / nw},
        "steps/s")


# ---- CNN forward -----------------------------------------------------------------------------------

def init_cnn(rng):
    def he(*s):
        return (rng.standard_normal(s) * np.sqrt(2 / np.prod(s[:-1]))).astype(np.float32)
    return [he(3, 3, 1, 16), np.zeros(16, np.float32), he(3, 3, 16, 32), np.zeros(32, np.float32),
            he(800, 10), np.zeros(10, np.float32)]


def cnn_forward(x, k1, c1, k2, c2, w, b):
    h = wt.max_pool2d(wt.relu(wt.conv2d(x, k1) + c1), 2)
    h = wt.max_pool2d(wt.relu(wt.conv2d(h, k2) + c2), 2)
    return wt.reshape(h, (h.shape[0], -1)) @ w + b


def _im2col(x, k):
    n, h, w_, c = x.shape
    oh, ow = h - k + 1, w_ - k + 1
    s = x.strides
    p = np.lib.stride_tricks.as_strided(x, (n, oh, ow, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
    return p.reshape(n * oh * ow, k * k * c), (n, oh, ow)


def _pool(x):
    n, h, w_, c = x.shape
    h2, w2 = h // 2, w_ // 2
    return x[:, :2 * h2, :2 * w2].reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


def cnn_forward_np(x, k1, c1, k2, c2, w, b):
    p, (n, oh, ow) = _im2col(x, 3)
    h = _pool(np.maximum(p @ k1.reshape(-1, 16) + c1, 0).reshape(n, oh, ow, 16))
    p, (n, oh, ow) = _im2col(h, 3)
    h = _pool(np.maximum(p @ k2.reshape(-1, 32) + c2, 0).reshape(n, oh, ow, 32))
    return h.reshape(n, -1) @ w + b


def bench_cnn(seconds):
    rng = np.random.default_rng(3)
    params = init_cnn(rng)
    x = rng.standard_normal((32, 28, 28, 1)).astype(np.float32)
    tp = [wt.tensor(p, device="wasm") for p in params]
    tx = wt.tensor(x, device="wasm")
    fwd = wt.function(cnn_forward)
    err = np.abs(fwd(tx, *tp).numpy() - cnn_forward_np(x, *params)).max()
    w, c = timeit(lambda: fwd(tx, *tp), seconds)
    nw, _ = timeit(lambda: cnn_forward_np(x, *params), seconds)
    n_kernels = len(fwd.get_concrete(tx, *tp).exe.program.steps)
    row(f"CNN forward, batch 32 ({n_kernels} kernels, err {err:.0e})",
        {"wasm": 32 / w, "wasm cpu": 32 / c, "numpy": 32 / nw}, "images/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="timing budget per figure")
    args = ap.parse_args()
    print(f"webtensor {wt.__version__}: 'wasm' device (wasmtime, 1 thread) vs numpy {np.__version__}")
    bench_matmul(args.seconds)
    bench_chain(args.seconds)
    bench_mlp(args.seconds)
    bench_cnn(args.seconds)


if __name__ == "__main__":
    main()

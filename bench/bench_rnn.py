"""The LSTM layer (issue 15's workload: batch 32, 64 steps, hidden 256; 64 input features) on the
"wasm" device beside numpy, in one run:

- forward: ``nn.LSTM(256)`` on ``(32, 64, 64)``, the last output, compiled as one
  ``webtensor.function`` (the time loop unrolls into the graph);
- forward + backward: the gradients of ``sum(LSTM(x))`` with respect to the three weights, one
  ``webtensor.function``; numpy runs the same LSTM and its backpropagation through time by hand
  (float32, Keras' gate order i, f, c, o).

The gradients are checked against numpy's before timing. Each figure is the best of ``--repeat``
runs after a warm-up call (which traces and compiles). numpy uses several BLAS threads; for a single-thread baseline set
``OPENBLAS_NUM_THREADS=1``. The ratio column is numpy's time over webtensor's (above 1: faster).

Usage: ``[OPENBLAS_NUM_THREADS=1] python bench/bench_rnn.py [--repeat 5]``
"""
from __future__ import annotations

import argparse

import numpy as np

import webtensor as wt
from common import best, row

N, T, F, U = 32, 64, 64, 256


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_np(x, k, rk, b):
    """Forward with the values backward needs: (h_T, cache)."""
    h = c = np.zeros((x.shape[0], rk.shape[0]), np.float32)
    cache = []
    for t in range(x.shape[1]):
        z = x[:, t] @ k + h @ rk + b
        i, f, g, o = np.split(z, 4, axis=-1)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c_prev, h_prev = c, h
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        cache.append((h_prev, c_prev, i, f, g, o, tc))
    return h, cache


def lstm_grad_np(x, k, rk, b):
    """Gradients of sum(h_T) with respect to (kernel, recurrent_kernel, bias)."""
    h, cache = lstm_np(x, k, rk, b)
    dk, drk, db = np.zeros_like(k), np.zeros_like(rk), np.zeros_like(b)
    dh, dc = np.ones_like(h), np.zeros_like(h)
    for t in range(x.shape[1] - 1, -1, -1):
        h_prev, c_prev, i, f, g, o, tc = cache[t]
        do = dh * tc
        dc = dc + dh * o * (1 - tc * tc)
        di, df, dg = dc * g, dc * c_prev, dc * i
        dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], -1)
        dk += x[:, t].T @ dz
        drk += h_prev.T @ dz
        db += dz.sum(0)
        dh, dc = dz @ rk.T, dc * f
    return dk, drk, db


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    with wt.device("wasm"):
        wt.set_seed(0)
        layer = wt.nn.LSTM(U)
        xt = wt.tensor(x)
        layer(xt)
        k, rk, b = layer.get_weights()

        @wt.function
        def forward(v):
            return layer(v)

        @wt.function
        def grads(v):
            with wt.GradientTape() as tape:
                loss = wt.sum(layer(v))
            return tape.gradient(loss, layer.trainable_variables)

        got = [g.numpy() for g in grads(xt)]
        want = lstm_grad_np(x, k, rk, b)
        err = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want))
        print(f"LSTM({U}) on ({N}, {T}, {F}); gradients' max relative error against numpy: {err:.1e}")
        for name, wt_fn, np_fn in (("forward", lambda: forward(xt).numpy(), lambda: lstm_np(x, k, rk, b)),
                                   ("forward + backward", lambda: [g.numpy() for g in grads(xt)],
                                    lambda: lstm_grad_np(x, k, rk, b))):
            wt_fn()
            tw = best(wt_fn, args.repeat)
            tn = best(np_fn, args.repeat)
            row(name, {"wasm": tw * 1e3, "numpy": tn * 1e3, "ratio": tn / tw}, "ms (ratio: numpy / wasm)")


if __name__ == "__main__":
    main()

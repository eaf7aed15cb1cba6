"""The LSTM layer (issue 15's workload: batch 32, 64 steps, hidden 256; 64 input features) on the
"wasm" device beside numpy, in one run:

- forward: ``nn.LSTM(256)`` on ``(32, 64, 64)``, the last output, compiled as one
  ``webtensor.function``: the time loop as one scan node (the default) and unrolled into the graph
  (``unroll=True``), same weights;
- forward + backward: the gradients of ``sum(LSTM(x))`` with respect to the three weights, one
  ``webtensor.function`` (scan and unrolled); numpy runs the same LSTM and its backpropagation
  through time by hand (float32, Keras' gate order i, f, c, o);
- the exported forward (``webtensor.export``, wasm only) of both: the artifact's bytes (module.wasm,
  manifest.json) and ``webtensor.load(...).predict`` timed the same way.

The gradients are checked against numpy's before timing. Each figure is the best of ``--repeat``
runs after a warm-up call (which traces and compiles). numpy uses several BLAS threads; for a single-thread baseline set
``OPENBLAS_NUM_THREADS=1``. The ratio column is numpy's time over webtensor's (above 1: faster).

Usage: ``[OPENBLAS_NUM_THREADS=1] python bench/bench_rnn.py [--repeat 5]``
"""
from __future__ import annotations

import argparse
import os
import tempfile

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

        unrolled = wt.nn.LSTM(U, unroll=True)
        unrolled(xt)
        unrolled.set_weights([k, rk, b])
        want = lstm_grad_np(x, k, rk, b)
        fns = {}
        for kind, lay in (("scan", layer), ("unrolled", unrolled)):
            forward = wt.function(lambda v, lay=lay: lay(v))

            def grads(v, lay=lay):
                with wt.GradientTape() as tape:
                    loss = wt.sum(lay(v))
                return tape.gradient(loss, lay.trainable_variables)
            grads = wt.function(grads)
            got = [g.numpy() for g in grads(xt)]
            err = max(float(np.abs(g - w).max() / np.abs(w).max()) for g, w in zip(got, want))
            print(f"LSTM({U}) on ({N}, {T}, {F}), {kind}: gradients' max relative error against numpy: {err:.1e}")
            fns[kind] = (forward, grads)
        for name, j, np_fn in (("forward", 0, lambda: lstm_np(x, k, rk, b)),
                               ("forward + backward", 1, lambda: lstm_grad_np(x, k, rk, b))):
            run = {kind: (lambda f=f[j]: _numpy(f(xt))) for kind, f in fns.items()}
            for fn in run.values():
                fn()
            times = {kind: [] for kind in run}
            for _ in range(args.repeat):            # alternate, so load changes hit both alike
                for kind, fn in run.items():
                    times[kind].append(best(fn, 1))
            tw = {kind: min(ts) for kind, ts in times.items()}
            tn = best(np_fn, args.repeat)
            row(name, {"scan": tw["scan"] * 1e3, "unrolled": tw["unrolled"] * 1e3, "numpy": tn * 1e3,
                       "scan/unrolled": tw["scan"] / tw["unrolled"], "numpy/scan": tn / tw["scan"]},
                "ms (ratios of times)")
        exported(layer, unrolled, xt, x, args.repeat)


def _numpy(out):
    return [t.numpy() for t in out] if isinstance(out, (list, tuple)) else out.numpy()


def exported(layer, unrolled, xt, x, repeat):
    """Export the forward of both layers (wasm), print the artifacts' bytes and their predict times."""
    with tempfile.TemporaryDirectory() as tmp:
        arts, sizes = {}, {}
        for kind, lay in (("scan", layer), ("unrolled", unrolled)):
            path = os.path.join(tmp, kind)
            wt.export(wt.function(lambda v, lay=lay: lay(v)), (xt,), path, backends=("wasm",))
            sizes[kind] = {f: os.path.getsize(os.path.join(path, f)) for f in ("module.wasm", "manifest.json")}
            arts[kind] = wt.load(path, backend="wasm")
        for f in ("module.wasm", "manifest.json"):
            row(f"artifact {f}", {"scan": sizes["scan"][f] / 1e3, "unrolled": sizes["unrolled"][f] / 1e3,
                                  "scan/unrolled": sizes["scan"][f] / sizes["unrolled"][f]}, "kB")
        d = float(np.abs(arts["scan"].predict(x) - arts["unrolled"].predict(x)).max())
        print(f"exported scan and unrolled forwards: max |difference| {d:.1e}")
        times = {kind: [] for kind in arts}
        for _ in range(repeat):
            for kind, art in arts.items():
                times[kind].append(best(lambda art=art: art.predict(x), 1))
        t = {kind: min(ts) for kind, ts in times.items()}
        row("exported forward (webtensor.load)", {"scan": t["scan"] * 1e3, "unrolled": t["unrolled"] * 1e3,
                                                  "scan/unrolled": t["scan"] / t["unrolled"]}, "ms")


if __name__ == "__main__":
    main()

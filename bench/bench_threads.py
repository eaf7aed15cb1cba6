"""Intra-op threads on the "wasm" device (wasm/threads.py): the same workloads compiled for 1 and for
N threads, their calls alternating (round robin) so both see the same load on a shared machine.
Prints the best and median call of each and the ratio 1-thread / N-thread (>1: threads win), and
the driver thread's CPU time per call 1-thread / N-thread (``time.thread_time``): how much of the
work the other threads took, which other jobs on the machine disturb far less than wall time (~2x
when every large kernel splits evenly; a kernel that stays on one thread pulls it toward 1x).

- matmul 1024 x 1024 x 1024 (float32);
- MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, SGD, sparse cross-entropy on logits;
- CNN forward, batch 32: 28x28x1 -> conv3x3 16 (same, ReLU) -> maxpool -> conv3x3 32 (same,
  ReLU) -> maxpool -> dense 10;
- transformer encoder forward, 6 layers, batch 16 x 64 tokens (``export_bench.encoder``: d 128,
  4 heads, feed-forward 512).

``--sweep``: the threshold. One elementwise kernel (``tanh(x * 1.5 + 0.5)``, every kernel split
whatever its size: ``threads.MIN_WORK`` 0, ``TILE_WORK`` 1024) and one matmul (M x 256 x 256) at growing sizes,
1 vs N threads: where N threads start to win is where ``MIN_WORK`` belongs.

The worker threads are Python threads calling into wasmtime; a ratio above 1 also shows that
wasmtime-py releases the GIL during calls (ctypes.CDLL does).

Usage: python bench/bench_threads.py [--threads 2] [--rounds 20] [--sweep]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import webtensor as wt
from webtensor.wasm import threads as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_bench  # noqa: E402  (the encoder that bench_threads.mjs runs too)


def compiled(n, build):
    """``build()``'s callable, compiled for ``n`` threads (the count is read when a function is traced)."""
    wt.config.threading.set_intra_op_parallelism_threads(n)
    call = build()
    call()                                       # trace and compile now, with this thread count
    wt.config.threading.set_intra_op_parallelism_threads(0)
    return call


def race(name, build, n, rounds):
    one, many = compiled(1, build), compiled(n, build)
    times = {1: [], n: []}
    cpu = {1: 0.0, n: 0.0}
    for _ in range(rounds):
        for k, call in ((1, one), (n, many)):
            c, t = time.thread_time(), time.perf_counter()
            call()
            times[k].append(time.perf_counter() - t)
            cpu[k] += time.thread_time() - c
    b1, bn = min(times[1]), min(times[n])
    m1, mn = statistics.median(times[1]), statistics.median(times[n])
    print(f"{name:<34} 1 thread {b1 * 1e3:8.2f} ms (median {m1 * 1e3:8.2f})   {n} threads {bn * 1e3:8.2f} ms "
          f"(median {mn * 1e3:8.2f})   ratio best {b1 / bn:5.2f}x  median {m1 / mn:5.2f}x  driver CPU {cpu[1] / cpu[n]:5.2f}x",
          flush=True)
    return b1 / bn


def matmul(size):
    rng = np.random.default_rng(0)
    a = wt.tensor(rng.standard_normal((size, size)).astype(np.float32))
    b = wt.tensor(rng.standard_normal((size, size)).astype(np.float32))

    def build():
        f = wt.function(lambda x, y: wt.matmul(x, y))
        return lambda: f(a, b).numpy()
    return build


def mlp():
    rng = np.random.default_rng(1)
    x = rng.random((128, 784), np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    nn = wt.nn

    def build():
        wt.set_seed(0)
        m = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                           nn.Dense(10)])
        m.compile(wt.optimizers.SGD(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.build((128, 784))
        step = m._step_function("train")        # the compiled train step fit() runs
        xt, yt = wt.tensor(x), wt.tensor(y)
        return lambda: step(xt, yt).numpy()
    return build


def cnn():
    x = np.random.default_rng(2).random((32, 28, 28, 1), np.float32)
    nn = wt.nn

    def build():
        wt.set_seed(0)
        m = nn.Sequential([nn.Input((28, 28, 1)), nn.Conv2D(16, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                           nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                           nn.Dense(10)])
        return lambda: m.predict_on_batch(x).numpy()
    return build


def encoder():
    ids = np.random.default_rng(4).integers(0, 1000, (export_bench.ENCODER_BATCH, export_bench.ENCODER_TOKENS))
    ids = ids.astype(np.int32)

    def build():
        wt.set_seed(0)
        m = export_bench.encoder()
        return lambda: m.predict_on_batch(ids).numpy()
    return build


def sweep(n, rounds):
    rng = np.random.default_rng(3)
    keep = T.MIN_WORK, T.TILE_WORK
    T.MIN_WORK, T.TILE_WORK = 0, 1 << 10          # split every kernel (up to 16 tiles), to see where it pays
    try:
        for size in (1 << 14, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 20):
            x = wt.tensor(rng.standard_normal(size).astype(np.float32).reshape(-1, 64))

            def build(x=x):
                f = wt.function(lambda v: wt.tanh(v * 1.5 + 0.5))
                return lambda: f(x)
            race(f"elementwise tanh, {size} elements", build, n, rounds)
        for m in (32, 64, 128, 256):
            a = wt.tensor(rng.standard_normal((m, 256)).astype(np.float32))
            b = wt.tensor(rng.standard_normal((256, 256)).astype(np.float32))

            def build(a=a, b=b):
                f = wt.function(lambda u, v: wt.matmul(u, v))
                return lambda: f(a, b)
            race(f"matmul {m}x256x256", build, n, rounds)
    finally:
        T.MIN_WORK, T.TILE_WORK = keep


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--sweep", action="store_true")
    a = p.parse_args()
    print(f"load: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    with wt.device("wasm"):
        if a.sweep:
            sweep(a.threads, a.rounds)
            return
        race("matmul 1024", matmul(1024), a.threads, a.rounds)
        race("MLP train step (batch 128)", mlp(), a.threads, a.rounds)
        race("CNN forward (batch 32)", cnn(), a.threads, a.rounds)
        race("encoder 6 layers (16 x 64 tokens)", encoder(), a.threads, a.rounds)


if __name__ == "__main__":
    main()

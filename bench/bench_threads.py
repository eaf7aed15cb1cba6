"""Intra-op threads on the "wasm" device (wasm/threads.py): the same workloads compiled for 1 and for
N threads, their calls alternating (round robin) so both see the same load on a shared machine.
Prints the best and median call of each and the ratio 1-thread / N-thread (>1: threads win): of the
best calls, of the medians, and ``pairs``, the median over rounds of a 1-thread call's time over the
N-thread call right after it (the two see the machine at the same moment: on a shared VM whose speed
drifts by 2x within seconds this is the steadiest of the three), and
the driver thread's CPU time per call 1-thread / N-thread (``time.thread_time``): how much of the
work the other threads took, which other jobs on the machine disturb far less than wall time (~2x
when every large kernel splits evenly; a kernel that stays on one thread pulls it toward 1x; it includes
the driver's polls while it waits for the other threads, ``threads.SPIN``, so it reads a little low).

- matmul 1024 x 1024 x 1024 (float32);
- MLP train step 784 -> 256 -> 256 -> 10 (ReLU), batch 128, SGD, sparse cross-entropy on logits; the
  same with Adam;
- CNN forward, batch 32: 28x28x1 -> conv3x3 16 (same, ReLU) -> maxpool -> conv3x3 32 (same,
  ReLU) -> maxpool -> dense 10;
- transformer encoder forward, 6 layers, batch 16 x 64 tokens (``export_bench.encoder``: d 128,
  4 heads, feed-forward 512).

``--loop K``: each round runs K calls of one program back to back, then K of the other (which goes
first alternates), as ``fit`` and a predict loop call it; figures are per call (a block's time / K),
pairs are of blocks. Without it each N-thread call follows a 1-thread call, through which its
threads slept: on a VM a thread asleep for more than ~0.5 ms takes ~150 us to wake
(``node bench/bench_threads.mjs --wake``), which each call's first round pays.

``--sweep``: the threshold. One elementwise kernel (``tanh(x * 1.5 + 0.5)``, every kernel split
whatever its size: ``threads.MIN_WORK`` 0, ``TILE_WORK`` 1024) and one matmul (M x 256 x 256) at growing sizes,
1 vs N threads: where N threads start to win is where ``MIN_WORK`` belongs.

The worker threads are Python threads calling into wasmtime; a ratio above 1 also shows that
wasmtime-py releases the GIL during calls (ctypes.CDLL does).

``--amdahl``: no race; per workload (best of ``--rounds`` for each time) the estimate that the machine's load does not disturb
(``WasmExecutable.profile(threads=N)``): each kernel timed alone at 1 thread, and the longest of the N
threads' shares of its tiles (run one after another on this thread), summed over the kernels; and
what share of 1 thread's time stays on one thread. It leaves out the threads' synchronisation (per
split kernel a round: ``threads.SPIN``) and their contention for memory.

Usage: python bench/bench_threads.py [--threads 2] [--rounds 20] [--loop K] [--sweep | --amdahl]
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


def race(name, build, n, rounds, loop=0):
    one, many = compiled(1, build), compiled(n, build)
    times = {1: [], n: []}
    cpu = {1: 0.0, n: 0.0}
    calls = max(loop, 1)
    for r in range(rounds):
        for k, call in ((n, many), (1, one)) if loop and r % 2 else ((1, one), (n, many)):
            c, t = time.thread_time(), time.perf_counter()
            for _ in range(calls):
                call()
            times[k].append((time.perf_counter() - t) / calls)
            cpu[k] += time.thread_time() - c
    b1, bn = min(times[1]), min(times[n])
    m1, mn = statistics.median(times[1]), statistics.median(times[n])
    # each 1-thread call over the n-thread call right after it: the two see the machine at the same moment
    pairs = statistics.median(t1 / tn for t1, tn in zip(times[1], times[n]))
    print(f"{name:<34} 1 thread {b1 * 1e3:8.2f} ms (median {m1 * 1e3:8.2f})   {n} threads {bn * 1e3:8.2f} ms "
          f"(median {mn * 1e3:8.2f})   ratio best {b1 / bn:5.2f}x  median {m1 / mn:5.2f}x  pairs {pairs:5.2f}x  "
          f"driver CPU {cpu[1] / cpu[n]:5.2f}x", flush=True)
    return b1 / bn


def traced(call, step, *args):
    """``call`` (the timed call) with ``call.traced = (step, args)``: what ``--amdahl`` profiles (the
    compiled function that ``step(*args)`` runs: a ``wt.function`` or a model's predict step)."""
    call.traced = step, args
    return call


def compiled_step(step, args):
    """The compiled program (``WasmExecutable``) and captures of ``step(*args)``: a ``wt.function``, or
    a model's traced predict step (``predict_on_batch``)."""
    if not hasattr(step, "get_concrete"):
        model = step.__closure__[0].cell_contents          # lambda t: m.predict_on_batch(t)
        step(*args)
        step = model._step_function("predict")
    c = step.get_concrete(*args)
    return c.exe, [v._data for _, v in c.graph.captures]


def amdahl(name, build, n, repeat):
    """Print the load-insensitive estimate of ``n`` threads (``WasmExecutable.profile``): each kernel
    at 1 thread, the longest thread's share of its tiles, and the kernels that stay on one thread."""
    call = compiled(1, build)
    exe, captures = compiled_step(*call.traced)
    rows = exe.profile([a._data for a in call.traced[1]], captures, repeat, threads=n)
    one, many = sum(r[0] for r in rows), sum(r[1] for r in rows)
    alone = sum(r[0] for r in rows if r[2] == 1)
    print(f"{name}: {len(rows)} kernels, 1 thread {one * 1e3:.3f} ms, {n} threads {many * 1e3:.3f} ms: {one / many:.2f}x; "
          f"{sum(r[2] > 1 for r in rows)} split ({(one - alone) / (many - alone):.2f}x), the others "
          f"{100 * alone / one:.1f}% of 1 thread's time", flush=True)
    for t, tn, tiles, s in sorted(rows, key=lambda r: -r[0])[:8]:
        k = s.kernel
        what = k.template or f"{k.kind}{'/' + k.combiner if k.combiner else ''}"
        print(f"  {100 * t / one:5.1f}%  {t / tn:4.2f}x  {tiles:2d} tiles  {what} {[list(i.shape) for i in k.inputs[:2]]}")


def matmul(size):
    rng = np.random.default_rng(0)
    a = wt.tensor(rng.standard_normal((size, size)).astype(np.float32))
    b = wt.tensor(rng.standard_normal((size, size)).astype(np.float32))

    def build():
        f = wt.function(lambda x, y: wt.matmul(x, y))
        return traced(lambda: f(a, b).numpy(), f, a, b)
    return build


def mlp(optimizer=None):
    rng = np.random.default_rng(1)
    x = rng.random((128, 784), np.float32)
    y = rng.integers(0, 10, 128).astype(np.int32)
    nn = wt.nn

    def build():
        wt.set_seed(0)
        m = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                           nn.Dense(10)])
        m.compile(optimizer or wt.optimizers.SGD(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.build((128, 784))
        step = m._step_function("train")        # the compiled train step fit() runs
        xt, yt = wt.tensor(x), wt.tensor(y)
        return traced(lambda: step(xt, yt).numpy(), step, xt, yt)
    return build


def cnn():
    x = np.random.default_rng(2).random((32, 28, 28, 1), np.float32)
    nn = wt.nn

    def build():
        wt.set_seed(0)
        m = nn.Sequential([nn.Input((28, 28, 1)), nn.Conv2D(16, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                           nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                           nn.Dense(10)])
        return traced(lambda: m.predict_on_batch(x).numpy(), lambda t: m.predict_on_batch(t), wt.tensor(x))
    return build


def encoder():
    ids = np.random.default_rng(4).integers(0, 1000, (export_bench.ENCODER_BATCH, export_bench.ENCODER_TOKENS))
    ids = ids.astype(np.int32)

    def build():
        wt.set_seed(0)
        m = export_bench.encoder()
        return traced(lambda: m.predict_on_batch(ids).numpy(), lambda t: m.predict_on_batch(t), wt.tensor(ids))
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
    p.add_argument("--loop", type=int, default=0, help="K calls of each program back to back per round")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--amdahl", action="store_true", help="the load-insensitive estimate per workload (no race)")
    a = p.parse_args()
    print(f"{f'loops of {a.loop} calls; ' if a.loop else ''}load: {os.getloadavg()}  cpus: {os.cpu_count()}", flush=True)
    with wt.device("wasm"):
        if a.sweep:
            sweep(a.threads, a.rounds)
            return
        run = (lambda name, build: amdahl(name, build, a.threads, a.rounds)) if a.amdahl else \
            (lambda name, build: race(name, build, a.threads, a.rounds, a.loop))
        run("matmul 1024", matmul(1024))
        run("MLP train step (batch 128)", mlp())
        run("MLP train step, Adam (batch 128)", mlp(wt.optimizers.Adam(1e-3)))
        run("CNN forward (batch 32)", cnn())
        run("encoder 6 layers (16 x 64 tokens)", encoder())


if __name__ == "__main__":
    main()

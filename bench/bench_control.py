"""Control flow cost: a recurrent cell (``h = tanh(x_t @ W + h @ U)``, batch B, hidden H, T steps) run
as ``webtensor.scan`` inside ``webtensor.function`` (one graph node: a host-side loop over the
compiled body) against the same cell unrolled by a Python ``for`` at trace time (one executable,
T copies of the body): forward, and forward+backward (``value_and_grad``). Ratios > 1: scan slower.

Each figure is the best of ``--repeats`` timed loops of ``--n`` calls (process CPU time), both
measured in the same run on the same device.

Usage: ``python bench/bench_control.py [--device wasm] [--batch 32] [--hidden 64] [--steps 32]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import webtensor as wt


def best(fn, n: int, repeats: int) -> float:
    """Best per-call CPU time of ``fn`` over ``repeats`` loops of ``n`` calls, in milliseconds."""
    fn()                                    # trace and compile outside the timing
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        times.append((time.process_time() - t0) / n * 1e3)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="wasm")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    B, H, T = args.batch, args.hidden, args.steps
    rng = np.random.default_rng(0)
    with wt.device(args.device):
        W = wt.Variable(rng.normal(size=(H, H)).astype(np.float32) * 0.1)
        U = wt.Variable(rng.normal(size=(H, H)).astype(np.float32) * 0.1)
        xs = wt.tensor(rng.normal(size=(T, B, H)).astype(np.float32))

        def cell(h, x):
            return wt.tanh(x @ W + h @ U)

        def scanned(xs):
            return wt.reduce_sum(wt.scan(cell, xs, initializer=wt.zeros((B, H))) ** 2)

        def unrolled(xs):
            h, total = wt.zeros((B, H)), 0.0
            for t in range(T):
                h = cell(h, xs[t])
                total = total + wt.reduce_sum(h * h)
            return total

        fs, fu = wt.function(scanned), wt.function(unrolled)
        np.testing.assert_allclose(fs(xs).numpy(), fu(xs).numpy(), rtol=1e-4)
        gs, gu = wt.value_and_grad(scanned), wt.value_and_grad(unrolled)
        np.testing.assert_allclose(gs(xs)[1].numpy(), gu(xs)[1].numpy(), rtol=1e-3, atol=1e-5)
        print(f"device {args.device}, batch {B}, hidden {H}, steps {T}")
        for what, a, b in (("forward", fs, fu), ("forward+backward", gs, gu)):
            ts, tu = best(lambda: a(xs), args.n, args.repeats), best(lambda: b(xs), args.n, args.repeats)
            print(f"{what:18s} scan {ts:8.3f} ms  unrolled {tu:8.3f} ms  ratio {ts / tu:5.2f}")


if __name__ == "__main__":
    main()

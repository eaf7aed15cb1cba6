"""Per-call overhead of small work from one thread (issue 12: the locks must not slow it down).

- eager ``x + y`` on two 4-element float32 tensors (one kernel call: dispatch, kernel cache,
  allocation, free), microseconds per op;
- a ``webtensor.function`` ``(x * y + x).sum()`` on the same tensors (signature, trace cache,
  executable run), microseconds per call.

Each figure is the best of ``--repeats`` timed loops of ``--n`` calls (process CPU time, which on a
shared machine is steadier than the wall clock). Compare two checkouts by running this in each.

Usage: ``python bench/bench_eager_overhead.py [--device wasm] [--n 10000] [--repeats 7]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import webtensor as wt


def best(fn, n: int, repeats: int) -> float:
    """Best per-call CPU time of ``fn`` over ``repeats`` loops of ``n`` calls, in microseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        times.append((time.process_time() - t0) / n * 1e6)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="wasm")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    x = wt.tensor(np.arange(4, dtype=np.float32), device=args.device)
    y = wt.tensor(np.ones(4, np.float32), device=args.device)
    assert (x + y).numpy().tolist() == [1.0, 2.0, 3.0, 4.0]
    f = wt.function(lambda a, b: wt.reduce_sum(a * b + a))
    assert float(f(x, y)) == 12.0
    eager = best(lambda: x + y, args.n, args.repeats)
    fn = best(lambda: f(x, y), args.n, args.repeats)
    print(f"{args.device}: eager x + y (4 elements) {eager:.2f} us/op; webtensor.function call {fn:.2f} us/call")


if __name__ == "__main__":
    main()

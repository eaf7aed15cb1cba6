"""Cost of the O(n^2) rank-count sort (``sort``, ``top_k``; ``core/ops/sorting.py``) against
numpy's O(n log n) sort, measured in the same run, for the axis sizes models sort.

For each axis size n (rows of ``--batch``), a compiled ``webtensor.function`` running ``top_k(x, 5)``
and ``sort(x)`` on ``--device``, and ``np.sort`` / ``np.argpartition`` on the same array: the best of
``--repeats`` timings (process CPU time), and the ratio webtensor / numpy.

Usage: ``python bench/bench_sorting.py [--device wasm] [--batch 32] [--sizes 10,100,1000] [--repeats 5]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import webtensor as wt


def best(fn, repeats: int) -> float:
    """Best CPU time of one ``fn()`` call over ``repeats`` (after a warm-up call), in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="wasm")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    top5 = wt.function(lambda x: wt.top_k(x, 5).values)
    sort = wt.function(lambda x: wt.sort(x))
    for n in (int(s) for s in args.sizes.split(",")):
        a = np.random.default_rng(0).normal(size=(args.batch, n)).astype(np.float32)
        x = wt.tensor(a, device=args.device)
        want = np.sort(a, axis=-1)
        assert np.array_equal(sort(x).numpy(), want) and np.array_equal(top5(x).numpy(), want[:, ::-1][:, :5])
        t_sort, t_top = best(lambda: sort(x).numpy(), args.repeats), best(lambda: top5(x).numpy(), args.repeats)
        n_sort = best(lambda: np.sort(a, axis=-1), args.repeats)
        n_top = best(lambda: np.take_along_axis(a, np.argpartition(-a, 4, axis=-1)[:, :5], -1), args.repeats)
        print(f"{args.device} n={n:5d} x{args.batch}: sort {t_sort:8.3f} ms ({t_sort / n_sort:7.1f}x numpy), "
              f"top_k(5) {t_top:8.3f} ms ({t_top / n_top:7.1f}x numpy argpartition)")


if __name__ == "__main__":
    main()

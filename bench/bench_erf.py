"""The "reference" device's erf: the vectorised Cody approximation beside ``np.vectorize(math.erf)``
(what it computed with before issue 12), on the same data in the same run.

    python3 bench/bench_erf.py [--n N] [--repeat R]

Rows: erf of N float32 values drawn from N(0, 2) (the range GELU sees), then ``gelu_erf`` on a
transformer-sized activation (batch 8 x 128 tokens x 3072 features) through ``webtensor`` on the
reference device, with the old erf swapped in for the comparison. Best of R, milliseconds.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from common import best, row

import webtensor as wt
from webtensor.core import numpy_util

_old = np.vectorize(math.erf, otypes=[np.float64])


def old_erf(x):
    """The reference device's erf before issue 12 (one ``math.erf`` call per element)."""
    x = np.asarray(x)
    return _old(x).astype(x.dtype) if x.size else x.copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.n) * 2).astype(np.float32)
    new_ms = best(lambda: numpy_util.erf(x), args.repeat) * 1e3
    old_ms = best(lambda: old_erf(x), args.repeat) * 1e3
    assert np.array_equal(numpy_util.erf(x), old_erf(x)), "the two erfs disagree in float32"
    row(f"erf, {args.n} float32", {"cody": new_ms, "vectorize": old_ms, "ratio": old_ms / new_ms}, "ms")

    act = wt.tensor((rng.standard_normal((8, 128, 3072)) * 2).astype(np.float32), device="reference")
    new_ms = best(lambda: wt.gelu_erf(act), args.repeat) * 1e3
    numpy_util.erf, cody = old_erf, numpy_util.erf
    try:
        old_ms = best(lambda: wt.gelu_erf(act), args.repeat) * 1e3
    finally:
        numpy_util.erf = cody
    row("gelu_erf 8x128x3072 (reference device)", {"cody": new_ms, "vectorize": old_ms, "ratio": old_ms / new_ms},
        "ms")


if __name__ == "__main__":
    main()

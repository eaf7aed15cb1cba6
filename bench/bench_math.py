"""Issue 14's elementwise functions on the "wasm" device: each one's time over the time of ``exp``
on the same data in the same run (their kernel-IR expressions are several exps' worth of work:
branches are computed on every lane and selected), beside numpy's float32 ufunc.

    python3 bench/bench_math.py [--n N] [--repeat R] [--device wasm]

Rows: milliseconds for N float32 values (best of R), as a function compiled with
``webtensor.function``, then the ratio to that device's exp.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from common import best, row

import webtensor as wt

FUNCTIONS = {  # name: (input range, numpy float32 function or None)
    "exp": ((-5, 5), np.exp), "expm1": ((-5, 5), np.expm1), "log1p": ((-0.9, 5), np.log1p),
    "tan": ((-10, 10), np.tan), "atan": ((-10, 10), np.arctan), "asin": ((-1, 1), np.arcsin),
    "acos": ((-1, 1), np.arccos), "sinh": ((-10, 10), np.sinh), "cosh": ((-10, 10), np.cosh),
    "asinh": ((-10, 10), np.arcsinh), "acosh": ((1, 10), np.arccosh), "atanh": ((-1, 1), np.arctanh),
    "erfc": ((-5, 9), None), "softplus": ((-10, 10), lambda x: np.logaddexp(np.float32(0), x)),
    "selu": ((-5, 5), None), "silu": ((-5, 5), None),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="wasm")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    base = None
    for name, ((lo, hi), np_fn) in FUNCTIONS.items():
        x = rng.uniform(lo, hi, args.n).astype(np.float32)
        t = wt.tensor(x, device=args.device)
        f = wt.function(getattr(wt, name))
        f(t).numpy()                                   # compile
        ms = best(lambda: f(t).numpy(), args.repeat) * 1e3
        base = base or ms
        figures = {args.device: ms, "/exp": ms / base}
        if np_fn is not None:
            with np.errstate(all="ignore"):
                figures["numpy"] = best(lambda: np_fn(x), args.repeat) * 1e3
        row(name, figures, "ms, ratio", width=10)


if __name__ == "__main__":
    main()

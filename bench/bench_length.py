"""A symbolic length (docs/artifact.md "Symbolic length") against fixed-length artifacts: the text
job's model (``textlm.build_model``: Embedding(89, 32, mask_zero) -> LSTM(256, every step) ->
Dense(89)), batch 4, exported once for any length up to 256 and once per fixed length. Loaded with
Python's wasm loader; at each length the two ``predict`` calls alternate (round robin) so both see
the same load. Prints the best and median call of each and the ratio symbolic / fixed (>1: the
symbolic artifact is slower: the kernels outside the loop run over the 256 padded steps, the loop
itself runs only the length).

Usage: python bench/bench_length.py [--rounds 10] [--lengths 16 64 256]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

import webtensor as wt
from webtensor import textlm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    args = ap.parse_args()
    wt.set_seed(0)
    model = textlm.build_model(89, textlm.UNITS)
    f = wt.function(lambda ids: model(ids))
    tmp = tempfile.mkdtemp()
    wt.export(f, path=f"{tmp}/sym", input_signature=[wt.TensorSpec((4, None), "int32")], max_length=256,
              backends=("wasm",))
    sym = wt.load(f"{tmp}/sym", backend="wasm")
    for n in args.lengths:
        ids = np.random.default_rng(n).integers(1, 89, (4, n)).astype(np.int32)
        wt.export(f, (wt.tensor(ids),), path=f"{tmp}/fixed{n}", backends=("wasm",))
        fixed = wt.load(f"{tmp}/fixed{n}", backend="wasm")
        assert np.array_equal(sym.run("predict", ids)["output_0"], fixed.run("predict", ids)["output_0"])
        times = {"symbolic": [], "fixed": []}
        for _ in range(args.rounds):
            for name, m in (("symbolic", sym), ("fixed", fixed)):
                t = time.perf_counter()
                m.run("predict", ids)
                times[name].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"length {n:4d}: symbolic best {best['symbolic'] * 1e3:7.1f} ms (median {med['symbolic'] * 1e3:7.1f}), "
              f"fixed best {best['fixed'] * 1e3:7.1f} ms (median {med['fixed'] * 1e3:7.1f}); "
              f"symbolic / fixed {best['symbolic'] / best['fixed']:.2f} (best), "
              f"{med['symbolic'] / med['fixed']:.2f} (median)", flush=True)


if __name__ == "__main__":
    main()

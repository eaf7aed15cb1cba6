"""A symbolic-batch artifact (format version 2: ``predict`` compiled for a chunk of rows, any batch
run as chunks) against fixed-shape artifacts compiled for exactly the batch, on the wasm loader in
this process. Prints, per batch, the ratio symbolic / fixed of the best of ``--repeat`` predict
calls, measured alternately in the same run (``--rounds`` rounds; the range over rounds), for the
artifact as exported ("rows": a last partial chunk runs its own rows through the rows driver,
docs/artifact.md "Run-time rows") and for the same artifact without its rows driver ("padded":
every chunk runs all its rows, as before run-time rows). ``--backend webgpu`` measures the WebGPU
loader (wgpu-py: lavapipe here, or a GPU) the same way: "rows" runs a last partial chunk with its
kernels' run-time rows (docs/artifact.md "Run-time rows: WebGPU"), "padded" the same artifact
loaded again with run-time rows turned off in the loader (its WGSL reads the rows, so no manifest
edit can drop them).

    python bench/bench_symbolic.py [--backend wasm|webgpu] [--chunk 32] [--rounds 5] [--repeat 20] [--batches 1,32,128]

Workloads: the MLP 784 -> 256 -> 256 -> 10 and a small CNN (28x28x1, conv 8 3x3, pool, dense 10).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best  # noqa: E402

import webtensor as wt  # noqa: E402


def model(kind):
    nn = wt.nn
    wt.set_seed(0)
    if kind == "mlp":
        layers = [nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"), nn.Dense(10)]
    else:
        layers = [nn.Input((28, 28, 1)), nn.Conv2D(8, 3, activation="relu"), nn.MaxPool2D(), nn.Flatten(), nn.Dense(10)]
    return nn.Sequential(layers)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--backend", choices=("wasm", "webgpu"), default="wasm")
    p.add_argument("--batches", default="1,32,128", help="comma-separated batch sizes")
    a = p.parse_args()
    be = a.backend
    tmp = tempfile.mkdtemp()
    print(f"symbolic (chunk {a.chunk}) / fixed-shape predict time, {be} loader; range over {a.rounds} rounds")
    for kind in ("mlp", "cnn"):
        m = model(kind)
        shape = (784,) if kind == "mlp" else (28, 28, 1)
        sym_dir = os.path.join(tmp, f"{kind}_sym")
        m.export(sym_dir, batch_size=a.chunk, backends=(be,), signatures=["predict"])
        sym = wt.load(sym_dir, backend=be)
        if be == "webgpu":
            padded = wt.load(sym_dir, backend=be)
            padded._backend.takes_rows = lambda name: False     # this instance pads every chunk
        else:
            padded_dir = sym_dir + "_padded"            # the same files, the manifest without its rows driver
            shutil.copytree(sym_dir, padded_dir)
            with open(os.path.join(padded_dir, "manifest.json")) as fh:
                man = json.load(fh)
            man["signatures"]["predict"]["wasm"].pop("rows_driver", None)
            with open(os.path.join(padded_dir, "manifest.json"), "w") as fh:
                json.dump(man, fh)
            padded = wt.load(padded_dir, backend=be)
        for batch in [int(b) for b in a.batches.split(",")]:
            fixed_dir = os.path.join(tmp, f"{kind}_fixed_{batch}")
            m.export(fixed_dir, batch_size=batch, backends=(be,), signatures=["predict"], symbolic_batch=False)
            fixed = wt.load(fixed_dir, backend=be)
            x = np.random.default_rng(batch).standard_normal((batch,) + shape).astype(np.float32)
            rows, pads = [], []
            for _ in range(a.rounds):
                tf = best(lambda: fixed.predict(x), a.repeat)
                ts = best(lambda: sym.predict(x), a.repeat)
                tp = best(lambda: padded.predict(x), a.repeat)
                rows.append(ts / tf)
                pads.append(tp / tf)
            print(f"{kind:4s} batch {batch:4d}: rows {min(rows):.2f}x .. {max(rows):.2f}x, padded {min(pads):.2f}x .. "
                  f"{max(pads):.2f}x  (fixed {tf * 1e3:.3f} ms)")


if __name__ == "__main__":
    main()

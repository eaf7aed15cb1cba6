"""A train step that takes any batch up to its chunk (docs/artifact.md "Symbolic batch: train steps":
compiled for ``chunk`` rows with a row count; below the chunk its rows driver runs ``n`` rows,
"Run-time rows: train steps") against fixed-shape train steps compiled for exactly ``n`` rows, on
the wasm loader in this process. Prints, per batch, the ratio symbolic / fixed of the best of
``--repeat`` ``train_step`` calls, measured alternately in the same run (``--rounds`` rounds; the
range over rounds), and the same for the same artifact with its rows padded to the chunk (the
loader told that the backend takes no run-time rows): about the cost of ``chunk`` rows over ``n``.

    python bench/bench_symtrain.py [--chunks 32,128] [--rounds 5] [--repeat 10] [--batches 1,32,128]
                                   [--backend wasm|webgpu]

Workload: the MLP 784 -> 256 -> 256 -> 10, sparse cross-entropy from logits, Adam.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best  # noqa: E402

import webtensor as wt  # noqa: E402


def model():
    nn = wt.nn
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                       nn.Dense(10)])
    m.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chunks", default="32,128", help="comma-separated chunks of the symbolic artifacts")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--batches", default="1,32,128", help="comma-separated batch sizes")
    p.add_argument("--backend", default="wasm", choices=("wasm", "webgpu"), help="the loader's backend")
    a = p.parse_args()
    tmp = tempfile.mkdtemp()
    m = model()
    print(f"symbolic train step (chunk C, n rows) / fixed-shape train step for n rows, {a.backend} loader; "
          f"range over {a.rounds} rounds")
    for chunk in [int(c) for c in a.chunks.split(",")]:
        sym_dir = os.path.join(tmp, f"sym_{chunk}")
        m.export(sym_dir, batch_size=chunk, backends=(a.backend,), symbolic_batch=True)
        sym = wt.load(sym_dir, backend=a.backend)
        padded = wt.load(sym_dir, backend=a.backend)
        padded._backend.takes_rows = lambda name: False     # the same artifact, its rows padded to the chunk
        for batch in [int(b) for b in a.batches.split(",") if int(b) <= chunk]:
            fixed_dir = os.path.join(tmp, f"fixed_{batch}")
            m.export(fixed_dir, batch_size=batch, backends=(a.backend,), symbolic_batch=False)
            fixed = wt.load(fixed_dir, backend=a.backend)
            rng = np.random.default_rng(batch)
            x = rng.standard_normal((batch, 784)).astype(np.float32)
            y = rng.integers(0, 10, batch).astype(np.int32)
            ratios, pads = [], []
            for _ in range(a.rounds):
                tf = best(lambda: fixed.train_step(x, y), a.repeat)
                ts = best(lambda: sym.train_step(x, y), a.repeat)
                tp = best(lambda: padded.train_step(x, y), a.repeat)
                ratios.append(ts / tf)
                pads.append(tp / tf)
            print(f"chunk {chunk:4d} batch {batch:4d}: {min(ratios):.2f}x .. {max(ratios):.2f}x  "
                  f"(padded {min(pads):.2f}x .. {max(pads):.2f}x; fixed {tf * 1e3:.3f} ms)", flush=True)


if __name__ == "__main__":
    main()

"""The LSTM artifact for ``bench/bench_rnn.mjs`` (which runs this script itself):

    python3 bench/export_rnn.py OUTDIR

``OUTDIR/lstm``: ``nn.LSTM(256)`` (issue 15's workload: batch 32, 64 steps, hidden 256; 64 input
features), seeded weights, one artifact with two signatures on ``x`` float32 ``(32, 64, 64)``:

- ``forward``: the last output ``(32, 256)``;
- ``gradients``: forward + backward, the gradients of ``sum(LSTM(x))`` with respect to the kernel,
  the recurrent kernel and the bias (``output_0..2``; the time loop and its backward loop are loops
  of the artifact's control flow, docs/artifact.md "Control flow").

``OUTDIR/expected.json``: ``{"x": flat list, "forward", "gradients": [flat lists]}`` computed by
Python-wasmtime from the same artifact, so the JS benchmark can check Node's results (and compare
TF.js', which it gives the same weights, read from ``weights.safetensors``).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

import webtensor as wt

N, T, F, U = 32, 64, 64, 256


def main(out: str) -> None:
    x = np.random.default_rng(0).standard_normal((N, T, F)).astype(np.float32)
    with wt.device("wasm"):
        wt.set_seed(0)
        layer = wt.nn.LSTM(U)
        xt = wt.tensor(x)
        layer(xt)

        def gradients(x):
            with wt.GradientTape() as tape:
                loss = wt.reduce_sum(layer(x))
            return tape.gradient(loss, layer.trainable_variables)
        path = os.path.join(out, "lstm")
        wt.export(layer, path=path, signatures={"forward": (lambda x: layer(x), (xt,)), "gradients": (gradients, (xt,))},
                  backends=("wasm",))
        art = wt.load(path, backend="wasm")
        expected = {"x": x.ravel().tolist(), "forward": art.run("forward", x)["output_0"].ravel().tolist(),
                    "gradients": [g.ravel().tolist() for g in art.run("gradients", x).values()]}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

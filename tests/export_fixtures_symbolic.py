"""Artifacts with a symbolic batch (format version 2; docs/artifact.md "Symbolic batch") for the
Python and Node tests: ``python3 tests/export_fixtures_symbolic.py OUTDIR`` writes ``OUTDIR/mlp``,
``OUTDIR/cnn`` (``predict`` compiled for chunks of 4 rows, any batch; ``cnn`` declares at most 13
rows) and ``OUTDIR/expected.json``: 13 input rows and each model's outputs computed ROW BY ROW by
the Python model on the exact WebAssembly device (no FMA, the artifact's code): predictions at any
batch must equal them bit for bit, the chunks being independent by construction.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

CHUNK, ROWS, MAXIMUM = 4, 13, 13


def device() -> str:
    import webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    return "wasm_exact"


def model(kind: str):
    import webtensor as wt
    nn = wt.nn
    wt.set_seed(3)
    if kind == "mlp":
        layers = [nn.Flatten(), nn.Dense(16, activation="relu"), nn.BatchNormalization(), nn.Dense(5),
                  nn.Activation("softmax")]
    else:
        layers = [nn.Conv2D(4, 3, padding="same", activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                  nn.Dropout(0.25), nn.Dense(5)]
    m = nn.Sequential([nn.Input((6, 6, 1))] + layers, name=kind)
    m.compile(wt.optimizers.Adam(1e-2), nn.losses.SparseCategoricalCrossentropy(from_logits=kind == "cnn"))
    return m


def main(out: str) -> None:
    import webtensor as wt
    x = np.random.default_rng(5).standard_normal((ROWS, 6, 6, 1)).astype(np.float32)
    expected = {"x": x.reshape(-1).tolist(), "rows": ROWS, "chunk": CHUNK, "maximum": MAXIMUM}
    with wt.device(device()):
        for kind in ("mlp", "cnn"):
            m = model(kind)
            m.export(os.path.join(out, kind), batch_size=CHUNK, backends=("wasm",),
                     max_batch=MAXIMUM if kind == "cnn" else None)
            rows = np.concatenate([m.predict_on_batch(x[i:i + 1]).numpy() for i in range(ROWS)])
            expected[kind] = rows.reshape(-1).tolist()
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])

"""Artifacts with a symbolic batch (format version 2; docs/artifact.md "Symbolic batch") for the
Python and Node tests: ``python3 tests/export_fixtures_symbolic.py OUTDIR`` writes ``OUTDIR/mlp``,
``OUTDIR/cnn`` (``predict`` compiled for chunks of 4 rows, any batch; ``cnn`` declares at most 13
rows) and ``OUTDIR/expected.json``: 13 input rows and each model's outputs computed ROW BY ROW by
the Python model on the exact WebAssembly device (no FMA, the artifact's code): predictions at any
batch must equal them bit for bit, the chunks being independent by construction.

Run-time rows (docs/artifact.md "Run-time rows"): ``OUTDIR/rows/<kind>`` (``mlp`` and ``cnn`` above,
and ``cnn28``, a 28x28 CNN whose convolution is split over threads) exported for chunks of 32 rows
with a rows driver and a threaded module (and WebGPU kernels that take their rows at run time),
``OUTDIR/rows/<kind>_padded`` the same files without the wasm rows driver (every chunk padded), and ``OUTDIR/rows/<kind>_<b>`` fixed-shape artifacts for exactly
``b`` rows (``RUN_TIME_BATCHES``); ``expected.json``'s ``"rows"`` holds 33 input rows per kind and
the fixed artifacts' outputs (Python wasm loader, one thread): the rows driver must give the same
bits at every batch.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np

CHUNK, ROWS, MAXIMUM = 4, 13, 13
ROWS_CHUNK, RUN_TIME_BATCHES = 32, (1, 5, 13, 32, 33)


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
    if kind == "cnn28":
        return nn.Sequential([nn.Input((28, 28, 1)), nn.Conv2D(8, 3, activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                              nn.Dense(10)], name=kind)
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
        expected["rows"] = run_time_rows(os.path.join(out, "rows"))
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


def run_time_rows(out: str) -> dict:
    """The run-time rows artifacts (module docstring); returns ``{kind: {"x": rows, "<b>": outputs}}``."""
    import webtensor as wt
    expected = {}
    for kind in ("mlp", "cnn", "cnn28"):
        m = model(kind)
        shape = (28, 28, 1) if kind == "cnn28" else (6, 6, 1)
        path = os.path.join(out, kind)
        man = m.export(path, batch_size=ROWS_CHUNK, backends=("wasm", "webgpu"), signatures=["predict"],
                       wasm_threads=True)
        assert man["signatures"]["predict"]["wasm"]["rows_driver"] == "__rows_predict"
        assert all("rows" in k for k in man["signatures"]["predict"]["webgpu"]["kernels"])
        shutil.copytree(path, path + "_padded")
        man["signatures"]["predict"]["wasm"].pop("rows_driver")
        with open(os.path.join(path + "_padded", "manifest.json"), "w") as fh:
            json.dump(man, fh)
        x = np.random.default_rng(7).standard_normal((max(RUN_TIME_BATCHES),) + shape).astype(np.float32)
        expected[kind] = {"x": x.reshape(-1).tolist()}
        for b in RUN_TIME_BATCHES:
            m.export(f"{path}_{b}", batch_size=b, backends=("wasm",), signatures=["predict"], symbolic_batch=False)
            expected[kind][str(b)] = wt.load(f"{path}_{b}", backend="wasm").predict(x[:b]).reshape(-1).tolist()
    return expected


if __name__ == "__main__":
    main(sys.argv[1])

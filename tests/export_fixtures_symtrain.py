"""Train steps that take any batch up to their chunk (docs/artifact.md "Symbolic batch: train steps")
for the Python and Node tests: ``python3 tests/export_fixtures_symtrain.py OUTDIR`` writes
``OUTDIR/<kind>`` (``mlp``: Dense layers and Dropout, sparse cross-entropy, Adam; ``cnn``: Conv2D, MaxPool2D,
Dense, mean squared error, SGD with momentum), each exported with ``symbolic_batch=True`` for chunks
of :data:`CHUNK` rows (WebAssembly and WebGPU), and ``OUTDIR/expected.json``: per kind the inputs of
:data:`STEPS` consecutive train steps of 5, 32 and 1 rows, and the loss and every variable after each
step as the Python model computes them with ``fit`` (one batch per call, the optimizer's state
carried over) on the WebAssembly device without FMA (the artifact's code). A loader's train steps
must give the same losses and weights: bit for bit on WebAssembly (the padding adds exact zeros;
Dropout's counter-based draws number the rows by position, which padding at the end keeps), within
float32 rounding on WebGPU.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

CHUNK, STEPS = 32, (5, 32, 1)
SHAPES = {"mlp": ((6,), (3,)), "cnn": ((6, 6, 1), (4,))}     # (input row, target row or classes)


def device() -> str:
    import webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    return "wasm_exact"


def model(kind: str):
    import webtensor as wt
    nn = wt.nn
    wt.set_seed(11)
    if kind == "mlp":
        m = nn.Sequential([nn.Input((6,)), nn.Dense(16, activation="relu"), nn.Dropout(0.25), nn.Dense(3)], name=kind)
        m.compile(wt.optimizers.Adam(1e-2), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        m = nn.Sequential([nn.Input((6, 6, 1)), nn.Conv2D(3, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                           nn.Flatten(), nn.Dense(4)], name=kind)
        m.compile(wt.optimizers.SGD(0.05, momentum=0.9), "mse")
    return m


def batches(kind: str) -> list:
    """The steps' ``(x, y)``: float32 rows and int32 labels (mlp) or float32 targets (cnn)."""
    rng = np.random.default_rng(13)
    row, target = SHAPES[kind]
    out = []
    for n in STEPS:
        x = rng.standard_normal((n,) + row).astype(np.float32)
        y = rng.integers(0, 3, n).astype(np.int32) if kind == "mlp" else rng.standard_normal((n,) + target).astype(np.float32)
        out.append((x, y))
    return out


def reference(kind: str, weights: list) -> list:
    """``[{"loss": ..., "weights": {path: flat values}}]`` after each step, by ``fit`` from ``weights``."""
    m = model(kind)
    m.set_weights(weights)
    steps = []
    for x, y in batches(kind):
        loss = m.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history["loss"][0]
        steps.append({"loss": float(loss),
                      "weights": {p: v.numpy().reshape(-1).tolist() for p, v in m._export_weight_paths().items()}})
    return steps


def main(out: str) -> None:
    import webtensor as wt
    expected = {"chunk": CHUNK, "steps": list(STEPS)}
    with wt.device(device()):
        for kind in SHAPES:
            m = model(kind)
            m.export(os.path.join(out, kind), batch_size=CHUNK, backends=("wasm", "webgpu"), symbolic_batch=True)
            expected[kind] = {"batches": [{"x": x.reshape(-1).tolist(), "y": y.reshape(-1).tolist()}
                                          for x, y in batches(kind)],
                              "after": reference(kind, m.get_weights())}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])

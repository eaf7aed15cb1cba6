"""Artifacts for ``js/test/hfuse.test.js``: a small MLP's train step exported per optimizer with
horizontal fusion (``webgpu/group.py``, the default: independent update kernels grouped into one
dispatch) and without (``group.HORIZONTAL = False``).

    python3 tests/export_fixtures_hfuse.py OUTDIR
        writes OUTDIR/<optimizer>/{fused,plain}/ and OUTDIR/expected.json:
        {"batch": BATCH, "inputs": INPUTS, "steps": STEPS, "batches": [{"x", "y"}] * STEPS,
         <optimizer>: {"losses": [...], "weights": {name: values}, "kernels": {"fused": n, "plain": n}}}:
        what Python's wasm loader gives after STEPS train steps, and each train step's WebGPU kernels.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH, INPUTS, STEPS = 16, 30, 3
OPTIMIZERS = ("sgd_momentum", "adam")


def optimizer(name):
    import webtensor as wt
    return {"sgd_momentum": lambda: wt.optimizers.SGD(0.1, momentum=0.9),
            "adam": lambda: wt.optimizers.Adam(0.01)}[name]()


def main(out: str) -> None:
    import webtensor as wt
    from webtensor.webgpu import group
    r = np.random.default_rng(30)
    batches = [(r.normal(size=(BATCH, INPUTS)).astype(np.float32), r.integers(0, 5, BATCH).astype(np.int32))
               for _ in range(STEPS)]
    expected = {"batch": BATCH, "inputs": INPUTS, "steps": STEPS,
                "batches": [{"x": x.ravel().tolist(), "y": y.tolist()} for x, y in batches]}
    try:
        for name in OPTIMIZERS:
            kernels = {}
            for variant, on in (("plain", False), ("fused", True)):
                group.HORIZONTAL = on
                wt.set_seed(0)
                m = wt.nn.Sequential([wt.nn.Input((INPUTS,)), wt.nn.Dense(17, activation="relu"), wt.nn.Dense(5)])
                m.compile(optimizer(name), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
                man = m.export(os.path.join(out, name, variant), batch_size=BATCH, signatures=["train_step"])
                kernels[variant] = len(man["signatures"]["train_step"]["webgpu"]["kernels"])
            art = wt.load(os.path.join(out, name, "fused"), backend="wasm")
            losses = [float(art.train_step(x, y)) for x, y in batches]
            expected[name] = {"losses": losses, "kernels": kernels,
                              "weights": {k: np.asarray(v).ravel().tolist() for k, v in art.get_weights().items()}}
    finally:
        group.HORIZONTAL = True
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_fixtures_inplace import batches, export_mlp  # noqa: E402  (the same MLP and batches)

OPTIMIZERS = ("sgd_momentum", "adam")


def main(out: str) -> None:
    import webtensor as wt
    from webtensor.webgpu import group
    data, expected = batches(30)
    try:
        for name in OPTIMIZERS:
            kernels = {}
            for variant, on in (("plain", False), ("fused", True)):
                group.HORIZONTAL = on
                man = export_mlp(os.path.join(out, name, variant), name)
                kernels[variant] = len(man["signatures"]["train_step"]["webgpu"]["kernels"])
            art = wt.load(os.path.join(out, name, "fused"), backend="wasm")
            losses = [float(art.train_step(x, y)) for x, y in data]
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

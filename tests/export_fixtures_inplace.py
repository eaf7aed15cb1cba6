"""Artifacts for ``js/test/inplace.test.js``: a small MLP's train step exported twice per optimizer,
with variables updated in place (``core/runtime/artifacts.py``, the default) and through
temporaries and copies (``INPLACE = False``: the plans from before).

    python3 tests/export_fixtures_inplace.py OUTDIR
        writes OUTDIR/<optimizer>/{inplace,copies}/ and OUTDIR/expected.json:
        {"batch": BATCH, "inputs": INPUTS, "steps": STEPS, "batches": [{"x", "y"}] * STEPS,
         <optimizer>: {"losses": [...], "weights": {name: values}, "writes": n}}: what Python's wasm
        loader gives for the in-place artifact after STEPS train steps (asserted here equal to the
        copies artifact's, bit for bit), and how many variables the step writes. Without horizontal
fusion (``webgpu/group.py``), so the WebGPU dispatches differ by exactly the copies.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH, INPUTS, STEPS = 16, 30, 3
OPTIMIZERS = ("sgd", "sgd_nesterov", "adam", "adamw_amsgrad", "rmsprop")


def optimizer(name):
    import webtensor as wt
    return {"sgd": lambda: wt.optimizers.SGD(0.1),
            "sgd_momentum": lambda: wt.optimizers.SGD(0.1, momentum=0.9),
            "sgd_nesterov": lambda: wt.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            "adam": lambda: wt.optimizers.Adam(0.01),
            "adamw_amsgrad": lambda: wt.optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True),
            "rmsprop": lambda: wt.optimizers.RMSprop(0.01, momentum=0.5)}[name]()


def batches(seed: int) -> tuple[list, dict]:
    """STEPS batches of (x, y) and expected.json's header (shared with ``export_fixtures_hfuse.py``)."""
    r = np.random.default_rng(seed)
    data = [(r.normal(size=(BATCH, INPUTS)).astype(np.float32), r.integers(0, 5, BATCH).astype(np.int32))
            for _ in range(STEPS)]
    return data, {"batch": BATCH, "inputs": INPUTS, "steps": STEPS,
                  "batches": [{"x": x.ravel().tolist(), "y": y.tolist()} for x, y in data]}


def export_mlp(path: str, name: str) -> dict:
    """The fixtures' MLP (INPUTS-17-5), compiled with optimizer ``name``, its train step exported to
    ``path``; returns the manifest."""
    import webtensor as wt
    wt.set_seed(0)
    m = wt.nn.Sequential([wt.nn.Input((INPUTS,)), wt.nn.Dense(17, activation="relu"), wt.nn.Dense(5)])
    m.compile(optimizer(name), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m.export(path, batch_size=BATCH, signatures=["train_step"])


def main(out: str) -> None:
    import webtensor as wt
    from webtensor.core.runtime import artifacts
    from webtensor.webgpu import group
    group.HORIZONTAL = False
    data, expected = batches(26)
    try:
        for name in OPTIMIZERS:
            runs = {}
            for variant, inplace in (("copies", False), ("inplace", True)):
                artifacts.INPLACE = inplace
                path = os.path.join(out, name, variant)
                man = export_mlp(path, name)
                art = wt.load(path, backend="wasm")
                losses = [float(art.train_step(x, y)) for x, y in data]
                runs[variant] = losses, art.get_weights(), len(man["signatures"]["train_step"]["writes"])
            (lc, wc, _), (li, wi, writes) = runs["copies"], runs["inplace"]
            assert lc == li and all(np.array_equal(wc[k], wi[k]) for k in wc), name
            expected[name] = {"losses": li, "weights": {k: np.asarray(v).ravel().tolist() for k, v in wi.items()},
                              "writes": writes}
    finally:
        artifacts.INPLACE = True
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

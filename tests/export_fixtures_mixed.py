"""A ``mixed_float16`` digits MLP exported for the JS runtime's test (``js/test/mixed_precision.test.js``).

    python3 tests/export_fixtures_mixed.py OUTDIR
        builds the MLP under the mixed_float16 policy (float32 softmax last, LossScaleOptimizer(Adam)
        with dynamic_growth_steps=4, so the loss scale changes during the steps), exports it to
        OUTDIR/mixed/ (batch BATCH) and, with ``webgpu_f16=True``, to OUTDIR/mixed_f16/, and writes
        OUTDIR/expected.json: {"x", "predict" (Python-wasmtime running the artifact), "batches",
        "losses" (of STEPS train_steps), "weights" (after them, the loss scale state included)}.

Runs on a wasm device without relaxed-SIMD FMA, as export emits by default, so Node must agree bit
for bit.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from export_fixtures import device

BATCH, STEPS = 16, 10


def main(out: str) -> None:
    import webtensor as wt
    mp = wt.nn.mixed_precision
    with wt.device(device()):
        (x_train, y_train), _ = wt.datasets.digits()
        xs, ys = x_train.numpy().reshape(-1, 64), y_train.numpy()
        wt.set_seed(2)
        mp.set_global_policy("mixed_float16")
        model = wt.nn.Sequential([wt.nn.Input((64,)), wt.nn.Dense(32, activation="relu"), wt.nn.Dense(10),
                                  wt.nn.Activation("softmax", dtype="float32")], name="mixed")
        mp.set_global_policy("float32")
        opt = wt.optimizers.LossScaleOptimizer(wt.optimizers.Adam(1e-3), dynamic_growth_steps=4)
        model.compile(opt, "sparse_categorical_crossentropy")
        path = os.path.join(out, "mixed")
        model.export(path, batch_size=BATCH)
        model.export(os.path.join(out, "mixed_f16"), batch_size=BATCH, webgpu_f16=True)   # the same, WGSL f16
        art = wt.load(path, backend="wasm")
        x = xs[:BATCH]
        batches = [(xs[i * BATCH:(i + 1) * BATCH], ys[i * BATCH:(i + 1) * BATCH]) for i in range(1, 4)]
        pred = art.predict(x)
        losses = [float(art.train_step(*batches[i % len(batches)])) for i in range(STEPS)]
        weights = art.get_weights()
        assert float(np.asarray(weights["optimizer/dynamic_scale"])) == 2.0 ** 17   # 10 steps: x2 twice
    flat = lambda a: np.asarray(a).ravel().tolist()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"x": flat(x), "predict": flat(pred), "batch": BATCH,
                   "batches": [{"x": flat(bx), "y": flat(by)} for bx, by in batches], "losses": losses,
                   "weights": {k: flat(v) for k, v in weights.items()}}, f)


if __name__ == "__main__":
    main(sys.argv[1])

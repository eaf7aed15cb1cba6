"""An artifact with recurrent layers for the JS runtime's test (``js/test/exported_rnn.test.js``),
with what Python computes from it.

    python3 tests/export_fixtures_rnn.py OUTDIR
        OUTDIR/text/: Embedding(mask_zero=True) -> Bidirectional(GRU, return_sequences) -> LSTM ->
            Dense 2 on int32 token ids (BATCH, STEPS_IN_TIME), padded with 0; SGD(0.1) on mean squared
            error, exported for batches of BATCH (each time loop a loop of the artifact's control
            flow, docs/artifact.md "Control flow", in predict and train_step);
        OUTDIR/expected.json: {"ids", "y": flat lists, "predict": the model's predict (equal to
            Python-wasmtime running the artifact, checked here), "losses": the artifact's train_step
            losses for STEPS steps}.

Everything runs on a wasm device without relaxed-SIMD FMA, as export emits by default, so the
artifact's outputs equal the Python computations bit for bit.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH = 4
TIME = 6
STEPS = 3


def main(out: str) -> None:
    import webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    nn = wt.nn
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    rng = np.random.default_rng(15)
    ids = rng.integers(1, 7, (BATCH, TIME)).astype(np.int32)
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    y = rng.standard_normal((BATCH, 2)).astype(np.float32)
    with wt.device("wasm_exact"):
        wt.set_seed(15)
        model = nn.Sequential([nn.Input((TIME,), dtype="int32"), nn.Embedding(7, 4, mask_zero=True),
                               nn.Bidirectional(nn.GRU(4, return_sequences=True)), nn.LSTM(3), nn.Dense(2)])
        model.compile(wt.optimizers.SGD(0.1), "mse")
        path = os.path.join(out, "text")
        manifest = model.export(path, example_inputs=(ids, y))     # int32 ids (the default example is float32)
        loops = [sum("while" in step for p in manifest["signatures"][s]["control"]["programs"] for step in p["steps"])
                 for s in ("predict", "train_step")]
        assert loops == [3, 6], f"text: the time loops are not loops of the artifact ({loops})"
        want = model.predict_on_batch(ids).numpy()
        art = wt.load(path, backend="wasm")
        assert np.array_equal(art.predict(ids), want), "text: the artifact's predict differs from the model's"
        losses = [float(art.train_step(ids, y)) for _ in range(STEPS)]
    expected = {"ids": ids.ravel().tolist(), "y": y.ravel().tolist(), "predict": want.ravel().tolist(),
                "losses": losses}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])

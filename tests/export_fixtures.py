"""Artifacts exported from trained digits models, with the outputs Python computes from them, for
the JS runtime's end-to-end tests (``js/test/exported.test.js``).

    python3 tests/export_fixtures.py OUTDIR
        trains the digits MLP and CNN briefly (one epoch on the wasm device), exports each to
        OUTDIR/<kind>/ (batch BATCH) and writes OUTDIR/expected.json:
        {kind: {"x": [BATCH*64 floats], "batches": [{"x", "y"}] * N_BATCHES, "steps": STEPS,
                "predict": output of Python-wasmtime running the artifact,
                "model_predict": the Python model's own predict,
                "losses": [loss of each of STEPS train_steps], "weights": {name: values after them}}}
        Python runs the artifact's train_step STEPS times on batches[i % N_BATCHES].
    python3 tests/export_fixtures.py --predict-with-weights KIND WEIGHTS.safetensors X.json
        builds the KIND model, loads WEIGHTS with Model.load_weights and prints its predictions
        for the inputs in X.json ({"x": [...]}) as JSON (checks saveWeights from the JS runtime).

The models run on a wasm device without relaxed-SIMD FMA, as export emits by default, so the
artifact's predict equals the model's own predict bit for bit (checked here).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH = 32
N_BATCHES = 5
STEPS = 50


def device():
    import webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    return "wasm_exact"


def build(kind: str):
    """The digits models: MLP 64 -> 64 -> 10; CNN conv3x3(8) -> maxpool -> conv3x3(16) -> maxpool ->
    dropout 0.25 -> dense 10 (ReLU), Adam(1e-3), sparse categorical cross-entropy on logits."""
    import webtensor as wt
    nn = wt.nn
    wt.set_seed(1)
    if kind == "mlp":
        layers = [nn.Flatten(), nn.Dense(64, activation="relu"), nn.Dense(10)]
    else:
        layers = [nn.Conv2D(8, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                  nn.Conv2D(16, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                  nn.Flatten(), nn.Dropout(0.25), nn.Dense(10)]
    model = nn.Sequential([nn.Input((8, 8, 1))] + layers, name=kind)
    model.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def flat(a) -> list:
    return np.asarray(a).ravel().tolist()


def main(out: str) -> None:
    import webtensor as wt
    with wt.device(device()):
        (x_train, y_train), _ = wt.datasets.digits()
        xs, ys = x_train.numpy(), y_train.numpy()
        batches = [(xs[i * BATCH:(i + 1) * BATCH], ys[i * BATCH:(i + 1) * BATCH]) for i in range(N_BATCHES)]
        expected = {}
        for kind in ("mlp", "cnn"):
            model = build(kind)
            model.fit(x_train, y_train, batch_size=BATCH, epochs=1, verbose=0, seed=0)
            path = os.path.join(out, kind)
            model.export(path, batch_size=BATCH)
            x = xs[-BATCH:]
            art = wt.load(path, backend="wasm")
            pred = art.predict(x)
            mine = model.predict_on_batch(x).numpy()
            assert np.array_equal(pred, mine), f"{kind}: the artifact's predict differs from the model's"
            losses = [float(art.train_step(*batches[i % N_BATCHES])) for i in range(STEPS)]
            assert losses[-1] < losses[0], losses
            expected[kind] = {
                "x": flat(x), "predict": flat(pred), "model_predict": flat(mine), "steps": STEPS,
                "batches": [{"x": flat(bx), "y": flat(by)} for bx, by in batches],
                "losses": losses, "weights": {k: flat(v) for k, v in art.get_weights().items()},
            }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def predict_with_weights(kind: str, weights: str, inputs: str) -> None:
    import webtensor as wt
    with wt.device(device()):
        model = build(kind)
        model.load_weights(weights)
        with open(inputs) as f:
            x = np.asarray(json.load(f)["x"], np.float32).reshape(-1, 8, 8, 1)
        print(json.dumps(flat(model.predict_on_batch(x).numpy())))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--predict-with-weights":
        predict_with_weights(*sys.argv[2:])
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)

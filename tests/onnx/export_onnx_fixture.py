"""An imported ONNX model exported for the JS runtime's test (``js/test/onnx.test.js``).

    python3 tests/onnx/export_onnx_fixture.py OUTDIR

imports PP-OCR's MobileNetV3 text-orientation classifier (rapidocr-onnxruntime's
``ch_ppocr_mobile_v2.0_cls_infer.onnx``) with ``webtensor.onnx.load``, compiles it (Adam,
sparse cross-entropy on its softmax output), exports ``predict`` and ``train_step`` for batches of
BATCH images to OUTDIR/cls/, and writes OUTDIR/expected.json:
``{"x": [...], "y": [...], "shape": [...], "predict": Python-wasmtime running the artifact,
"onnxruntime": onnxruntime's output for x, "losses": the artifact's STEPS train_step losses in Python}``.
Exits with status 3 (the JS test skips) when rapidocr-onnxruntime or onnx is missing.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np

BATCH = 4
SHAPE = (BATCH, 3, 48, 96)
STEPS = 20


def main(out):
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or importlib.util.find_spec("onnx") is None:
        sys.exit(3)
    import onnxruntime as ort
    import webtensor as wt
    import webtensor.onnx as wo
    path = os.path.join(spec.submodule_search_locations[0], "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    y = np.array([0, 1] * (BATCH // 2), np.int32)
    with wt.device("wasm"):
        model = wo.load(path, input_shapes={"x": list(SHAPE)})
        model.compile(optimizer=wt.optimizers.Adam(1e-3),
                      loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=False))
        model.export(os.path.join(out, "cls"), example_inputs=(x, y), backends=("wasm",))
    art = wt.load(os.path.join(out, "cls"))
    predict = np.asarray(art.predict(x)).reshape(-1)
    losses = [float(np.asarray(art.train_step(x, y))) for _ in range(STEPS)]
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].reshape(-1)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"x": x.reshape(-1).tolist(), "y": y.tolist(), "shape": list(SHAPE),
                   "predict": predict.tolist(), "onnxruntime": want.tolist(), "losses": losses}, f)


if __name__ == "__main__":
    main(sys.argv[1])

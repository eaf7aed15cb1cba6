"""Pretrained models that ship inside PyPI packages, imported with webtensor.onnx and checked against
onnxruntime (the `test` extra installs both packages):

- magika (Google's file-type detector, ``magika/models/standard_v3_3/model.onnx``): a small CNN over
  byte embeddings (Conv, GlobalMaxPool, layer norm, dense);
- rapidocr-onnxruntime's PP-OCR models: ``ch_PP-OCRv4_det`` (a DBNet text detector: MobileNetV3
  backbone with Conv/BN/HardSwish, FPN with Resize and ConvTranspose), ``ch_ppocr_mobile_v2.0_cls``
  (MobileNetV3 classifier) and ``ch_PP-OCRv4_rec`` (SVTR-LCNet: a CNN followed by a transformer
  encoder, two pre-LN blocks of multi-head self-attention and an MLP).

Accuracy: the largest absolute difference from onnxruntime, relative to the largest absolute value
of onnxruntime's output, must be below 1e-4 on "reference", "wasm" and "webgpu" (batches of 1 or 2).
Measured: magika 1.2e-7 on all three; det 2.3e-6 / 7.0e-6 / 5.0e-6; cls 1.3e-6 / 1.2e-6 / 2.2e-7;
rec 5.6e-6 / 1.7e-5 / 5.2e-6 (reference / wasm / webgpu).
Fine-tuning: 20 fit steps of the imported classifier lower its loss.
"""
import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import webtensor as wt  # noqa: E402
import webtensor.onnx as wo  # noqa: E402

RTOL = 1e-4


def model_path(package, rel):
    spec = importlib.util.find_spec(package)     # found, not imported: the package's own deps are not needed
    if spec is None:
        pytest.skip(f"{package} is not installed (pip install '.[test]')")
    return os.path.join(spec.submodule_search_locations[0], rel)


def text_image(n, h, w, seed=0):
    """PP-OCR's input: white images with dark bars (text-like strokes), normalised as PaddleOCR does
    ((x / 255 - 0.5) / 0.5), NCHW float32."""
    r = np.random.default_rng(seed)
    img = np.full((n, h, w, 3), 255.0, np.float32)
    for k in range(n):
        for _ in range(6):
            y, x = r.integers(0, h - 8), r.integers(0, w - 16)
            img[k, y:y + r.integers(3, 8), x:x + r.integers(8, 24)] = r.integers(0, 80)
    return ((img / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def cases():
    r = np.random.default_rng(1)
    return {
        "magika": ("magika", "models/standard_v3_3/model.onnx", "bytes",
                   r.integers(0, 257, (2, 2048)).astype(np.int32)),
        "ppocr_det": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx", "x", text_image(1, 64, 96)),
        "ppocr_cls": ("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "x",
                      text_image(2, 48, 192, seed=2)),
        "ppocr_rec": ("rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx", "x", text_image(1, 48, 160, 3)),
    }


@pytest.mark.parametrize("device", ["reference", "wasm", "webgpu"])
@pytest.mark.parametrize("name", list(cases()))
def test_matches_onnxruntime(name, device):
    if device == "webgpu":
        try:
            wt.get_device("webgpu")
        except (ImportError, RuntimeError) as e:
            pytest.skip(f"no webgpu device: {e}")
    pkg, rel, input_name, x = cases()[name]
    path = model_path(pkg, rel)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    want = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, {input_name: x})[0]
    with wt.device(device):
        model = wo.load(path, input_shapes={input_name: list(x.shape)})
        got = model.predict(x, batch_size=x.shape[0], verbose=0).numpy()
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want).max() / np.abs(want).max()
    assert err < RTOL, f"{name} on {device}: relative error {err:.3g}"


def test_fine_tuning_lowers_the_loss():
    path = model_path("rapidocr_onnxruntime", "models/ch_ppocr_mobile_v2.0_cls_infer.onnx")
    x = text_image(4, 48, 96, seed=4)
    y = np.array([0, 1] * 2, np.int32)           # the orientation classifier's two classes, half of each wrong
    model = wo.load(path, input_shapes={"x": list(x.shape)})
    assert len(model.trainable_variables) > 50    # every conv weight and BN scale/bias; statistics are not
    model.compile(optimizer=wt.optimizers.Adam(1e-3),
                  loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=False))
    loss = model.fit(x, y, batch_size=4, epochs=20, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss

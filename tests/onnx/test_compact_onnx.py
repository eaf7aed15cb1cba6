"""int8 compact artifacts (``export(..., weights_dtype='int8')``, python/compact.py) of imported ONNX
models, whose weights reach their matmuls transposed: Gemm with ``transB`` (PyTorch's Linear),
ONNX-layout Conv weights ``(O, C, KH, KW)`` that the im2col convolution transposes and reshapes to
``(KH*KW*C, O)``, 1x1 and few-input Conv weights read as the left operand ``W @ x`` (computed as
``(x^T @ W^T)^T``), Gather tables, and weights behind Identity nodes (PyTorch's tied names).

Oracles: numpy's per-channel quantization of the matrix the matmul reads (the weight transposed
as ONNX says); the float32 artifact of the same model with its weights replaced by the dequantized
values, mapped back to the ONNX layout (equal bit for bit on wasm); onnxruntime on the
float32 weights (the quantization error, measured: below)."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import webtensor as wt  # noqa: E402
import webtensor.onnx as wo  # noqa: E402
from webtensor import safetensors_io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_real_models import text_image  # noqa: E402
from test_torch_export import PATH as ENCODER, inputs as encoder_inputs  # noqa: E402

sys.path.insert(0, os.path.dirname(HERE))
import compact_fixtures as fixtures  # noqa: E402


def np_quantize(w: np.ndarray):
    """numpy's per-channel symmetric int8 of a (K, N) matrix (``compact_fixtures.np_quantize``)."""
    return fixtures.np_quantize(w, w.shape[1])


def matrix(w: np.ndarray, layout: str) -> np.ndarray:
    """The (K, N) matrix a matmul reads from ONNX weight ``w``: ``'matmul'`` as it is, ``'gemm_t'``
    transposed (Gemm transB), ``'conv'`` (O, C, KH, KW) as im2col's (KH*KW*C, O), ``'left'`` a
    Conv weight read as ``W @ x``, computed as ``(x^T @ W^T)^T``: (C*KH*KW, O)."""
    if layout == "matmul":
        return w
    if layout == "gemm_t":
        return w.T
    if layout == "left":
        return w.reshape(w.shape[0], -1).T
    return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])


def conv_layout(w: np.ndarray) -> str:
    """How the ONNX importer (python/onnx/ops.py ``_conv``) uses a Conv weight: ``W @ x`` for 1x1
    and few-input (C*KH*KW <= 32) convolutions, else im2col patches @ the transposed weight."""
    o, c, kh, kw = w.shape
    return "left" if (kh, kw) == (1, 1) or c * kh * kw <= 32 else "conv"


def unmatrix(m: np.ndarray, like: np.ndarray, layout: str) -> np.ndarray:
    """Inverse of ``matrix``: the (K, N) matrix back in the ONNX weight's layout."""
    if layout == "matmul":
        return m
    if layout == "gemm_t":
        return m.T
    if layout == "left":
        return m.T.reshape(like.shape)
    o, c, kh, kw = like.shape
    return m.reshape(kh, kw, c, o).transpose(3, 2, 0, 1)


def export_and_check(model, path, example, x, layouts):
    """Export int8 and float32 (on dequantized weights); check that the weights ``layouts`` names
    are int8, and that every int8 weight is stored as numpy quantizes the matrix its layout gives. Returns (int8 output,
    dequantized float32 output)."""
    weights = {p: v.numpy() for p, v in model._export_weight_paths().items()}
    man = model.export(path / "int8", example_inputs=example, backends=("wasm",), weights_dtype="int8")
    tensors, _ = safetensors_io.load((path / "int8" / "weights.safetensors").read_bytes())
    q8 = {v["name"]: v["storage"] for v in man["variables"] if v.get("storage", {}).get("dtype") == "int8"}
    assert set(layouts) <= set(q8), sorted(set(layouts) - set(q8))
    deq = {}
    for name, st in q8.items():          # the others' layout by shape (square Gemm weights: listed)
        w = weights[name]
        layout = layouts.get(name) or (conv_layout(w) if w.ndim == 4 else
                                       "matmul" if list(w.shape) == st["shape"] else "gemm_t")
        q = np.frombuffer(bytes(tensors[name][2]), np.int8).reshape(st["shape"])
        dt, _, data = tensors[st["scales"]]
        s = np.frombuffer(bytes(data), {"float16": "<f2", "float32": "<f4"}[dt]).astype(np.float32)
        ref_q, ref_s = np_quantize(matrix(weights[name], layout))
        np.testing.assert_array_equal(q, ref_q, err_msg=name)
        np.testing.assert_array_equal(s, ref_s, err_msg=name)
        deq[name] = unmatrix(q.astype(np.float32) * s, weights[name], layout)
    y8 = wt.load(path / "int8", backend="wasm").predict(x)
    for name, v in model._export_weight_paths().items():
        if name in deq:
            v.assign(deq[name])
    model.export(path / "deq", example_inputs=example, backends=("wasm",))
    return np.asarray(y8), np.asarray(wt.load(path / "deq", backend="wasm").predict(x))


def test_torch_encoder_gemm_transb_and_identity_weights(tmp_path):
    ids, mask = (a.astype(np.int32) for a in encoder_inputs(2, 2))
    want = ort.InferenceSession(ENCODER, providers=["CPUExecutionProvider"]).run(
        None, {"ids": ids.astype(np.int64), "mask": mask.astype(np.int64)})[0]
    with wt.device("wasm"):
        model = wo.load(ENCODER)
        layouts = {"enc.layers.0.self_attn.out_proj.weight": "gemm_t", "head.weight": "gemm_t",
                   "emb.weight": "gemm_t",                  # Gather: the table transposed, a scale per row
                   **{f"onnx::MatMul_{k}": "matmul" for k in (493, 507, 508)}}     # MatMul behind Identity
        y8, ydeq = export_and_check(model, tmp_path, ([ids, mask],), [ids, mask], layouts)
    np.testing.assert_array_equal(y8, ydeq)         # the q8 template packs exactly these values
    err = np.abs(y8 - want).max() / np.abs(want).max()
    assert err < 0.02, err                      # measured 5.6e-3: the weights' quantization


def test_ppocr_rec_convolutions(tmp_path):
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        pytest.skip("rapidocr_onnxruntime is not installed (pip install '.[test]')")
    path = os.path.join(spec.submodule_search_locations[0], "models/ch_PP-OCRv4_rec_infer.onnx")
    x = text_image(1, 48, 160, 3)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with wt.device("wasm"):
        model = wo.load(path, input_shapes={"x": list(x.shape)})
        layouts = {"conv2d_142.w_0": "conv", "conv2d_145.w_0": "conv",        # 3x3 im2col convolutions
                   "conv2d_180.w_0": "left", "conv2d_178.w_0": "left"}         # 1x1: W @ x
        y8, ydeq = export_and_check(model, tmp_path, None, x, layouts)
    np.testing.assert_array_equal(y8, ydeq)         # the q8 template packs exactly these values
    sure = want.max(-1) >= 0.5                       # where onnxruntime is not itself unsure
    assert (y8.argmax(-1) == want.argmax(-1))[sure].all()         # the same characters read
    assert np.abs(y8 - want).max() < 0.25          # probabilities; measured 0.17 (errors compound)

"""Compact artifacts (``export(..., weights_dtype=...)``) of the digits CNN and a small transformer
encoder, with what Python's loader computes from them, for ``js/test/compact.test.js``; the model
builders are shared with ``tests/python/test_compact.py`` and ``bench/bench_compact.py``.

    python3 tests/compact_fixtures.py OUTDIR
        builds both models (seeded, untrained: the outputs only need to be compared), exports each
        as OUTDIR/<kind>_<weights dtype>/ (wasm only, batch BATCH), the int8 one also as
        OUTDIR/<kind>_int8_webgpu/ (WGSL only), and writes OUTDIR/expected.json:
        {kind: {"x": [inputs], "shape": [input shape], "predict": {weights dtype: Python-wasmtime's
        output of that artifact}}}; also "embedding" (``nn_embedding``: int32 token ids, float32 and
        int8, exported as OUTDIR/embedding_<weights dtype>/ and embedding_int8_webgpu/).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH = 16
DTYPES = ("float32", "float16", "int8")
HALVES = np.arange(0x0400, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)  # normal, increasing


def np_quantize(w: np.ndarray, channels: int):
    """The tests' oracle of per-channel symmetric int8 (written apart from ``python/compact.py``):
    scale = max|w| / 127 over each of the last axis' ``channels`` (1 for an all-zero channel), as
    the smallest normal float16 at least that (looked up in the table of all of them) when every
    channel has one, else as float32; q = clip(rint(w / scale), -127, 127). Returns (q, scales)."""
    cols = w.reshape(-1, channels).astype(np.float64)
    peak = np.abs(cols).max(axis=0)
    exact = np.where(peak > 0, peak / 127, 1.0)
    if ((exact >= HALVES[0]) & (exact <= HALVES[-1])).all():
        scales = HALVES[np.searchsorted(HALVES, exact, side="left")].astype(np.float32)
    else:
        scales = exact.astype(np.float32)
    q = np.clip(np.rint(cols / scales.astype(np.float64)), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scales


def build(kind: str, seed: int = 0):
    """``'cnn'``: the README's digits CNN (``python -m webtensor``); ``'transformer'``: an encoder
    block over the 8 rows of a digit (8 tokens of 8 pixels): Dense(64) embedding, 4-head
    self-attention (key_dim 16) and a ReLU feed-forward (128), each residual with
    LayerNormalization, then Flatten and Dense(10). Built for ``(batch, 8, 8, 1)`` inputs."""
    import webtensor as wt
    from webtensor import nn
    from webtensor.__main__ import build_model
    wt.random.set_seed(seed)
    if kind == "cnn":
        model = build_model("cnn")
        model.build((BATCH, 8, 8, 1))
        return model
    x = nn.Input((8, 8, 1))
    h = nn.Dense(64)(nn.Reshape((8, 8))(x))
    h = nn.LayerNormalization()(nn.Add()([h, nn.MultiHeadAttention(num_heads=4, key_dim=16)(h, h)]))
    f = nn.Dense(64)(nn.Dense(128, activation="relu")(h))
    h = nn.LayerNormalization()(nn.Add()([h, f]))
    model = nn.Model(x, nn.Dense(10)(nn.Flatten()(h)))
    return model


def nn_embedding():
    """Token ids ``(batch, 4)`` -> Embedding(20, 12) -> Flatten -> Dense(3) (compact embeddings)."""
    from webtensor import nn
    return nn.Sequential([nn.Input((4,), dtype="int32"), nn.Embedding(20, 12), nn.Flatten(), nn.Dense(3)])


def inputs(seed: int = 1) -> np.ndarray:
    """A batch of digits-like inputs (uniform in [0, 1), as the scaled digits)."""
    return np.random.default_rng(seed).random((BATCH, 8, 8, 1)).astype(np.float32)


def main(out: str) -> None:
    import webtensor as wt
    os.makedirs(out, exist_ok=True)
    x = inputs()
    expected = {}
    with wt.device("wasm"):
        for kind in ("cnn", "transformer"):
            model = build(kind)
            model(x)
            e = expected[kind] = {"x": x.ravel().tolist(), "shape": list(x.shape), "predict": {}}
            for dt in DTYPES:
                path = os.path.join(out, f"{kind}_{dt}")
                model.export(path, batch_size=BATCH, backends=("wasm",), weights_dtype=dt)
                y = wt.load(path, backend="wasm").predict(x)
                e["predict"][dt] = np.asarray(y, np.float32).ravel().tolist()
            model.export(os.path.join(out, f"{kind}_int8_webgpu"), batch_size=BATCH, backends=("webgpu",),
                         weights_dtype="int8")
        # an Embedding table: int8 with a scale per row, read by quantized_gather
        wt.random.set_seed(3)
        ids = np.random.default_rng(2).integers(0, 20, (BATCH, 4)).astype(np.int32)
        model = nn_embedding()
        model(ids)
        e = expected["embedding"] = {"x": ids.ravel().tolist(), "shape": list(ids.shape), "predict": {}}
        for dt in ("float32", "int8"):
            path = os.path.join(out, f"embedding_{dt}")
            model.export(path, batch_size=BATCH, backends=("wasm",), weights_dtype=dt)
            e["predict"][dt] = np.asarray(wt.load(path, backend="wasm").predict(ids), np.float32).ravel().tolist()
        model.export(os.path.join(out, "embedding_int8_webgpu"), batch_size=BATCH, backends=("webgpu",),
                     weights_dtype="int8")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])

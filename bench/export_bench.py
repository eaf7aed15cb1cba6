"""Artifacts for ``bench/bench_node.mjs`` (which runs this script itself):

    python3 bench/export_bench.py OUTDIR [--peers] [--webgpu-adapter CLASS]

- ``OUTDIR/mlp``: MLP 784 -> 256 -> 256 -> 10 (ReLU), softmax cross-entropy on logits
  (``SparseCategoricalCrossentropy(from_logits=True)``), SGD(0.01); signatures ``train_step``
  (batch 128) and ``predict``;
- ``OUTDIR/mlp_adam`` (only when ``main``'s ``only`` names it: ``bench/bench_fusion.mjs``): the same MLP
  with Adam(1e-3), signature ``train_step`` (batch 128);
- ``OUTDIR/cnn``: conv3x3(16, same, ReLU) -> maxpool 2 -> conv3x3(32, same, ReLU) -> maxpool 2 ->
  dense 10 on 28x28x1 images; signature ``predict`` (batch 32);
- ``OUTDIR/encoder``: a 6-layer transformer encoder (``encoder``: token embedding, d 128, 4 heads,
  GELU feed-forward 512, post-LayerNorm residuals) on int32 token ids; signature ``predict``
  (batch 16 x 64 tokens);
- ``OUTDIR/chain``: the fused chain ``gelu_tanh(x * a + b) * sigmoid(x)`` on 2^20 float32
  elements (``x``, ``a``: (2^20,), ``b``: (1,)); signature ``predict`` (one kernel);
- ``OUTDIR/matmul<N>`` for N in MATMUL_SIZES: ``a @ b`` on float32 (N, N) inputs; signature ``predict``
  (WebAssembly only; with ``--peers``, for ``bench/bench_webgpu_peers.mjs``, also WebGPU).

Every artifact is exported with ``wasm_fma=True`` (``module_relaxed.wasm`` beside ``module.wasm``):
an engine with relaxed SIMD runs the fused multiply-adds (Node 20: ``--experimental-wasm-relaxed-simd``),
and ``wasm_threads=True`` (``module_threads.wasm``, for ``load(..., {threads: n})``: ``bench/bench_threads.mjs``).

``--webgpu-adapter``: the adapter class the WGSL is tuned for (``export``'s ``webgpu_adapter``;
default ``unknown``, the portable choice).

Weights are seeded; the JS benchmark gives TF.js the same initial weights (read from the
artifacts' ``weights.safetensors``) so both run the same workload from the same state.
"""
from __future__ import annotations

import os
import sys

import webtensor as wt

MLP_BATCH, CNN_BATCH, CHAIN_SIZE = 128, 32, 1 << 20
ENCODER_BATCH, ENCODER_TOKENS = 16, 64
MATMUL_SIZES = (256, 1024)


def encoder(layers=6, vocab=1000, d=128, heads=4, ff=512):
    """A BERT-style encoder (Devlin et al. 2019; post-LayerNorm blocks of Vaswani et al. 2017):
    ``Embedding(vocab, d)`` on ``(batch, ENCODER_TOKENS)`` int32 ids, then ``layers`` blocks of
    ``h = LayerNorm(h + MultiHeadAttention(h, h))``, ``h = LayerNorm(h + Dense(d)(Dense(ff, gelu)(h)))``;
    output ``(batch, ENCODER_TOKENS, d)``. No position table (one elementwise add)."""
    nn = wt.nn
    ids = nn.Input((ENCODER_TOKENS,), dtype="int32")
    h = nn.Embedding(vocab, d)(ids)
    for _ in range(layers):
        h = nn.LayerNormalization()(nn.Add()([h, nn.MultiHeadAttention(num_heads=heads, key_dim=d // heads)(h, h)]))
        h = nn.LayerNormalization()(nn.Add()([h, nn.Dense(d)(nn.Dense(ff, activation="gelu")(h))]))
    return nn.Model(ids, h, name="encoder")


def chain(x, a, b):
    return wt.gelu_tanh(x * a + b) * wt.sigmoid(x)


def matmul(a, b):
    return wt.matmul(a, b)


def main(out: str, peers: bool = False, only=None, webgpu_adapter: str = "unknown") -> None:
    """Export the artifacts into ``out``; ``only``: the folder names to export (default: all);
    ``webgpu_adapter``: the adapter class of their WGSL."""
    want = (lambda kind: True) if only is None else (lambda kind: kind in only)
    tune = {"webgpu_adapter": webgpu_adapter}
    nn = wt.nn
    wt.set_seed(0)
    if want("mlp"):
        mlp = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                             nn.Dense(10)], name="mlp")
        mlp.compile(wt.optimizers.SGD(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        mlp.export(os.path.join(out, "mlp"), batch_size=MLP_BATCH, wasm_fma=True, wasm_threads=True, **tune)
    if only is not None and "mlp_adam" in only:
        wt.set_seed(0)
        mlp = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                             nn.Dense(10)], name="mlp_adam")
        mlp.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        mlp.export(os.path.join(out, "mlp_adam"), batch_size=MLP_BATCH, signatures=["train_step"], **tune)
    if want("cnn"):
        cnn = nn.Sequential([nn.Input((28, 28, 1)), nn.Conv2D(16, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                             nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                             nn.Dense(10)], name="cnn")
        cnn.export(os.path.join(out, "cnn"), batch_size=CNN_BATCH, signatures=["predict"], wasm_fma=True,
                   wasm_threads=True, **tune)
    if want("encoder"):
        encoder().export(os.path.join(out, "encoder"), batch_size=ENCODER_BATCH, signatures=["predict"],
                         wasm_fma=True, wasm_threads=True, **tune)
    if want("chain"):
        v = wt.zeros((CHAIN_SIZE,))
        wt.export(None, path=os.path.join(out, "chain"), signatures={"predict": (chain, (v, v, wt.zeros((1,))))},
                  wasm_fma=True, wasm_threads=True, **tune)
    for n in MATMUL_SIZES:
        if want(f"matmul{n}"):
            m = wt.zeros((n, n))
            wt.export(None, path=os.path.join(out, f"matmul{n}"), signatures={"predict": (matmul, (m, m))},
                      backends=("wasm", "webgpu") if peers else ("wasm",), wasm_fma=True, wasm_threads=True,
                      **tune)

if __name__ == "__main__":
    argv = sys.argv[1:]
    adapter = "unknown"
    if "--webgpu-adapter" in argv[:-1]:
        i = argv.index("--webgpu-adapter")
        adapter = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) not in (1, 2) or argv[1:] not in ([], ["--peers"]):
        sys.exit(__doc__)
    main(argv[0], peers=argv[1:] == ["--peers"], webgpu_adapter=adapter)

"""Artifacts exported with ``wasm_threads=True`` (``module_threads.wasm``) for the thread tests in
Python (``tests/wasm/test_intra_op_threads.py``) and Node (``js/test/threads.test.js``).

    python3 tests/threads_fixtures.py OUTDIR
        exports to OUTDIR/<name>/ and writes OUTDIR/expected.json: {name: {"signature", "inputs":
        [[floats]...], "outputs": [[floats]...] (the ONE-thread module.wasm's outputs, computed
        here), "tiled": number of kernel calls the threaded module splits}}:
        - "digits_mlp", "digits_cnn": the JS end-to-end models (tests/export_fixtures.py), predict;
        - "mlp": 784-256-256-10, batch 128, one train_step (loss and the updated first kernel);
        - "ops": matmul 192x160x96 + bias + ReLU, softmax over rows, column sums, tanh;
        - "seq": two Dense layers on (16, 24, 64) (tanh, then a residual add): matmuls whose batch
          dims fold into rows (wasm/matmul.py), their epilogues fused, tiles of 32 rows that cross
          the 24-row batch boundaries.
"""
from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures  # noqa: E402

R = np.random.RandomState(16)


def ops(a, w, b):
    import webtensor as wt
    h = wt.relu(wt.matmul(a, w) + b)
    return wt.softmax(h, axis=-1), wt.reduce_sum(h, axis=0), wt.tanh(h * 0.1)


def seq(x, w1, b1, w2, b2):
    import webtensor as wt
    return wt.matmul(wt.tanh(wt.matmul(x, w1) + b1), w2) + b2 + x


def tiled(path: str) -> int:
    """Kernel calls the threaded module splits (its tiles<k> functions, by name)."""
    with open(os.path.join(path, "module_threads.wasm"), "rb") as f:
        return len(set(re.findall(rb"tiles[0-9]+", f.read())))


def main(out: str) -> None:
    import webtensor as wt
    nn = wt.nn
    expected = {}
    with wt.device(export_fixtures.device()):
        for kind in ("mlp", "cnn"):
            model = export_fixtures.build(kind)
            x = R.rand(32, 8, 8, 1).astype(np.float32)
            model.export(os.path.join(out, f"digits_{kind}"), batch_size=32, signatures=["predict"],
                         wasm_threads=True)
            expected[f"digits_{kind}"] = ("predict", [x])
        wt.set_seed(2)
        mlp = nn.Sequential([nn.Input((784,)), nn.Dense(256, activation="relu"), nn.Dense(256, activation="relu"),
                             nn.Dense(10)], name="mlp")
        mlp.compile(wt.optimizers.SGD(0.1), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        mlp.export(os.path.join(out, "mlp"), batch_size=128, signatures=["train_step"], wasm_threads=True)
        expected["mlp"] = ("train_step", [R.rand(128, 784).astype(np.float32), R.randint(0, 10, 128).astype(np.int32)])
        args = (R.randn(192, 160).astype(np.float32), R.randn(160, 96).astype(np.float32) * 0.1,
                R.randn(96).astype(np.float32))
        wt.export(ops, args, os.path.join(out, "ops"), wasm_threads=True)
        expected["ops"] = (next(iter(wt.load(os.path.join(out, "ops"), backend="wasm").signatures)), list(args))
        args = (R.randn(16, 24, 64).astype(np.float32), R.randn(64, 128).astype(np.float32) * 0.1,
                R.randn(128).astype(np.float32), R.randn(128, 64).astype(np.float32) * 0.1,
                R.randn(64).astype(np.float32))
        wt.export(seq, args, os.path.join(out, "seq"), wasm_threads=True)
        expected["seq"] = (next(iter(wt.load(os.path.join(out, "seq"), backend="wasm").signatures)), list(args))
    result = {}
    wt.config.threading.set_intra_op_parallelism_threads(1)
    for name, (sig, inputs) in expected.items():
        path = os.path.join(out, name)
        art = wt.load(path, backend="wasm")
        outs = list(art.run(sig, *inputs).values())
        if name == "mlp":
            outs.append(art.get_weights()[sorted(art.get_weights())[0]])
        result[name] = {"signature": sig, "inputs": [np.asarray(a).ravel().tolist() for a in inputs],
                        "outputs": [np.asarray(o, np.float32).ravel().tolist() for o in outs], "tiled": tiled(path)}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

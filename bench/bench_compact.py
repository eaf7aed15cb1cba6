"""Compact artifacts (issue 18, part 4): ``export(..., weights_dtype='float16' | 'int8')`` against
float32 on the digits CNN (the README's main job model) and a small transformer encoder
(``tests/compact_fixtures.py``), both trained on digits here.

    python bench/bench_compact.py [--epochs-cnn 30] [--epochs-transformer 20] [--batch 64] [--repeat 30] [--node]

For each model and weights dtype it exports a wasm artifact and prints: the size of
``weights.safetensors`` and of the whole artifact (manifest, module, weights) and their ratio to
float32; held-out digits accuracy of the artifact run by Python's loader (``webtensor.load``,
wasmtime) and its change from float32 in points; and predict time for one batch (best of
``--repeat`` interleaved runs) with its ratio to float32 measured in the same run (below 1: faster).
``--node`` also times the same artifacts in Node (``bench/bench_compact.mjs``). Targets (issue 18):
int8 >= 3.5x smaller, accuracy change <= 0.5 points, predict no slower than float32.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import webtensor as wt  # noqa: E402
from webtensor.datasets import digits_arrays  # noqa: E402

from compact_fixtures import build  # noqa: E402

DTYPES = ("float32", "float16", "int8")
LEARNING_RATE, TRAIN_BATCH = 3e-3, 32       # the main job's recipe (python -m webtensor)


def train(kind, x, y, epochs, seed=0):
    model = build(kind, seed)
    steps = -(-len(x) // TRAIN_BATCH)
    model.compile(wt.optimizers.Adam(wt.optimizers.schedules.CosineDecay(LEARNING_RATE, epochs * steps)),
                  wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(x, y, batch_size=TRAIN_BATCH, epochs=epochs, verbose=0, seed=seed)
    print(f"  trained {kind} for {epochs} epochs in {time.perf_counter() - t:.0f} s", flush=True)
    return model


def accuracy(art, x, y, batch):
    n = len(x)
    pad = np.concatenate([x, np.zeros((-n % batch,) + x.shape[1:], x.dtype)])
    logits = np.concatenate([art.predict(pad[i:i + batch]) for i in range(0, len(pad), batch)])[:n]
    return float((logits.argmax(axis=1) == y).mean())


def sizes(path):
    files = {f: os.path.getsize(os.path.join(path, f)) for f in ("manifest.json", "module.wasm", "weights.safetensors")}
    return files["weights.safetensors"], sum(files.values())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs-cnn", type=int, default=30)
    p.add_argument("--epochs-transformer", type=int, default=20)
    p.add_argument("--batch", type=int, default=64, help="predict batch size of the artifacts")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--node", action="store_true", help="also time predict in Node (bench/bench_compact.mjs)")
    a = p.parse_args(argv)
    ((xtr, ytr), (xte, yte)), _ = digits_arrays(0.2, 0)
    xtr, xte = (np.asarray(v, np.float32).reshape(-1, 8, 8, 1) for v in (xtr, xte))
    ytr, yte = np.asarray(ytr, np.int32), np.asarray(yte, np.int32)
    out = tempfile.mkdtemp(prefix="webtensor-bench-compact-")
    results = {}
    with wt.device("wasm"):
        for kind, epochs in (("cnn", a.epochs_cnn), ("transformer", a.epochs_transformer)):
            model = train(kind, xtr, ytr.astype(np.int32), epochs)
            arts, res = {}, results.setdefault(kind, {})
            for dt in DTYPES:
                path = os.path.join(out, f"{kind}_{dt}")
                model.export(path, batch_size=a.batch, backends=("wasm",), weights_dtype=dt, signatures=["predict"])
                arts[dt] = wt.load(path, backend="wasm")
                w, total = sizes(path)
                res[dt] = {"weights_bytes": w, "artifact_bytes": total, "accuracy": accuracy(arts[dt], xte, yte, a.batch)}
            xb = xte[:a.batch]
            best = {dt: float("inf") for dt in DTYPES}
            for _ in range(a.repeat):                      # interleaved: drift hits every dtype alike
                for dt in DTYPES:
                    t = time.perf_counter()
                    arts[dt].predict(xb)
                    best[dt] = min(best[dt], time.perf_counter() - t)
            for dt in DTYPES:
                res[dt]["predict_ms"] = 1e3 * best[dt]
    print(f"\nheld-out digits: {len(xte)} images; predict batch {a.batch}; Python loader (wasmtime), best of {a.repeat}")
    print(f"{'model':<12} {'weights':<8} {'weights B':>10} {'ratio':>6} {'artifact B':>11} {'ratio':>6} "
          f"{'accuracy %':>10} {'change':>7} {'predict ms':>10} {'vs f32':>7}")
    for kind, res in results.items():
        f = res["float32"]
        for dt in DTYPES:
            r = res[dt]
            print(f"{kind:<12} {dt:<8} {r['weights_bytes']:>10} {f['weights_bytes'] / r['weights_bytes']:>6.2f} "
                  f"{r['artifact_bytes']:>11} {f['artifact_bytes'] / r['artifact_bytes']:>6.2f} "
                  f"{100 * r['accuracy']:>10.2f} {100 * (r['accuracy'] - f['accuracy']):>+7.2f} "
                  f"{r['predict_ms']:>10.3f} {r['predict_ms'] / f['predict_ms']:>7.2f}")
    if a.node:
        x = json.dumps({"x": xte[:a.batch].ravel().tolist(), "shape": [a.batch, 8, 8, 1]})
        with open(os.path.join(out, "x.json"), "w") as fx:
            fx.write(x)
        subprocess.run(["node", os.path.join(HERE, "bench_compact.mjs"), out, str(a.repeat)], check=True)
    print(f"(artifacts in {out})")


if __name__ == "__main__":
    main()

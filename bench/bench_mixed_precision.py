"""Mixed precision against float32 on each device, in one run: ``fit`` throughput of a digits MLP
(64 -> 256 -> 10, softmax in float32) with the ``"mixed_float16"`` policy and with ``"float32"``, and
the test accuracy each reaches.

    python bench/bench_mixed_precision.py [--devices wasm,webgpu] [--epochs 5] [--batch 128]

Prints images/s per policy and the mixed/float32 time ratio per device. On wasm float16 is emulated
(f32 compute plus a rounding pass over every float16 output, and the casts the policy adds), so it is
slower there; WebGPU computes in f16 where the adapter has ``shader-f16``. The first epoch (tracing)
is not timed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import webtensor as wt
from webtensor.datasets import digits_arrays


def run(device: str, policy: str, x, y, xt, yt, epochs: int, batch: int) -> tuple[float, float]:
    mp = wt.nn.mixed_precision
    with wt.device(device):
        wt.set_seed(0)
        mp.set_global_policy(policy)
        model = wt.nn.Sequential([wt.nn.Input((64,)), wt.nn.Dense(256, activation="relu"), wt.nn.Dense(10),
                                  wt.nn.Activation("softmax", dtype="float32")])
        mp.set_global_policy("float32")
        model.compile(wt.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)       # warm-up: trace and compile
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        seconds = time.perf_counter() - t
        acc = model.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    return len(x) * epochs / seconds, acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="wasm,webgpu")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    ((x, y), (xt, yt)), _ = digits_arrays()
    x, xt = (np.asarray(a, np.float32).reshape(-1, 64) for a in (x, xt))
    y, yt = np.asarray(y, np.int32), np.asarray(yt, np.int32)
    for device in args.devices.split(","):
        res = {p: run(device, p, x, y, xt, yt, args.epochs, args.batch) for p in ("float32", "mixed_float16")}
        for p, (ips, acc) in res.items():
            print(f"{device:8s} {p:14s} {ips:10.0f} images/s  test accuracy {acc:.4f}")
        print(f"{device:8s} mixed_float16 / float32 time ratio: {res['float32'][0] / res['mixed_float16'][0]:.2f}")


if __name__ == "__main__":
    main()

"""Each adapter class's matmul plans (``webgpu/matmul.py`` ``MATMUL_TUNING``) timed on this machine's
WebGPU adapter (wgpu-py; lavapipe where no GPU exists), in the same run, round-robin: which plan
(``direct`` / ``tiled`` with which tiles / the generic reduction) each class picks per shape, its
GFLOP/s, and its time relative to the adapter's own class. The ``cpu`` row of the table comes
from runs of this on lavapipe and of ``bench/bench_webgpu_peers.mjs`` on Dawn/SwiftShader; on a
GPU, run it to check the GPU rows.

Usage: ``python bench/bench_webgpu_plans.py [--shapes 256x256x256,1024x1024x1024] [--rounds 3]``
(shapes as M x N x K)
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
from webtensor.core import kernel_ir as K  # noqa: E402
from webtensor.core.dtypes import float32  # noqa: E402
from webtensor.core.op import Aval  # noqa: E402
from webtensor.webgpu.limits import ADAPTER_CLASSES  # noqa: E402
from webtensor.webgpu.matmul import choose_plan  # noqa: E402
from webtensor.webgpu.runtime import WebGPUDevice  # noqa: E402

SHAPES = "256x256x256,1024x1024x1024,2048x2048x2048,128x256x784,25088x16x9"


def matmul_kernel(M, N, Kd):
    a, b, out = K.Buffer((M, Kd), float32), K.Buffer((Kd, N), float32), K.Buffer((M, N), float32)
    expr = K.load(0, (K.idx(0), K.idx(2)), float32) * K.load(1, (K.idx(2), K.idx(1)), float32)
    return K.reduce_kernel([a, b], out, (Kd,), expr, "sum", template="matmul")


def describe(plan) -> str:
    if plan is None:
        return "reduce"
    if plan.kind == "tiled":
        return f"tiled {plan.tm}x{plan.tn}x{plan.tk}"
    return f"direct {plan.rm}x{plan.rn}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    devs = {c: WebGPUDevice(limits={"adapter_class": c}) for c in ADAPTER_CLASSES}
    own = WebGPUDevice().limits.adapter_class
    info = devs["cpu"].adapter.info
    print(f"adapter: {info.get('device', '?')} ({info.get('adapter_type', '?')}; class {own}); "
          f"median of {args.rounds} rounds x {args.seconds} s, round-robin over classes")
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        M, N, Kd = map(int, shape.split("x"))
        k = matmul_kernel(M, N, Kd)
        a, b = rng.standard_normal((M, Kd), np.float32), rng.standard_normal((Kd, N), np.float32)
        want = a.astype(np.float64) @ b
        ins = {c: [d.from_host(a, Aval(a.shape, float32)), d.from_host(b, Aval(b.shape, float32))]
               for c, d in devs.items()}
        times = {c: [] for c in devs}
        for c, d in devs.items():        # warm up (pipeline creation), and check the result
            got = d.to_host(d.run_kernel(k, ins[c]), Aval((M, N), float32))
            assert np.allclose(got, want, rtol=1e-3, atol=1e-2 * np.sqrt(Kd)), (c, shape)
        for _ in range(args.rounds):
            for c, d in devs.items():
                reps, t0 = 0, time.perf_counter()
                while reps < 2 or time.perf_counter() - t0 < args.seconds:
                    d.run_kernel(k, ins[c])
                    d.sync()
                    reps += 1
                times[c].append((time.perf_counter() - t0) / reps)
        med = {c: float(np.median(t)) for c, t in times.items()}
        cells = "  ".join(f"{c}: {describe(choose_plan(1, M, N, Kd, devs[c].limits)):<16} "
                          f"{2 * M * N * Kd / med[c] / 1e9:7.2f} GFLOP/s {med[own] / med[c]:5.2f}x" for c in devs)
        print(f"{shape:<16} {cells}", flush=True)


if __name__ == "__main__":
    main()

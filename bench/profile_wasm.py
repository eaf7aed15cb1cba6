"""Where a compiled step's time goes on the "wasm" device: each fused kernel of an imported ONNX model
timed on its own (best of ``--repeat``), grouped by kind, largest first.

    python bench/profile_wasm.py [--model cls] [--batch 16] [--repeat 5] [--top 25]

``--model``: one of bench_onnx.py's models (a PyPI-shipped ONNX file) or a path to an ``.onnx`` file
whose first input is fed uniform(-1, 1) data of its declared shape (``--shape`` overrides it).
The sum of the kernel times is printed beside the whole step's time (their difference is the call
overhead, host copies and the reading back of the result).
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_onnx import MODELS  # noqa: E402
from common import best  # noqa: E402


def describe(step) -> str:
    k = step.kernel
    if k.template:
        p = dict(k.params)
        return f"{k.template} {list(k.inputs[0].shape)}x{list(k.inputs[1].shape)}" + (f" {p}" if p else "")
    return f"{k.kind}{'/' + k.combiner if k.combiner else ''} space={list(k.space)} ins={len(k.inputs)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cls")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--shape", default=None, help="input shape without the batch, e.g. 3,48,192")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    import webtensor as wt
    import webtensor.onnx as wo
    if a.model in MODELS:
        rel, shape = MODELS[a.model]
        root = importlib.util.find_spec("rapidocr_onnxruntime").submodule_search_locations[0]
        path = os.path.join(root, rel)
    else:
        path, shape = a.model, None
    if a.shape:
        shape = tuple(int(s) for s in a.shape.split(","))
    import onnx
    inp = onnx.load(path).graph.input[0]
    if shape is None:
        shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[1:])
    x = np.random.default_rng(0).uniform(-1, 1, (a.batch,) + tuple(shape)).astype(np.float32)
    with wt.device("wasm"):
        model = wo.load(path, input_shapes={inp.name: list(x.shape)})
        xt = wt.tensor(x)
        step = wt.function(lambda t: model(t))
        step(xt).numpy()
        total = best(lambda: step(xt).numpy(), a.repeat)
        c = step.get_concrete(xt)
        times = c.exe.profile([xt._data], [v._data for _, v in c.graph.captures], a.repeat)
    kernels = sum(t for t, _ in times)
    print(f"{len(times)} kernels: {kernels * 1e3:.2f} ms summed, step {total * 1e3:.2f} ms")
    groups = collections.defaultdict(lambda: [0.0, 0])
    for t, s in times:
        k = s.kernel
        g = groups[k.template or f"{k.kind}{'/' + k.combiner if k.combiner else ''}"]
        g[0] += t
        g[1] += 1
    for name, (t, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:<14} {n:4d} kernels {t * 1e3:8.2f} ms {100 * t / kernels:5.1f} %")
    print(f"top {a.top}:")
    for t, s in sorted(times, key=lambda ts: -ts[0])[:a.top]:
        print(f"  {t * 1e3:7.3f} ms  {describe(s)}")


if __name__ == "__main__":
    main()

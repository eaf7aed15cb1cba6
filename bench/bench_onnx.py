"""Imported ONNX models: webtensor (Python, "wasm" device, one traced predict step) beside onnxruntime
(CPU execution provider, one thread), on the same inputs in the same run.

    python bench/bench_onnx.py [--batch 16] [--repeat 3] [--models cls,rec]

Models (pretrained, shipped in PyPI packages; see tests/onnx/test_real_models.py):
- ``cls``: PP-OCR's MobileNetV3 text-orientation classifier (a CNN), input (batch, 3, 48, 192);
- ``det``: PP-OCRv4's DBNet text detector (a CNN with an FPN), input (batch, 3, 96, 96);
- ``rec``: PP-OCRv4's SVTR recogniser, input (batch, 3, 48, 512): a CNN whose transformer encoder
  sees 64 tokens per image (issue 14's "batch 16 x 64 tokens").

Prints milliseconds per batch (best of ``--repeat``, after one warm-up call that compiles) and the
ratio onnxruntime / webtensor (above 1: webtensor is faster; issue 14's target is 1.2, against ONNX
Runtime Web's wasm backend; native onnxruntime with one thread is the stricter reference printed
first). ``--node`` also exports each model (predict, wasm) and times it in Node
(``bench/bench_onnx_node.mjs``) and runs ONNX Runtime Web's wasm backend with one thread beside it
(``bench/bench_onnx_ortweb.mjs``; the npm dev dependency ``onnxruntime-web``, or the folder ``ORT_WEB``
names): ``vs-ortweb`` is ORT-Web's time over each webtensor time (Python-wasm, Node).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best, row  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = {
    "cls": ("models/ch_ppocr_mobile_v2.0_cls_infer.onnx", (3, 48, 192)),
    "det": ("models/ch_PP-OCRv4_det_infer.onnx", (3, 96, 96)),
    "rec": ("models/ch_PP-OCRv4_rec_infer.onnx", (3, 48, 512)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="cls,rec")
    ap.add_argument("--device", default="wasm")
    ap.add_argument("--node", action="store_true", help="also time the exported artifact in Node")
    a = ap.parse_args()
    import onnxruntime as ort
    import webtensor as wt
    import webtensor.onnx as wo
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        sys.exit("needs rapidocr-onnxruntime (pip install '.[test]')")
    root = spec.submodule_search_locations[0]
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    rng = np.random.default_rng(0)
    for name in a.models.split(","):
        rel, shape = MODELS[name]
        path = os.path.join(root, rel)
        x = rng.uniform(-1, 1, (a.batch,) + shape).astype(np.float32)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        want = sess.run(None, {"x": x})[0]
        with wt.device(a.device):
            model = wo.load(path, input_shapes={"x": list(x.shape)})
            xt = wt.tensor(x)
            step = wt.function(lambda t: model(t))
            got = step(xt).numpy()                        # compiles
            t_wt = best(lambda: step(xt).numpy(), a.repeat)
        err = np.abs(got - want).max() / np.abs(want).max()
        t_ort = best(lambda: sess.run(None, {"x": x}), a.repeat)
        figures = {f"webtensor-{a.device}": t_wt * 1e3, "onnxruntime-1t": t_ort * 1e3, "ratio": t_ort / t_wt}
        if a.node:
            with tempfile.TemporaryDirectory() as d:
                model.export(d, batch_size=a.batch, signatures=["predict"], backends=("wasm",))
                r = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "bench_onnx_node.mjs"), d, ",".join(map(str, x.shape)),
                                    str(a.repeat)], capture_output=True, text=True, check=True)
            t_node = json.loads(r.stdout.strip().splitlines()[-1])["ms"] / 1e3
            figures.update({"node-wasm": t_node * 1e3, "ratio-node": t_ort / t_node})
            if os.environ.get("ORT_WEB") or os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-web")):
                r = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "bench_onnx_ortweb.mjs"), path, "x",
                                    ",".join(map(str, x.shape)), str(a.repeat)], capture_output=True, text=True,
                                   check=True)
                t_web = json.loads(r.stdout.strip().splitlines()[-1])["ms"] / 1e3
                figures.update({"ortweb-1t": t_web * 1e3, "vs-ortweb-py": t_web / t_wt, "vs-ortweb-node": t_web / t_node})
        row(f"{name} batch {a.batch} {shape}", figures, f"ms (ratio = ort / webtensor; rel err {err:.1e})", width=32)


if __name__ == "__main__":
    main()

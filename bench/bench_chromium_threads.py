"""Threads in Chromium beside TF.js-wasm and ONNX Runtime Web, in the same page and run (issue 16's
browser targets: webtensor on 2 threads >= 1.1x the better of them on matmul 1024 and the CNN
forward, and >= 1.7x webtensor on 1 thread there and on the MLP train step and the 6-layer encoder,
which only webtensor runs here).

    python bench/bench_chromium_threads.py [--threads 2] [--rounds 20] [--settle-ms 0] [--loop K] [--no-peers]

Builds a site in a temporary folder: the npm package as ``npm pack`` ships it, the artifacts of
``bench/export_bench.py`` (``wasm_threads=True``), TF.js and its WebAssembly backend and ONNX
Runtime Web from ``node_modules`` (dev dependencies), and two ONNX models built here with the
artifacts' weights (``a @ b`` 1024; the CNN in NCHW, transposed to NHWC before its Flatten so that
its Dense weights are webtensor's). Serves it cross-origin isolated (``web-demo/serve.py``) and runs
``bench/chromium_threads.js`` in headless Chromium (Debian's ``/usr/bin/chromium``): every
contender on the same inputs, calls alternating round robin, each round in a new order (ONNX
Runtime's thread pool spins for ~10-20 ms after its call; in the fixed order used before, webtensor's
2-thread model always ran next, and its ~3 ms CNN call then got no second core; the report gives
webtensor's times by the contender run just before), with ``--settle-ms`` of idleness before each
call if asked (no contender then slows another; all start cold), or ``--loop K`` calls of each
contender per turn (timed per call, as a predict or training loop runs: threads that slept through the
other contenders' calls wake once per K calls; on a VM a thread asleep over ~0.5 ms takes ~150 us to
wake, ``node bench/bench_threads.mjs --wake``). Prints, per workload, each
contender's best and median call, webtensor's ratio to the better peer (best and median) and its
threads-vs-one-thread ratio (of the best calls, of the medians, and "rounds": the median over rounds
of the ratio of the two calls in the same round), for the model on the page's thread (whose driver spins while it waits
for its Workers) and in a Worker (``worker: true``: the driver blocks; inputs copied per call), and each output's max |difference| from webtensor's (a check that all
compute the same thing). Say the machine's load (printed first) with any figure you quote.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run"]
PAGE = """<!doctype html><meta charset="utf-8"><title>webtensor threads vs peers</title><link rel="icon" href="data:,">
<script src="tfjs/tf.min.js"></script><script src="tfjs/tf-backend-wasm.min.js"></script>
<script src="ort/ort.wasm.min.js"></script>
<script type="module" src="bench.js"></script>"""


def _web_demo(name: str):
    spec = importlib.util.spec_from_file_location(f"web_demo_{name}", ROOT / "web-demo" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def onnx_models(out: Path, cnn_weights: Path) -> None:
    """``out/matmul1024.onnx`` (y = a @ b) and ``out/cnn.onnx`` (x NCHW [32, 1, 28, 28] -> y [32, 10])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    def save(nodes, inputs, outputs, inits, path):
        graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # ORT Web 1.31 reads IR <= 13
        onnx.checker.check_model(model)
        onnx.save(model, str(path))

    f32 = TensorProto.FLOAT
    save([helper.make_node("MatMul", ["a", "b"], ["y"])],
         [helper.make_tensor_value_info("a", f32, [1024, 1024]), helper.make_tensor_value_info("b", f32, [1024, 1024])],
         [helper.make_tensor_value_info("y", f32, [1024, 1024])], [], out / "matmul1024.onnx")
    w = load_file(str(cnn_weights))
    hwio_to_oihw = lambda k: np.ascontiguousarray(k.transpose(3, 2, 0, 1))
    inits = [numpy_helper.from_array(hwio_to_oihw(w["conv2d/kernel"]), "k1"), numpy_helper.from_array(w["conv2d/bias"], "b1"),
             numpy_helper.from_array(hwio_to_oihw(w["conv2d_1/kernel"]), "k2"), numpy_helper.from_array(w["conv2d_1/bias"], "b2"),
             numpy_helper.from_array(w["dense/kernel"], "k3"), numpy_helper.from_array(w["dense/bias"], "b3"),
             numpy_helper.from_array(np.array([32, -1], np.int64), "shape")]
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [helper.make_node("Conv", ["x", "k1", "b1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], **pool),
             helper.make_node("Conv", ["p1", "k2", "b2"], ["c2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
             helper.make_node("Transpose", ["p2"], ["t"], perm=[0, 2, 3, 1]),      # NHWC, as webtensor flattens
             helper.make_node("Reshape", ["t", "shape"], ["f"]), helper.make_node("Gemm", ["f", "k3", "b3"], ["y"])]
    save(nodes, [helper.make_tensor_value_info("x", f32, [32, 1, 28, 28])], [helper.make_tensor_value_info("y", f32, [32, 10])],
         inits, out / "cnn.onnx")


def build_site(out: Path) -> None:
    _web_demo("build").build_npm(out)
    subprocess.run([sys.executable, str(ROOT / "bench" / "export_bench.py"), str(out / "models")], check=True)
    (out / "onnx").mkdir()
    onnx_models(out / "onnx", out / "models" / "cnn" / "weights.safetensors")
    (out / "tfjs").mkdir()
    shutil.copy2(NODE_MODULES / "@tensorflow" / "tfjs" / "dist" / "tf.min.js", out / "tfjs")
    wasm_dist = NODE_MODULES / "@tensorflow" / "tfjs-backend-wasm" / "dist"
    for f in ["tf-backend-wasm.min.js", *(p.name for p in wasm_dist.glob("*.wasm"))]:
        shutil.copy2(wasm_dist / f, out / "tfjs")
    (out / "ort").mkdir()
    ort_dist = NODE_MODULES / "onnxruntime-web" / "dist"
    for f in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        shutil.copy2(ort_dist / f, out / "ort")
    shutil.copy2(ROOT / "bench" / "chromium_threads.js", out / "bench.js")
    (out / "index.html").write_text(PAGE)


def report(result: dict, threads: int) -> None:
    print(f"Chromium: crossOriginIsolated {result['isolated']}, hardwareConcurrency {result['cores']}; threads in use "
          + ", ".join(f"{k}: {v}" for k, v in result["threads"].items()))
    for k, v in result["threads"].items():
        if not k.endswith("1T") and v != threads:
            print(f"  NOTE: {k} runs {v} thread(s), not {threads} (what its runtime reports after setup)")
    ours, one = f"webtensor {threads}T", "webtensor 1T"
    labels = {"matmul": "matmul 1024 (ms/call)", "cnn": "CNN forward b=32 (ms/call)",
              "mlp": "MLP train step b=128 (ms/call; webtensor only)",
              "encoder": "encoder 6 layers 16 x 64 tokens (ms/call; webtensor only)"}
    for row in result["rows"]:
        t = row["times"]
        peers = [k for k in t if not k.startswith("webtensor")]
        best = {k: min(v) for k, v in t.items()}
        med = {k: statistics.median(v) for k, v in t.items()}
        print(f"\n{labels[row['workload']]}")
        for k in t:
            check = f"   max|diff| vs webtensor {row['check'][k]:.2e}" if k in row["check"] else ""
            print(f"  {k:<20} best {best[k]:8.2f}  median {med[k]:8.2f}{check}")
        for mine in (ours, f"{ours} worker"):
            if peers:
                peer_best = min(peers, key=lambda k: best[k])
                peer_med = min(peers, key=lambda k: med[k])
                print(f"  ratio {mine} vs better peer: best {best[peer_best] / best[mine]:.2f}x ({peer_best}), "
                      f"median {med[peer_med] / med[mine]:.2f}x ({peer_med}); target >= 1.1x")
            rounds = statistics.median(a / b for a, b in zip(t[one], t[mine]))   # both calls in the same round
            print(f"  ratio {mine} vs {one}: best {best[one] / best[mine]:.2f}x, median {med[one] / med[mine]:.2f}x, "
                  f"rounds {rounds:.2f}x; target >= 1.7x")
        by_prev = {}
        for ms, prev in zip(t[ours], row["after"][ours]):
            by_prev.setdefault(prev or "(first)", []).append(ms)
        print(f"  {ours} by the contender that ran just before (median ms, calls): "
              + ", ".join(f"{k} {statistics.median(v):.2f} ({len(v)})" for k, v in sorted(by_prev.items())))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--settle-ms", type=float, default=0,
                        help="idle time before each call, so that no contender's spinning thread pool slows the "
                             "next call (and none finds its own pool still spinning: ONNX Runtime's calls then "
                             "start cold)")
    parser.add_argument("--loop", type=int, default=0,
                        help="each turn runs K calls of one contender back to back (as a predict or training loop "
                             "does), timed per call: its threads wake once per K calls, and a peer's spinning "
                             "pool slows only the first")
    parser.add_argument("--no-peers", action="store_true",
                        help="webtensor only (its threads vs one thread without the peers' thread pools beside it)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="webtensor-bench-chromium-") as tmp:
        site = Path(tmp)
        build_site(site)
        server = _web_demo("serve").make_server(site, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                page = browser.new_page()
                page.on("pageerror", lambda e: print(f"page error: {e}", file=sys.stderr))
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                page.wait_for_function("window.benchReady === true", timeout=60_000)
                result = page.evaluate("(o) => window.runBench(o)", {"threads": args.threads, "rounds": args.rounds,
                                                                      "peers": not args.no_peers, "settle": args.settle_ms,
                                                                      "loop": args.loop})
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    report(result, args.threads)
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

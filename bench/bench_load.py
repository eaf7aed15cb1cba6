"""Artifact load time: the checked loader beside the loader before the untrusted-artifact checks.

    python3 bench/bench_load.py [--baseline REV] [--repeat N]

Exports an MLP 64-512-512-10 (3.7 MB with its Adam slots: weights dominate) and a small CNN (many
kernels: the manifest dominates), then
times ``webtensor.load(path, backend='wasm')`` (read, hash, check, compile, instantiate) with this
tree's loader and with ``python/artifact.py`` as of ``REV`` (default: the commit before issue 11's
work), both in this process on the same files, alternating, best of N. Prints both and the ratio,
the cost of the checks alone (schema, module check) for scale, and the same comparison for the
npm runtime in Node (``bench/bench_load.mjs``; the baseline's ``js/`` from ``git archive``).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from common import best, row

import webtensor as wt

BASELINE = "497b9db"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def baseline_loader(rev: str):
    """``python/artifact.py`` at ``rev`` as the module ``webtensor._artifact_baseline`` (its relative
    imports resolve inside the installed package)."""
    src = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:python/artifact.py"], check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("webtensor._artifact_baseline", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "webtensor"
    exec(compile(src, f"{rev}:python/artifact.py", "exec"), mod.__dict__)
    return mod


def models():
    nn = wt.nn
    wt.set_seed(0)
    mlp = nn.Sequential([nn.Input((64,)), nn.Dense(512, activation="relu"), nn.Dense(512, activation="relu"),
                         nn.Dense(10)])
    cnn = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(16, 3, activation="relu"), nn.Conv2D(32, 3, activation="relu"),
                         nn.Flatten(), nn.Dense(10)])
    for m in (mlp, cnn):
        m.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return {"MLP 64-512-512-10": mlp, "CNN 2 conv + dense": cnn}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    old = baseline_loader(args.baseline)
    from webtensor import artifact
    from webtensor.schema import artifact_schema, loads, validate
    from webtensor.wasm.module_check import check_module
    with tempfile.TemporaryDirectory() as tmp:
        node_base = None
        if shutil.which("node"):     # the npm runtime at the baseline, beside this tree's
            node_base = os.path.join(tmp, "baseline")
            os.makedirs(node_base)
            archive = subprocess.run(["git", "-C", ROOT, "archive", args.baseline, "js", "package.json"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", node_base], input=archive, check=True)
        for name, model in models().items():
            path = os.path.join(tmp, name.split()[0])
            with wt.device("reference"):
                manifest = model.export(path, batch_size=32)
            size = sum(f["bytes"] for f in manifest["files"].values())
            now = then = float("inf")
            for _ in range(3):        # alternate, so drift on a shared machine hits both alike
                now = min(now, best(lambda: artifact.load(path, backend="wasm"), args.repeat // 3 or 1))
                then = min(then, best(lambda: old.load(path, backend="wasm"), args.repeat // 3 or 1))
            row(f"load {name} ({size / 1e6:.2f} MB)", {"checked": now * 1e3, f"at {args.baseline}": then * 1e3}, "ms")
            print(f"{'':40} checked / before = {now / then:.3f}")
            text = open(os.path.join(path, "manifest.json"), "rb").read().decode()
            wasm = open(os.path.join(path, "module.wasm"), "rb").read()
            drivers = [s["wasm"]["driver"] for s in manifest["signatures"].values()]
            schema = best(lambda: validate(loads(text), artifact_schema()), args.repeat)
            module = best(lambda: check_module(wasm, drivers, 1 << 14), args.repeat)
            row("  of which: schema check, module check", {"schema": schema * 1e3, "module": module * 1e3}, "ms")
            if node_base:
                subprocess.run(["node", os.path.join(HERE, "bench_load.mjs"), path, node_base, name, str(args.repeat)],
                               check=True)


if __name__ == "__main__":
    sys.exit(main())

"""Build the web demo's generated files (everything the pages load besides their own sources).

    python web-demo/build.py [--out DIR]        # default DIR: web-demo/ itself
    python web-demo/serve.py --dir web-demo --port 8000    # then open http://127.0.0.1:8000/

(``serve.py`` sends the COOP/COEP headers that make the page cross-origin isolated, which the
runtime's threads need.)

Writes, under DIR (all gitignored in web-demo/):

- ``vendor/webtensor/``: the npm package as published: ``npm pack`` of the repository, unpacked
  (the page imports it through an import map, so it runs what users install, not ``js/``);
- ``wheels/webtensor-<version>-py3-none-any.whl``: the Python package's wheel, for the Pyodide page;
- ``pyodide/``: the npm ``pyodide`` package's runtime files (a devDependency: ``npm ci`` first);
- ``data/digits.bin`` + ``data/digits.json``: the UCI digits from ``webtensor.datasets`` in the
  train/test split of ``webtensor.datasets.digits(seed=0)`` (see :func:`build_data` for the layout);
- ``models/mlp/``, ``models/cnn/``: artifacts (``docs/artifact.md``) exported from the models of the
  main job (``webtensor.__main__.build_model``) with Adam, holding their initial weights and the
  signatures ``predict`` (batch 1, for the drawing pad), ``evaluate`` (the whole test set) and
  ``train_step`` (batch :data:`BATCH_SIZE`), with ``module_threads.wasm`` (``wasm_threads=True``) for
  the page's threads;
- ``build.json``: what was built (versions, file names, model summaries) for the pages.

With ``--out`` elsewhere, the pages' own files (``index.html``, ``pyodide.html``, ``style.css``,
``src/``, ``examples/``) are copied there too, so the folder is a complete site (the tests build
into a temporary folder this way). Needs numpy (the digits data), pip and setuptools (wheel), npm (pack).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATED = ("vendor", "wheels", "pyodide", "data", "models", "build.json")
PAGE_FILES = ("index.html", "pyodide.html", "style.css", "src", "examples")
# What the page loads from the npm `pyodide` package (pyodide.mjs imports pyodide.asm.mjs).
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
# The package's parts (pyproject.toml's package-dir) and what setuptools reads to build the wheel.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "python", "core", "wasm", "webgpu")
BATCH_SIZE = 32
LEARNING_RATE = 3e-3
MODELS = ("mlp", "cnn")


def _log(msg: str) -> None:
    print(f"[web-demo build] {msg}", flush=True)


def build_wheel(out: Path) -> str:
    """Build the pure-Python wheel from a clean copy of the package's sources (a stale ``build/``
    in the repository cannot leak into it) into ``out/wheels/``; returns its path relative to out."""
    dest = out / "wheels"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="webtensor-wheel-") as tmp:
        src = Path(tmp) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in WHEEL_SOURCES:
            p = ROOT / name
            (shutil.copytree(p, src / name, ignore=ignore) if p.is_dir() else
             (src.mkdir(exist_ok=True), shutil.copy2(p, src / name)))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "--disable-pip-version-check", "-w", str(dest), str(src)], check=True,
                       stdout=subprocess.DEVNULL)
    wheels = sorted(dest.glob("webtensor-*-py3-none-any.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one py3-none-any wheel in {dest}, found {[w.name for w in wheels]}")
    return f"wheels/{wheels[0].name}"


def build_npm(out: Path) -> str:
    """``npm pack`` the repository and unpack the tarball into ``out/vendor/webtensor/``."""
    dest = out / "vendor" / "webtensor"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="webtensor-npm-") as tmp:
        r = subprocess.run(["npm", "pack", "--json", "--pack-destination", tmp], cwd=ROOT, check=True,
                           capture_output=True, text=True)
        tgz = Path(tmp) / json.loads(r.stdout)[0]["filename"]
        with tarfile.open(tgz) as tar:
            for m in tar.getmembers():
                if not m.isfile() or not m.name.startswith("package/") or ".." in m.name.split("/"):
                    continue
                target = dest / m.name[len("package/"):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
    return "vendor/webtensor/"


def build_pyodide(out: Path) -> str:
    """Copy the npm ``pyodide`` package's runtime files to ``out/pyodide/``."""
    src = ROOT / "node_modules" / "pyodide"
    missing = [f for f in PYODIDE_FILES if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{src} lacks {', '.join(missing)}: run `npm ci` in {ROOT} first "
                                "(pyodide is a devDependency)")
    dest = out / "pyodide"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in PYODIDE_FILES:
        shutil.copy2(src / f, dest / f)
    return "pyodide/"


def build_data(out: Path) -> dict:
    """``data/digits.bin``: uint8 pixel counts 0..16 of the train images then the test images
    (``n * 64`` bytes each, image-major, rows of 8), then the train labels then the test labels
    (uint8 0..9); ``data/digits.json`` describes it. The split is ``webtensor.datasets``'
    default (``split_indices(1797, 0.2, seed=0)``), the one ``webtensor.datasets.digits()`` uses."""
    from webtensor.datasets.digits import (IMAGE_SHAPE, MAX_PIXEL, NUM_FEATURES, NUM_SAMPLES,
                                           load_digits_raw, split_indices)
    pixels, labels = load_digits_raw()
    train, test = split_indices(NUM_SAMPLES)
    rows = lambda idx: b"".join(pixels[i * NUM_FEATURES:(i + 1) * NUM_FEATURES] for i in idx)
    blob = rows(train) + rows(test) + bytes(labels[i] for i in train) + bytes(labels[i] for i in test)
    dest = out / "data"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "digits.bin").write_bytes(blob)
    meta = {
        "file": "digits.bin", "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
        "n_train": len(train), "n_test": len(test), "image_shape": list(IMAGE_SHAPE), "max_pixel": MAX_PIXEL,
        "layout": "uint8: train pixels, test pixels (n*64 each, row-major 8x8), train labels, test labels",
        "source": "UCI ML repository, Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak "
                  "(1998), https://archive.ics.uci.edu/dataset/80 (scikit-learn's copy)",
        "license": "CC BY 4.0",
    }
    (dest / "digits.json").write_text(json.dumps(meta, indent=1))
    return meta


def export_model(kind: str, path: Path, n_test: int, seed: int = 0) -> dict:
    """Export the main job's ``kind`` model (``'mlp'`` or ``'cnn'``), freshly initialised with
    ``seed``, compiled with Adam(:data:`LEARNING_RATE`) and sparse softmax cross-entropy on logits,
    as an artifact at ``path``. Returns a summary for ``build.json``."""
    import numpy as np
    import webtensor as wt
    from webtensor.__main__ import build_model
    wt.set_seed(seed)
    model = build_model(kind)
    model.compile(wt.optimizers.Adam(LEARNING_RATE), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.build(model.trainable_variables)

    def train_step(x, y):
        with wt.GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True))
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    images = lambda n: np.zeros((n, 8, 8, 1), np.float32)
    shutil.rmtree(path, ignore_errors=True)
    manifest = wt.export(model, path=path, signatures={
        "predict": (model.predict_step, (images(1),)),
        "evaluate": (model.predict_step, (images(n_test),)),
        "train_step": (train_step, (images(BATCH_SIZE), np.zeros((BATCH_SIZE,), np.int32))),
    }, wasm_threads=True)
    params = sum(int(np.prod(v["shape"])) for v in manifest["variables"] if v["trainable"])
    layers = [f"{type(layer).__name__}" for layer in model.layers]
    return {"path": f"models/{kind}/", "parameters": params, "layers": layers, "batch_size": BATCH_SIZE,
            "optimizer": f"Adam(learning_rate={LEARNING_RATE})", "seed": seed,
            "backends": sorted({b for s in manifest["signatures"].values() for b in ("wasm", "webgpu") if b in s})}


def build(out: Path = HERE, models=MODELS) -> dict:
    """Build every generated file under ``out`` (see the module docstring); returns ``build.json``."""
    import webtensor as wt
    out = Path(out).resolve()
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if out != HERE:
        for name in PAGE_FILES:
            p, target = HERE / name, out / name
            if p.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(p, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(p, target)
    info = {"webtensor_version": wt.__version__, "batch_size": BATCH_SIZE}
    info["npm_package"] = build_npm(out)
    info["wheel"] = build_wheel(out)
    info["pyodide"] = build_pyodide(out)
    data = build_data(out)
    info["data"] = {"json": "data/digits.json", "n_train": data["n_train"], "n_test": data["n_test"]}
    info["models"] = {kind: export_model(kind, out / "models" / kind, data["n_test"]) for kind in models}
    (out / "build.json").write_text(json.dumps(info, indent=1))
    _log(f"built {out} in {time.perf_counter() - start:.1f} s")
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: web-demo/ itself)")
    args = parser.parse_args(argv)
    build(args.out)
    rel = os.path.relpath(args.out.resolve(), Path.cwd())
    _log(f"serve it with: python {os.path.relpath(HERE / 'serve.py')} --dir {rel} --port 8000  (then open http://127.0.0.1:8000/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

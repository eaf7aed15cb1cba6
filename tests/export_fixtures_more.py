"""Artifacts for the JS runtime's tests of issue 12 (``js/test/exported_more.test.js``), with what
Python computes from them.

    python3 tests/export_fixtures_more.py OUTDIR
        OUTDIR/three/: a functional model with three inputs (a (3,), b (4,), c (2,): Dense on each,
            add, concatenate, Dense 2), SGD(0.1) on mean squared error, exported for batches of BATCH;
        OUTDIR/const/: a function capturing a plain 1 MiB float32 tensor (not a Variable), whose
            exported artifact stores it once (in weights.safetensors, copied into WebAssembly memory
            by the loader);
        OUTDIR/expected.json: {"three": {"a", "b", "c", "y": flat lists, "predict": the Python model's
            predict (equal to Python-wasmtime running the artifact, checked here), "losses": the
            artifact's train_step losses for STEPS steps on (a, b, c, y), "weights": {name: values}
            after them}, "const": {"x", "out": the Python function's output (equal to the artifact's),
            "const_bytes": the constant's size}}.

Everything runs on a wasm device without relaxed-SIMD FMA, as export emits by default, so the
artifacts' outputs equal the Python computations bit for bit.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

BATCH = 4
STEPS = 3
CONST_SHAPE = (512, 512)          # 1 MiB of float32


def device():
    import webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact").name = "wasm_exact"
    return "wasm_exact"


def three_input_model():
    import webtensor as wt
    nn = wt.nn
    wt.set_seed(3)
    a, b, c = nn.Input((3,), name="a"), nn.Input((4,), name="b"), nn.Input((2,), name="c")
    s = nn.Dense(5, name="da")(a) + nn.Dense(5, name="db")(b)
    joined = nn.Lambda(lambda t: wt.concat(t, axis=-1), name="join")([s, nn.Dense(3, name="dc")(c)])
    m = nn.Model([a, b, c], nn.Dense(2, name="out")(joined), name="three")
    m.compile(wt.optimizers.SGD(0.1), "mse")
    return m


def const_function():
    """``f(x) = x @ K + 1`` with ``K`` a captured 512 x 512 float32 Tensor (1 MiB)."""
    import webtensor as wt
    k = wt.tensor(np.random.default_rng(7).standard_normal(CONST_SHAPE).astype(np.float32) / 16)

    def f(x):
        return wt.matmul(x, k) + 1.0
    return f


def flat(a) -> list:
    return np.asarray(a).ravel().tolist()


def main(out: str) -> None:
    import webtensor as wt
    rng = np.random.default_rng(12)
    expected = {}
    with wt.device(device()):
        m = three_input_model()
        a, b, c = (rng.standard_normal((BATCH, n)).astype(np.float32) for n in (3, 4, 2))
        y = rng.standard_normal((BATCH, 2)).astype(np.float32)
        path = os.path.join(out, "three")
        m.export(path, batch_size=BATCH)
        want = m.predict_on_batch([a, b, c]).numpy()
        art = wt.load(path, backend="wasm")
        assert np.array_equal(art.predict(a, b, c), want), "three: the artifact's predict differs from the model's"
        losses = [float(art.train_step([a, b, c], y)) for _ in range(STEPS)]
        expected["three"] = {"a": flat(a), "b": flat(b), "c": flat(c), "y": flat(y), "predict": flat(want),
                             "losses": losses, "weights": {k: flat(v) for k, v in art.get_weights().items()}}

        f = const_function()
        x = rng.standard_normal((2, CONST_SHAPE[0])).astype(np.float32)
        path = os.path.join(out, "const")
        wt.export(f, (x,), path)
        want = f(wt.tensor(x)).numpy()
        got = wt.load(path, backend="wasm").predict(x)
        assert np.array_equal(got, want), "const: the artifact's output differs from the function's"
        expected["const"] = {"x": flat(x), "out": flat(want), "const_bytes": 4 * int(np.prod(CONST_SHAPE))}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)


if __name__ == "__main__":
    main(sys.argv[1])

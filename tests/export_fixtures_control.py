"""Artifacts with control flow (``cond``, ``while_loop``, ``scan``, nested) for the JS runtime's test
(``js/test/exported_control.test.js``) and ``tests/python/test_export_control.py``, with what
Python computes from them.

    python3 tests/export_fixtures_control.py OUTDIR
        OUTDIR/<case>/: the artifact of each case of :data:`CASES` (wasm and webgpu code);
        OUTDIR/expected.json: {case: {"inputs": [[{"dtype", "shape", "data"}, ...], ...] (several runs),
            "outputs": the traced function's outputs for each run (flat lists), which Python-wasmtime
            running the artifact equals bit for bit (checked here)}}.

Everything runs on a wasm device without relaxed-SIMD FMA (as export emits by default), so the
artifact's outputs equal the traced function's bit for bit.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

W = np.array([[0.5, -0.25, 0.1], [0.125, 0.375, -0.3], [0.2, 0.05, -0.45]], np.float32)


def cases(wt):
    """``{name: (function, [input tuples])}``: each function takes float32 arrays; several input
    tuples take different branches or iteration counts."""
    w = wt.Variable(W, name="w")
    rng = np.random.default_rng(24)
    x = rng.standard_normal((2, 3)).astype(np.float32)

    def loop(x):            # data-dependent stop, bounded; reads a Variable in the body
        def body(i, h):
            return i + 1, wt.tanh(wt.matmul(h, w) + x)
        i, h = wt.while_loop(lambda i, h: wt.reduce_sum(wt.abs(h)) > 0.5, body, (wt.tensor(0), x),
                             maximum_iterations=6)
        return h, i

    def unbounded(x):       # no maximum_iterations: runs until its condition fails
        return wt.while_loop(lambda y: wt.reduce_max(y) < 10.0, lambda y: y * 2.0 + 0.5, [x])[0]

    def branch(x):
        return wt.cond(wt.reduce_sum(x) > 0, lambda: wt.matmul(x, w) * 2.0, lambda: wt.exp(x) - 1.0)

    def scan(x):            # a reverse scan without initializer, and a forward one with one
        a = wt.scan(lambda acc, r: acc * 0.5 + r, x, reverse=True)
        b = wt.scan(lambda acc, r: wt.tanh(wt.matmul(acc, w) + r), x, initializer=wt.zeros([1, 3]))
        return a, b

    def nested(x):          # a cond and a scan inside a while_loop's body, a cond inside the scan
        def body(i, h):
            def inner(acc, r):
                return wt.cond(wt.reduce_sum(r) > 0, lambda: acc + r, lambda: acc * 0.9)
            s = wt.scan(inner, h, initializer=wt.zeros([3]))
            h2 = wt.cond(i % 2 == 0, lambda: h + s[-1], lambda: wt.matmul(h, w))
            return i + 1, h2
        return wt.while_loop(lambda i, h: i < 3, body, (wt.tensor(0), x), maximum_iterations=4)[1]

    seq = rng.standard_normal((5, 1, 3)).astype(np.float32)
    return {
        "loop": (loop, [(x,), (x * 0.01,), (x * 3,)]),
        "unbounded": (unbounded, [(np.abs(x) + 0.1,), (np.full((2, 3), 20, np.float32),)]),
        "branch": (branch, [(np.abs(x),), (-np.abs(x),)]),
        "scan": (scan, [(seq.reshape(5, 1, 3),), (seq[::-1].copy(),)]),
        "nested": (nested, [(x,), (-x,)]),
    }


def exact_device(wt) -> str:
    """A wasm device without relaxed-SIMD FMA (registered once), whose kernels are the exported ones."""
    from webtensor.wasm.runtime import WasmDevice
    try:
        wt.get_device("wasm_exact")
    except ValueError:
        wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
        wt.get_device("wasm_exact").name = "wasm_exact"
    return "wasm_exact"


def spec(a: np.ndarray) -> dict:
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def main(out: str, backends=("wasm", "webgpu")) -> dict:
    import webtensor as wt
    expected = {}
    with wt.device(exact_device(wt)):
        for name, (fn, runs) in cases(wt).items():
            f = wt.function(fn)
            path = os.path.join(out, name)
            wt.export(f, runs[0], path, backends=backends)
            art = wt.load(path, backend="wasm")
            outs = []
            for args in runs:
                want = f(*[wt.tensor(a) for a in args])
                want = [np.asarray(t) for t in (want if isinstance(want, (tuple, list)) else [want])]
                got = art.predict(*args)
                got = got if isinstance(got, list) else [got]
                for g, t in zip(got, want):
                    assert g.dtype == t.dtype and np.array_equal(g, t), f"{name}: the artifact differs from the traced function"
                outs.append([t.ravel().tolist() for t in want])
            expected[name] = {"inputs": [[spec(a) for a in args] for args in runs], "outputs": outs}
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh)
    return expected


if __name__ == "__main__":
    main(sys.argv[1])

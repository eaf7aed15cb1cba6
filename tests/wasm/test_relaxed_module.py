"""``wasm_fma=True`` exports: ``module_relaxed.wasm`` beside ``module.wasm`` (docs/artifact.md, "Relaxed
SIMD"). Python's wasmtime has relaxed SIMD, so it runs the relaxed module; both modules must compute
the same function (within float32 rounding: one rounding per fused multiply-add instead of two) with
the same addresses, and ``module.wasm`` must not depend on the option. The cross-engine bit equality
is tested in js/test/relaxed.test.js."""
import json
import os

import numpy as np
import pytest

import webtensor as wt
from webtensor.artifact import ArtifactError

pytest.importorskip("wasmtime")


def _f(x, w, b):
    z = wt.matmul(x, w) + b
    return wt.gelu_tanh(z) * wt.sigmoid(z)


def test_relaxed_module_runs_in_wasmtime_and_module_wasm_is_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    args = (rng.standard_normal((32, 48)).astype(np.float32), (rng.standard_normal((48, 40)) / 7).astype(np.float32),
            rng.standard_normal((40,)).astype(np.float32))
    out = {}
    for kind, fma in (("relaxed", True), ("plain", False)):
        man = wt.export(_f, args, path=tmp_path / kind, backends=("wasm",), wasm_fma=fma)
        assert ("module_relaxed.wasm" in man["files"]) == fma
        m = wt.load(tmp_path / kind, backend="wasm")
        assert m.stats()["wasm_module"] == ("module_relaxed.wasm" if fma else "module.wasm")
        out[kind] = np.asarray(m.predict(*args))
        m.dispose()
    assert (tmp_path / "relaxed" / "module.wasm").read_bytes() == (tmp_path / "plain" / "module.wasm").read_bytes()
    # the reference in float64; fused multiply-adds round once where the plain module rounds twice
    x, w, b = (a.astype(np.float64) for a in args)
    z = x @ w + b
    ref = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))) / (1 + np.exp(-z))
    for kind in out:
        err = np.abs(out[kind] - ref).max()
        assert err < 4e-6, (kind, err)      # measured: 8.4e-7 for both (outputs of magnitude ~3)
    assert (out["relaxed"].view(np.uint32) != out["plain"].view(np.uint32)).any(), "fma changed no bit: not used?"


def test_relaxed_module_without_wasm_sections_is_refused(tmp_path):
    wt.export(_f, (np.ones((4, 6), np.float32), np.ones((6, 5), np.float32), np.ones((5,), np.float32)),
              path=tmp_path / "a", backends=("wasm",), wasm_fma=True)
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for sig in man["signatures"].values():
        del sig["wasm"]
    del man["files"]["module.wasm"]
    os.remove(tmp_path / "a" / "module.wasm")
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="lists module_relaxed.wasm, but no signature has a \"wasm\" section"):
        wt.load(tmp_path / "a", backend="auto")

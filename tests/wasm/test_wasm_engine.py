"""``export(..., wasm_engine=...)``: the engine WebAssembly modules are tuned for ('v8' or 'wasmtime':
how the matmul micro-kernel broadcasts A, ``wasm/export.py`` ``ENGINES``). The modules differ, their
memory layout and results do not (bit for bit, every module of the artifact); another name is a
ValueError."""
import json

import numpy as np
import pytest

import webtensor as wt

pytest.importorskip("wasmtime")

MODULES = ("module.wasm", "module_relaxed.wasm", "module_threads.wasm", "module_relaxed_threads.wasm")


def _f(x, w, b):
    return wt.relu(wt.matmul(x, w) + b)


def _args():
    rng = np.random.default_rng(5)
    return (rng.standard_normal((256, 192)).astype(np.float32), (rng.standard_normal((192, 256)) / 14).astype(np.float32),
            rng.standard_normal((256,)).astype(np.float32))


@pytest.fixture
def threads():
    yield wt.config.threading.set_intra_op_parallelism_threads
    wt.config.threading.set_intra_op_parallelism_threads(0)


def test_engines_modules_differ_results_do_not(tmp_path, threads):
    args = _args()
    out, sigs = {}, {}
    for engine in ("v8", "wasmtime"):
        for fma in (False, True):
            d = tmp_path / f"{engine}-{fma}"
            man = wt.export(_f, args, path=d, backends=("wasm",), wasm_fma=fma, wasm_threads=True, wasm_engine=engine)
            sigs[engine, fma] = json.dumps(man["signatures"], sort_keys=True)
            for n in (1, 2):
                threads(n)
                m = wt.load(d, backend="wasm")
                assert m.stats()["wasm_module"] == MODULES[fma + 2 * (n > 1)]
                out[engine, fma, n] = np.asarray(m.predict(*args))
                m.dispose()
    for fma in (False, True):
        for name in MODULES[fma::2]:
            assert (tmp_path / f"v8-{fma}" / name).read_bytes() != (tmp_path / f"wasmtime-{fma}" / name).read_bytes()
        assert sigs["v8", fma] == sigs["wasmtime", fma]          # the same addresses and sections
        for n in (1, 2):
            np.testing.assert_array_equal(out["wasmtime", fma, n], out["v8", fma, n])
    assert (out["v8", True, 1].view(np.uint32) != out["v8", False, 1].view(np.uint32)).any()   # fma ran


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ValueError, match="wasm_engine must be one of"):
        wt.export(_f, _args(), path=tmp_path / "a", backends=("wasm",), wasm_engine="spidermonkey")

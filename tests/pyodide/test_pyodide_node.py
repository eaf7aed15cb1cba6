"""The Python package inside Pyodide, in Node (npm ``pyodide``, a devDependency; ``npm ci`` installs it).

The wheel is built from the sources and unpacked into Pyodide's site-packages; ``in_pyodide.py``
runs :mod:`scenario` there on the ``"wasm"`` device (the page's ``WebAssembly`` through ``js``) and
on ``"webgpu"`` (``navigator.gpu`` from the npm ``webgpu`` package: Dawn on SwiftShader). The same
scenario runs here natively; WebAssembly results must match bitwise (both sides with ``fma=False``:
Node 20's V8 has no relaxed SIMD), WebGPU results within float32 tolerance.
"""
import json
import os
import shutil
import subprocess

import pytest

from pyodide_util import HERE, ROOT, SWIFTSHADER, assert_close


@pytest.fixture(scope="module")
def pyodide(wheel) -> dict:
    """What ``in_pyodide.py`` reports (one Node process for all tests here)."""
    node = shutil.which("node")
    assert node, "node is not installed (make setup installs the test requirements)"
    assert (ROOT / "node_modules" / "pyodide").is_dir(), "npm package 'pyodide' missing: run `npm ci`"
    env = dict(os.environ, VK_ICD_FILENAMES=SWIFTSHADER)
    r = subprocess.run([node, str(HERE / "run_pyodide.mjs"), "--webgpu", str(wheel), str(HERE / "scenario.py"),
                        str(HERE / "in_pyodide.py")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, f"Pyodide run failed (rc {r.returncode}):\n{r.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_pyodide_imports_without_numpy_and_runs_wasm_in_the_js_engine(pyodide):
    assert pyodide["platform"] == "emscripten" and pyodide["numpy"] is False
    assert pyodide["default"] == "wasm"                       # before init_async: WebAssembly
    assert pyodide["engine"] == "BrowserEngine"
    assert pyodide["fma_default"] is False                    # Node 20: no relaxed SIMD
    assert "await micropip.install('numpy')" in pyodide["numpy_error"] and ".tolist()" in pyodide["numpy_error"]


def test_wasm_in_pyodide_matches_native_bitwise(pyodide, native):
    assert pyodide["wasm"].keys() == native.keys()
    for key in native:
        assert pyodide["wasm"][key] == native[key], key
    assert native["loss"][-1] < native["loss"][0]             # it trained


def test_webgpu_in_pyodide_matches_native_within_tolerance(pyodide, native):
    got = pyodide["webgpu"]
    for key in ("matmul", "exp_sum", "softmax", "function"):          # one op or one fused kernel
        assert_close(got[key], native[key], 1e-5, 1e-6, key)
    for key in ("gradient", "loss", "evaluate", "predict"):            # rounding differences accumulate
        assert_close(got[key], native[key], 1e-3, 1e-4, key)
    assert got["compare"] == native["compare"] and got["int_ops"] == native["int_ops"]
    assert got["accuracy"] == native["accuracy"]
    # the browser wrapper's adapter info (isFallbackAdapter) gives SwiftShader's class, as natively lavapipe's
    assert pyodide["adapter_class"] == "cpu"


def test_webgpu_in_pyodide_is_async_and_says_what_to_await(pyodide):
    assert "await webtensor.init_async('webgpu')" in pyodide["sync_device_error"]
    assert pyodide["init_async"] == "webgpu" and pyodide["default_after_init"] == "webgpu"
    msg = pyodide["sync_readback_error"]
    assert "await t.tolist_async()" in msg and "await model.fit_async(" in msg
    assert pyodide["to_wasm"] == [3.0, 5.0]
    assert "WebGPU reported an error" in pyodide["async_error"]      # validation errors surface at readback
    assert pyodide["after_error"] == [3.0, 5.0]

"""Compact artifacts (``export(..., weights_dtype='float16' | 'int8')``, issue 18) in Pyodide (Node,
npm ``pyodide``): the digits CNN and the transformer encoder of ``tests/compact_fixtures.py``,
exported here, loaded inside Pyodide by ``webtensor.load(backend='wasm')`` (the JavaScript engine's
WebAssembly, no numpy: nested lists in and out) and run on the same batch. Oracle: CPython's
``webtensor.load`` (wasmtime) on the same artifacts: the same module.wasm without relaxed SIMD, so
the outputs must be equal bit for bit (JSON carries float32 values exactly as Python floats)."""
import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pyodide_util import HERE, ROOT

sys.path.insert(0, str(HERE.parent))
from compact_fixtures import BATCH, DTYPES, build, inputs  # noqa: E402

import webtensor as wt  # noqa: E402

KINDS = ("cnn", "transformer")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(bundle, CPython's predictions)``: each model in each weights dtype, wasm only."""
    tmp = tmp_path_factory.mktemp("compact")
    x = inputs()
    bundle, native = {"x": x.tolist(), "artifacts": {}}, {}
    with wt.device("wasm"):
        for kind in KINDS:
            model = build(kind)
            model(x)
            for dt in DTYPES:
                name = f"{kind}_{dt}"
                model.export(tmp / name, batch_size=BATCH, backends=("wasm",), weights_dtype=dt)
                native[name] = wt.load(tmp / name, backend="wasm").predict(x)
                bundle["artifacts"][name] = {f: base64.b64encode((tmp / name / f).read_bytes()).decode()
                                             for f in os.listdir(tmp / name)}
    (tmp / "compact_bundle.json").write_text(json.dumps(bundle))
    return tmp / "compact_bundle.json", native


@pytest.fixture(scope="module")
def pyodide(wheel, exported) -> dict:
    node = shutil.which("node")
    assert node, "node is not installed (make setup installs the test requirements)"
    assert (ROOT / "node_modules" / "pyodide").is_dir(), "npm package 'pyodide' missing: run `npm ci`"
    r = subprocess.run([node, str(HERE / "run_pyodide.mjs"), str(wheel), str(exported[0]),
                        str(HERE / "in_pyodide_compact.py")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, f"Pyodide run failed (rc {r.returncode}):\n{r.stderr[-4000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_compact_artifacts_run_in_pyodide_as_in_python(pyodide, exported):
    native = exported[1]
    assert pyodide["numpy"] is False                      # the no-numpy path: lists in and out
    assert set(pyodide["predict"]) == set(native)
    for name, want in native.items():
        assert pyodide["module"][name] == "module.wasm"
        got = np.array(pyodide["predict"][name], np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)
    for kind in KINDS:                                    # the artifacts really are compact
        assert pyodide["storage"][f"{kind}_float32"] == ["float32"]
        assert pyodide["storage"][f"{kind}_float16"] == ["float16"]
        assert pyodide["storage"][f"{kind}_int8"] == ["float16", "float32", "int8"]   # float16 scales

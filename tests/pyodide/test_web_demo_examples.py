"""The notebook page's examples (``web-demo/examples/``) in Pyodide in Node, without a browser: the
kernels example builds a graph, compiles it to WebAssembly and WGSL with no numpy, runs the
WebAssembly on Node's engine and compiles the WGSL on Dawn (npm ``webgpu``, SwiftShader)."""
import json
import os
import shutil
import subprocess

import numpy as np

from pyodide_util import HERE, ROOT, SWIFTSHADER


def test_kernels_example_runs_in_node_pyodide(wheel):
    env = dict(os.environ, VK_ICD_FILENAMES=SWIFTSHADER)
    r = subprocess.run([shutil.which("node"), str(HERE / "run_pyodide.mjs"), "--webgpu", str(wheel),
                        str(ROOT / "web-demo" / "examples" / "kernels.py")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT {")]
    assert r.returncode == 0 and lines, f"rc {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    res = json.loads(lines[-1][len("RESULT "):])
    assert res["numpy"] is False and "valid: True" in r.stdout
    x, w, b = (np.array(res["inputs"][k], np.float64) for k in "xwb")
    h = np.maximum(x.reshape(4, 8) @ w.reshape(8, 3) + b, 0)
    e = np.exp(h - h.max(1, keepdims=True))
    np.testing.assert_allclose(np.array(res["y"]).reshape(4, 3), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert res["wgsl_compiled"] == res["wgsl_passes"] >= res["kernels"] >= 2 and res["wgsl_errors"] == []

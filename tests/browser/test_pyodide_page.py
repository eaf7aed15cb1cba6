"""The notebook page (``web-demo/pyodide.html``) in headless Chromium: Pyodide from the npm package's
files and the webtensor wheel, both served by the site; its default code trains the digits MLP on
"webgpu" (SwiftShader) in the page and reaches an accuracy threshold; the second example compiles a
graph to WebAssembly and WGSL without numpy, runs the WebAssembly in the page and compiles the WGSL
with the page's WebGPU.
"""
import json
import re

import numpy as np
import pytest

from browser_util import ROOT, watch_errors

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def notebook(browser, demo_site):
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors = watch_errors(page)
    page.goto(f"{demo_site.url}pyodide.html")
    page.wait_for_function("window.notebook && ['ready', 'error'].includes(notebook.state.phase)", timeout=120_000)
    state = page.evaluate("notebook.state")
    assert state["phase"] == "ready", state["error"]
    assert state["webtensorVersion"] == demo_site.build["webtensor_version"]
    yield page
    assert not errors
    page.close()


def test_boot_line_names_pyodide_and_python_versions(notebook):
    """The first output line labels Pyodide's version as Pyodide's and Python's as Python's."""
    pyodide_version = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    boot = notebook.evaluate("notebook.state.boot ?? document.querySelector('#output .sys').textContent")
    m = re.match(r"Pyodide (\S+) \(Python (3\.\d+\.\d+)\), webtensor ", boot or "")
    assert m, boot
    assert m.group(1) == pyodide_version
    assert m.group(2) == notebook.evaluate("notebook.pyodide.runPython('import platform; platform.python_version()')")
    assert boot in notebook.inner_text("#output") or notebook.evaluate("notebook.state.runs") > 0


def run_example(page, name, timeout_s):
    runs = page.evaluate("notebook.state.runs")
    page.select_option("#example", name)
    page.wait_for_function(f"document.getElementById('code').value.includes({json.dumps(EXAMPLE_MARK[name])})")
    page.click("#run")
    page.wait_for_function(f"notebook.state.runs > {runs} && notebook.state.phase === 'ready'", timeout=timeout_s * 1000)
    return page.evaluate("notebook.state")


EXAMPLE_MARK = {"train_digits": "await model.fit_async(", "kernels": "compile_graph(g)"}


def test_default_code_trains_the_digits_mlp_on_webgpu(notebook, output_dir):
    assert notebook.input_value("#example") == "train_digits"                     # the page's default
    s = run_example(notebook, "train_digits", 240)
    assert s["ok"], s["output"][-3000:]
    out = s["output"]
    assert "device: webgpu" in out and "not available" not in out
    epochs = re.findall(r"^Epoch (\d+)/5 .* loss ([\d.]+) .* accuracy ([\d.]+)", out, re.M)
    assert [int(e) for e, _, _ in epochs] == [1, 2, 3, 4, 5], out
    losses = [float(loss) for _, loss, _ in epochs]
    assert losses[-1] < 0.5 * losses[0], losses
    accuracy = float(re.search(r"^test accuracy: ([\d.]+)$", out, re.M).group(1))
    assert accuracy >= 0.9, out
    assert notebook.inner_text("#output").strip().endswith(f"test accuracy: {accuracy:.4f}")
    notebook.screenshot(path=str(output_dir / "pyodide-trained.png"), full_page=True)


def test_kernels_example_compiles_and_runs_in_the_page(notebook):
    s = run_example(notebook, "kernels", 60)
    assert s["ok"], s["output"][-3000:]
    r = json.loads(re.search(r"^RESULT (.*)$", s["output"], re.M).group(1))
    assert r["numpy"] is False and r["kernels"] >= 2 and r["wasm_bytes"] > 100
    assert "valid: True" in s["output"]
    x, w, b = (np.array(r["inputs"][k], np.float64) for k in "xwb")
    h = np.maximum(x.reshape(4, 8) @ w.reshape(8, 3) + b, 0)
    e = np.exp(h - h.max(1, keepdims=True))
    np.testing.assert_allclose(np.array(r["y"]).reshape(4, 3), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert r["max_abs_err"] < 1e-5
    assert r["wgsl_compiled"] == r["wgsl_passes"] >= r["kernels"] and r["wgsl_errors"] == []

"""The Python package inside Pyodide in headless Chromium (Debian's ``/usr/bin/chromium`` with the
WebGPU flags of ``shared/PLATFORM.md``), where the browser has what Node 20 lacks: JSPI (so the
synchronous API may block on WebGPU's Promises) and relaxed SIMD. The page is served from a test
server on 127.0.0.1 (a secure context) with Pyodide's files from the npm package.
"""
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from pyodide_util import HERE, ROOT, assert_close

FLAGS = ["--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader",
         "--use-webgpu-adapter=swiftshader", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
PAGE = """<!doctype html><meta charset="utf-8"><title>webtensor in Pyodide</title>
<script type="module">
import { loadPyodide } from './pyodide/pyodide.mjs';
try {
  const py = await loadPyodide({ indexURL: '/pyodide/' });
  const get = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());
  py.unpackArchive(await get('/WHEEL'), 'wheel', { extractDir: py.runPython('import site; site.getsitepackages()[0]') });
  py.FS.writeFile('/home/pyodide/scenario.py', await get('/scenario.py'));
  py.runPython('import sys; sys.path.insert(0, "/home/pyodide")');
  window.RESULT = await py.runPythonAsync(new TextDecoder().decode(await get('/in_browser.py')));
} catch (e) { window.RESULT = 'ERROR ' + e.message; }
</script>"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser_result(wheel, tmp_path_factory) -> dict:
    from playwright.sync_api import sync_playwright
    site = tmp_path_factory.mktemp("site")
    (site / "pyodide").mkdir()
    for f in PYODIDE_FILES:
        shutil.copy2(ROOT / "node_modules" / "pyodide" / f, site / "pyodide" / f)
    shutil.copy2(wheel, site / wheel.name)
    for f in ("scenario.py", "in_browser.py"):
        shutil.copy2(HERE / f, site / f)
    (site / "index.html").write_text(PAGE.replace("WHEEL", wheel.name))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                page.wait_for_function("window.RESULT !== undefined", timeout=240_000)
                result = page.evaluate("window.RESULT")
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert not result.startswith("ERROR"), result[-4000:]
    return json.loads(result)


@pytest.mark.browser
def test_chromium_has_jspi_and_relaxed_simd(browser_result):
    assert browser_result["platform"] == "emscripten"
    assert browser_result["can_run_sync"] is True
    assert browser_result["fma_default"] is True        # the relaxed-SIMD probe validates in Chromium
    assert "webgpu" in browser_result["webgpu_device"]


@pytest.mark.browser
def test_wasm_in_chromium_matches_native_bitwise(browser_result, native):
    assert browser_result["wasm"] == native


@pytest.mark.browser
def test_webgpu_in_chromium_synchronous_api_matches_native(browser_result, native):
    got = browser_result["webgpu"]
    for key in ("matmul", "exp_sum", "softmax", "function"):
        assert_close(got[key], native[key], 1e-5, 1e-6, key)
    for key in ("gradient", "loss", "evaluate", "predict"):
        assert_close(got[key], native[key], 1e-3, 1e-4, key)
    assert got["int_ops"] == native["int_ops"] and got["compare"] == native["compare"]

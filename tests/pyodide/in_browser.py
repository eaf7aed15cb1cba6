# Runs inside Pyodide in headless Chromium (test_pyodide_browser.py); returns JSON for the test.
# Chromium has JSPI, so code run with runPythonAsync may block on Promises: the synchronous API
# (get_device('webgpu'), tolist(), fit) works on the browser's WebGPU too.
import json
import sys

import pyodide.ffi

import scenario
import webtensor as wt
from webtensor.wasm.runtime import WasmDevice

out = {"platform": sys.platform, "can_run_sync": pyodide.ffi.can_run_sync()}
out["fma_default"] = wt.get_device("wasm").fma
wt.register_device("wasm_portable", lambda: WasmDevice(fma=False))
out["wasm"] = await scenario.run("wasm_portable", sync=True)
out["webgpu_device"] = repr(wt.get_device("webgpu"))        # created synchronously through run_sync
out["webgpu"] = await scenario.run("webgpu", sync=True)     # tolist(), fit(), evaluate() block on mapAsync
json.dumps(out)

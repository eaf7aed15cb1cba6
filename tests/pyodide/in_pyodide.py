# Runs inside Pyodide (tests/pyodide/run_pyodide.mjs); the test reads the JSON it returns.
import json
import sys

import js

import scenario
import webtensor as wt
from webtensor.wasm.runtime import WasmDevice

out = {"platform": sys.platform, "numpy": "numpy" in sys.modules, "default": wt.get_device().name}
wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
out["engine"] = type(wt.get_device("wasm").engine).__name__
out["fma_default"] = wt.get_device("wasm").fma
out["wasm"] = await scenario.run("wasm_exact", sync=True)
try:
    wt.tensor([1.0]).numpy()
except ImportError as e:
    out["numpy_error"] = str(e)

if hasattr(js, "navigator"):
    try:
        wt.get_device("webgpu")
    except RuntimeError as e:
        out["sync_device_error"] = str(e)
    dev = await wt.init_async()
    out["init_async"] = dev.name
    out["adapter_class"] = dev.limits.adapter_class     # Dawn on SwiftShader: a fallback adapter, "cpu"
    out["default_after_init"] = wt.get_device().name
    out["webgpu"] = await scenario.run("webgpu", sync=False)
    t = wt.tensor([1.5, 2.5], device="webgpu") * 2.0
    try:
        t.tolist()
    except RuntimeError as e:
        out["sync_readback_error"] = str(e)
    out["to_wasm"] = await t.tolist_async()
    dev.gpu.create_buffer(size=4, usage=0)          # a validation error, reported asynchronously
    try:
        await t.tolist_async()
    except RuntimeError as e:
        out["async_error"] = str(e)
    out["after_error"] = await t.tolist_async()
json.dumps(out)

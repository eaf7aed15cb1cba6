# Runs inside Pyodide (tests/pyodide/run_pyodide.mjs, by test_pyodide_compact.py): writes the
# artifacts of compact_bundle.json (base64 files) to Pyodide's file system, loads each with
# webtensor.load(backend='wasm') (the page's WebAssembly; no numpy, no wasmtime) and predicts the
# bundle's input, given as nested lists. The test compares the JSON it returns with CPython's.
import base64
import json
import os
import sys

import webtensor as wt

bundle = json.load(open("/home/pyodide/compact_bundle.json"))
out = {"numpy": "numpy" in sys.modules, "predict": {}, "module": {}, "storage": {}}
for name, files in bundle["artifacts"].items():
    folder = f"/tmp/artifacts/{name}"
    os.makedirs(folder, exist_ok=True)
    for file, data in files.items():
        with open(os.path.join(folder, file), "wb") as f:
            f.write(base64.b64decode(data))
    model = wt.load(folder, backend="wasm")
    out["predict"][name] = model.predict(bundle["x"])
    out["module"][name] = model.stats()["wasm_module"]
    out["storage"][name] = sorted({v.get("storage", {}).get("dtype", v["dtype"]) for v in model.variables})
json.dumps(out)

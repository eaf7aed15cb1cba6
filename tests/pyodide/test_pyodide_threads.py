"""Threads in Pyodide in headless Chromium: with ``wt.config.threading.set_intra_op_parallelism_threads(n)``,
``webtensor.load(dir, backend='wasm')`` runs an artifact's ``module_threads.wasm`` on a shared
``WebAssembly.Memory`` with n - 1 of the page's Web Workers (``wasm/engines.py``: ``BrowserWorkers``)
when the page is cross-origin isolated (served by ``web-demo/serve.py``), and gives bitwise the
one-thread ``module.wasm`` outputs that CPython computed (``tests/threads_fixtures.py``, the
fixtures of ``js/test/threads.test.js``) on 1, 2, 3 and 4 threads; ``dispose()`` ends the Workers.
Without isolation it runs on one thread with a RuntimeWarning that says why. Compiled functions
(``wt.function`` on the ``"wasm"`` device) do the same when the threads are set before the device's
first use (its memory is then shared: ``engines.default_engine``).
"""
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest

from pyodide_util import HERE, ROOT

pytestmark = pytest.mark.browser

FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run"]
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
PAGE = """<!doctype html><meta charset="utf-8"><title>webtensor threads in Pyodide</title><link rel="icon" href="data:,">
<script type="module">
import { loadPyodide } from './pyodide/pyodide.mjs';
try {
  const py = await loadPyodide({ indexURL: '/pyodide/' });
  const get = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());
  py.unpackArchive(await get('/WHEEL'), 'wheel', { extractDir: py.runPython('import site; site.getsitepackages()[0]') });
  py.unpackArchive(await get('/models.zip'), 'zip', { extractDir: '/home/pyodide/models' });
  window.py = py;
  window.READY = 'ok';
} catch (e) { window.READY = 'ERROR ' + e.message; }
</script>"""

# Python in the page: load every fixture on THREADS threads (kept in M until DISPOSE runs).
LOAD = """
import json
import warnings
import webtensor as wt
wt.config.threading.set_intra_op_parallelism_threads(THREADS)
E = json.load(open('/home/pyodide/models/expected.json'))
with warnings.catch_warnings(record=True) as W:
    warnings.simplefilter('always')
    M = {name: wt.load(f'/home/pyodide/models/{name}', backend='wasm') for name in E}
json.dumps({'threads': {n: m.stats()['wasm_threads'] for n, m in M.items()}, 'warnings': [str(w.message) for w in W]})
"""
# Run each fixture on expected.json's inputs: its outputs' float32 bits, hex (the mlp: train_step's
# loss, then the first variable, in sorted order, after the step).
RUN = """
import array

def nest(flat, shape):
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]

def flat(v):
    return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]

out = {}
for name, e in E.items():
    m = M[name]
    specs = m.signatures[e['signature']]['inputs']
    outs = list(m.run(e['signature'], *[nest(x, s['shape']) for x, s in zip(e['inputs'], specs)]).values())
    if name == 'mlp':
        w = m.get_weights()
        outs.append(w[sorted(w)[0]])
    out[name] = [array.array('f', flat(o)).tobytes().hex() for o in outs]
json.dumps(out)
"""
DISPOSE = "for m in M.values(): m.dispose()\ndel M"


def _serve(directory, isolated):
    spec = importlib.util.spec_from_file_location("web_demo_serve", ROOT / "web-demo" / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    server = serve.make_server(directory, isolated=isolated, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory):
    """Pyodide's files, the wheel, the thread fixtures (models.zip) and the page; served isolated
    (``.url``) and not (``.plain_url``)."""
    site = tmp_path_factory.mktemp("threads-pyodide")
    (site / "pyodide").mkdir()
    for f in PYODIDE_FILES:
        shutil.copy2(ROOT / "node_modules" / "pyodide" / f, site / "pyodide" / f)
    shutil.copy2(wheel, site / wheel.name)
    models = tmp_path_factory.mktemp("threads-models")
    subprocess.run([sys.executable, str(ROOT / "tests" / "threads_fixtures.py"), str(models)], check=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(models.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(models).as_posix())
    (site / "models.zip").write_bytes(buf.getvalue())
    (site / "index.html").write_text(PAGE.replace("WHEEL", wheel.name))
    url, isolated = _serve(site, True)
    plain_url, plain = _serve(site, False)
    yield type("Site", (), {"url": url, "plain_url": plain_url,
                            "expected": json.loads((models / "expected.json").read_text())})
    for server in (isolated, plain):
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        yield browser
        browser.close()


def open_pyodide(chromium, url):
    page = chromium.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}index.html")
    page.wait_for_function("window.READY !== undefined", timeout=120_000)
    assert page.evaluate("window.READY") == "ok", page.evaluate("window.READY")
    return page, errors


def py(page, code, **names):
    for k, v in names.items():
        code = code.replace(k, json.dumps(v))
    return json.loads(page.evaluate("(code) => window.py.runPythonAsync(code)", code))


def expected_hex(values) -> str:
    import numpy as np
    return np.asarray(values, np.float32).tobytes().hex()


def test_bitwise_equal_on_1_to_4_threads_and_dispose_ends_the_workers(chromium, site):
    assert site.expected["mlp"]["tiled"] >= 3 and site.expected["ops"]["tiled"] >= 1, "kernels large enough are split"
    page, errors = open_pyodide(chromium, site.url)
    assert page.evaluate("crossOriginIsolated") is True
    names = list(site.expected)
    for threads in (1, 2, 3, 4):
        loaded = py(page, LOAD, THREADS=threads)
        assert loaded == {"threads": {n: threads for n in names}, "warnings": []}
        want = len(names) * (threads - 1)                # they start once Python yields to the page
        for _ in range(200):
            if len(page.workers) == want:
                break
            page.wait_for_timeout(50)
        assert len(page.workers) == want, threads
        got = py(page, RUN)
        for name, e in site.expected.items():
            assert len(got[name]) == len(e["outputs"])
            for k, (g, want) in enumerate(zip(got[name], e["outputs"])):
                assert g == expected_hex(want), f"{name}, {threads} threads, output {k}"
        page.evaluate("(code) => window.py.runPython(code)", DISPOSE)
        for _ in range(200):
            if not page.workers:
                break
            page.wait_for_timeout(50)
        assert not page.workers, f"{len(page.workers)} Worker(s) alive after dispose()"
    # loaded and run in one go: the Workers have not started yet, the driver takes every tile
    got = py(page, LOAD + RUN.replace("json.dumps(out)", "out['threads'] = {n: m.stats()['wasm_threads'] for n, m in M.items()}\njson.dumps(out)"), THREADS=3)
    assert got.pop("threads") == {n: 3 for n in names}
    assert got == {name: [expected_hex(w) for w in e["outputs"]] for name, e in site.expected.items()}
    page.evaluate("(code) => window.py.runPython(code)", DISPOSE)
    assert not errors, errors
    page.close()


def test_not_isolated_runs_on_one_thread_with_a_warning(chromium, site):
    page, errors = open_pyodide(chromium, site.plain_url)
    assert page.evaluate("crossOriginIsolated") is False
    loaded = py(page, LOAD, THREADS=2)
    assert loaded["threads"] == {n: 1 for n in site.expected} and not page.workers
    assert len(loaded["warnings"]) == len(site.expected)
    for w in loaded["warnings"]:
        assert w.startswith("webtensor.load: 2 threads are set, but the model runs on 1: the page is not cross-origin isolated")
        assert "Cross-Origin-Opener-Policy: same-origin" in w
    got = py(page, RUN)
    for k, (g, want) in enumerate(zip(got["ops"], site.expected["ops"]["outputs"])):
        assert g == expected_hex(want), f"ops, not isolated, output {k}"
    assert not errors, errors
    page.close()


def test_workers_that_cannot_start_fail_the_load(chromium, site):
    """A page whose Workers cannot be created (as under a Content-Security-Policy without
    ``worker-src blob:``): the load fails with an ArtifactError that says so, and leaves no Worker."""
    page, errors = open_pyodide(chromium, site.url)
    page.evaluate("() => { window.Worker = function () { throw new Error('blocked by the test'); }; }")
    got = py(page, """
import json
import webtensor as wt
from webtensor.artifact import ArtifactError
wt.config.threading.set_intra_op_parallelism_threads(2)
try:
    wt.load('/home/pyodide/models/ops', backend='wasm')
    r = None
except ArtifactError as e:
    r = str(e)
json.dumps(r)
""")
    assert got is not None and "module_threads.wasm: a thread could not start (" in got and "blocked by the test" in got, got
    assert not page.workers and not errors, errors
    page.close()


# Python in the page: with THREADS set before the "wasm" device's first use, compile `step` (a
# matmul with its bias and ReLU as epilogue, a row reduction, tanh) under 1..THREADS threads; each
# result's float32 bits (hex) and the Worker count while each function lives.
COMPILED = """
import array, gc, json, warnings
import webtensor as wt
wt.config.threading.set_intra_op_parallelism_threads(THREADS)
X, W, B = ARGS

def step(x, w, b):
    h = wt.relu(wt.matmul(x, w) + b)
    return h, wt.reduce_sum(h * h, axis=1), wt.tanh(h)

def flat(v):
    return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]

out = {}
with warnings.catch_warnings(record=True) as W_:
    warnings.simplefilter('always')
    with wt.device('wasm'):
        args = [wt.tensor(X), wt.tensor(W), wt.tensor(B)]
        for n in range(1, THREADS + 1):
            wt.config.threading.set_intra_op_parallelism_threads(n)
            F = wt.function(step)
            out[n] = [array.array('f', flat(o.tolist())).tobytes().hex() for o in F(*args)]
            del F
            gc.collect()
out['warnings'] = [str(w.message) for w in W_]
json.dumps(out)
"""


def _compiled_args():
    import numpy as np
    r = np.random.RandomState(27)
    return [r.randn(128, 160).astype(np.float32), (r.randn(160, 256) * 0.1).astype(np.float32),
            r.randn(256).astype(np.float32)]


def test_compiled_functions_run_on_the_pages_threads(chromium, site):
    """``wt.function`` on the ``"wasm"`` device in Pyodide, with threads set before the device's
    first use on an isolated page: its memory is shared, each executable compiled under n threads
    runs its large kernels on n - 1 Web Workers, and the results are bitwise identical for 1-4
    threads and near numpy (float32 dot products of 160 terms)."""
    import numpy as np
    x, w, b = _compiled_args()
    page, errors = open_pyodide(chromium, site.url)
    got = py(page, COMPILED, THREADS=4, ARGS=[a.tolist() for a in (x, w, b)])
    assert got.pop("warnings") == []
    for n in ("2", "3", "4"):
        assert got[n] == got["1"], f"{n} threads"
    h = np.maximum(x @ w + b, 0)
    outs = [np.frombuffer(bytes.fromhex(g), np.float32) for g in got["4"]]
    np.testing.assert_allclose(outs[0].reshape(h.shape), h, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(outs[1], (h * h).sum(1), rtol=1e-5)
    np.testing.assert_allclose(outs[2].reshape(h.shape), np.tanh(h), rtol=1e-5, atol=1e-6)
    # the Workers of a live executable, and none once it is collected
    assert py(page, "F = wt.function(step)\nwith wt.device('wasm'):\n    F(*[wt.tensor(a) for a in (X, W, B)])\n"
                    "json.dumps(wt.config.threading.get_intra_op_parallelism_threads())") == 4
    for _ in range(200):
        if len(page.workers) == 3:
            break
        page.wait_for_timeout(50)
    assert len(page.workers) == 3
    page.evaluate("(code) => window.py.runPython(code)", "del F\ngc.collect()")
    for _ in range(200):
        if not page.workers:
            break
        page.wait_for_timeout(50)
    assert not page.workers, f"{len(page.workers)} Worker(s) alive after the function was collected"
    assert not errors, errors
    page.close()


def test_compiled_functions_not_isolated_run_on_one_thread_with_a_warning(chromium, site):
    x, w, b = _compiled_args()
    page, errors = open_pyodide(chromium, site.plain_url)
    got = py(page, COMPILED, THREADS=2, ARGS=[a.tolist() for a in (x, w, b)])
    assert len(got["warnings"]) == 1 and got["warnings"][0].startswith(
        "wasm device: 2 threads are set, but compiled functions run on 1: the page is not cross-origin isolated")
    assert got["1"] == got["2"] and not page.workers
    assert not errors, errors
    page.close()

"""Threads in headless Chromium: ``load(dir, {backend: 'wasm', threads})`` from the npm package (as
``npm pack`` ships it) runs an artifact's ``module_threads.wasm`` on one shared
``WebAssembly.Memory`` with Web Workers (``js/thread.js``) when the page is cross-origin isolated
(served by ``web-demo/serve.py`` with COOP/COEP), and gives bitwise the outputs of the one-thread
``module.wasm`` computed by Python (``tests/threads_fixtures.py``, the fixtures of
``js/test/threads.test.js``) on 1, 2, 3 and 4 threads; ``dispose()`` ends its Workers. Without
isolation it runs on one thread, warns on the console and says why in ``model.threadsNotice``.
"""
import base64
import json
import subprocess
import sys

import numpy as np
import pytest

from browser_util import ROOT, load_web_demo_module, serve, watch_errors

pytestmark = pytest.mark.browser

# Page side: load `name` with `threads`, keep it as window.model, return its stats and notice.
LOAD = """async ([name, threads, worker = false]) => {
  const wt = await import('./vendor/webtensor/js/index.js');
  window.model = await wt.load(`models/${name}/`, { backend: 'wasm', threads, worker });
  return { stats: window.model.stats(), notice: window.model.threadsNotice };
}"""

# Page side: run window.model on expected.json's inputs for `name`; the outputs' bytes in base64
# (the mlp: its train_step's loss, then the first variable, in sorted order, after the step).
RUN = """async (name) => {
  const wt = await import('./vendor/webtensor/js/index.js');
  const e = (await (await fetch('models/expected.json')).json())[name];
  const TYPED = { float32: Float32Array, int32: Int32Array };
  const specs = window.model.signatures[e.signature].inputs;
  const inputs = specs.map((s, k) => wt.tensor(TYPED[s.dtype].from(e.inputs[k]), s.shape, s.dtype));
  const outs = Object.values(await window.model.run(e.signature, inputs)).map((t) => t.dataSync());
  if (name === 'mlp') {
    const w = await window.model.getWeights();
    outs.push(w[Object.keys(w).sort()[0]].dataSync());
  }
  const b64 = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = '';
    for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192)); return btoa(s); };
  return outs.map(b64);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder with the packed npm package (vendor/webtensor/), the thread fixtures (models/) and
    an empty page; served isolated (``.url``) and not (``.plain_url``)."""
    out = tmp_path_factory.mktemp("threads-site")
    load_web_demo_module("build").build_npm(out)
    subprocess.run([sys.executable, str(ROOT / "tests" / "threads_fixtures.py"), str(out / "models")], check=True)
    (out / "index.html").write_text("<!doctype html><meta charset='utf-8'><title>threads</title>")
    expected = json.loads((out / "models" / "expected.json").read_text())
    url, isolated = serve(out)
    plain_url, plain = serve(out, isolated=False)
    yield type("Site", (), {"url": url, "plain_url": plain_url, "expected": expected})
    for server in (isolated, plain):
        server.shutdown()
        server.server_close()


def open_page(browser, url):
    page = browser.new_page()
    errors = watch_errors(page)
    warnings = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.goto(url)
    return page, errors, warnings


def wait_no_workers(page, timeout_s=10.0):
    """Wait until the page has no Worker left (Playwright's page.workers: its dedicated Workers)."""
    for _ in range(int(timeout_s / 0.05)):
        if not page.workers:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{len(page.workers)} Worker(s) still alive after dispose()")


def bits(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), "<u4")


def expected_bits(values) -> np.ndarray:
    return np.asarray(values, np.float32).view("<u4")


def test_bitwise_equal_on_1_to_4_threads_and_dispose_ends_the_workers(browser, site):
    tiled = {name: e["tiled"] for name, e in site.expected.items()}
    assert tiled["mlp"] >= 3 and tiled["ops"] >= 1 and tiled["seq"] >= 2, "kernels large enough are split"
    page, errors, warnings = open_page(browser, site.url)
    assert page.evaluate("crossOriginIsolated") is True
    for name, e in site.expected.items():
        for threads in (1, 2, 3, 4):
            loaded = page.evaluate(LOAD, [name, threads])
            assert loaded["stats"]["wasmThreads"] == threads and loaded["notice"] is None, (name, threads, loaded)
            assert len(page.workers) == threads - 1, (name, threads)
            got = page.evaluate(RUN, name)
            assert len(got) == len(e["outputs"])
            for k, (g, want) in enumerate(zip(got, e["outputs"])):
                assert np.array_equal(bits(g), expected_bits(want)), f"{name}, {threads} threads, output {k}"
            page.evaluate("window.model.dispose()")
            wait_no_workers(page)
    assert not errors and not warnings, (errors, warnings)
    page.close()


def test_auto_is_hardware_concurrency_at_most_4(browser, site):
    page, errors, _ = open_page(browser, site.url)
    loaded = page.evaluate(LOAD, ["ops", "auto"])
    cores = page.evaluate("navigator.hardwareConcurrency")
    assert loaded["stats"]["wasmThreads"] == min(cores, 4) and loaded["notice"] is None
    assert len(page.workers) == min(cores, 4) - 1
    page.evaluate("window.model.dispose()")
    wait_no_workers(page)
    assert not errors
    page.close()


def test_default_is_auto_and_falls_back_silently(browser, site):
    """No ``threads`` given: 'auto' on an isolated page, one thread without a word on a page that is
    not (TF.js-wasm and ONNX Runtime Web default to threads the same way)."""
    page, errors, warnings = open_page(browser, site.url)
    loaded = page.evaluate(LOAD, ["ops", None])
    cores = page.evaluate("navigator.hardwareConcurrency")
    assert loaded["stats"]["wasmThreads"] == min(cores, 4) and loaded["notice"] is None
    page.evaluate("window.model.dispose()")
    wait_no_workers(page)
    page.close()
    plain, errors2, warnings2 = open_page(browser, site.plain_url)
    loaded = plain.evaluate(LOAD, ["ops", None])
    assert loaded["stats"]["wasmThreads"] == 1 and loaded["notice"] is None and not plain.workers
    plain.evaluate("window.model.dispose()")
    assert not errors and not errors2 and not warnings and not warnings2, (errors, errors2, warnings, warnings2)
    plain.close()


def test_not_isolated_runs_on_one_thread_with_a_notice(browser, site):
    page, errors, warnings = open_page(browser, site.plain_url)
    assert page.evaluate("crossOriginIsolated") is False
    loaded = page.evaluate(LOAD, ["ops", 2])
    notice = loaded["notice"]
    assert loaded["stats"]["wasmThreads"] == 1 and not page.workers
    assert notice.startswith("webtensor.load: 2 threads were asked for, but the model runs on 1: the page is not cross-origin isolated")
    assert "Cross-Origin-Opener-Policy: same-origin" in notice and "Cross-Origin-Embedder-Policy: require-corp" in notice
    assert warnings == [notice]
    e = site.expected["ops"]
    for k, (g, want) in enumerate(zip(page.evaluate(RUN, "ops"), e["outputs"])):
        assert np.array_equal(bits(g), expected_bits(want)), f"ops, not isolated, output {k}"
    page.evaluate("window.model.dispose()")
    assert not errors
    page.close()


# Page side: `n` load/dispose cycles on 2 threads of the ops artifact from its files in memory (so
# the cycle is the model's: compile, instantiate, start and end its Worker; no fetches), each
# model's shared memory registered in window.memories (counts window.collected when collected).
CYCLES = """async (n) => {
  const wt = await import('./vendor/webtensor/js/index.js');
  if (!window.files) {
    const man = await (await fetch('models/ops/manifest.json')).json();
    window.files = {};
    for (const name of ['manifest.json', ...Object.keys(man.files)]) {
      window.files[name] = new Uint8Array(await (await fetch(`models/ops/${name}`)).arrayBuffer());
    }
    window.collected = 0;
    window.memories = new FinalizationRegistry(() => { window.collected++; });
  }
  for (let i = 0; i < n; i++) {
    const model = await wt.load(window.files, { backend: 'wasm', threads: 2 });
    window.memories.register(model._backend.memory, i);
    model.dispose();
  }
}"""


def test_load_dispose_cycles_leave_no_worker_and_no_memory(browser, site):
    """1,000 load/dispose cycles on 2 threads: every Worker that started has ended (Playwright's
    worker 'close' event), every model's shared WebAssembly.Memory is collected (a
    FinalizationRegistry, after garbage collections forced over CDP), and the page's JS heap
    (CDP ``Runtime.getHeapUsage``, exact where ``performance.memory`` is quantized) grows by less
    than a bound from measurement: after 100 warm-up cycles, +70-90 KiB over the next 900
    (Chromium 1xx headless, 2 vCPUs); one leaked model per cycle would be megabytes."""
    page, errors, _ = open_page(browser, site.url)
    cdp = page.context.new_cdp_session(page)
    started, closed = [], []
    page.on("worker", lambda w: (started.append(w), w.on("close", lambda _: closed.append(w))))

    def heap_after_gc():
        for _ in range(3):
            cdp.send("HeapProfiler.collectGarbage")
            page.wait_for_timeout(20)           # finalizers run in a later task
        return cdp.send("Runtime.getHeapUsage")["usedSize"]
    page.evaluate(CYCLES, 100)
    before = heap_after_gc()
    page.evaluate(CYCLES, 900)
    wait_no_workers(page, 20)
    page.wait_for_timeout(200)                  # close events still in flight
    grew = heap_after_gc() - before
    for _ in range(20):
        if page.evaluate("window.collected") == 1000:
            break
        heap_after_gc()
    assert len(started) == 1000 and len(closed) == 1000
    assert page.evaluate("window.collected") == 1000, "every model's shared memory is collected"
    assert grew < 1 << 20, f"the JS heap grew {grew} bytes over 900 cycles"
    assert not errors
    page.close()


def test_worker_true_runs_the_threads_inside_the_models_worker(browser, site):
    """``{worker: true, threads: 3}``: the model's Web Worker drives (blocking while it waits, as a
    page's main thread may not), two Workers nested in it take tiles; bitwise the same outputs;
    dispose() ends all three."""
    page, errors, warnings = open_page(browser, site.url)
    for name, e in site.expected.items():
        loaded = page.evaluate(LOAD, [name, 3, True])
        assert loaded["notice"] is None
        got = page.evaluate(RUN, name)
        assert page.evaluate("window.model.stats().wasmThreads") == 3
        assert len(page.workers) == 3, name       # the model's worker and its two threads
        for k, (g, want) in enumerate(zip(got, e["outputs"])):
            assert np.array_equal(bits(g), expected_bits(want)), f"{name}, worker, 3 threads, output {k}"
        page.evaluate("window.model.dispose()")
        wait_no_workers(page)
    assert not errors and not warnings, (errors, warnings)
    page.close()


def test_workers_that_cannot_start_fail_the_load(browser, site):
    """Where Workers cannot be created (as under a Content-Security-Policy without ``worker-src``),
    load() rejects with an ArtifactError that says so."""
    page, errors, _ = open_page(browser, site.url)
    page.evaluate("() => { window.Worker = function () { throw new Error('blocked by the test'); }; }")
    got = page.evaluate("""async () => {
      const wt = await import('./vendor/webtensor/js/index.js');
      try { await wt.load('models/ops/', { backend: 'wasm', threads: 2 }); return null; }
      catch (e) { return [e.name, e.message]; }
    }""")
    assert got is not None and got[0] == "ArtifactError", got
    assert "module_threads.wasm: a thread could not start (blocked by the test)" in got[1]
    assert not page.workers and not errors
    page.close()

"""The web demo (``web-demo/index.html``) in headless Chromium: it trains the exported digits MLP in
the page on WebGPU (SwiftShader) and on WebAssembly, classifies a digit drawn with the mouse, gives
the same numbers as Python's ``webtensor.load`` for the same artifact and inputs (WebAssembly
bitwise, WebGPU within float32 tolerance), and says clearly when WebGPU is missing.
"""
import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest

from browser_util import BASE_FLAGS, CHROMIUM, serve, watch_errors, wait_for_phase

pytestmark = pytest.mark.browser

EPOCHS = 3
BACKENDS = ["webgpu", "wasm"]

# Page-side helper: base64 of a typed array's bytes (chunked: String.fromCharCode takes few arguments).
B64 = """const b64 = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = '';
  for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192)); return btoa(s); };"""


def f32(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4")


def digits(site):
    """(x_train, y_train, x_test, y_test) from the site's data/digits.bin, as the page decodes it."""
    meta = json.loads((site.path / "data" / "digits.json").read_text())
    raw = np.frombuffer((site.path / "data" / meta["file"]).read_bytes(), np.uint8)
    nt, ns = meta["n_train"], meta["n_test"]
    x = (raw[:(nt + ns) * 64].astype(np.float32) / np.float32(16)).reshape(-1, 8, 8, 1)
    y = raw[(nt + ns) * 64:].astype(np.int32)
    return x[:nt], y[:nt], x[nt:], y[nt:]


def array(dtype, shape, data) -> np.ndarray:
    """A safetensors_io.load entry as a numpy array."""
    return np.frombuffer(data, {"float32": "<f4", "int32": "<i4", "bool": "?"}[dtype]).reshape(shape)


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module", params=BACKENDS)
def trained(request, browser, demo_site, output_dir):
    """The demo after training the MLP for EPOCHS epochs on one backend (and its screenshot)."""
    backend = request.param
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    errors = watch_errors(page)
    page.goto(f"{demo_site.url}?model=mlp&backend={backend}&epochs={EPOCHS}")
    before = wait_for_phase(page, ["ready", "error"], 120)
    assert before["phase"] == "ready", before["error"]
    page.click("#train")
    after = wait_for_phase(page, ["done", "error"], 240)
    assert after["phase"] == "done", after["error"]
    page.screenshot(path=str(output_dir / f"demo-trained-{backend}.png"), full_page=True)
    yield SimpleNamespace(page=page, before=before, after=after, errors=errors, backend=backend)
    page.close()


def test_demo_trains_in_the_page(trained, output_dir):
    page, s = trained.page, trained.after
    assert s["backend"] == trained.backend and s["notice"] is None
    if trained.backend == "webgpu":
        assert s["webgpu"]["available"] and s["adapter"]
        assert page.inner_text("#backend-info").startswith("WebGPU (") and s["adapter"] in page.inner_text("#backend-info")
        assert s["threads"] is None
    else:  # the page's default, threads 'auto': navigator.hardwareConcurrency, at most 4
        threads = min(page.evaluate("navigator.hardwareConcurrency"), 4)
        assert s["isolated"] and s["threads"] == threads == page.evaluate("demo.model.stats().wasmThreads")
        assert page.inner_text("#backend-info") == f"WebAssembly (CPU, {threads} thread{'s' if threads > 1 else ''})"
    steps = trained.before["step"] + EPOCHS * (1438 // 32)
    assert s["step"] == steps and len(s["losses"]) == steps and s["epoch"] == EPOCHS
    losses = np.array([loss for _, loss in s["losses"]])
    assert np.isfinite(losses).all()
    assert losses[-20:].mean() < 0.4 * losses[:10].mean(), losses
    accuracy = [a for _, a in s["accuracies"]]
    assert len(accuracy) == EPOCHS + 1
    assert accuracy[0] < 0.3 and accuracy[-1] >= 0.88, accuracy
    assert page.inner_text("#m-accuracy") == f"{100 * accuracy[-1]:.1f} %"
    assert len(s["stepsPerSecond"]) == EPOCHS and min(s["stepsPerSecond"]) > 0
    assert float(page.inner_text("#m-speed")) > 0
    assert "Done after 3 epoch(s)" in page.inner_text("#status")
    assert not trained.errors
    record = output_dir / "steps_per_second.json"
    figures = json.loads(record.read_text()) if record.exists() else {}
    figures[trained.backend] = s["stepsPerSecond"]
    record.write_text(json.dumps(figures, indent=1))


def draw_vertical_stroke(page):
    """A '1': one vertical stroke down the middle of the pad, with the mouse."""
    page.click("#clear")
    box = page.locator("#pad").bounding_box()
    x, top, height = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.12, box["height"] * 0.76
    page.mouse.move(x, top)
    page.mouse.down()
    for i in range(1, 16):
        page.mouse.move(x + i % 2, top + height * i / 15)
    page.mouse.up()
    page.wait_for_function("""(() => { const d = demo.pad.toDigit();
        return d !== null && JSON.stringify(d) === JSON.stringify(demo.state.predictedDigit); })()""", timeout=30_000)
    return page.evaluate("demo.state")


def test_drawn_digit_is_classified_like_python(trained, demo_site, output_dir):
    import webtensor as wt
    from webtensor import safetensors_io
    page = trained.page
    s = draw_vertical_stroke(page)
    digit = np.array(s["digit"]).reshape(8, 8)
    assert digit.min() >= 0 and digit.max() <= 16
    assert (digit[:, :2] == 0).all() and (digit[:, 6:] == 0).all()      # ink only in the middle columns
    assert (digit[:, 2:6].sum(1) > 0).all()                                 # ... on every row
    p = np.array(s["probabilities"])
    assert p.shape == (10,) and abs(p.sum() - 1) < 1e-9
    assert s["prediction"] == int(p.argmax()) == 1
    assert page.inner_text("#prediction") == "1"
    page.screenshot(path=str(output_dir / f"demo-drawn-{trained.backend}.png"), full_page=True)

    # The same weights (saved by the page) and input in Python's loader on WebAssembly.
    saved = page.evaluate(f"async () => {{ {B64} return b64(await demo.model.saveWeights()); }}")
    tensors, meta = safetensors_io.load(base64.b64decode(saved))
    assert meta["format"] == "webtensor-weights"
    model = wt.load(demo_site.path / "models" / "mlp", "wasm")
    model.set_weights({name: array(dtype, shape, data) for name, (dtype, shape, data) in tensors.items()})
    want = softmax(model.predict((digit / 16).astype(np.float32).reshape(1, 8, 8, 1)).astype(np.float64))[0]
    if trained.backend == "wasm":
        np.testing.assert_allclose(p, want, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_allclose(p, want, rtol=1e-3, atol=1e-4)
    model.dispose()


# A fresh model in the page: evaluate, a few train steps on the first batches in order, evaluate.
PARITY_JS = B64 + """
const { kind, backend, steps, threads } = args;
const wt = demo.webtensor, d = demo.data;
const model = await wt.load(`models/${kind}/`, { backend, threads });
if (backend === 'wasm' && model.stats().wasmThreads !== threads) throw new Error(`${model.stats().wasmThreads} threads`);
const B = model.signatures.train_step.inputs[0].shape[0];
const evaluate = async () => (await model.run('evaluate', [d.xTest])).output_0.dataSync();
const logits0 = await evaluate();
const losses = [];
for (let s = 0; s < steps; s++) {
  losses.push((await model.trainStep(d.xTrain.subarray(s * B * 64, (s + 1) * B * 64), d.yTrain.subarray(s * B, (s + 1) * B))).dataSync()[0]);
}
const logits1 = await evaluate();
const one = (await model.predict(d.xTest.subarray(0, 64))).dataSync();
const result = { backend: model.backend, logits0: b64(logits0), logits1: b64(logits1), losses: b64(Float32Array.from(losses)), one: b64(one) };
model.dispose();
return result;
"""
STEPS = 3


@pytest.fixture(scope="module")
def demo_page(browser, demo_site):
    page = browser.new_page()
    page.goto(f"{demo_site.url}?backend=wasm")
    assert wait_for_phase(page, ["ready", "error"], 120)["phase"] == "ready"
    yield page
    page.close()


def in_page(page, kind, backend, threads=1):
    r = page.evaluate(f"async (args) => {{ {PARITY_JS} }}", {"kind": kind, "backend": backend, "steps": STEPS, "threads": threads})
    assert r["backend"] == backend
    return {k: f32(v) for k, v in r.items() if k != "backend"}


def in_python(site, kind):
    import webtensor as wt
    x_train, y_train, x_test, _ = digits(site)
    model = wt.load(site.path / "models" / kind, "wasm")
    out = {"logits0": model.run("evaluate", x_test)["output_0"].ravel()}
    out["losses"] = np.array([model.train_step(x_train[s * 32:(s + 1) * 32], y_train[s * 32:(s + 1) * 32])
                              for s in range(STEPS)], np.float32)
    out["logits1"] = model.run("evaluate", x_test)["output_0"].ravel()
    out["one"] = model.predict(x_test[:1]).ravel()
    model.dispose()
    return out


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_wasm_in_the_page_matches_python_bitwise(demo_page, demo_site, kind, threads):
    """On one thread and on three (Web Workers; the evaluate signature's kernels are split)."""
    got, want = in_page(demo_page, kind, "wasm", threads), in_python(demo_site, kind)
    for key in want:
        assert got[key].tobytes() == want[key].tobytes(), key
    assert not np.array_equal(want["logits0"], want["logits1"])           # the steps changed the weights


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_webgpu_in_the_page_matches_python_within_tolerance(demo_page, demo_site, kind):
    got, want = in_page(demo_page, kind, "webgpu"), in_python(demo_site, kind)
    np.testing.assert_allclose(got["logits0"], want["logits0"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["one"], want["one"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["logits1"], want["logits1"], rtol=1e-3, atol=1e-4)


def test_initial_logits_match_a_numpy_forward_pass(demo_page, demo_site):
    """Independent of webtensor: the MLP's layers in numpy with the artifact's initial weights."""
    from webtensor import safetensors_io
    tensors, _ = safetensors_io.load((demo_site.path / "models" / "mlp" / "weights.safetensors").read_bytes())
    w = {name: array(dtype, shape, data) for name, (dtype, shape, data) in tensors.items()}
    h = digits(demo_site)[2].reshape(-1, 64)
    for layer in ("dense", "dense_1"):
        h = np.maximum(h @ w[f"{layer}/kernel"] + w[f"{layer}/bias"], 0)
    want = h @ w["dense_2/kernel"] + w["dense_2/bias"]
    got = in_page(demo_page, "mlp", "wasm")["logits0"].reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_without_webgpu_the_page_says_so_and_trains_on_wasm(browser_type, demo_site, output_dir):
    browser = browser_type.launch(executable_path=CHROMIUM, args=BASE_FLAGS)      # no WebGPU flags
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        errors = watch_errors(page)
        for backend in ("auto", "webgpu"):
            page.goto(f"{demo_site.url}?model=mlp&backend={backend}&epochs=1")
            s = wait_for_phase(page, ["ready", "error"], 120)
            assert s["phase"] == "ready", s["error"]
            assert s["backend"] == "wasm" and not s["webgpu"]["available"]
            assert page.is_visible("#notice")
            assert page.inner_text("#notice").startswith("WebGPU is not available (")
            assert "WebAssembly" in page.inner_text("#notice")
            assert page.inner_text("#webgpu-info").startswith("not available")
            assert page.inner_text("#backend-info").startswith("WebAssembly (CPU, ")
        page.click("#train")
        s = wait_for_phase(page, ["done", "error"], 120)
        assert s["phase"] == "done" and s["accuracies"][-1][1] >= 0.8, s["accuracies"]
        page.screenshot(path=str(output_dir / "demo-no-webgpu.png"), full_page=True)
        assert not errors
    finally:
        browser.close()


def test_not_isolated_page_shows_one_thread_and_why(browser, demo_site):
    """Served without COOP/COEP (as by ``python -m http.server``), the page runs WebAssembly on one
    thread and its notice says why and what to send."""
    url, server = serve(demo_site.path, isolated=False)
    try:
        page = browser.new_page()
        errors = watch_errors(page)
        page.goto(f"{url}?backend=wasm&threads=2")
        s = wait_for_phase(page, ["ready", "error"], 120)
        assert s["phase"] == "ready", s["error"]
        assert not s["isolated"] and s["threads"] == 1
        assert page.inner_text("#backend-info") == "WebAssembly (CPU, 1 thread)"
        assert page.is_visible("#notice")
        text = page.inner_text("#notice")
        assert text == s["notice"] and text.startswith("2 threads were asked for, but the model runs on 1: the page is not cross-origin isolated")
        assert "Cross-Origin-Opener-Policy: same-origin" in text and "web-demo/serve.py" in text
        assert not errors
        page.close()
    finally:
        server.shutdown()
        server.server_close()

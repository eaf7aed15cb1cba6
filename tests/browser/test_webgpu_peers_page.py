"""The WebGPU peer benchmark's page (``bench/webgpu_peers.html``, driven by
``bench/bench_webgpu_peers_chromium.py``) runs in headless Chromium: a smoke run on the fused chain
only (one short round), whose webtensor output must match jax-js's on the same WebGPU adapter and
take one dispatch in one submit. The benchmark itself is not timed here (bench only)."""
import importlib.util
import sys

import pytest

from browser_util import ROOT

pytestmark = pytest.mark.browser

# max |difference| measured between webtensor's and jax-js's chain on SwiftShader: 4.8e-7 (|y| <= ~3)
CHAIN_TOLERANCE = 5e-6


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_site(tmp_path_factory):
    """The chain's artifact (bench/export_bench.py) served beside the repository by the bench driver."""
    out = tmp_path_factory.mktemp("peers")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        _load("export_bench", ROOT / "bench" / "export_bench.py").main(str(out), only=["chain"])
    finally:
        sys.path.remove(str(ROOT / "bench"))
    driver = _load("bench_webgpu_peers_chromium", ROOT / "bench" / "bench_webgpu_peers_chromium.py")
    with driver.serve(str(out)) as url:
        yield driver, url


def test_peer_bench_page_runs_and_agrees_with_jax_js(browser, bench_site):
    driver, url = bench_site
    result = driver.run_page(browser, url, timeout_s=120, seconds=0.01, repeats=1, peers="jax", workloads="chain")
    assert "swiftshader" in result["adapter"].lower(), result["adapter"]
    assert result["calls"]["webtensor"]["chain"] == {"dispatches": 1, "submits": 1}, result["calls"]
    assert isinstance(result["calls"]["jax-js"]["chain"], dict), result["calls"]     # not an error message
    assert result["differences"]["jax-js"]["chain"] <= CHAIN_TOLERANCE, result["differences"]
    assert result["ratios"]["jax-js"]["chain"] > 0
    assert result["lines"][1].startswith("chain ")

"""Fixtures for the headless-browser tests of the web demo (pytest-playwright).

Chromium is Debian's ``/usr/bin/chromium`` (never a downloaded browser) with the WebGPU flags of
``shared/PLATFORM.md`` (WebGPU on SwiftShader). The site is built once per session by
``web-demo/build.py`` into a temporary folder (npm pack, wheel, Pyodide files, data, artifacts)
and served from ``127.0.0.1`` on a free port (a secure context, so ``navigator.gpu`` exists) by the
demo's server (``web-demo/serve.py``, cross-origin isolated: COOP/COEP headers).
Screenshots go to ``test-output/browser/`` at the repository root (gitignored).
"""
from pathlib import Path
from types import SimpleNamespace

import pytest

from browser_util import CHROMIUM, FLAGS, OUTPUT, load_web_demo_module, serve


# pytest-playwright's Playwright and browser fixtures, per module instead of per session: a running
# sync Playwright keeps its asyncio loop set on the main thread, which breaks asyncio.run() and
# sync_playwright() in every later test of the session (tests/pyodide, fit_async tests).
@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser_type(playwright, browser_name):
    return getattr(playwright, browser_name or "chromium")


@pytest.fixture(scope="module")
def launch_browser(browser_type_launch_args, browser_type):
    return lambda **kwargs: browser_type.launch(**{**browser_type_launch_args, **kwargs})


@pytest.fixture(scope="module")
def browser(launch_browser):
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments: Debian's Chromium with WebGPU on SwiftShader."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": FLAGS}


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory):
    """The built site (``web-demo/build.py``) served on 127.0.0.1: ``.url`` (ends with '/'),
    ``.path`` (the folder), ``.build`` (its build.json)."""
    out = tmp_path_factory.mktemp("web-demo")
    info = load_web_demo_module("build").build(out)
    url, server = serve(out)
    yield SimpleNamespace(url=url, path=out, build=info)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT

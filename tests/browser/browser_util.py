"""Shared by the browser tests: paths, Chromium flags, the demo's server, page helpers."""
import importlib.util
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
BASE_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run"]
WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader",
                "--use-webgpu-adapter=swiftshader"]
FLAGS = BASE_FLAGS + WEBGPU_FLAGS
OUTPUT = ROOT / "test-output" / "browser"


def watch_errors(page) -> list:
    """The page's uncaught exceptions, as a list that fills while the page runs."""
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def wait_for_phase(page, phases, timeout_s: float) -> dict:
    """Wait until the demo's ``window.demo.state.phase`` is one of ``phases``; returns the state."""
    page.wait_for_function(f"window.demo && {list(phases)!r}.includes(window.demo.state.phase)",
                           timeout=timeout_s * 1000)
    return page.evaluate("window.demo.state")


def load_web_demo_module(name: str):
    """``web-demo/<name>.py`` as a module (web-demo/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"web_demo_{name}", ROOT / "web-demo" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(directory, isolated: bool = True):
    """Serve ``directory`` on a free port of 127.0.0.1 with the demo's server (``web-demo/serve.py``:
    the COOP/COEP headers when ``isolated``) in a daemon thread; returns (the base URL, ending with
    '/', and the server, to ``shutdown()`` and ``server_close()``)."""
    server = load_web_demo_module("serve").make_server(directory, isolated=isolated, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server

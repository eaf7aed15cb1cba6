"""Shared by the browser tests: paths, Chromium flags, page helpers."""
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

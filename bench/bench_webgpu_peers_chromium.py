"""The WebGPU peer benchmark (``bench/webgpu_peers.mjs``: webtensor's artifacts beside jax-js and
TF.js, same workloads, weights, counters and ratio table as ``node bench/bench_webgpu_peers.mjs``)
in headless Chromium, on the page's WebGPU adapter (SwiftShader on a machine without a GPU).

    python bench/bench_webgpu_peers_chromium.py [--runs 1] [--seconds 1] [--repeats 3] [--best]
        [--peers jax,tfjs] [--workloads matmul256,matmul1024,mlp,cnn,chain]

Exports the artifacts (``bench/export_bench.py --peers``), serves the repository root (the page,
``js/``, ``node_modules/``) and the artifacts (under ``/artifacts/``) on 127.0.0.1, and opens
``bench/webgpu_peers.html`` in Debian's ``/usr/bin/chromium`` with WebGPU on (Playwright for
Python; never a downloaded browser). Each run is a fresh page; with ``--runs`` > 1 the ratios'
ranges over the runs close the output. ``--best``: rates and ratios from each runtime's fastest
round (on a machine shared with other work) instead of the median round and per-round ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# shared/PLATFORM.md's flags (as tests/browser/browser_util.py): WebGPU on SwiftShader, headless
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader",
         "--use-webgpu-adapter=swiftshader"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The repository root, with ``/artifacts/`` mapped to the exported artifacts' folder."""

    def __init__(self, *args, artifacts: str, **kwargs):
        self.artifacts = artifacts
        super().__init__(*args, directory=str(ROOT), **kwargs)

    def translate_path(self, path):
        if path.startswith("/artifacts/"):
            local = super().translate_path(path[len("/artifacts"):])
            return os.path.join(self.artifacts, os.path.relpath(local, str(ROOT)))
        return super().translate_path(path)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(artifacts: str):
    """An HTTP server on 127.0.0.1 (a secure context: ``navigator.gpu`` exists); yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, artifacts=artifacts))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def export(out: str, python: str = sys.executable) -> None:
    """The artifacts of ``bench/export_bench.py --peers`` in ``out``."""
    subprocess.run([python, str(ROOT / "bench" / "export_bench.py"), out, "--peers"], check=True)


def run_page(browser, base_url: str, timeout_s: float = 1800, **query) -> dict:
    """One run of ``bench/webgpu_peers.html`` in a new page of ``browser``: its ``window.benchResult``.

    Raises:
        RuntimeError: the page reported an error.
    """
    page = browser.new_page()
    try:
        page.on("console", lambda m: m.type == "error" and print(f"  page: {m.text}", file=sys.stderr))
        page.goto(f"{base_url}bench/webgpu_peers.html?{urlencode(query)}")
        page.wait_for_function("window.benchResult !== undefined", timeout=timeout_s * 1000, polling=500)
        result = page.evaluate("window.benchResult")
    finally:
        page.close()
    if "error" in result:
        raise RuntimeError(f"the benchmark page failed: {result['error']}")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seconds", type=float, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--best", action="store_true", help="rates and ratios from the fastest rounds")
    p.add_argument("--peers", default="jax,tfjs")
    p.add_argument("--workloads", default="matmul256,matmul1024,mlp,cnn,chain")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = tempfile.mkdtemp(prefix="webtensor-peers-")
    ratios = []
    try:
        export(out)
        with serve(out) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                for run in range(args.runs):
                    r = run_page(browser, url, seconds=args.seconds, repeats=args.repeats, peers=args.peers,
                                 workloads=args.workloads, best=int(args.best))
                    print(f"run {run + 1}: Chromium {browser.version}; adapter: {r['adapter']}; "
                          f"{'best' if args.best else 'median'} of {args.repeats} x {args.seconds:g} s")
                    print("\n".join(r["lines"]), flush=True)
                    ratios.append(r["ratios"])
            finally:
                browser.close()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if len(ratios) > 1:
        print(f"ratio ranges over {len(ratios)} runs (webtensor's rate / the peer's):")
        for peer in ratios[0]:
            for w in ratios[0][peer]:
                vs = [r[peer][w] for r in ratios if r[peer][w] is not None]
                if vs:
                    print(f"  {w:<12} / {peer:<8} x{min(vs):.2f}-{max(vs):.2f}")


if __name__ == "__main__":
    main()

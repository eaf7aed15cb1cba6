"""Serve a folder over HTTP as a cross-origin isolated site (what threads need in a browser).

    python web-demo/serve.py [--dir web-demo] [--port 8000] [--bind 127.0.0.1] [--no-isolation]

Python's ``http.server`` (standard library only) with two headers on every response:
``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``.
With both, the page is *cross-origin isolated* (``crossOriginIsolated`` is true), which browsers
require before they share memory between threads (``SharedArrayBuffer``, a shared
``WebAssembly.Memory``): the npm runtime's ``load(dir, {threads})`` needs it (HTML Living Standard,
"Cross-origin isolation"; https://web.dev/articles/coop-coep). A page isolated this way may load
cross-origin resources only if they opt in (CORS, or ``Cross-Origin-Resource-Policy``); the demo
loads nothing cross-origin. ``--no-isolation`` leaves the headers out (the runtime then falls back
to one thread, with a notice).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}


class Handler(http.server.SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` that adds :data:`ISOLATION_HEADERS` unless ``isolated`` is
    False, and logs nothing when ``quiet``."""

    isolated = True
    quiet = False

    def end_headers(self):
        if self.isolated:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, *args):
        if not self.quiet:
            super().log_message(*args)


def make_server(directory, port: int = 0, bind: str = "127.0.0.1", isolated: bool = True,
                quiet: bool = False) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server for ``directory`` on ``bind:port`` (0: a free port; read it from
    ``server.server_address[1]``); call ``serve_forever()`` on it.

    Args:
        directory: the folder to serve.
        port: the TCP port (0 picks a free one).
        bind: the address to listen on (the default, loopback, is a secure context in browsers).
        isolated: send the COOP/COEP headers (:data:`ISOLATION_HEADERS`).
        quiet: log no requests.

    Raises:
        FileNotFoundError: ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    handler = type("IsolatedHandler" if isolated else "PlainHandler", (Handler,),
                   {"isolated": isolated, "quiet": quiet})
    return http.server.ThreadingHTTPServer((bind, port), functools.partial(handler, directory=str(directory)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent, help="folder to serve (default: web-demo/)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--no-isolation", action="store_true", help="leave out the COOP/COEP headers")
    args = parser.parse_args(argv)
    server = make_server(args.dir, args.port, args.bind, isolated=not args.no_isolation)
    host, port = server.server_address[:2]
    print(f"serving {args.dir} on http://{host}:{port}/ "
          f"({'cross-origin isolated: COOP same-origin, COEP require-corp' if not args.no_isolation else 'not isolated'}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A model server in TensorFlow Serving's image, for Python (the npm package's ``webtensor serve``,
``js/serve.js``, is the same server for Node; both answer the cases of ``tests/serving_cases.json``).

    python -m webtensor serve MODEL_BASE_PATH [MODEL_BASE_PATH ...] [--port 8501] [--model_name NAME]

Layout: each ``MODEL_BASE_PATH`` holds numbered version folders (``1/``, ``2/``, ...), each an artifact
written by ``Model.export``; the highest version is served, under the folder's name unless
``--model_name`` is given. REST API (https://www.tensorflow.org/tfx/serving/api_rest):

- ``GET /v1/models/NAME[/versions/V]``: model status (``GetModelStatusResponse`` as JSON);
- ``GET /v1/models/NAME[/versions/V]/metadata``: the ``serving_default`` signature;
- ``POST /v1/models/NAME[/versions/V]:predict`` with ``{"instances": [...]}`` (row format, answered
  with ``{"predictions": [...]}``) or ``{"inputs": ...}`` (columnar, answered with ``{"outputs": ...}``).

Errors answer ``{"error": "..."}`` with 400 (bad JSON, shapes, dtypes), 404 (unknown model, version or
path), 405, 413 (a body over ``max_body_bytes``) or 500; a request never stops the server. Concurrent
predict requests are batched: a thread per model fills the artifact's fixed batch (the leading
dimension shared by every predict input and output) with the rows of the requests waiting, pads the
rest with zeros, runs it once and hands each request its rows. The HTTP server is the standard
library's ``ThreadingHTTPServer`` (a thread per connection); ``shutdown()`` stops accepting and
returns once in-flight requests are answered.
"""
from __future__ import annotations

import json
import math
import os
import queue
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

__all__ = ["ServingError", "ModelServer", "serve", "find_versions"]

TF_DTYPES = {"float32": "DT_FLOAT", "int32": "DT_INT32", "bool": "DT_BOOL"}
INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
ROUTE = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?:/(metadata)|:(predict|classify|regress))?/?$")


class ServingError(Exception):
    """An error answered with HTTP status ``status`` and TF Serving's body ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def find_versions(base_path) -> list[int]:
    """The version folders of ``base_path`` (directories named by a number), highest first.

    Raises:
        FileNotFoundError: ``base_path`` cannot be read, or holds no version folder.
    """
    try:
        names = os.listdir(base_path)
    except OSError as e:
        raise FileNotFoundError(f"webtensor serve: cannot read model base path {base_path} ({e.strerror})") from None
    versions = sorted((int(n) for n in names if re.fullmatch(r"\d{1,15}", n) and os.path.isdir(os.path.join(base_path, n))),
                      reverse=True)
    if not versions:
        raise FileNotFoundError(f"webtensor serve: no version folder (a directory named by a number, e.g. 1/) in {base_path}")
    return versions


def _size(shape) -> int:
    return math.prod(shape)


class _Servable:
    """One served model: the highest version's artifact, its ``predict`` signature and a batcher."""

    def __init__(self, name: str, version: int, model, max_batch_wait: float):
        self.name, self.version, self.model = name, version, model
        sig = model.signatures.get("predict")
        if sig is None:
            raise ValueError(f"webtensor serve: model '{name}' version {version} has no 'predict' signature")
        self.inputs, self.outputs = sig["inputs"], sig["outputs"]
        leading = [s["shape"][0] if s["shape"] else -1 for s in self.inputs + self.outputs]
        # Batchable when every input and output shares one leading (batch) dimension.
        self.batch_size = leading[0] if leading and all(d == leading[0] and d > 0 for d in leading) else 0
        self.max_batch_wait = max_batch_wait
        self._queue: queue.Queue = queue.Queue()
        self._thread = None
        if self.batch_size:
            self._thread = threading.Thread(target=self._batcher, name=f"webtensor-serve-{name}", daemon=True)
            self._thread.start()

    def predict(self, rows: list, n: int) -> list:
        """Run ``n`` rows (one numpy array per input, ``n`` rows each); returns arrays per output."""
        if not self.batch_size:
            out = self.model.run("predict", rows)
            return [out[s["name"]] for s in self.outputs]
        request = {"rows": rows, "n": n, "done": threading.Event(), "out": None, "error": None}
        self._queue.put(request)
        request["done"].wait()
        if request["error"] is not None:
            raise request["error"]
        return request["out"]

    def _batcher(self):
        import numpy as np
        from .hostdata import NUMPY
        B = self.batch_size
        waiting = []                               # [request, rows taken]
        while True:
            if not waiting:
                item = self._queue.get()
                if item is None:
                    return
                waiting.append([item, 0])
            # Collect what has arrived (and, with max_batch_wait, what arrives within it) up to a batch.
            deadline = None
            while sum(r["n"] - t for r, t in waiting) < B:
                try:
                    if self.max_batch_wait > 0:
                        import time
                        deadline = deadline or time.monotonic() + self.max_batch_wait
                        item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    else:
                        item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                waiting.append([item, 0])
            batch = [np.zeros((B, *s["shape"][1:]), NUMPY[s["dtype"]]) for s in self.inputs]
            parts, used = [], 0
            for entry in waiting:
                request, taken = entry
                count = min(B - used, request["n"] - taken)
                if count <= 0:
                    continue
                for k in range(len(self.inputs)):
                    batch[k][used:used + count] = request["rows"][k][taken:taken + count]
                parts.append((request, taken, used, count))
                if request["out"] is None:
                    request["out"] = [np.zeros((request["n"], *s["shape"][1:]), NUMPY[s["dtype"]]) for s in self.outputs]
                    request["filled"] = 0
                entry[1] += count
                used += count
                if used == B:
                    break
            waiting = [e for e in waiting if e[1] < e[0]["n"]]
            try:
                out = self.model.run("predict", batch)
            except Exception as e:  # the model failed: these requests get a 500, the server goes on
                for request, *_ in parts:
                    request["error"] = e
                    request["done"].set()
                waiting = [e for e in waiting if e[0]["error"] is None]
                continue
            for request, first, at, count in parts:
                for k, s in enumerate(self.outputs):
                    request["out"][k][first:first + count] = out[s["name"]][at:at + count]
                request["filled"] += count
                if request["filled"] == request["n"]:
                    request["done"].set()

    def close(self):
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self.model.dispose()

    def status(self) -> dict:
        return {"model_version_status": [{"version": str(self.version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self) -> dict:
        def spec(s):
            dims = [{"size": str(-1 if i == 0 and self.batch_size else d), "name": ""} for i, d in enumerate(s["shape"])]
            return {"dtype": TF_DTYPES.get(s["dtype"], "DT_INVALID"),
                    "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": s["name"]}
        sig = {"inputs": {s["name"]: spec(s) for s in self.inputs}, "outputs": {s["name"]: spec(s) for s in self.outputs},
               "method_name": "tensorflow/serving/predict"}
        return {"model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
                "metadata": {"signature_def": {"signature_def": {"serving_default": sig}}}}


# ---- request parsing (the same rules and messages as js/serve.js) ------------------------------

def _describe(v) -> str:
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "an object"
    return "a boolean" if isinstance(v, bool) else "a number" if isinstance(v, (int, float)) else "a string"


def _flatten(value, dims, out: list, dtype: str, where: str) -> None:
    """Append the nested lists ``value`` of shape ``dims`` to ``out`` (checked scalars)."""
    if not dims:
        out.append(_scalar(value, dtype, where))
        return
    if not isinstance(value, list) or len(value) != dims[0]:
        raise ServingError(400, f"{where}: expected a list of {dims[0]} (shape [{','.join(map(str, dims))}]), got {_describe(value)}")
    for item in value:
        _flatten(item, dims[1:], out, dtype, where)


def _scalar(v, dtype: str, where: str):
    if dtype == "bool":
        if not isinstance(v, bool):
            raise ServingError(400, f"{where}: expected true or false, got {json.dumps(v)[:40]}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ServingError(400, f"{where}: expected a number, got {json.dumps(v)[:40]}")
    if dtype == "int32" and not (float(v).is_integer() and INT32_MIN <= v <= INT32_MAX):
        raise ServingError(400, f"{where}: expected an int32 integer, got {v}")
    return v


def _named_values(value, specs, where: str) -> list:
    """The values of one instance (or of "inputs") in signature order."""
    if len(specs) == 1 and not isinstance(value, dict):
        return [value]                      # a tensor value is a number, boolean or list, never an object
    names = ", ".join(f"'{s['name']}'" for s in specs)
    if not isinstance(value, dict):
        raise ServingError(400, f"{where}: expected an object keyed by input name ({names})")
    for key in value:
        if not any(s["name"] == key for s in specs):
            raise ServingError(400, f"{where}: unknown input '{str(key)[:60]}' (inputs: {names})")
    missing = [s["name"] for s in specs if s["name"] not in value]
    if missing:
        raise ServingError(400, f"{where}: input '{missing[0]}' is missing")
    return [value[s["name"]] for s in specs]


def parse_predict(body, servable: _Servable):
    """A predict request's rows: ``(rows: [numpy array per input], n, columnar)``."""
    import numpy as np
    from .hostdata import NUMPY
    if not isinstance(body, dict):
        raise ServingError(400, 'the request body must be a JSON object with "instances" or "inputs"')
    if ("instances" in body) == ("inputs" in body):
        raise ServingError(400, 'the request must have exactly one of "instances" (row format) or "inputs" (columnar format)')
    sig_name = body.get("signature_name")
    if sig_name is not None and sig_name not in ("", "serving_default", "predict"):
        raise ServingError(400, f"signature '{str(sig_name)[:60]}' not found (this model serves 'serving_default')")
    specs, B = servable.inputs, servable.batch_size
    per_row = [s["shape"][1:] if B else s["shape"] for s in specs]
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError(400, '"instances" must be a non-empty list, one item per row')
        if not B and len(instances) != 1:
            raise ServingError(400, "this model takes exactly one instance of fixed shape (its predict inputs have no shared batch dimension)")
        flat = [[] for _ in specs]
        for i, inst in enumerate(instances):
            for k, (s, v) in enumerate(zip(specs, _named_values(inst, specs, f"instance {i}"))):
                _flatten(v, per_row[k], flat[k], s["dtype"], f"instance {i}, input '{s['name']}'")
        n = len(instances)
        rows = [np.asarray(f, NUMPY[s["dtype"]]).reshape((n, *per_row[k]) if B else s["shape"]) for k, (s, f) in enumerate(zip(specs, flat))]
        return rows, n, False
    rows, n = [], None
    for k, (s, v) in enumerate(zip(specs, _named_values(body["inputs"], specs, '"inputs"'))):
        length = (len(v) if isinstance(v, list) else -1) if B else 1
        if B and length < 1:
            raise ServingError(400, f"input '{s['name']}': expected a list of rows (shape [N, {','.join(map(str, per_row[k]))}]), got {_describe(v)}")
        if n is None:
            n = length
        elif length != n:
            raise ServingError(400, f"inputs have different numbers of rows ({n} and {length} for '{s['name']}')")
        flat: list = []
        shape = [length, *per_row[k]] if B else s["shape"]
        _flatten(v, shape, flat, s["dtype"], f"input '{s['name']}'")
        rows.append(np.asarray(flat, NUMPY[s["dtype"]]).reshape(shape))
    return rows, n, True


def _predict_response(servable: _Servable, outs: list, columnar: bool) -> dict:
    specs = servable.outputs
    if columnar:
        values = [o.tolist() for o in outs]
        return {"outputs": values[0] if len(specs) == 1 else {s["name"]: v for s, v in zip(specs, values)}}
    n = len(outs[0]) if servable.batch_size else 1
    rows = [[o[i].tolist() for o in outs] if servable.batch_size else [o.tolist() for o in outs] for i in range(n)]
    return {"predictions": [r[0] if len(specs) == 1 else {s["name"]: v for s, v in zip(specs, r)} for r in rows]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webtensor-serve"
    disable_nagle_algorithm = True    # headers and body are two writes: without it, 40 ms delayed ACKs

    def log_message(self, format, *args):   # quiet: the server logs models, not every request
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if not self._body_read or self.server.closing:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        self._body_read = method not in ("POST", "PUT")    # an unread body: the connection closes
        try:
            try:
                self._route(method)
            except ServingError as e:
                self._reply(e.status, {"error": str(e)})
            except ConnectionError:
                raise
            except Exception as e:  # never let a request take the server down
                self._reply(500, {"error": f"internal error: {e}"})
        except ConnectionError:     # the client went away: nothing to answer
            self.close_connection = True

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _body(self):
        limit = self.server.max_body_bytes
        declared = self.headers.get("content-length")
        if declared is None:
            if self.headers.get("transfer-encoding"):
                raise ServingError(411, "chunked request bodies are not supported: send a content-length header")
            declared = "0"
        try:
            length = int(declared)
        except ValueError:
            raise ServingError(400, "the content-length header is not a number") from None
        if length < 0 or length > limit:
            raise ServingError(413, f"the request body is {length} bytes, over the limit of {limit}")
        data = self.rfile.read(length)
        self._body_read = True
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as e:
            raise ServingError(400, f"JSON Parse error: {e}") from None

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        m = ROUTE.match(path)
        if not m:
            raise ServingError(404, f"not found: {path[:100]} (paths: /v1/models/NAME, /v1/models/NAME/metadata, /v1/models/NAME:predict)")
        raw_name, version, metadata, verb = m.groups()
        name = unquote(raw_name)
        servable = self.server.servables.get(name)
        if servable is None:
            raise ServingError(404, f"Servable not found for request: Latest({name[:100]})")
        if version is not None and int(version) != servable.version:
            raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")
        if verb:
            if method != "POST":
                raise ServingError(405, f"{verb} takes POST, got {method}")
            body = self._body()
            if verb != "predict":
                raise ServingError(400, f"{verb} is not supported: webtensor serves predict")
            rows, n, columnar = parse_predict(body, servable)
            outs = servable.predict(rows, n)
            return self._reply(200, _predict_response(servable, outs, columnar))
        if method != "GET":
            raise ServingError(405, f"{path} takes GET, got {method}")
        self._reply(200, servable.metadata() if metadata else servable.status())


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


class ModelServer(ThreadingHTTPServer):
    """The server ``serve()`` returns: ``port``, ``servables`` ({name: model}), ``serve_forever()``,
    ``shutdown()`` (graceful: stops accepting, answers in-flight requests, frees the models)."""

    daemon_threads = False        # server_close() joins the request threads: in-flight requests finish
    block_on_close = True
    request_queue_size = 256      # listen backlog (socketserver's default, 5, resets bursts of clients)

    def __init__(self, address, servables: dict, max_body_bytes: int):
        self.servables = servables
        self.max_body_bytes = max_body_bytes
        self.closing = False
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):   # a client that went away is no error
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def shutdown(self) -> None:
        self.closing = True
        super().shutdown()
        self.server_close()
        for s in self.servables.values():
            s.close()


def serve(models, *, port: int = 8501, host: str = "127.0.0.1", backend: str = "wasm",
          max_batch_wait: float = 0.0, max_body_bytes: int = 16 << 20, log=None) -> ModelServer:
    """Load the models and return a bound (not yet serving) ``ModelServer``: call ``serve_forever()``
    (in a thread, or the main one) and ``shutdown()`` to stop.

    Args:
        models: ``[(base_path, name or None)]``; a name defaults to the base path's folder name.
        port: TCP port (0 picks a free one). host: address to bind.
        backend: ``webtensor.load``'s backend (``'wasm'``, ``'webgpu'`` or ``'auto'``).
        max_batch_wait: seconds a partial batch waits for more requests (0: takes only those waiting).
        max_body_bytes: the largest request body accepted (413 beyond it).

    Raises:
        FileNotFoundError: a base path without version folders. ValueError: two models of one name, or
        a model without a ``predict`` signature. ``webtensor.load``'s errors for a damaged artifact.
    """
    from .artifact import load
    servables: dict = {}
    try:
        for base_path, name in models:
            name = name or os.path.basename(os.path.abspath(base_path))
            if name in servables:
                raise ValueError(f"webtensor serve: two models are named '{name}' (use --model_name)")
            version = find_versions(base_path)[0]
            path = os.path.join(base_path, str(version))
            servables[name] = _Servable(name, version, load(path, backend), max_batch_wait)
            if log:
                log(f"serving model '{name}' version {version} from {path} ({servables[name].model.backend}, "
                    f"batch {servables[name].batch_size or 'fixed'})")
        return ModelServer((host, port), servables, max_body_bytes)
    except BaseException:
        for s in servables.values():
            s.close()
        raise

"""The Python model server (``webtensor.serving``, ``python -m webtensor serve``) on the hand-built linear
artifact (``js/test/fixtures/make_fixtures.py``: y = x @ W + b, x [8, 4] -> y [8, 3], batch 8). Each
row of y depends only on its row of x, so every served row must equal the expected row exactly,
whatever batch it shared and whatever padding filled it. The bad requests are the ones the Node
server answers too (``tests/serving_cases.json``)."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from webtensor.serving import serve

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests" / "serving_cases.json").read_text())["cases"]

pytest.importorskip("wasmtime")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    subprocess.run([sys.executable, str(ROOT / "js" / "test" / "fixtures" / "make_fixtures.py"), str(out / "fx")],
                   check=True, stdout=subprocess.DEVNULL)
    for v in ("1", "3"):
        shutil.copytree(out / "fx" / "linear", out / "linear" / v)
    (out / "linear" / "tmp").mkdir()
    (out / "linear" / "7").write_text("a file, not a version folder")
    (out / "empty").mkdir()
    e = json.loads((out / "fx" / "expected.json").read_text())
    x = np.asarray(e["x"], np.float32).reshape(8, 4)
    y = np.asarray(e["predict"]["y"], np.float32).reshape(8, 3)
    return out, x, y


def call(port, method, path, body=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw.encode() if raw is not None else None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"content-type": "application/json"} if data else {})
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


@pytest.fixture(scope="module")
def server(base):
    out, _, _ = base
    srv = serve([(str(out / "linear"), None)], port=0, max_batch_wait=0.02, max_body_bytes=4096)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def test_status_and_metadata(server):
    status, body = call(server.port, "GET", "/v1/models/linear")
    assert status == 200
    assert body == {"model_version_status": [{"version": "3", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    status, meta = call(server.port, "GET", "/v1/models/linear/versions/3/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "linear", "signature_name": "", "version": "3"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["x"] == {"dtype": "DT_FLOAT", "name": "x", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}, {"size": "4", "name": ""}], "unknown_rank": False}}
    assert list(sig["outputs"]) == ["y"]


def test_row_and_columnar_formats_are_exact(server, base):
    _, x, y = base
    status, body = call(server.port, "POST", "/v1/models/linear:predict", {"instances": x[:3].tolist()})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[:3])
    status, body = call(server.port, "POST", "/v1/models/linear:predict", {"instances": [{"x": x[5].tolist()}]})
    np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[5:6])
    rows = np.concatenate([x, x[:3]])                  # 11 rows: two runs of the 8-row artifact
    status, body = call(server.port, "POST", "/v1/models/linear:predict", {"inputs": rows.tolist()})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(body["outputs"], np.float32), np.concatenate([y, y[:3]]))


def test_concurrent_requests_are_batched(server, base):
    _, x, y = base
    model = server.servables["linear"].model
    runs = model.runs
    order = [(i * 5) % 8 for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda i: call(server.port, "POST", "/v1/models/linear:predict",
                                               {"instances": [x[i].tolist()]}), order))
    for (status, body), i in zip(replies, order):
        assert status == 200
        np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[i:i + 1])
    assert 3 <= model.runs - runs < 24


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['method']} {c['path']} {c.get('raw') or json.dumps(c.get('body'))[:40]}")
def test_bad_requests_get_tf_serving_errors(server, base, case):
    _, x, y = base
    status, body = call(server.port, case["method"], case["path"], case.get("body"), case.get("raw"))
    assert status == case["status"], body
    assert list(body) == ["error"] and re.search(case["error"], body["error"]), body
    status, body = call(server.port, "POST", "/v1/models/linear:predict", {"instances": [x[2].tolist()]})
    np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[2:3])


def test_body_limit(server, base):
    _, x, _ = base
    status, body = call(server.port, "POST", "/v1/models/linear:predict", {"instances": [x[0].tolist()] * 300})
    assert status == 413 and "over the limit of 4096" in body["error"]


def test_shutdown_finishes_in_flight_requests(base):
    out, x, y = base
    srv = serve([(str(out / "linear"), "lin")], port=0, max_batch_wait=0.3)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    result = {}
    t = threading.Thread(target=lambda: result.update(r=call(srv.port, "POST", "/v1/models/lin:predict",
                                                              {"instances": [x[4].tolist()]})))
    t.start()
    import time
    time.sleep(0.1)                                    # the request waits for its batch
    srv.shutdown()
    t.join()
    status, body = result["r"]
    assert status == 200
    np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[4:5])
    with pytest.raises(ConnectionRefusedError):
        call(srv.port, "GET", "/v1/models/lin")


def test_serve_refuses_bad_base_paths(base):
    out, _, _ = base
    with pytest.raises(FileNotFoundError, match="no version folder"):
        serve([(str(out / "empty"), None)], port=0)
    with pytest.raises(FileNotFoundError, match="cannot read model base path"):
        serve([(str(out / "missing"), None)], port=0)
    with pytest.raises(ValueError, match="two models are named 'linear'"):
        serve([(str(out / "linear"), None), (str(out / "linear"), None)], port=0)


def test_command_line_serves_and_stops_on_sigterm(base):
    out, x, y = base
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "webtensor", "serve", str(out / "linear"), "--port", "0",
                          "--model_name", "digits"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, "".join(lines) + p.stderr.read()
            lines.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                break
        assert "serving model 'digits' version 3" in "".join(lines)
        status, body = call(int(m.group(1)), "POST", "/v1/models/digits:predict", {"instances": [x[6].tolist()]})
        np.testing.assert_array_equal(np.asarray(body["predictions"], np.float32), y[6:7])
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        p.kill()
    bad = subprocess.run([sys.executable, "-m", "webtensor", "serve", "--port", "x", str(out / "linear")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--port" in bad.stderr

"""``webtensor.load`` against the hostile-artifact corpus (``tests/artifact_corpus/make_corpus.py``).

One test per case: the outcome (load; run every signature on zeros; dispose; ``"ok"`` or the error's
class name, see ``tests/artifact_corpus/corpus_harness.py``) is one the index allows, it took under 5 s, the
message quotes neither the secret file's token nor its SHA-256, and no file outside the case
directory was opened (an ``open`` audit hook; opens of the secret, ``/dev``, ``/etc`` are also
refused). A last test checks the process's peak RSS stayed under 2 GiB. WebGPU cases run on
``webtensor.get_device('webgpu')`` (lavapipe where there is no GPU): a missing adapter fails them.
"""
from __future__ import annotations

import os
import resource
import sys

import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "artifact_corpus")
sys.path.insert(0, CORPUS)
import corpus_harness as harness  # noqa: E402
from make_corpus import case_list, make_corpus  # noqa: E402

outcome = harness.outcome   # outcome(case_dir, backend, timeout=1.0) -> (outcome, message)
CASES = case_list()
TIME_LIMIT_S = 5.0
RSS_LIMIT_KIB = 2 << 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact-corpus")
    index = make_corpus(out)
    assert [e["name"] for e in index] == [e["name"] for e in CASES]
    import webtensor  # noqa: F401  (imported before the first case, so its module files are not case opens)
    harness.OpenGuard.install()
    return {"dir": str(out), "index": {e["name"]: e for e in index}, "secret": harness.load_secret(out)}


@pytest.fixture(scope="module")
def webgpu_device():
    import webtensor as wt
    return wt.get_device("webgpu")      # no adapter: an error, never a skip


@pytest.mark.parametrize("name", [e["name"] for e in CASES])
def test_case(name, corpus, request):
    entry = corpus["index"][name]
    if entry["backend"] == "webgpu":
        request.getfixturevalue("webgpu_device")
    r = harness.run_case(entry, corpus["dir"])
    where = f"{name} ({entry['desc']})"
    message = r["message"]
    secret = corpus["secret"]
    assert secret["token"] not in message, f"{where}: the error quotes the secret file: {message[:300]}"
    assert secret["sha256"] not in message.lower(), f"{where}: the error quotes the secret file's SHA-256"
    assert not r["outside"], f"{where}: opened outside the case directory: {r['outside']}"
    assert r["outcome"] in entry["expect"], (
        f"{where}: outcome {r['outcome']} ({message[:400]}), expected one of {entry['expect']}")
    assert r["seconds"] < TIME_LIMIT_S, f"{where}: took {r['seconds']} s"


def test_peak_rss_under_2_gib():
    """Runs after every case (pytest keeps definition order): no case made the process huge."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak < RSS_LIMIT_KIB, f"peak RSS {peak / 1024:.0f} MiB >= 2 GiB"

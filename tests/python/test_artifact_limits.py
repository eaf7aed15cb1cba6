"""``webtensor.load`` against hostile artifacts: time and memory limits, modules that would have
crashed the process through the unchecked fast call, and reads outside the artifact directory.
(The shared corpus of damaged artifacts is in test_artifact_corpus.py; these are the Python-only
options and the cases that need a process of their own.)"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import webtensor as wt
from artifact_helpers import resign
from webtensor.artifact import ArtifactError
from webtensor.wasm.binary import I32, I64, Module

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "js", "test", "fixtures", "make_fixtures.py")
DRIVERS = ("predict", "classify", "train_step")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixtures")
    subprocess.run([sys.executable, FIXTURES, str(out)], check=True, stdout=subprocess.DEVNULL)
    return out / "linear"


@pytest.fixture()
def art(base, tmp_path):
    dst = tmp_path / "art"
    shutil.copytree(base, dst)
    return dst


def module(body=None, pages=1, **overrides) -> bytes:
    """A module importing env.memory with () -> () drivers; ``body(f)`` writes predict's code;
    ``overrides``: driver name -> (params, results) to give it another type."""
    m = Module()
    m.import_memory("env", "memory", pages)
    for name in DRIVERS:
        params, results = overrides.get(name, ((), ()))
        f = m.function(name, params=params, results=results, export=True)
        if name == "predict" and body:
            body(f)
        for t in results:
            {I32: f.i32_const, I64: f.i64_const}[t](0)
        f.finish()
    return m.emit()


def with_module(path, data):
    (path / "module.wasm").write_bytes(data)
    resign(path)


def zeros(spec):
    return np.zeros(spec["shape"], {"float32": np.float32, "int32": np.int32, "bool": bool}[spec["dtype"]])


def loop_forever(f):
    with f.loop():
        f.br(0)


def test_timeout_stops_a_looping_driver_and_the_model_stays_usable(art):
    with_module(art, module(loop_forever))
    m = wt.load(art, backend="wasm", timeout=0.2)
    x = zeros(m.signatures["predict"]["inputs"][0])
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"signature 'predict' did not finish within 0\.2 s"):
        m.predict(x)
    assert 0.15 < time.perf_counter() - t0 < 2.0
    m.run("classify", x, np.zeros(8, np.int32))       # another signature still runs, and fast
    with pytest.raises(TimeoutError):                  # and the deadline is armed again for each call
        m.predict(x)


def test_timeout_does_not_change_results(base):
    """An interruptible engine computes the same bits (epoch checks do not touch the data)."""
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    t = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    plain, timed = wt.load(base, backend="wasm"), wt.load(base, backend="wasm", timeout=5)
    for _ in range(3):
        assert plain.train_step(x, t).tobytes() == timed.train_step(x, t).tobytes()
    assert plain.predict(x).tobytes() == timed.predict(x).tobytes()


def test_a_trapping_driver_raises_artifact_error(art):
    with_module(art, module(lambda f: f.unreachable()))
    m = wt.load(art, backend="wasm")
    with pytest.raises(ArtifactError, match=r"signature 'predict': the WebAssembly driver trapped \(.*unreachable"):
        m.predict(np.zeros((8, 4), np.float32))


def test_the_memory_cannot_grow_past_the_manifest(art):
    """memory.grow in a driver fails (-1): the loader's memory has the manifest's size as its maximum."""
    def grow(f):
        f.i32_const(0).i32_const(1000).memory_grow().i32_store(offset=4096)   # predict's output 'y' address
    with_module(art, module(grow))
    m = wt.load(art, backend="wasm")
    y = m.predict(np.zeros((8, 4), np.float32))
    assert y.view(np.int32)[0, 0] == -1
    assert m.stats()["wasm_memory_bytes"] == 65536


def test_memory_limit(base):
    with pytest.raises(MemoryError, match="65536 bytes, over memory_limit=1000"):
        wt.load(base, backend="wasm", memory_limit=1000)
    assert wt.load(base, backend="wasm", memory_limit=65536).backend == "wasm"


@pytest.mark.parametrize("kwargs, message", [
    (dict(timeout=0), "timeout must be a positive number"), (dict(timeout="1"), "timeout must be a positive number"),
    (dict(timeout=True), "timeout must be a positive number"),
    (dict(timeout=1, backend="webgpu"), "timeout works on backend 'wasm' only"),
    (dict(memory_limit=-1), "memory_limit must be a number of bytes"),
    (dict(memory_limit=1.5), "memory_limit must be a number of bytes"),
])
def test_option_errors(base, kwargs, message):
    with pytest.raises(ValueError, match=message):
        wt.load(base, **kwargs)


def test_auto_with_a_timeout_runs_on_wasm(base):
    assert wt.load(base, timeout=5).backend == "wasm"


def raw_module(predict_type: bytes) -> bytes:
    """A hand-assembled module: env.memory imported, ``predict`` of the function type ``predict_type``
    (its binary encoding) with body ``unreachable``, ``classify`` and ``train_step`` of type () -> ()."""
    def vec(items):
        return bytes([len(items)]) + b"".join(items)

    def name(s):
        return bytes([len(s)]) + s.encode()

    def section(sid, content):
        return bytes([sid, len(content)]) + content
    return (b"\0asm\x01\0\0\0"
            + section(1, vec([predict_type, b"\x60\x00\x00"]))
            + section(2, vec([name("env") + name("memory") + b"\x02\x00\x01"]))
            + section(3, vec([b"\x00", b"\x01", b"\x01"]))
            + section(7, vec([name(n) + bytes([0, i]) for i, n in enumerate(DRIVERS)]))
            + section(10, vec([b"\x03\x00\x00\x0b", b"\x02\x00\x0b", b"\x02\x00\x0b"])))


SIGILL_CASES = {   # each of these killed the process through the unchecked fast call (issue 11)
    "param": b"\x60\x01\x7f\x00",
    "externref": b"\x60\x01\x6f\x00",
    "v128 result": b"\x60\x00\x01\x7b",
    "64 i64 results": b"\x60\x00\x40" + b"\x7e" * 64,
}


@pytest.mark.parametrize("case", SIGILL_CASES)
def test_driver_types_are_checked_before_the_fast_call(art, case):
    """Run in a child process: a crash there (SIGILL) fails the test instead of killing pytest."""
    with_module(art, raw_module(SIGILL_CASES[case]))
    code = ("import sys, numpy as np, webtensor as wt\n"
            "from webtensor.artifact import ArtifactError\n"
            "try:\n"
            "    wt.load(sys.argv[1], backend='wasm').predict(np.zeros((8, 4), np.float32))\n"
            "except ArtifactError as e:\n"
            "    print('ArtifactError', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(art)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.startswith("ArtifactError") and "a driver must be () -> ()" in r.stdout, r.stdout


def test_the_raw_module_is_valid_when_typed_right(art):
    """The hand-assembled module is a valid module: with predict () -> () it loads (then traps)."""
    with_module(art, raw_module(b"\x60\x00\x00"))
    with pytest.raises(ArtifactError, match="unreachable"):
        wt.load(art, backend="wasm").predict(np.zeros((8, 4), np.float32))


def test_a_start_function_is_refused_before_it_runs(art):
    m = Module()
    m.import_memory("env", "memory", 1)
    for name in DRIVERS:
        m.function(name, export=True).finish()
    s = m.function("start")
    loop_forever(s)
    s.finish()
    m.start("start")
    with_module(art, m.emit())
    with pytest.raises(ArtifactError, match="start function"):
        wt.load(art, backend="wasm", timeout=1)


def test_files_outside_the_directory_are_never_opened(art, tmp_path):
    """A manifest naming files outside, or symlinks leading outside, fail before any outside open."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-token")
    opened = []

    def hook(event, args):      # args: (path, mode, flags); opening a symlink with O_NOFOLLOW reads nothing
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            flags = args[2] if isinstance(args[2], int) else 0
            if not flags & os.O_NOFOLLOW:
                opened.append(os.path.realpath(os.fsdecode(args[0])))
    sys.addaudithook(hook)
    cases = []
    (art / "link.wgsl").symlink_to(secret)
    cases.append(("link.wgsl", "resolves outside the artifact directory"))
    for name in ("../secret.txt", str(secret), "kernels/../../secret.txt"):
        cases.append((name, "does not match"))
    for name, message in cases:
        man = json.loads((art / "manifest.json").read_text())
        man["files"][name] = {"bytes": 12, "sha256": hashlib.sha256(b"s3cr3t-token").hexdigest()}
        (art / "manifest.json").write_text(json.dumps(man))
        opened.clear()
        with pytest.raises(ArtifactError, match=message) as info:
            wt.load(art, backend="wasm")
        assert str(secret) not in opened and "s3cr3t" not in str(info.value)
        del man["files"][name]
        (art / "manifest.json").write_text(json.dumps(man))


def test_special_files_are_refused_without_reading_or_blocking(art):
    (art / "kernels" / "predict_0.wgsl").unlink()
    os.symlink("/dev/zero", art / "kernels" / "predict_0.wgsl")
    with pytest.raises(ArtifactError, match="resolves outside the artifact directory"):
        wt.load(art, backend="wasm")
    (art / "kernels" / "predict_0.wgsl").unlink()
    os.mkfifo(art / "kernels" / "predict_0.wgsl")           # open() of a FIFO would block for ever
    t0 = time.perf_counter()
    with pytest.raises(ArtifactError, match="predict_0.wgsl is not a regular file"):
        wt.load(art, backend="wasm")
    assert time.perf_counter() - t0 < 5

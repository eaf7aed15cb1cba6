"""Intra-op threads (wasm/threads.py): results bitwise identical for 1, 2, 3 and 4 threads, equal to
the one-thread module's, near numpy; workers end with their executable or model."""
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import webtensor as wt
from webtensor.artifact import ArtifactError
from webtensor.wasm import threads as T

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
R = np.random.RandomState(16)


@pytest.fixture
def nthreads():
    """Set the thread count for a test, restore the default after it."""
    yield wt.config.threading.set_intra_op_parallelism_threads
    wt.config.threading.set_intra_op_parallelism_threads(0)


def workers():
    return sum(t.name.startswith("webtensor-wasm-") for t in threading.enumerate())


def test_tiles_do_not_depend_on_threads_and_keep_alignment():
    assert T.tile_rows(1024, 1024 ** 3) == 32               # 32 tiles (MAX_TILES) of 32 rows
    assert T.tile_rows(10, 1 << 30) is None                  # too few rows to split
    assert T.tile_rows(4096, T.MIN_WORK - 1) is None         # too little work
    assert T.tile_rows(64, T.MIN_WORK) == 16                 # 4 tiles (TILE_WORK each), 16 rows each
    for rows in (33, 100, 1000, 4097):
        chunk = T.tile_rows(rows, 1 << 24)
        assert chunk % T.ROW_ALIGN == 0 and -(-rows // chunk) <= T.MAX_TILES


def test_config_threading(nthreads, monkeypatch):
    monkeypatch.setenv("WEBTENSOR_NUM_THREADS", "3")
    assert wt.config.threading.get_intra_op_parallelism_threads() == 3
    nthreads(2)
    assert wt.config.threading.get_intra_op_parallelism_threads() == 2
    nthreads(0)
    monkeypatch.setenv("WEBTENSOR_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="WEBTENSOR_NUM_THREADS"):
        wt.config.threading.get_intra_op_parallelism_threads()
    for bad in (-1, 17, 2.0, True):
        with pytest.raises(ValueError, match="thread count"):
            nthreads(bad)


def _step(x, w, b, k):
    h = wt.relu(wt.matmul(x, w) + b)                                    # matmul + fused elementwise
    c = wt.conv2d(wt.reshape(h, (16, 64, 64, 3)), k, strides=1, padding="SAME")   # convolution
    return h, wt.reduce_sum(h * h, axis=1), wt.tanh(h), c                        # reduction, transcendental


def test_compiled_kernels_same_bits_for_any_thread_count(nthreads):
    x, w, b = R.randn(256, 320).astype(np.float32), R.randn(320, 768).astype(np.float32) * 0.1, R.randn(768).astype(np.float32)
    k = R.randn(3, 3, 3, 32).astype(np.float32)
    got = {}
    for n in (1, 2, 3, 4):
        nthreads(n)
        with wt.device("wasm"):
            f = wt.function(_step)
            got[n] = [o.numpy() for o in f(wt.tensor(x), wt.tensor(w), wt.tensor(b), wt.tensor(k))]
            assert workers() == n - 1
            del f
    assert workers() == 0
    for n in (2, 3, 4):
        for a, e in zip(got[n], got[1]):
            np.testing.assert_array_equal(a, e)
    h = np.maximum(x @ w + b, 0)
    np.testing.assert_allclose(got[4][0], h, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got[4][1], (h * h).sum(1), rtol=1e-5)
    np.testing.assert_allclose(got[4][2], np.tanh(got[4][0]), rtol=1e-6, atol=1e-7)
    ref = wt.conv2d(wt.tensor(h.reshape(16, 64, 64, 3), device="reference"), wt.tensor(k, device="reference"),
                    strides=1, padding="SAME").numpy()
    np.testing.assert_allclose(got[4][3], ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("threads"))
    env = {**os.environ, "WEBTENSOR_NUM_THREADS": "1"}
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "threads_fixtures.py"), out], check=True, env=env)
    with open(os.path.join(out, "expected.json")) as f:
        return out, json.load(f)


def test_exported_models_same_bits_for_any_thread_count(artifacts, nthreads):
    out, expected = artifacts
    tiled = {name: e["tiled"] for name, e in expected.items()}
    assert tiled["mlp"] >= 3 and tiled["ops"] >= 1 and tiled["seq"] >= 2   # kernels large enough are split
    for name, e in expected.items():
        for n in (1, 2, 3, 4):
            nthreads(n)
            m = wt.load(os.path.join(out, name), backend="wasm")
            assert m.stats()["wasm_threads"] == n and workers() == n - 1
            specs = m.signatures[e["signature"]]["inputs"]
            outs = list(m.run(e["signature"], *[np.asarray(a, s["dtype"]).reshape(s["shape"])
                                                 for a, s in zip(e["inputs"], specs)]).values())
            if name == "mlp":
                outs.append(m.get_weights()[sorted(m.get_weights())[0]])
            for a, ref in zip(outs, e["outputs"]):
                np.testing.assert_array_equal(np.asarray(a, np.float32).ravel(), np.asarray(ref, np.float32),
                                              err_msg=f"{name}, {n} threads")
            m.dispose()
            assert workers() == 0


def test_workers_end_with_the_model(artifacts, nthreads):
    out, _ = artifacts
    nthreads(2)
    for _ in range(20):
        m = wt.load(os.path.join(out, "ops"), backend="wasm")
        assert workers() == 1
        del m                                           # no dispose: collected, the finalizer stops them
        gc.collect()
        assert workers() == 0


def test_relaxed_simd_threaded_module(tmp_path, nthreads):
    """wasm_fma and wasm_threads together: module_relaxed_threads.wasm, the same bits as module_relaxed.wasm."""
    a, w = R.randn(128, 256).astype(np.float32), R.randn(256, 512).astype(np.float32)
    wt.export(lambda x, y: wt.tanh(wt.matmul(x, y)), (a, w), str(tmp_path), wasm_fma=True, wasm_threads=True)
    got = {}
    for n in (1, 2, 3):
        nthreads(n)
        m = wt.load(str(tmp_path), backend="wasm")
        assert m.stats()["wasm_module"] == ("module_relaxed.wasm" if n == 1 else "module_relaxed_threads.wasm")
        got[n] = m.predict(a, w)
        m.dispose()
    np.testing.assert_array_equal(got[2], got[1])
    np.testing.assert_array_equal(got[3], got[1])
    np.testing.assert_allclose(got[1], np.tanh(a @ w), rtol=1e-5, atol=2e-5)


def test_module_check_of_threaded_modules(artifacts):
    from webtensor.wasm.module_check import check_module
    out, _ = artifacts
    with open(os.path.join(out, "ops", "module_threads.wasm"), "rb") as f:
        threaded = f.read()
    with open(os.path.join(out, "ops", "module.wasm"), "rb") as f:
        plain = f.read()
    drivers = ["predict"]
    check_module(threaded, drivers, 64, shared=True)
    check_module(plain, drivers, 64)
    with pytest.raises(ValueError, match="only 0x00 and 0x01"):
        check_module(threaded, drivers, 64)                 # a shared memory where none is expected
    with pytest.raises(ValueError, match=r"must be shared \(limits flag 0x03\)"):
        check_module(plain, drivers, 64, shared=True)
    renamed = threaded.replace(b"threads_setup", b"threads_xetup")
    with pytest.raises(ValueError, match="must export the function 'threads_setup'"):
        check_module(renamed, drivers, 64, shared=True)
    assert b"wake" in threaded
    check_module(threaded.replace(b"wake", b"xake"), drivers, 64, shared=True)     # optional: older artifacts
    with pytest.raises(ValueError, match=r"export 'wake' must be a function of type \(\) -> \(\)"):
        check_module(_retarget(threaded, "wake", "worker"), drivers, 64, shared=True)   # present: (i32) -> ()


def _retarget(module: bytes, name: str, to: str) -> bytes:
    """``module`` with export ``name`` pointing at export ``to``'s function (the export section's
    entries: name length, name, kind 0x00, function index as LEB128 of the same length here)."""
    def index_at(n):
        key = bytes([len(n)]) + n.encode() + b"\x00"
        i = j = module.index(key) + len(key)
        while module[j] & 0x80:
            j += 1
        return i, j + 1
    (a, b), (c, d) = index_at(name), index_at(to)
    assert b - a == d - c
    return module[:a] + module[c:d] + module[b:]


def _with_stride(src, dst, stride):
    """A copy of the threaded artifact ``src`` whose manifest gives every signature's threads
    workspace ``stride`` bytes (the manifest is not hashed: any loader must check it)."""
    shutil.copytree(src, dst)
    with open(os.path.join(dst, "manifest.json")) as f:
        man = json.load(f)
    for sig in man["signatures"].values():
        sig["wasm"]["threads"]["stride"] = stride
    with open(os.path.join(dst, "manifest.json"), "w") as f:
        json.dump(man, f)
    return man["signatures"]["predict"]["wasm"]["threads"]["scratch"]


def test_thread_workspace_past_4_gib_is_an_artifact_error(artifacts, nthreads, tmp_path):
    """scratch + (n - 1) * stride > 4 GiB (the schema allows stride up to 2**32): an ArtifactError
    before any memory is made, not wasmtime's error; at 1 thread only a stride where not even a
    second thread fits is refused."""
    out, _ = artifacts
    scratch = _with_stride(os.path.join(out, "ops"), tmp_path / "half", 1 << 31)   # 2 threads fit, 3 do not
    assert scratch + (1 << 31) <= 1 << 32 < scratch + (2 << 31)
    nthreads(1)
    wt.load(tmp_path / "half", backend="wasm").dispose()                           # the workspace is unused
    nthreads(3)
    with pytest.raises(ArtifactError, match=rf"3 threads need {scratch + (2 << 31)} bytes of memory \(scratch "
                       r"\+ 2 x stride\), more than WebAssembly's 4 GiB; load it with fewer threads"):
        wt.load(tmp_path / "half", backend="wasm")
    assert workers() == 0
    _with_stride(os.path.join(out, "ops"), tmp_path / "full", 1 << 32)
    for n in (1, 2):
        nthreads(n)
        with pytest.raises(ArtifactError, match=rf'threads {{"scratch": {scratch}, "stride": 4294967296}}: a '
                           "second thread's workspace ends past WebAssembly's 4 GiB memory"):
            wt.load(tmp_path / "full", backend="wasm")


def _grads(x, dy, w, a, v):
    dw = wt.matmul(x, dy, transpose_a=True)                 # X^T dY: M = 784 rows in tiles, K = 128
    w.assign_sub(0.01 * dw)                                  # the SGD update fused in place (Kernel.inplace)
    h = wt.matmul(a, wt.transpose(w))                        # K = 784 > KC: B packed apart from A panels
    return dw, h, wt.matmul(wt.reshape(a[:192], (3, 64, 256)), v)   # B varies per batch: packed per batch


def test_packed_b_reused_across_a_threads_tiles(nthreads, monkeypatch):
    """A thread packs a matmul's B once per round and its later tiles reuse it (``Lowered.reuses_b``):
    the same bits whether one thread runs every tile (the driver alone: ``NTHREADS`` 1), or 2, 3, 4
    share them, or the plain module makes one call; near numpy."""
    x, dy = R.randn(128, 784).astype(np.float32), R.randn(128, 256).astype(np.float32)
    w0, a = R.randn(784, 256).astype(np.float32), R.randn(200, 256).astype(np.float32)
    v = R.randn(3, 256, 48).astype(np.float32)
    solo = T.control_words
    got = {}
    for n, alone in ((1, False), (2, True), (2, False), (3, False), (4, False)):
        nthreads(n)
        if alone:
            monkeypatch.setattr(T, "control_words", lambda _n, *args: solo(1, *args))
        with wt.device("wasm"):
            w = wt.Variable(w0)
            f = wt.function(lambda *args, w=w: _grads(*args[:2], w, *args[2:]))
            outs = f(wt.tensor(x), wt.tensor(dy), wt.tensor(a), wt.tensor(v))
            got[n, alone] = [o.numpy() for o in outs] + [w.numpy()]
            del f
        monkeypatch.setattr(T, "control_words", solo)
    for key, outs in got.items():
        for o, e in zip(outs, got[1, False]):
            np.testing.assert_array_equal(o, e, err_msg=str(key))
    dw = x.T @ dy
    w1 = w0 - np.float32(0.01) * got[1, False][0]
    np.testing.assert_allclose(got[2, True][0], dw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[2, True][3], w1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[2, True][1], a @ w1.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[2, True][2], np.matmul(a[:192].reshape(3, 64, 256), v), rtol=1e-4, atol=1e-3)


def test_profile_deals_each_kernels_tiles_to_the_threads(nthreads):
    """``WasmExecutable.profile(threads=2)`` (bench_threads.py --amdahl): a kernel that
    ``tile_rows`` splits reports its tiles and a time for the longest thread's share; one it keeps
    on one thread reports 1 tile and its own time twice. (Times are not compared: the machine may
    be loaded.)"""
    nthreads(1)
    a, b = R.randn(512, 512).astype(np.float32), R.randn(512, 512).astype(np.float32)
    with wt.device("wasm"):
        f = wt.function(lambda x, y: wt.reduce_sum(wt.matmul(x, y), axis=1) + wt.reduce_sum(x[:8], axis=0)[:1])
        args = wt.tensor(a), wt.tensor(b)
        f(*args)
        c = f.get_concrete(*args)
        rows = c.exe.profile([t._data for t in args], [v._data for _, v in c.graph.captures], 2, threads=2)
    assert len(rows) == len(c.exe.program.steps) >= 2
    big = [r for r in rows if r[3].kernel.template == "matmul"]
    assert len(big) == 1 and big[0][2] == 512 // T.tile_rows(512, T.work(big[0][3].kernel), T.PACKED_ROWS) > 1
    small = [r for r in rows if r[3].kernel.template != "matmul"]
    assert small and all(tiles == 1 and one == many > 0 for one, many, tiles, _ in small)


def test_workers_poll_only_while_a_call_runs(nthreads, monkeypatch):
    """A worker polls for the next round (``threads.SPIN`` times, here ~0.5 s of polls) only while
    its driver's call runs (``ACTIVE``): after the call the process burns no CPU while idle. Results
    stay those of one thread."""
    monkeypatch.setattr(T, "SPIN", 1 << 30)
    x, w = R.randn(256, 512).astype(np.float32), R.randn(512, 512).astype(np.float32)
    got = {}
    for n in (1, 2):
        nthreads(n)
        with wt.device("wasm"):
            f = wt.function(lambda a, b: wt.tanh(wt.matmul(wt.relu(wt.matmul(a, b)), b)))
            args = wt.tensor(x), wt.tensor(w)
            got[n] = [f(*args).numpy() for _ in range(3)][-1]
            if n == 2:
                time.sleep(0.01)
                cpu = time.process_time()
                time.sleep(0.1)
                idle = time.process_time() - cpu
            del f
    np.testing.assert_array_equal(got[2], got[1])
    assert idle < 0.01, f"{idle * 1e3:.1f} ms of CPU in 100 ms after the calls: a worker kept polling"


def test_wake_starts_the_workers_polling_until_the_call_ends(tmp_path, nthreads, monkeypatch):
    """``wake()`` (a threaded module's export, which a loader calls before it copies a call's inputs):
    the workers wake and poll for the call's first round (up to ``threads.SPIN`` polls, here ~0.5 s)
    instead of waking only when it is published; the call's end puts them to sleep; results stay
    those of one thread."""
    monkeypatch.setattr(T, "SPIN", 1 << 30)
    a, w = R.randn(256, 512).astype(np.float32), R.randn(512, 512).astype(np.float32)
    wt.export(lambda x, y: wt.tanh(wt.matmul(x, y)), (a, w), str(tmp_path), wasm_threads=True)
    got = {}

    def cpu_in(seconds):
        cpu = time.process_time()
        time.sleep(seconds)
        return time.process_time() - cpu
    for n in (1, 2):
        nthreads(n)
        m = wt.load(str(tmp_path), backend="wasm")
        got[n] = m.predict([a, w])
        if n == 2:
            time.sleep(0.01)
            assert cpu_in(0.1) < 0.01                   # asleep between calls
            m._backend.wake()
            assert cpu_in(0.1) > 0.05                   # woken: a worker polls
            got[n] = m.predict([a, w])
            time.sleep(0.01)
            assert cpu_in(0.1) < 0.01                   # the call ended: asleep again
        m.dispose()
    np.testing.assert_array_equal(got[2], got[1])
    np.testing.assert_allclose(got[1], np.tanh(a @ w), rtol=1e-5, atol=2e-5)


def test_manifest_rounds_and_no_wake_for_a_signature_that_splits_nothing(tmp_path, nthreads):
    """Each threaded signature's manifest says how many kernels its driver splits (``threads.rounds``);
    a loader wakes the threads only for a signature that splits some (``GEN``, the control block's
    round counter at byte 0, moves for it and not for the other), and the results stay one thread's."""
    a, w = R.randn(256, 512).astype(np.float32), R.randn(512, 512).astype(np.float32)
    s = R.randn(2, 4).astype(np.float32)
    wt.export(None, path=str(tmp_path), wasm_threads=True,
              signatures={"big": (lambda x, y: wt.tanh(wt.matmul(x, y)), (a, w)), "small": (lambda v: wt.tanh(v), (s,))})
    with open(os.path.join(tmp_path, "manifest.json")) as f:
        sigs = json.load(f)["signatures"]
    assert sigs["big"]["wasm"]["threads"]["rounds"] >= 1 and sigs["small"]["wasm"]["threads"]["rounds"] == 0
    nthreads(2)
    m = wt.load(str(tmp_path), backend="wasm")
    gen = lambda: int(np.frombuffer(bytes(m._backend.engine.read(0, 4)), np.int32)[0])   # noqa: E731
    g0 = gen()
    np.testing.assert_allclose(m.run("small", s)["output_0"], np.tanh(s), rtol=1e-6, atol=1e-7)
    assert gen() == g0                          # no wake, no round
    np.testing.assert_allclose(m.run("big", a, w)["output_0"], np.tanh(a @ w), rtol=1e-5, atol=2e-5)
    assert gen() > g0
    m.dispose()
    for bad in (-1, 1.5, "2", None):        # the manifest is not hashed: a loader checks the field
        man = json.loads((tmp_path / "manifest.json").read_text())
        man["signatures"]["small"]["wasm"]["threads"]["rounds"] = bad
        broken = tmp_path.parent / f"{tmp_path.name}-rounds"
        shutil.copytree(tmp_path, broken, dirs_exist_ok=True)
        (broken / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(ArtifactError, match="rounds"):
            wt.load(str(broken), backend="wasm")

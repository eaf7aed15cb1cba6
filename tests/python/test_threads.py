"""Many Python threads using one device at once (issue 12): eager ops, ``webtensor.function``
(retracing from several threads) and a loaded artifact, on "reference", "wasm" and "webgpu",
every result compared with numpy. Also tensors freed from other threads and by the garbage
collector while ops run, and device scopes/tapes/traces that stay in their own thread.

Before the locks (issue 12) these failed on "wasm": threads died with ``wasmtime Trap: call stack
exhausted`` and eager results were silently wrong; traces of one thread swallowed the eager ops of
another.
"""
from __future__ import annotations

import gc
import os
import threading
import traceback

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402

THREADS = 8
DEVICES = ["reference", "wasm", "webgpu"]


def device_or_skip(name):
    try:
        return wt.get_device(name)
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no {name} device: {e}")


def run_threads(work, n=THREADS, timeout=300):
    """Run ``work(i)`` in ``n`` threads started together; re-raise the first failure with its
    thread's traceback (and how many threads failed)."""
    errors = []
    barrier = threading.Barrier(n)

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException:   # noqa: BLE001 - reported below
            errors.append(f"thread {i}:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
    if errors:
        pytest.fail(f"{len(errors)} of {n} threads failed; the first:\n{errors[0]}", pytrace=False)


def close(got, want, what):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=2e-4, atol=2e-4, err_msg=what)


def eager_ops(dev, i: int, iters: int, sizes):
    """Mixed eager ops of changing sizes (the allocator reuses and grows memory) vs numpy."""
    rng = np.random.default_rng(i)
    for k in range(iters):
        m, n = sizes[(i + k) % len(sizes)], sizes[(3 * i + 2 * k + 1) % len(sizes)]
        a = rng.standard_normal((m, n)).astype(np.float32)
        b = rng.standard_normal((n, 5)).astype(np.float32)
        x, y = wt.tensor(a, device=dev), wt.tensor(b, device=dev)
        what = f"thread {i} step {k} shapes {a.shape} {b.shape}"
        close((x @ y).numpy(), a @ b, f"matmul, {what}")
        close((x + 1.5 * x).numpy(), a + np.float32(1.5) * a, f"add, {what}")
        close(wt.reduce_sum(x, axis=0).numpy(), a.sum(0), f"sum, {what}")
        close(wt.reduce_max(x, axis=1).numpy(), a.max(1), f"max, {what}")
        close(wt.reshape(wt.exp(x), (n, m)).numpy(), np.exp(a).reshape(n, m), f"reshape(exp), {what}")
        close(wt.reduce_mean(wt.relu(x @ y) - y[0], axis=None).numpy(),
              (np.maximum(a @ b, 0) - b[0]).mean(), f"mean, {what}")
        big = wt.ones((64 * (1 + k % 3), 33), device=dev)     # a larger block now and then
        close(wt.reduce_sum(big).numpy(), float(big.size), f"ones, {what}")


ITERS = {"reference": 20, "wasm": 40, "webgpu": 6}
SIZES = {"reference": (1, 2, 3, 5, 8, 13, 21), "wasm": (1, 2, 3, 5, 8, 13, 21, 34), "webgpu": (2, 5, 8)}


@pytest.mark.parametrize("name", DEVICES)
def test_eager_ops_from_many_threads(name):
    dev = device_or_skip(name)
    for i in range(len(SIZES[name])):       # one thread first: every size's scalar constants, workspace
        eager_ops(dev, i, 1, SIZES[name])
    gc.collect()
    stats0 = dev.stats() if name == "wasm" else None
    run_threads(lambda i: eager_ops(dev, i, ITERS[name], SIZES[name]))
    if stats0 is not None:      # every buffer of the threads was freed (no leak, no double free)
        gc.collect()
        assert dev.stats()["blocks"] == stats0["blocks"]


@pytest.mark.parametrize("name", DEVICES)
def test_function_retraces_from_many_threads(name):
    """One ``webtensor.function`` called from 8 threads with 4 signatures (each traced once, from
    whichever thread comes first) and eager ops in between (which must not enter another thread's trace)."""
    dev = device_or_skip(name)
    traced = []

    @wt.function
    def f(x, y, scale):
        traced.append(threading.get_ident())
        h = wt.relu(x @ y) * scale
        return wt.reduce_sum(h, axis=1), h - wt.reduce_mean(x)

    shapes = [(3, 4), (5, 2), (1, 7), (6, 6)]
    iters = 3 if name == "webgpu" else 12

    def work(i):
        rng = np.random.default_rng(100 + i)
        for k in range(iters):
            m, n = shapes[(i + k) % len(shapes)]
            a = rng.standard_normal((m, n)).astype(np.float32)
            b = rng.standard_normal((n, 3)).astype(np.float32)
            x, y = wt.tensor(a, device=dev), wt.tensor(b, device=dev)
            s, h = f(x, y, 2.0)
            want_h = np.maximum(a @ b, 0) * 2 - a.mean()
            close(s.numpy(), (np.maximum(a @ b, 0) * 2).sum(1), f"thread {i} step {k} sum")
            close(h.numpy(), want_h, f"thread {i} step {k} h")
            close((x * 3.0).numpy(), a * 3, f"thread {i} step {k} eager")   # never traced into f
    run_threads(work)
    assert len(traced) == f.trace_count == len(shapes)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """A small MLP (8 -> 6 relu -> 3) exported for batches of 4, trained with SGD at learning rate
    0 (every train_step has the same weights, so concurrent steps have known losses)."""
    nn = wt.nn
    with wt.device("reference"):
        wt.set_seed(3)
        model = nn.Sequential([nn.Input((8,)), nn.Dense(6, activation="relu"), nn.Dense(3)])
        model.compile(wt.optimizers.SGD(0.0), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        path = tmp_path_factory.mktemp("threads_mlp")
        model.export(path, batch_size=4)
        w = [v.numpy() for v in model.weights]
    return path, w


def numpy_mlp(w, x, y):
    k1, b1, k2, b2 = w
    logits = np.maximum(x @ k1 + b1, 0) @ k2 + b2
    z = logits - logits.max(1, keepdims=True)
    loss = (np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]).mean()
    return logits, loss


@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
def test_loaded_model_from_many_threads(artifact, backend):
    path, w = artifact
    if backend == "webgpu":
        device_or_skip("webgpu")
    model = wt.load(path, backend=backend)
    iters = 4 if backend == "webgpu" else 30

    def work(i):
        rng = np.random.default_rng(200 + i)
        for k in range(iters):
            x = rng.standard_normal((4, 8)).astype(np.float32)
            y = rng.integers(0, 3, 4).astype(np.int32)
            logits, loss = numpy_mlp(w, x, y)
            close(model.predict(x), logits, f"thread {i} step {k} predict")
            close(model.train_step(x, y), loss, f"thread {i} step {k} train_step")
    run_threads(work)
    assert model.runs == 2 * THREADS * iters
    got = model.get_weights()
    iterations = [v for n, v in got.items() if n.endswith("iterations")]
    assert [int(v) for v in iterations] == [THREADS * iters] * len(iterations)   # no step lost


def test_buffers_freed_from_other_threads_and_gc():
    """Tensors created in one thread, dropped in others and inside garbage-collected cycles while
    ops run: the allocator ends where it started and results stay right."""
    dev = device_or_skip("wasm")
    gc.collect()
    base = dev.stats()["blocks"]
    made = [wt.tensor(np.full((7, 9), j, np.float32), device=dev) for j in range(400)]
    lock = threading.Lock()

    def work(i):
        rng = np.random.default_rng(300 + i)
        for k in range(60):
            with lock:
                t = made.pop() if made else None
            if t is not None:
                cyc = [t]
                cyc.append(cyc)     # a cycle: freed by the collector, at whatever point it runs
                del t, cyc
            a = rng.standard_normal((k % 9 + 1, 16)).astype(np.float32)
            x = wt.tensor(a, device=dev)
            close(wt.reduce_sum(x * x, axis=1).numpy(), (a * a).sum(1), f"thread {i} step {k}")
            if k % 10 == 0:
                gc.collect()
    old = gc.get_threshold()
    gc.set_threshold(50, 5, 5)      # collect often, so __del__ runs in the middle of allocations
    try:
        run_threads(work)
    finally:
        gc.set_threshold(*old)
    del made
    gc.collect()
    assert dev.stats()["blocks"] <= base + 4


def test_allocator_from_many_threads():
    """The wasm allocator alone (no engine), allocating and freeing from 8 threads with a tiny switch
    interval: blocks never overlap, and every byte is accounted for afterwards."""
    import sys
    from webtensor.wasm.runtime import ALIGN, Allocator, WasmBuffer
    a = Allocator(1 << 16, lambda pages: True)

    def work(i):
        rng = np.random.default_rng(400 + i)
        keep = []
        for k in range(4000):
            keep.append(WasmBuffer(a, int(rng.integers(1, 3000))))
            if len(keep) > 10:
                keep.pop(int(rng.integers(len(keep))))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)     # switch threads between almost any two bytecodes
    try:
        run_threads(work)
    finally:
        sys.setswitchinterval(old)
    gc.collect()
    assert a.stats()["blocks"] == 0 and a.stats()["in_use"] == 0
    spans = sorted([tuple(f) for f in a.free] + list(a.used.items()))
    ends = [ALIGN] + [o + n for o, n in spans]
    assert [o for o, _ in spans] == ends[:-1] and ends[-1] == a.size    # tiles [ALIGN, size) exactly
    assert len(a.free) == 1                                            # and coalesced back to one block


def test_webgpu_buffer_pool_from_many_threads():
    """The WebGPU buffer pool alone (a stand-in GPU device): 8 threads acquire and release buffers with
    a tiny switch interval; no buffer is handed to two holders at once and the counts add up."""
    import sys
    pytest.importorskip("wgpu")
    from webtensor.webgpu.runtime import BufferPool

    class Buffer:
        def __init__(self, size):
            self.size = size

    class FakeGPU:
        def create_buffer(self, size, usage):
            return Buffer(size)

    pool = BufferPool(FakeGPU(), 0, 1 << 20)
    held: dict = {}

    def work(i):
        rng = np.random.default_rng(500 + i)
        mine = []
        for k in range(3000):
            b = pool.acquire(int(rng.integers(1, 600)))
            assert held.setdefault(id(b), i) == i, "a buffer was handed out twice"
            mine.append(b)
            if len(mine) > 4:
                b = mine.pop(int(rng.integers(len(mine))))
                del held[id(b)]
                pool.release(b)
        for b in mine:
            del held[id(b)]
            pool.release(b)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        run_threads(work)
    finally:
        sys.setswitchinterval(old)
    st = pool.stats
    assert st["in_use"] == 0 and st["created"] == sum(len(v) for v in pool.free.values())
    assert st["idle_bytes"] == sum(b.size for v in pool.free.values() for b in v)


def test_device_scope_tape_and_trace_are_per_thread():
    """``with webtensor.device(...)``, tapes and traces belong to the thread that opened them (as in
    TensorFlow): another thread's eager ops neither land in this thread's trace or tape nor run on
    its scoped device."""
    seen, ready, done = [], threading.Event(), threading.Event()

    def other():
        ready.wait(30)
        try:
            t = wt.ones((2,)) * 2.0
            seen.append((t.device.name, t.numpy().tolist()))
        except Exception as e:      # before: a symbolic tensor of the other thread's trace
            seen.append(repr(e))
        done.set()

    default = wt.get_device().name
    scoped = "wasm" if default != "wasm" else "reference"
    th = threading.Thread(target=other)
    th.start()

    @wt.function
    def f(x):
        ready.set()
        done.wait(30)               # the other thread runs its ops while this one traces
        return x * 3.0

    with wt.device(scoped):
        x = wt.Variable(np.ones(2, np.float32))
        with wt.GradientTape() as tape:
            y = wt.reduce_sum(x * 3.0)
        np.testing.assert_array_equal(f(wt.ones((2,))).numpy(), [3.0, 3.0])
        assert tape.gradient(y, x).numpy().tolist() == [3.0, 3.0]
    th.join(30)
    assert seen == [(default, [2.0, 2.0])]
    assert len(f.get_concrete(wt.ones((2,), device=scoped)).graph.nodes) == 1    # only x * 3.0

"""Bounded compiled-code caches (issue 12): eager kernels per device and traces per
``webtensor.function`` stay within ``webtensor.config`` limits (least recently used dropped
first), results stay equal to numpy after eviction, ``del f`` frees a function's executables and
their WebAssembly instances (the wasmtime store is recycled, freeing dropped machine code), and
frequent retracing warns once, as TensorFlow does.

Before issue 12: one function called with 200 shapes kept 200 executables, ``del f`` freed none of
the compiled code, and eager ops on 300 shapes kept 1,200 kernels.
"""
from __future__ import annotations

import gc
import os
import threading
import warnings
import weakref

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.config import LRUCache, RetracingWarning  # noqa: E402


@pytest.fixture
def limits():
    """Set cache limits for one test; the defaults come back afterwards."""
    old = wt.config.get_cache_limits()
    yield wt.config.set_cache_limits
    wt.config.set_cache_limits(**old)


def wasm():
    try:
        return wt.get_device("wasm")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no wasm device: {e}")


def webgpu():
    try:
        return wt.get_device("webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no webgpu device: {e}")


def counts(dev) -> dict:
    """Compiled code alive on a device: kernels, executables, (wasm) engine instances."""
    if dev.name == "wasm":
        s = dev.stats()
        return {"kernels": s["kernels"], "executables": s["executables"], "instances": s["instances"]}
    s = dev.cache_stats()
    return {"kernels": s["kernels"], "executables": s["executables"], "pipelines": s["pipelines"]}


# ---- configuration ------------------------------------------------------------------------------

def test_set_cache_limits_validates_and_round_trips(limits):
    assert wt.config.get_cache_limits() == {"kernels": 512, "traces": 32}      # the documented defaults
    limits(kernels=7)
    assert wt.config.get_cache_limits() == {"kernels": 7, "traces": 32}
    for bad in (0, -1, 2.0, True, "8"):
        with pytest.raises(ValueError, match="kernels must be an int >= 1"):
            wt.config.set_cache_limits(kernels=bad)
    with pytest.raises(ValueError, match="traces"):
        wt.config.set_cache_limits(traces=0)
    assert wt.config.get_cache_limits() == {"kernels": 7, "traces": 32}      # a bad call changes nothing


def test_lru_cache_drops_the_least_recently_used(limits):
    class Entry:
        used = 0
    limits(kernels=4)
    c = LRUCache("kernels")
    e = {k: Entry() for k in "abcdefg"}
    for k in "abcd":
        c.put(k, e[k])
    assert c.get("a") is e["a"] and c.get("zz") is None
    c.put("e", e["e"])                  # over 4: down to 3, dropping the least recently used b and c
    assert sorted(c) == ["a", "d", "e"] and c.evictions == 2
    c.get("d")
    c.put("f", e["f"])
    assert sorted(c) == ["a", "d", "e", "f"] and c.evictions == 2
    c.put("g", e["g"])                  # a and e are the oldest now
    assert sorted(c) == ["d", "f", "g"] and c.evictions == 4
    with pytest.raises(ValueError, match="unknown limit"):
        LRUCache("nope")


# ---- eager kernels --------------------------------------------------------------------------------

def test_wasm_eager_kernels_stay_within_the_limit_over_300_shapes(limits):
    dev = wasm()
    limits(kernels=64)
    eng = dev.engine
    first_store = weakref.ref(eng.store)
    rng = np.random.default_rng(0)
    first = rng.standard_normal((1, 3)).astype(np.float32)
    for n in range(1, 301):
        a = first if n == 1 else rng.standard_normal((n, 3)).astype(np.float32)
        x = wt.tensor(a, device=dev)
        np.testing.assert_allclose((x * 2.0 + 1.0).numpy(), a * 2 + 1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(wt.reduce_sum(wt.exp(x), axis=0).numpy(), np.exp(a).sum(0), rtol=1e-5)
        s = dev.stats()
        assert s["kernel_cache"] <= 64 and s["kernels"] <= 64, s
    assert s["kernel_evictions"] >= 4 * 300 - 64 - 10
    # the engine keeps what is alive plus at most as many dropped instances (then recycles its store)
    assert s["instances"] <= 64 + 8 and eng._in_store <= max(eng.RECYCLE_MIN, 2 * s["instances"]) + 1
    assert s["store_recycles"] >= 5 and first_store() is None       # the old stores, and their code, are gone
    x = wt.tensor(first, device=dev)                                 # evicted long ago: compiled again, right
    np.testing.assert_allclose((x * 2.0 + 1.0).numpy(), first * 2 + 1, rtol=1e-6, atol=1e-6)


def test_live_kernels_and_executables_survive_a_store_recycle():
    """recycle() moves every live instance to a fresh store: cached kernels and executables built
    before it run right after it, without compiling again."""
    dev = wasm()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = wt.tensor(a, device=dev)
    f = wt.function(lambda t: wt.reduce_sum(wt.sqrt(t + 1.0), axis=1))
    np.testing.assert_allclose((x * 0.5 - 2.0).numpy(), a * 0.5 - 2, rtol=1e-6)
    np.testing.assert_allclose(f(x).numpy(), np.sqrt(a + 1).sum(1), rtol=1e-5)
    old = weakref.ref(dev.engine.store)
    misses, traces = dev.stats()["kernel_misses"], f.trace_count
    dev.engine.recycle()
    gc.collect()
    assert old() is None
    np.testing.assert_allclose((x * 0.5 - 2.0).numpy(), a * 0.5 - 2, rtol=1e-6)
    np.testing.assert_allclose(f(x).numpy(), np.sqrt(a + 1).sum(1), rtol=1e-5)
    assert dev.stats()["kernel_misses"] == misses and f.trace_count == traces


def test_webgpu_eager_kernels_stay_within_the_limit(limits):
    dev = webgpu()
    limits(kernels=8)
    rng = np.random.default_rng(1)
    for n in range(1, 25):
        a = rng.standard_normal((n, 2)).astype(np.float32)
        x = wt.tensor(a, device=dev)
        np.testing.assert_allclose((x * 3.0).numpy(), a * 3, rtol=1e-6)
        assert len(dev.kernels) <= 8
    c = dev.cache_stats()
    assert c["kernel_cache"] <= 8 and c["kernel_evictions"] > 0
    gc.collect()
    assert dev.cache_stats()["kernels"] <= 8 + c["executables"] * 4       # evicted kernels were freed


def test_eviction_from_many_threads(limits):
    """A tiny kernel limit (evictions and store recycles all the time) with 4 threads."""
    dev = wasm()
    limits(kernels=6)
    errors = []

    def work(i):
        rng = np.random.default_rng(50 + i)
        try:
            for k in range(60):
                a = rng.standard_normal((1 + (i * 7 + k) % 23, 4)).astype(np.float32)
                x = wt.tensor(a, device=dev)
                np.testing.assert_allclose(wt.reduce_max(x * -2.0, axis=1).numpy(), (a * -2).max(1), rtol=1e-6)
        except BaseException as e:  # noqa: BLE001
            errors.append(f"thread {i}: {e!r}")
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert dev.stats()["kernel_cache"] <= 6


# ---- functions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["wasm", "webgpu", "reference"])
def test_function_traces_stay_within_the_limit(limits, name):
    dev = wasm() if name == "wasm" else webgpu() if name == "webgpu" else wt.get_device("reference")
    limits(traces=6)
    shapes = 300 if name == "wasm" else 12
    before = counts(dev)["executables"] if name != "reference" else 0

    @wt.function
    def f(x):
        return wt.reduce_sum(x * x, axis=1) - x[:, 0]

    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetracingWarning)
        for n in range(1, shapes + 1):
            a = rng.standard_normal((n, 2)).astype(np.float32)
            np.testing.assert_allclose(f(wt.tensor(a, device=dev)).numpy(), (a * a).sum(1) - a[:, 0],
                                       rtol=1e-5, atol=1e-6)
            assert len(f._cache) <= 6
        assert f.trace_count == shapes
        if name != "reference":
            gc.collect()
            assert counts(dev)["executables"] <= before + 6
        a = np.ones((1, 2), np.float32)                              # the first shape: evicted, traced again
        np.testing.assert_allclose(f(wt.tensor(a, device=dev)).numpy(), [1.0])
        assert f.trace_count == shapes + 1


@pytest.mark.parametrize("name", ["wasm", "webgpu"])
def test_deleting_a_function_frees_its_compiled_code(name):
    dev = wasm() if name == "wasm" else webgpu()
    x = [wt.tensor(np.full((n, 3), n, np.float32), device=dev) for n in range(1, 6)]
    gc.collect()
    before = counts(dev)

    @wt.function
    def f(a):
        return wt.reduce_max(wt.tanh(a) * a, axis=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetracingWarning)
        for n, t in enumerate(x, 1):
            np.testing.assert_allclose(f(t).numpy(), np.full(3, np.tanh(n) * n), rtol=1e-5)
    during = counts(dev)
    assert during["executables"] == before["executables"] + 5
    exe = weakref.ref(f.get_concrete(x[0]).exe)
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None and exe() is None
    assert counts(dev) == before                       # kernels, executables, instances/pipelines
    if name == "wasm":                                 # and the machine code goes with the next recycle
        store = weakref.ref(dev.engine.store)
        dev.engine.recycle()
        gc.collect()
        assert store() is None
        np.testing.assert_allclose(wt.reduce_max(wt.tanh(x[1]) * x[1], axis=0).numpy(),
                                   np.full(3, np.tanh(2) * 2), rtol=1e-5)


def test_methods_keep_their_traces_on_the_instance():
    class M:
        @wt.function
        def g(self, a):
            return a + 1.0
    m = M()
    np.testing.assert_array_equal(m.g(wt.ones((2,))).numpy(), [2.0, 2.0])
    fn = weakref.ref(m.g)
    del m
    gc.collect()
    assert fn() is None


# ---- retracing warning ----------------------------------------------------------------------------

def test_frequent_retracing_warns_once_like_tensorflow():
    @wt.function
    def h(a):
        return a * 2.0

    with pytest.warns(RetracingWarning, match=r"5 out of the last 5 calls to <function .*h.*> triggered "
                                              r"webtensor.function retracing") as record:
        for n in range(1, 12):
            np.testing.assert_array_equal(h(wt.ones((n,))).numpy(), np.full(n, 2.0))
    assert len([w for w in record if issubclass(w.category, RetracingWarning)]) == 1   # once per function
    assert "different shapes" in str(record[0].message)


def test_no_warning_for_one_shape_or_rare_retraces():
    @wt.function
    def h(a):
        return a - 1.0

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(30):
            h(wt.ones((3,)))
        for n in range(4, 8):               # 4 more shapes, each then used a few times: 5 traces, spread out
            for _ in range(3):
                np.testing.assert_array_equal(h(wt.ones((n,))).numpy(), np.zeros(n))
    assert h.trace_count == 5
    assert not [w for w in record if issubclass(w.category, RetracingWarning)]

"""The "webgpu" device (wgpu-py; Mesa's lavapipe CPU adapter where no GPU exists).

Every parity case eagerly, traced and differentiated; kernel-level numerics against the kernel
IR's numpy evaluator; the compiler's respect for device limits (binding count, workgroup grid,
buffer sizes); pipeline cache, buffer pool, missing adapter, lost device.
"""
from __future__ import annotations

import gc
import math
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.core import kernel_ir as K  # noqa: E402
from webtensor.core.dtypes import bool_, float32, int32  # noqa: E402
from webtensor.webgpu import wgsl  # noqa: E402

from parity import PARAMS, PARAM_IDS, CASES, assert_parity  # noqa: E402

import webtensor.webgpu.runtime as runtime  # noqa: E402  (a missing wgpu fails, never skips)


@pytest.fixture(scope="module")
def dev():
    return wt.get_device("webgpu")


def small_device(**limits):
    """A second device whose compiler sees smaller limits than the adapter's."""
    return runtime.WebGPUDevice(limits=limits)


@pytest.fixture(scope="module")
def tiny():
    return small_device(max_storage_buffers_per_shader_stage=4, max_compute_workgroups_per_dimension=5,
                        max_storage_buffer_binding_size=1 << 16, max_buffer_size=1 << 18)


# ---- every op, eager / traced / gradients ---------------------------------------------------------

@pytest.mark.parametrize("case,mode", PARAMS, ids=PARAM_IDS)
def test_parity(case, mode):
    assert_parity(case, "webgpu", mode)


# ---- kernel-level numerics vs the kernel IR's evaluator -------------------------------------------

def run_kernel(dev, kernel, arrays):
    datas = [dev.from_host(a, _aval(a.shape, b.dtype)) for a, b in zip(arrays, kernel.inputs)]
    out = dev.run_kernel(kernel, datas)
    return dev.to_host(out, _aval(kernel.out.shape, kernel.out.dtype))


def _aval(shape, dtype):
    from webtensor.core.op import Aval
    return Aval(tuple(shape), dtype)


def unary_kernel(op, n, dtype=float32, out=None):
    x = K.load(0, (K.idx(0),), dtype)
    e = K.unary(op, x) if isinstance(op, str) else op(x)
    return K.map_kernel([K.Buffer((n,), dtype)], K.Buffer((n,), out or e.dtype), e)


def binary_kernel(op, n, dtype):
    a, b = K.load(0, (K.idx(0),), dtype), K.load(1, (K.idx(0),), dtype)
    e = K.binary(op, a, b)
    return K.map_kernel([K.Buffer((n,), dtype)] * 2, K.Buffer((n,), e.dtype), e)


def test_round_half_to_even(dev):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.49, 1e7 + 1, 0.49999997], np.float32)
    got = run_kernel(dev, unary_kernel("round", len(x)), [x])
    np.testing.assert_array_equal(got, np.rint(x))


def test_floor_division_and_modulo_int(dev):
    a, b = np.meshgrid(np.arange(-7, 8), np.array([-3, -2, -1, 1, 2, 3]))
    a, b = a.ravel().astype(np.int32), b.ravel().astype(np.int32)
    for op, ref in (("idiv", np.floor_divide), ("mod", np.mod), ("div", np.floor_divide)):
        got = run_kernel(dev, binary_kernel(op, len(a), int32), [a, b])
        np.testing.assert_array_equal(got, ref(a, b), err_msg=op)


def test_float_mod_and_idiv(dev):
    rng = np.random.default_rng(1)
    a = rng.uniform(-10, 10, 64).astype(np.float32)
    b = rng.choice([-3.5, -1.0, 0.75, 2.0], 64).astype(np.float32)
    for op, ref in (("mod", np.mod), ("idiv", np.floor_divide)):
        got = run_kernel(dev, binary_kernel(op, len(a), float32), [a, b])
        np.testing.assert_allclose(got, ref(a, b), rtol=1e-5, atol=1e-5, err_msg=op)


def test_pow_matches_numpy(dev):
    a = np.array([-2, -2, -2, -0.5, 0, 0, 0, 3, 1, -1, 2, -3], np.float32)
    b = np.array([3, 2, -1, 0.5, 2, 0, -1, 0, np.nan, 5, -2, 1.5], np.float32)
    got = run_kernel(dev, binary_kernel("pow", len(a), float32), [a, b])
    with np.errstate(all="ignore"):
        want = np.power(a, b)
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    ai = np.array([2, -3, 5, 1, -1, -1, 0, 7], np.int32)
    bi = np.array([10, 3, 0, -4, -3, -2, 0, 2], np.int32)
    got = run_kernel(dev, binary_kernel("pow", len(ai), int32), [ai, bi])
    np.testing.assert_array_equal(got, [1024, -27, 1, 1, -1, 1, 1, 49])


def test_erf_and_tanh_accuracy(dev):
    from webtensor.core.numpy_util import erf
    x = np.concatenate([np.linspace(-9, 9, 4001), np.geomspace(1e-7, 1, 200), -np.geomspace(1e-7, 1, 200),
                        [0.0, np.inf, -np.inf]]).astype(np.float32)
    for op, ref in (("erf", erf), ("tanh", np.tanh)):
        got = run_kernel(dev, unary_kernel(op, len(x)), [x])
        want = ref(x.astype(np.float64))
        # relative accuracy near 0 matters (gelu, gradients): some drivers' tanh loses it entirely
        np.testing.assert_allclose(got, want, rtol=5e-6, atol=0, err_msg=op)


def test_casts_and_bool_storage(dev):
    x = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 1e9, -1e9], np.float32)
    got = run_kernel(dev, unary_kernel(lambda v: K.cast(v, int32), len(x)), [x])
    np.testing.assert_array_equal(got, [-2, 0, 0, 0, 2, 1e9, -1e9])   # toward zero
    got = run_kernel(dev, unary_kernel(lambda v: K.binary("ne", v, K.const(0.0)), len(x)), [x])
    np.testing.assert_array_equal(got, x != 0)
    b = np.array([True, False, True])
    got = run_kernel(dev, unary_kernel(lambda v: K.cast(v, float32) * 3.0, 3, bool_), [b])
    np.testing.assert_array_equal(got, [3.0, 0.0, 3.0])


def test_infinite_and_nan_constants(dev):
    x = np.array([1.0, -np.inf, 3.0, 5.0], np.float32)
    k = unary_kernel(lambda v: K.where(v > 2.0, K.const(math.inf), K.where(v < 0.0, K.const(math.nan),
                                                                          K.maximum(v, K.const(-math.inf)))), len(x))
    np.testing.assert_array_equal(run_kernel(dev, k, [x]), [1.0, np.nan, np.inf, np.inf])
    assert wgsl.literal(math.nan, "f32") == "wt_bits_f32(0x7fc00000u)"
    assert wgsl.literal(-math.inf, "f32") == "wt_bits_f32(0xff800000u)"
    assert wgsl.literal(-2 ** 31, "i32") == "i32(-2147483647 - 1)"
    assert float(wgsl.literal(0.1, "f32").rstrip("f")) == np.float32(0.1)


@pytest.mark.parametrize("combiner", ["argmax", "argmin"])
def test_arg_reductions_first_index_and_nan(dev, combiner):
    x = np.array([[1, 3, 3, 0, 3], [2, 2, 2, 2, 2], [0, np.nan, 5, np.nan, -1], [-np.inf] * 5], np.float32)
    e = K.load(0, (K.idx(0), K.idx(1)), float32)
    k = K.reduce_kernel([K.Buffer(x.shape, float32)], K.Buffer((4,), int32), (5,), e, combiner)
    np.testing.assert_array_equal(run_kernel(dev, k, [x]), getattr(np, combiner)(x, axis=1))


@pytest.mark.parametrize("combiner", ["sum", "max", "argmax", "argmin"])
def test_two_pass_reduction(dev, combiner):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 300_001)).astype(np.float32)
    x[0, 123_456] = x[0, 290_000] = 50.0          # ties across chunks: the first index wins
    x[1, 7] = x[1, 299_999] = -50.0
    out_dt = int32 if combiner.startswith("arg") else float32
    k = K.reduce_kernel([K.Buffer(x.shape, float32)], K.Buffer((2,), out_dt), (x.shape[1],),
                        K.load(0, (K.idx(0), K.idx(1)), float32), combiner)
    assert len(wgsl.lower(k, dev.limits).passes) == 2
    got = run_kernel(dev, k, [x])
    want = {"sum": lambda: x.sum(1, dtype=np.float64), "max": lambda: x.max(1),
            "argmax": lambda: x.argmax(1), "argmin": lambda: x.argmin(1)}[combiner]()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("shapes,ta,tb,lowering", [
    (((130, 257), (257, 70)), False, False, "tiled"),
    (((3, 65, 64), (1, 64, 129)), False, False, "tiled"),
    (((2, 1, 70, 65), (3, 50, 70)), True, True, "tiled"),       # transposes and broadcast batch via index
    (((64, 200), (40, 200)), False, True, "tiled"),
    (((70, 3000), (3000, 60)), False, False, "split-k"),        # 2 output tiles, long K: two passes
    (((131, 257), (257, 71)), False, False, "direct"),          # (more direct cases: test_webgpu_matmul_plans.py)
    (((9, 2048), (2048, 16)), False, False, "split-k-direct"),  # 9x16: 144 outputs, long K
    (((300, 2048), (2048, 1)), False, False, "generic"),        # matrix-vector
])
def test_matmul_lowerings(dev, shapes, ta, tb, lowering, force_tiled_matmul):
    if lowering in ("tiled", "split-k"):   # products this small take the direct kernel unless told
        force_tiled_matmul(min_use=0.2)
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    x, y = wt.tensor(a, device="webgpu"), wt.tensor(b, device="webgpu")
    got = wt.matmul(x, y, transpose_a=ta, transpose_b=tb).numpy()
    want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    k = next(k for k in dev.kernels if k.template == "matmul" and k.inputs[0].shape == shapes[0])
    passes = dev.kernels[k].lowered.passes
    assert ("tile_a" in passes[0].source) == (lowering in ("tiled", "split-k"))
    assert ("acc00" in passes[0].source) == (lowering != "generic")
    assert len(passes) == (2 if lowering.startswith("split-k") else 1)


def test_int_matmul(dev):
    a = np.arange(-12, 12, dtype=np.int32).reshape(4, 6)
    b = np.arange(18, dtype=np.int32).reshape(6, 3) - 5
    got = wt.matmul(wt.tensor(a, device="webgpu"), wt.tensor(b, device="webgpu")).numpy()
    np.testing.assert_array_equal(got, a @ b)


def test_float16_stays_a_dtype_table_concern():
    low = wgsl.Limits(shader_f16=True)
    e = K.load(0, (K.idx(0),), wt.float16) * 2.0
    for n, elem in ((6, "{}"), (8, "vec4<{}>")):      # one element per invocation, four (map.py)
        src = wgsl.lower(K.map_kernel([K.Buffer((n,), wt.float16)], K.Buffer((n,), wt.float16), e), low).passes[0].source
        assert "enable f16;" in src and f"array<{elem.format('f16')}, " in src
        src = wgsl.lower(K.map_kernel([K.Buffer((n,), wt.float16)], K.Buffer((n,), wt.float16), e),
                         wgsl.Limits()).passes[0].source
        assert "f16" not in src and f"array<{elem.format('f32')}, " in src


def test_float16_runs_where_the_device_has_shader_f16(dev):
    if not dev.limits.shader_f16:
        pytest.skip("this adapter has no shader-f16 (float16 then computes in f32 storage)")
    x = np.linspace(-3, 3, 24).astype(np.float16)
    t = wt.tensor(x, device="webgpu")
    m = wt.reshape(t, (4, 6))
    got = [(t * 2.0 + 1.0).numpy(), wt.exp(t).numpy(), wt.matmul(m, wt.transpose(m)).numpy()]
    want = [x.astype(np.float32) * 2 + 1, np.exp(x), x.reshape(4, 6) @ x.reshape(4, 6).T]
    assert got[1].dtype == np.float16 and got[2].dtype == np.float16
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=2e-3, atol=2e-2)


# ---- device limits ------------------------------------------------------------------------------

def test_more_inputs_than_bindings(tiny):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((3, k + 1)).astype(np.float32) for k in range(7)]
    ts = [wt.tensor(a, device=tiny) for a in arrays]
    want = np.concatenate(arrays, axis=1)
    np.testing.assert_array_equal(wt.concat(ts, axis=1).numpy(), want)        # eager: one kernel, 7 inputs
    k = next(k for k in tiny.kernels if len(k.inputs) == 7)
    low = tiny.kernels[k].lowered
    assert low.packed and all(len(p.bindings) <= 4 for p in low.passes)

    @wt.function
    def f(*xs):
        return wt.sum(wt.concat([x * (i + 1.0) for i, x in enumerate(xs)], axis=1), axis=1)   # fused
    want = np.concatenate([a * (i + 1) for i, a in enumerate(arrays)], axis=1).sum(1)
    np.testing.assert_allclose(f(*ts).numpy(), want, rtol=1e-5, atol=1e-5)
    assert any(c.lowered.packed for c, _ in f.get_concrete(*ts).exe.steps)

    @wt.function
    def g(*xs):     # a matmul, then a kernel whose inputs are copied into its packed binding (a new pass)
        m = wt.matmul(xs[0], xs[0], transpose_b=True)
        return wt.sum(wt.concat([m] + [x * (i + 1.0) for i, x in enumerate(xs)], axis=1), axis=1)
    want = np.concatenate([arrays[0] @ arrays[0].T] + [a * (i + 1) for i, a in enumerate(arrays)], axis=1).sum(1)
    np.testing.assert_allclose(g(*ts).numpy(), want, rtol=1e-5, atol=1e-5)
    steps = g.get_concrete(*ts).exe.steps
    assert len(steps) >= 2 and steps[-1][0].lowered.packed and not steps[0][0].lowered.packed


def test_workgroup_grid_is_folded(tiny):
    # the compiler sees at most 5 workgroups per dimension: 7711 elements (not a multiple of 4: one per
    # invocation) need 31 -> a 3-D grid
    x = np.arange(701 * 11, dtype=np.float32).reshape(701, 11)
    t = wt.tensor(x, device=tiny)
    np.testing.assert_array_equal((t * 2.0).numpy(), x * 2)
    np.testing.assert_allclose(wt.sum(t, axis=1).numpy(), x.sum(1), rtol=1e-6)
    grids = [p.workgroups for c in tiny.kernels.values() for p in c.lowered.passes]
    assert max(max(g) for g in grids) <= 5 and any(g[1] > 1 for g in grids) and any(g[2] > 1 for g in grids)


def test_dispatch_beyond_65535_workgroups(dev):
    n = 65535 * 256 + 1001                       # odd: one invocation per element, 256 per workgroup
    x = np.random.default_rng(5).random(n, dtype=np.float32)
    y = wt.tensor(x, device="webgpu") * 3.0
    k = next(k for k in dev.kernels if k.out.shape == (n,))
    (p,) = dev.kernels[k].lowered.passes
    assert p.workgroups[0] <= 65535 and p.workgroups[1] > 1
    got = y.numpy()
    np.testing.assert_array_equal(got[:1001], x[:1001] * 3)
    np.testing.assert_array_equal(got[-5000:], x[-5000:] * 3)
    assert np.array_equal(got, x * np.float32(3))


def test_buffer_above_binding_limit_is_a_clear_error(tiny):
    x = wt.tensor(np.ones(20_000, np.float32), device=tiny)          # 80 kB > 64 KiB binding limit
    with pytest.raises(wgsl.BufferTooLarge, match=r"op exp .*float32\[20000\].*maxStorageBufferBindingSize"):
        wt.exp(x)
    with pytest.raises(wgsl.BufferTooLarge, match=r"float32\[100000\] needs 400000 bytes.*maxBufferSize"):
        wt.tensor(np.ones(100_000, np.float32), device=tiny)


# ---- caches, pool, adapter, loss ----------------------------------------------------------------

def test_pipeline_cache_hits(dev):
    x = wt.tensor(np.ones((5, 3), np.float32), device="webgpu")
    wt.sin(x)
    before = dict(dev.stats)
    y = wt.sin(wt.tensor(np.zeros((5, 3), np.float32), device="webgpu"))
    assert dev.stats["kernel_hits"] == before["kernel_hits"] + 1
    assert dev.stats["pipeline_misses"] == before["pipeline_misses"]
    np.testing.assert_array_equal(y.numpy(), np.zeros((5, 3)))
    # a different kernel whose WGSL is the same shares the pipeline: [5, 3] and [15] elementwise
    wt.sin(wt.tensor(np.zeros(15, np.float32), device="webgpu"))
    assert dev.stats["pipeline_hits"] == before["pipeline_hits"] + 1


def test_training_step_reuses_buffers(dev, monkeypatch):
    rng = np.random.default_rng(6)
    w1 = wt.Variable(rng.standard_normal((20, 16)).astype(np.float32) * 0.3, device="webgpu")
    w2 = wt.Variable(rng.standard_normal((16, 4)).astype(np.float32) * 0.3, device="webgpu")
    x = wt.tensor(rng.standard_normal((32, 20)).astype(np.float32), device="webgpu")
    y = wt.tensor(rng.integers(0, 4, 32).astype(np.int32), device="webgpu")

    @wt.function
    def step(x, y):
        with wt.GradientTape() as tape:
            loss = wt.mean(wt.sparse_softmax_cross_entropy(y, wt.matmul(wt.relu(wt.matmul(x, w1)), w2)))
        g1, g2 = tape.gradient(loss, [w1, w2])
        w1.assign_sub(0.5 * g1)
        w2.assign_sub(0.5 * g2)
        return loss

    losses = [float(step(x, y)) for _ in range(3)]
    gc.collect()
    created = dev.pool.stats["created"]
    submits = dev.stats["submits"]
    losses += [float(step(x, y)) for _ in range(10)]
    gc.collect()
    assert dev.pool.stats["created"] == created                 # flat: every buffer came from the pool
    assert dev.stats["submits"] - submits == 20                  # one submit per step (+ one per readback)
    assert losses[-1] < losses[0] * 0.7
    # ... with one command encoder and one compute pass for all of its kernels
    encoder = type(dev.gpu.create_command_encoder())
    counts = {"encoders": 0, "passes": 0}
    create, begin = type(dev.gpu).create_command_encoder, encoder.begin_compute_pass

    def counted(key, fn):
        def wrapper(*a, **kw):
            counts[key] += 1
            return fn(*a, **kw)
        return wrapper
    monkeypatch.setattr(type(dev.gpu), "create_command_encoder", counted("encoders", create))
    monkeypatch.setattr(encoder, "begin_compute_pass", counted("passes", begin))
    step(x, y)
    assert counts == {"encoders": 1, "passes": 1}
    assert len(step.get_concrete(x, y).exe.steps) > 5


def test_buffer_pool_size_classes_and_idle_cap():
    class FakeGPU:
        def create_buffer(self, size, usage):
            return type("Buf", (), {"size": size})()
    pool = runtime.BufferPool(FakeGPU(), 0, 1 << 30, max_idle_bytes=4096)
    a, b = pool.acquire(1000), pool.acquire(3000)
    assert (a.size, b.size) == (1024, 3072)            # within 1/16 of a power of two
    pool.release(a)
    pool.release(b)                                      # 1024 + 3072 idle: at the cap
    assert pool.acquire(1020) is a and pool.stats["reused"] == 1
    c = pool.acquire(4000)
    pool.release(c)                                      # 3072 + 4096 > cap: dropped, not kept
    assert pool.stats["idle_bytes"] == 3072 and pool.acquire(4000) is not c


QUIET_CHILD = """
import json, os, sys
import webtensor as wt
from webtensor.device import default_device_name
out = {"webgpu": repr(wt.get_device("webgpu"))} if sys.argv[1] == "webgpu" else {"default": default_device_name()}
print(json.dumps({**out, "runtime_dir": os.environ.get("XDG_RUNTIME_DIR")}))
"""


def test_no_stderr_noise_without_xdg_runtime_dir(tmp_path):
    """libwayland (probed by wgpu-native while the adapter is requested) printed "error: XDG_RUNTIME_DIR
    is invalid or not set in the environment." twice; webtensor gives the process a private one."""
    import json
    import subprocess
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "WEBTENSOR_DEVICE")}
    env["TMPDIR"] = str(tmp_path)                    # tempfile.gettempdir(): where the directory goes
    mine = tmp_path / f"webtensor-runtime-{os.getuid()}"

    def child(what="webgpu"):     # get_device('webgpu'), or the default device's probe
        r = subprocess.run([sys.executable, "-c", QUIET_CHILD, what], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""
        out = json.loads(r.stdout)
        assert out["webgpu"].startswith("Device('webgpu'") if what == "webgpu" else out["default"] in ("webgpu", "wasm")
        d = os.lstat(out["runtime_dir"])
        assert os.path.dirname(out["runtime_dir"]) == str(tmp_path) and d.st_uid == os.getuid()
        assert d.st_mode & 0o777 == 0o700
        return out["runtime_dir"]

    assert child() == str(mine)
    assert child("default") == str(mine)             # reused by the next process
    mine.chmod(0o755)                                # not private (or not ours): another, private one
    other = child()
    assert other != str(mine) and os.path.basename(other).startswith("webtensor-runtime-")


def test_no_adapter_message(monkeypatch):
    import wgpu
    monkeypatch.setattr(wgpu.gpu, "request_adapter_sync", lambda **kw: None)
    with pytest.raises(RuntimeError, match=r"no WebGPU adapter.*mesa-vulkan-drivers.*'wasm'"):
        runtime.WebGPUDevice()


def test_missing_wgpu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wgpu", None)
    with pytest.raises(ImportError, match=r"webtensor\[webgpu\]"):
        runtime.WebGPUDevice()


def test_lost_device_reports_and_can_be_recreated(dev, monkeypatch):
    d = small_device()
    x = wt.tensor(np.ones(4, np.float32), device=d)
    d.gpu.destroy()
    with pytest.raises(RuntimeError, match="device was lost.*reset_device"):
        (x + 1.0).numpy()
    d._suspect = "The WGPU device was lost (destroyed)"   # what wgpu logs, naming no device
    dev._suspect = d._suspect
    np.testing.assert_array_equal((wt.tensor([1.0], device=dev) + 1.0).numpy(), [2.0])   # others go on
    assert dev.lost is None
    monkeypatch.setitem(sys.modules["webtensor.core.runtime.device"]._INSTANCES, "webgpu", d)   # as if d were the default
    import webtensor.webgpu
    webtensor.webgpu.reset_device()
    fresh = wt.get_device("webgpu")
    assert fresh is not d
    np.testing.assert_array_equal((wt.tensor([1.0, 2.0], device="webgpu") + 1.0).numpy(), [2.0, 3.0])

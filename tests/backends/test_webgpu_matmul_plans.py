"""The WebGPU matmul template's plans (webgpu/matmul.py ``choose_plan``): which shapes get shared-memory
tiles, which the direct register-blocked kernel, which the generic reduction; and each kernel shape
class against numpy on the "webgpu" device (lavapipe where no GPU exists): sizes that are not
multiples of the per-invocation block, fewer rows or columns than a block, batches with broadcast
and transposed operands, split K, integers. Also the reduction's serial path for many short rows.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.core import kernel_ir as K  # noqa: E402
from webtensor.core.dtypes import float32  # noqa: E402
from webtensor.core.op import Aval  # noqa: E402
from webtensor.webgpu import wgsl  # noqa: E402
from webtensor.webgpu.limits import Limits  # noqa: E402
from webtensor.webgpu.matmul import choose_plan  # noqa: E402


@pytest.mark.parametrize("batch,M,N,K,kind", [
    (1, 2048, 2048, 2048, "tiled"),        # large, tile-aligned: shared-memory tiles
    (1, 1024, 1024, 1024, "direct"),
    (1, 25088, 16, 9, "direct"),           # im2col conv 3x3x1 -> 16: a 64x64x16 tile is 4 % useful work
    (1, 6272, 32, 144, "direct"),          # im2col conv 3x3x16 -> 32
    (1, 128, 10, 256, "direct"),           # an MLP's classifier layer
    (1, 128, 256, 784, "direct"),          # an MLP's first layer at batch 128 (a small product)
    (1, 1, 1000, 512, None),               # matrix-vector: the reduction splits K across a workgroup
    (1, 512, 1, 512, None),
    (1, 9, 16, 2048, "direct"),            # 144 outputs over a long K: split K
    (1, 4, 8, 64, None),                   # 32 outputs: under one workgroup
    (12, 64, 64, 64, "direct"),            # batched attention-sized heads
])
def test_choose_plan(batch, M, N, K, kind):
    plan = choose_plan(batch, M, N, K, Limits())
    assert (plan and plan.kind) == kind
    if kind == "direct":
        assert plan.rm <= M and plan.rn <= N and plan.wx * plan.wy <= Limits().max_compute_invocations_per_workgroup


def test_choose_plan_respects_small_workgroup_storage():
    plan = choose_plan(1, 2048, 2048, 2048, Limits(max_compute_workgroup_storage_size=4096))
    assert plan.kind == "tiled" and 2 * plan.tk * plan.tm * 4 <= 4096


@pytest.fixture(scope="module")
def dev():
    return wt.get_device("webgpu")


@pytest.mark.parametrize("shapes,ta,tb,dtype", [
    (((3137, 9), (9, 16)), False, False, np.float32),        # im2col-like, M not a multiple of 4
    (((130, 33), (33, 10)), False, False, np.float32),       # N = 10: a partial column block
    (((257, 70), (70, 3)), False, False, np.float32),        # N = 3 < 4: blocks of 3 columns
    (((3, 70), (70, 200)), False, False, np.float32),        # M = 3 < 4
    (((2, 1, 37, 19), (3, 23, 37)), True, True, np.float32),  # transposes, broadcast batch dims
    (((12, 3000), (3000, 48)), False, False, np.float32),    # few workgroups, long K: split K
    (((33, 30), (30, 17)), False, False, np.int32),          # integers
])
def test_direct_matmul_against_numpy(dev, shapes, ta, tb, dtype):
    rng = np.random.default_rng(7)
    if dtype == np.int32:
        a, b = (rng.integers(-9, 10, s).astype(np.int32) for s in shapes)
    else:
        a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    x, y = wt.tensor(a, device="webgpu"), wt.tensor(b, device="webgpu")
    got = wt.matmul(x, y, transpose_a=ta, transpose_b=tb).numpy()
    want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    if dtype == np.int32:
        np.testing.assert_array_equal(got, want)
    else:
        # float32 sums of K products in another order: measured max error 1.5e-4 at K = 3000
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    k = next(k for k in dev.kernels if k.template == "matmul" and k.inputs[0].shape == shapes[0])
    passes = dev.kernels[k].lowered.passes
    assert "tile_a" not in passes[0].source and "acc00" in passes[0].source     # the direct kernel
    assert len(passes) == (2 if shapes[0][-1] == 3000 else 1)


@pytest.mark.parametrize("rows,length,barriers", [(256, 128, False), (200, 257, True), (8, 128, True)])
def test_short_rows_reduce_serially(dev, rows, length, barriers):
    """Many short rows (a bias gradient: column sums over the batch) reduce one row per invocation,
    without barriers; long rows and few rows keep the workgroup tree."""
    x = np.random.default_rng(5).standard_normal((length, rows)).astype(np.float32)
    k = K.reduce_kernel([K.Buffer(x.shape, float32)], K.Buffer((rows,), float32), (length,),
                        K.load(0, (K.idx(1), K.idx(0)), float32), "sum")
    src = wgsl.lower(k, dev.limits).passes[0].source
    assert ("workgroupBarrier" in src) == barriers
    got = dev.to_host(dev.run_kernel(k, [dev.from_host(x, Aval(x.shape, float32))]), Aval((rows,), float32))
    np.testing.assert_allclose(got, x.sum(0, dtype=np.float64), rtol=1e-5, atol=1e-5)


def _matmul(M, N, Kd, batch=()):
    a, b, out = (K.Buffer(batch + s, float32) for s in ((M, Kd), (Kd, N), (M, N)))
    nb = len(batch)
    d = [K.idx(i) for i in range(nb + 3)]
    expr = K.load(0, tuple(d[:nb]) + (d[nb], d[nb + 2]), float32) * \
        K.load(1, tuple(d[:nb]) + (d[nb + 2], d[nb + 1]), float32)
    return K.reduce_kernel([a, b], out, (Kd,), expr, "sum", template="matmul")


@pytest.mark.parametrize("M,N,Kd,passes", [(256, 256, 256, 1), (9, 16, 2048, 2)])
def test_bindings_are_fixed_size_arrays(M, N, Kd, passes):
    """Without run-time rows every binding of the matmul's passes (split K's partials included) is a
    fixed-size array of its buffer's elements, so WebGPU's bounds clamp is by a constant; under
    run-time rows (the bound buffers hold fewer rows) they stay runtime-sized."""
    low = wgsl.lower(_matmul(M, N, Kd), Limits())
    assert len(low.passes) == passes
    first = low.passes[0].source
    assert f"in0: array<f32, {M * Kd}>;" in first and f"in1: array<f32, {Kd * N}>;" in first
    if passes == 1:
        assert f"result: array<f32, {M * N}>;" in first
    else:
        ksplit = low.scratch[0][1] // (4 * M * N)
        assert f"partials: array<f32, {ksplit * M * N}>;" in first
        assert f"partials: array<f32, {ksplit * M * N}>;" in low.passes[1].source
        assert f"result: array<f32, {M * N}>;" in low.passes[1].source
    rows = wgsl.lower(_matmul(M, N, Kd, batch=(4,)), Limits(), chunk=4)
    assert all(re.search(r"\bin0: array<f32>;", p.source) or "in0" not in p.source for p in rows.passes)
    assert re.search(r"\bresult: array<f32>;", rows.passes[-1].source)


# ---- float16: the template's f16 variant (f16 loads and tiles, f32 sums) --------------------------

def _matmul_dt(M, N, Kd, dt, batch=(), cast_b=False):
    """``_matmul`` in ``dt``; ``cast_b``: B is a float32 buffer read cast to ``dt`` (a mixed_float16
    Dense's float32 kernel)."""
    nb = len(batch)
    d = [K.idx(i) for i in range(nb + 3)]
    b_dt = float32 if cast_b else dt
    lb = K.load(1, tuple(d[:nb]) + (d[nb + 2], d[nb + 1]), b_dt)
    expr = K.load(0, tuple(d[:nb]) + (d[nb], d[nb + 2]), dt) * (K.cast(lb, dt) if cast_b else lb)
    return K.reduce_kernel([K.Buffer(batch + (M, Kd), dt), K.Buffer(batch + (Kd, N), b_dt)],
                           K.Buffer(batch + (M, N), dt), (Kd,), expr, "sum", template="matmul")


@pytest.mark.parametrize("M,N,Kd,batch,cast_b", [(130, 33, 70, (), False), (64, 64, 64, (3,), True),
                                                 (9, 16, 2048, (), True), (2048, 2048, 2048, (), False)])
def test_float16_without_shader_f16_keeps_the_float32_kernels(M, N, Kd, batch, cast_b):
    """A device without ``shader-f16`` stores and computes float16 in f32: the matmul passes are the
    float32 product's, WGSL for WGSL, then the pass rounding the output to float16 (wgsl.py)."""
    from webtensor.core.dtypes import float16
    f16 = wgsl.lower(_matmul_dt(M, N, Kd, float16, batch, cast_b), Limits())
    f32 = wgsl.lower(_matmul_dt(M, N, Kd, float32, batch, cast_b), Limits())
    assert [p.source for p in f16.passes[:-1]] == [p.source for p in f32.passes]
    assert "f16" not in f16.passes[-1].source and len(f16.passes) == len(f32.passes) + 1
    with_f16 = wgsl.lower(_matmul_dt(M, N, Kd, float16, batch, cast_b), Limits(shader_f16=True))
    assert "acc00" in with_f16.passes[0].source and "enable f16;" in with_f16.passes[0].source


@pytest.mark.parametrize("shapes,ta,tb,lowering", [
    (((130, 70), (70, 33)), False, False, "direct"),          # partial row and column blocks
    (((2, 1, 37, 19), (3, 23, 37)), True, True, "direct"),    # transposes, broadcast batch dims
    (((12, 3000), (3000, 48)), False, False, "split-k"),      # long K, few workgroups: f32 partials
    (((130, 257), (257, 70)), False, False, "tiled"),         # f16 shared-memory tiles
    (((300, 2048), (2048, 1)), False, False, "generic"),      # matrix-vector: the reduction
])
def test_float16_matmul_sums_in_float32(dev, shapes, ta, tb, lowering, force_tiled_matmul):
    """On a device with ``shader-f16``, float16 operands load as f16 (f16 tiles in ``tiled``), their
    products and sums are f32 and the result is rounded once to float16. Reference: the exact
    products of the float16 values summed in float64. Error of f32 sums of K exact products:
    K * 2**-24 * sum|a||b| at most (Higham 2002, 3.1), then one float16 rounding: 2**-11 of the
    value (2**-25 absolute for subnormals); the generic reduction also rounds each product to f16
    (2**-11 * sum|a||b| more). An f16 accumulator would miss the bound by far at K = 3000; measured
    (three seeds): at most 0.95 of it (direct, where the float16 rounding dominates), 0.85 tiled,
    0.15 split K, 0.24 generic."""
    if not dev.limits.shader_f16:
        pytest.skip("this adapter has no shader-f16 (float16 then computes as float32: the test above)")
    if lowering == "tiled":
        force_tiled_matmul(min_use=0.2)
    rng = np.random.default_rng(11)
    a, b = (rng.standard_normal(s).astype(np.float16) for s in shapes)
    x, y = wt.tensor(a, device="webgpu"), wt.tensor(b, device="webgpu")
    got = wt.matmul(x, y, transpose_a=ta, transpose_b=tb).numpy()
    a64, b64 = (np.swapaxes(v, -1, -2) if t else v for v, t in ((a.astype(np.float64), ta), (b.astype(np.float64), tb)))
    ref, mag = np.matmul(a64, b64), np.matmul(np.abs(a64), np.abs(b64))
    assert got.dtype == np.float16 and got.shape == ref.shape
    kd = a64.shape[-1]
    bound = 2.0 ** -11 * np.abs(ref) + kd * 2.0 ** -24 * mag * (1 + 2.0 ** -11) + 2.0 ** -25
    if lowering == "generic":
        bound += 2.0 ** -11 * mag
    err = np.abs(got.astype(np.float64) - ref)
    assert (err <= bound).all(), float((err / bound).max())
    k = next(k for k in dev.kernels if k.template == "matmul" and k.inputs[0].shape == shapes[0]
             and k.inputs[0].dtype.name == "float16")
    passes = dev.kernels[k].lowered.passes
    first = passes[0].source
    assert ("acc00" in first) == (lowering != "generic")
    assert "enable f16;" in first
    assert re.search(r"\bin0: array<f16, ", first) and re.search(r"\bin1: array<f16, ", first)
    if lowering == "tiled":
        plan = choose_plan(1, 130, 70, 257, dev.limits)      # half the float32 tiles' bytes
        assert re.search(r"tile_a: array<f16, ", first)
        assert passes[0].workgroup_storage == 2 * plan.tk * (plan.tm + plan.tn)
    if lowering == "split-k":
        assert re.search(r"partials: array<f32, ", first) and re.search(r"result: array<f16, ", passes[1].source)


def test_float16_q8_matmul_dequantizes_into_f16_tiles(dev):
    """``quantized_matmul`` of float16 activations and scales: B's tile holds each int8 weight times
    its column's scale rounded to float16 (the kernel's float16 multiply), sums in f32. Same bound
    as above over the float16 dequantized weights; measured 0.94 of it."""
    if not dev.limits.shader_f16:
        pytest.skip("this adapter has no shader-f16")
    from webtensor.core.ops.linalg import quantized_matmul_op
    rng = np.random.default_rng(0)
    M, Kd, N = 256, 128, 64
    a = rng.standard_normal((M, Kd)).astype(np.float16)
    w8 = rng.integers(-127, 128, (Kd, N)).astype(np.int8)
    q = np.frombuffer(w8.tobytes(), dtype="<i4").copy()
    scales = (rng.random(N) * 0.01 + 0.001).astype(np.float16)
    with wt.device("webgpu"):
        got = quantized_matmul_op(wt.tensor(a), wt.tensor(q), wt.tensor(scales), transpose_a=False, n=N).numpy()
    w = (w8.astype(np.float16) * scales).astype(np.float64)
    ref, mag = a.astype(np.float64) @ w, np.abs(a.astype(np.float64)) @ np.abs(w)
    bound = 2.0 ** -11 * np.abs(ref) + Kd * 2.0 ** -24 * mag * (1 + 2.0 ** -11) + 2.0 ** -25
    assert got.dtype == np.float16
    assert (np.abs(got.astype(np.float64) - ref) <= bound).all()
    k = next(k for k in dev.kernels if k.template == "matmul_q8" and k.inputs[0].dtype.name == "float16")
    assert re.search(r"tile_b: array<f16, ", dev.kernels[k].lowered.passes[0].source)


@pytest.mark.parametrize("shapes,lowering", [(((130, 70), (70, 33)), "direct"), (((12, 3000), (3000, 48)), "split-k"),
                                             (((130, 257), (257, 70)), "tiled")])
def test_float16_matmul_equals_the_device_without_shader_f16(dev, shapes, lowering, force_tiled_matmul):
    """Same arithmetic both ways: without shader-f16 the float16 values are f32 (exact), their
    products and sums f32, the output rounded to float16 by an extra pass; with it the f16 variant
    widens each f16 operand to f32 and rounds the f32 sum to f16 once. Same plan, same order: the
    same float16 bits, a device told to ignore the feature against this one."""
    if not dev.limits.shader_f16:
        pytest.skip("this adapter has no shader-f16")
    from webtensor.core.runtime.device import forget_device
    from webtensor.webgpu.runtime import WebGPUDevice
    if lowering == "tiled":
        force_tiled_matmul(min_use=0.2)
    rng = np.random.default_rng(5)
    a, b = (rng.standard_normal(s).astype(np.float16) for s in shapes)
    wt.register_device("webgpu_no_f16", lambda: WebGPUDevice(limits={"shader_f16": False}))
    try:
        got = {d: wt.matmul(wt.tensor(a, device=d), wt.tensor(b, device=d)).numpy()
               for d in ("webgpu", "webgpu_no_f16")}
        no_f16 = wt.get_device("webgpu_no_f16")
        k = next(k for k in no_f16.kernels if k.template == "matmul" and k.inputs[0].shape == shapes[0])
        assert "f16" not in no_f16.kernels[k].lowered.passes[0].source
    finally:
        forget_device("webgpu_no_f16")
    assert got["webgpu"].dtype == got["webgpu_no_f16"].dtype == np.float16
    np.testing.assert_array_equal(got["webgpu"].view(np.uint16), got["webgpu_no_f16"].view(np.uint16))

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

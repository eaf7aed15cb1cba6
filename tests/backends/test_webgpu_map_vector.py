"""WebGPU map kernels over four consecutive elements per invocation (webgpu/map.py, ``vec4``): which
inputs are read as ``vec4`` and which gather their lanes, ops applied lane by lane (helper functions,
float -> int casts), bool lanes, scalar (uniform) values splatted, grids, packed inputs; each against
the kernel IR's numpy evaluator (``K.evaluate``) or numpy on the "webgpu" device (lavapipe where no
GPU exists). Sizes not a multiple of 4 keep one element per invocation."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from webtensor.core import kernel_ir as K  # noqa: E402
from webtensor.core.dtypes import bool_, float32, int32  # noqa: E402
from webtensor.core.op import Aval  # noqa: E402
from webtensor.webgpu import wgsl  # noqa: E402

import webtensor.webgpu.runtime as runtime  # noqa: E402


@pytest.fixture(scope="module")
def dev():
    return wt.get_device("webgpu")


def run(dev, kernel, arrays):
    datas = [dev.from_host(a, Aval(a.shape, b.dtype)) for a, b in zip(arrays, kernel.inputs)]
    return dev.to_host(dev.run_kernel(kernel, datas), Aval(kernel.out.shape, kernel.out.dtype))


def source(kernel, limits=wgsl.Limits()):
    (p,) = wgsl.lower(kernel, limits).passes
    return p.source


def test_contiguous_inputs_are_vec4_and_broadcasts_gather(dev):
    # out[i, j] = x[i, j] * w[j] + s[0], with (6, 10): x contiguous, w gathered by j, s uniform
    x = K.load(0, (K.idx(0), K.idx(1)), float32)
    w = K.load(1, (K.idx(1),), float32)
    s = K.load(2, (K.const(0, int32),), float32)
    k = K.map_kernel([K.Buffer((6, 10), float32), K.Buffer((10,), float32), K.Buffer((1,), float32)],
                     K.Buffer((6, 10), float32), x * w + s)
    src = source(k)
    # fixed-size bindings (emit.py shader_header): 60 floats as 15 vec4s
    assert "in0: array<vec4<f32>, 15>" in src and "in1: array<f32, 10>" in src and "result: array<vec4<f32>, 15>" in src
    assert "in0[gid]" in src and "in2[0i]" in src
    assert "vec4<u32>(lin) % " in src          # w's index: j = lin % 10, unsigned (ops.py CODE_NONNEG)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(b.shape).astype(np.float32) for b in k.inputs]
    np.testing.assert_array_equal(run(dev, k, arrays), arrays[0] * arrays[1] + arrays[2][0])


@pytest.mark.parametrize("start,vector", [(8, True), (2, False), (4, True)])
def test_offset_loads(dev, start, vector):
    # out[i] = x[i + start]: a vec4 load when start is a multiple of 4, else four gathered lanes
    k = K.map_kernel([K.Buffer((20,), float32)], K.Buffer((12,), float32),
                     K.load(0, (K.idx(0) + K.const(start, int32),), float32))
    assert ("in0: array<vec4<f32>, 5>" in source(k)) == vector
    x = np.arange(20, dtype=np.float32)
    np.testing.assert_array_equal(run(dev, k, [x]), x[start:start + 12])


def test_lane_by_lane_ops_and_bools(dev):
    # int floor division and modulo (helpers), float -> int (saturating helper), comparisons to
    # bool, where, bool -> float, max with NaN: every lane against the IR's evaluator
    n = 64
    rng = np.random.default_rng(1)
    a = rng.integers(-20, 20, n).astype(np.int32)
    b = rng.choice(np.array([-3, -2, 2, 5], np.int32), n)
    f = np.where(np.arange(n) % 7 == 0, np.nan, rng.uniform(-3e9, 3e9, n)).astype(np.float32)
    ia, ib = K.load(0, (K.idx(0),), int32), K.load(1, (K.idx(0),), int32)
    x = K.load(2, (K.idx(0),), float32)
    q = K.binary("idiv", ia, ib) + K.binary("mod", ia, ib) * K.cast(x, int32)
    pos = K.binary("gt", x, K.const(0.0))
    e = K.where(K.binary("and", pos, K.binary("lt", ia, ib)), K.cast(q, float32),
                K.maximum(x, K.cast(pos, float32)) * 0.5)
    bufs = [K.Buffer((n,), int32), K.Buffer((n,), int32), K.Buffer((n,), float32)]
    for expr in (e, q, pos):
        k = K.map_kernel(bufs, K.Buffer((n,), expr.dtype), expr)
        src = source(k)
        assert "result: array<vec4<" in src
        with np.errstate(all="ignore"):
            want = K.evaluate(k, [a, b, f])
        np.testing.assert_array_equal(run(dev, k, [a, b, f]), want)
    assert "vec4<i32>(wt_floordiv_i32(" in source(K.map_kernel(bufs, K.Buffer((n,), int32), q))


def test_bool_input_and_uniform_root(dev):
    m = K.load(0, (K.idx(0),), bool_)
    k = K.map_kernel([K.Buffer((8,), bool_)], K.Buffer((8,), float32), K.where(m, 2.0, -1.0))
    assert "in0[gid] != vec4<i32>(0i)" in source(k)
    mask = np.array([1, 0, 0, 1, 1, 1, 0, 1], bool)
    np.testing.assert_array_equal(run(dev, k, [mask]), np.where(mask, 2.0, -1.0))
    # a value the same for every element (a broadcast scalar) is splatted into the vec4 store
    k = K.map_kernel([K.Buffer((1,), float32)], K.Buffer((4, 4), float32),
                     K.exp(K.load(0, (K.const(0, int32),), float32)))
    np.testing.assert_allclose(run(dev, k, [np.array([0.5], np.float32)]), np.full((4, 4), math.exp(0.5)), rtol=1e-6)


def test_size_not_a_multiple_of_4_keeps_one_element_per_invocation(dev):
    k = K.map_kernel([K.Buffer((7,), float32)], K.Buffer((7,), float32), K.load(0, (K.idx(0),), float32) * 3.0)
    assert "vec4" not in source(k)
    x = np.arange(7, dtype=np.float32)
    np.testing.assert_array_equal(run(dev, k, [x]), x * 3)


def test_fused_chain_is_one_vec4_kernel(dev):
    # bench/export_bench.py's chain: gelu_tanh(x * a + b) * sigmoid(x), one map kernel
    @wt.function
    def chain(x, a, b):
        return wt.gelu_tanh(x * a + b) * wt.sigmoid(x)
    rng = np.random.default_rng(2)
    x, a = (rng.uniform(-3, 3, 4096).astype(np.float32) for _ in range(2))
    b = np.array([0.25], np.float32)
    got = chain(*(wt.tensor(v, device="webgpu") for v in (x, a, b))).numpy()
    z = (x * a + b).astype(np.float64)
    want = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))) / (1 + np.exp(-x))
    # float32 exp/division: measured max error 4.8e-7 (jax-js differs from us by as much)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    (step,) = [c for c, _ in chain.get_concrete(*(wt.tensor(v, device="webgpu") for v in (x, a, b))).exe.steps]
    (p,) = step.lowered.passes
    assert p.workgroups == (4, 1, 1) and p.source.count("array<vec4<f32>, 1024>") == 3


def test_vec4_grid_folding_and_packed_inputs():
    tiny = runtime.WebGPUDevice(limits=dict(max_storage_buffers_per_shader_stage=4,
                                            max_compute_workgroups_per_dimension=5))
    x = np.arange(1200 * 11, dtype=np.float32).reshape(1200, 11)     # 3300 vec4s: 13 workgroups
    np.testing.assert_array_equal((wt.tensor(x, device=tiny) * 2.0).numpy(), x * 2)
    grids = [p.workgroups for c in tiny.kernels.values() for p in c.lowered.passes]
    assert grids == [(5, 3, 1)]
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((4, k + 1)).astype(np.float32) for k in range(6)]   # 4 x 21: 84
    got = wt.concat([wt.tensor(a, device=tiny) for a in arrays], axis=1).numpy()
    np.testing.assert_array_equal(got, np.concatenate(arrays, axis=1))
    k = next(k for k in tiny.kernels if len(k.inputs) == 6)
    low = tiny.kernels[k].lowered
    assert low.packed and "vec4" in low.passes[0].source

"""Devices that store float16 as f32 round every float16 output to float16: WebAssembly
(``wasm/half.py``) and WebGPU without ``shader-f16`` (``webgpu/wgsl.py``'s extra pass; checked on a
device told to ignore the feature). Each holds exactly the value numpy's ``astype(float16)`` gives
(IEEE binary16, round to nearest, ties to even) for every float16 value, the midpoints between
neighbours (ties), subnormals, overflow and random float32 bit patterns."""
import numpy as np
import pytest

import webtensor as wt
from webtensor.core.runtime.device import forget_device

DEVICES = ["wasm", "webgpu_no_f16"]


@pytest.fixture(scope="module", autouse=True)
def _no_f16_device():
    from webtensor.webgpu.runtime import WebGPUDevice
    wt.register_device("webgpu_no_f16", lambda: WebGPUDevice(limits={"shader_f16": False}))
    assert not wt.get_device("webgpu_no_f16").limits.shader_f16      # float16 stored as f32 there
    yield
    forget_device("webgpu_no_f16")


def _cases():
    rng = np.random.default_rng(0)
    random = rng.integers(0, 2 ** 32, size=100_003, dtype=np.uint64).astype(np.uint32).view(np.float32)
    h = np.arange(2 ** 16, dtype=np.uint16).view(np.float16)
    h = h[np.isfinite(h)].astype(np.float32)
    above = np.nextafter(h, np.float32(np.inf), dtype=np.float32)
    hs = np.unique(np.abs(h)).astype(np.float64)
    ties = ((hs[:-1] + hs[1:]) / 2).astype(np.float32)        # exact in float32: halfway cases
    edges = np.float32([65504, 65519.99, 65520, 65536, 1e30, np.inf, -np.inf, np.nan, 0, -0.0, 2 ** -25,
                        2 ** -24 * 1.5, 2 ** -24 * 2.5, -2 ** -26, 2 ** -14 * (1 - 2 ** -12)])
    return np.concatenate([random, h, above, ties, -ties, edges])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("traced", [False, True])
def test_float16_outputs_round_like_numpy(device, traced):
    x = _cases()
    with wt.device(device):
        to16 = (lambda t: wt.cast(t, "float16"))
        t = (wt.function(to16) if traced else to16)(wt.tensor(x))
        got = wt.cast(t, "float32").numpy()        # the f32 bits the device stores (no host rounding)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), (x[~same][:5], got[~same][:5], want[~same][:5])


@pytest.mark.parametrize("device", DEVICES)
def test_eager_float16_arithmetic_rounds_each_op(device):
    a, b = np.float16([2048, 1, 0.1, 6e-5] * 3), np.float16([1, 2 ** -11, 0.2, 3e-5] * 3)
    with wt.device(device):
        s = (wt.tensor(a) + wt.tensor(b)) - wt.tensor(a)
        p = wt.tensor(a) * wt.tensor(b)
    np.testing.assert_array_equal(s.numpy(), (a + b) - a)         # 2048 + 1 rounds back to 2048
    np.testing.assert_array_equal(p.numpy(), a * b)

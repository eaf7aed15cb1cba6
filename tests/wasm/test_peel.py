"""Border peeling (wasm/analysis.py ``_peel``): a map kernel whose innermost dim has borders (pads,
clamped windows) runs its interior as plain vector code. Checked against numpy on shapes whose
borders and interiors are odd, and that the peel really happens (else these tests test nothing)."""
import numpy as np
import pytest

import webtensor as wt
from webtensor.wasm.analysis import analyze


def _kernels(fn, x):
    with wt.device("wasm"):
        return [s.kernel for s in wt.function(fn).get_concrete(wt.tensor(x)).exe.program.steps]


@pytest.mark.parametrize("shape,pads", [
    ((2, 3, 5, 17), [(0, 0), (0, 0), (2, 2), (2, 2)]),
    ((3, 4, 9), [(0, 0), (1, 3), (5, 0)]),
    ((2, 40), [(0, 0), (3, 4)]),
    ((1, 2, 3, 23), [(0, 0), (0, 0), (0, 1), (7, 1)]),
    ((5, 11), [(1, 1), (0, 9)]),
])
def test_pad_interior_peeled(shape, pads):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def fn(t):
        return wt.pad(t * wt.clip_by_value(t + 3.0, 0.0, 6.0) / 6.0, pads)
    assert any(analyze(k).peel for k in _kernels(fn, x))
    with wt.device("wasm"):
        got = wt.function(fn)(wt.tensor(x)).numpy()
    want = np.pad(x * np.clip(x + 3, 0, 6) / 6, pads)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("w,k,s,d,p", [(17, 3, 1, 1, 1), (31, 5, 1, 1, 2), (29, 3, 2, 1, 1), (26, 3, 1, 2, 3)])
def test_padded_window_sum(w, k, s, d, p):
    """A 1-D padded window sum (slices of a pad, as ONNX depthwise convolutions import): the pad's
    peeled interior and the strided taps agree with numpy."""
    x = np.random.default_rng(1).standard_normal((3, 4, w)).astype(np.float32)
    o = (w + 2 * p - (k - 1) * d - 1) // s + 1

    def fn(t):
        xp = wt.pad(t, [(0, 0), (0, 0), (p, p)])
        y = None
        for j in range(k):
            term = wt.slice(xp, [0, 0, j * d], end=[3, 4, j * d + (o - 1) * s + 1], strides=[1, 1, s]) * float(j + 1)
            y = term if y is None else y + term
        return y
    xp = np.pad(x, [(0, 0), (0, 0), (p, p)])
    want = sum(xp[:, :, j * d: j * d + (o - 1) * s + 1: s] * (j + 1) for j in range(k))
    with wt.device("wasm"):
        got = wt.function(fn)(wt.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_no_peel_without_borders():
    x = np.zeros((4, 33), np.float32)
    assert not any(analyze(k).peel for k in _kernels(lambda t: t * 2.0 + 1.0, x))

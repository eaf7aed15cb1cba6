"""``zeros``/``ones``/``full`` with symbolic sizes inside a function traced with ``None`` dimensions:
a size read with ``webtensor.shape`` (``wt.shape(x)[0]``, ``wt.shape(x)``) or ``x.shape[0]`` becomes
the run-time size (an RNN's ``zeros((batch, units))`` initial state), traced once for every batch;
checked against numpy at several sizes."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt


@pytest.mark.parametrize("device", ["reference", "wasm"])
def test_sizes_read_with_shape_are_run_time_sizes(device):
    with wt.device(device):
        @wt.function(input_signature=[wt.TensorSpec((None, 3))])
        def f(x):
            return (wt.zeros((wt.shape(x)[0], 4)) + wt.reduce_sum(x, axis=1, keepdims=True),
                    wt.ones(wt.shape(x), dtype="int32"), wt.full((x.shape[0], 2), 7.0),
                    wt.zeros((wt.shape(x)[1], wt.shape(x)[0])))
        for n in (1, 2, 5):
            x = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
            a, b, c, d = (t.numpy() for t in f(x))
            np.testing.assert_array_equal(a, np.zeros((n, 4), np.float32) + x.sum(1, keepdims=True))
            np.testing.assert_array_equal(b, np.ones((n, 3), np.int32))
            np.testing.assert_array_equal(c, np.full((n, 2), 7.0, np.float32))
            assert d.shape == (3, n) and not d.any()
        assert f.experimental_get_tracing_count() == 1


def test_computed_sizes_are_refused_clearly():
    @wt.function(input_signature=[wt.TensorSpec((None, 3))])
    def f(x):
        return wt.zeros((wt.shape(x)[0] * 2, 4))
    with pytest.raises(TypeError, match="must be read with webtensor.shape"):
        f(np.zeros((2, 3), np.float32))

"""One-element constants become immediates in wasm kernels (``lower.inline_scalars``), in compiled
steps and in exported modules: same results as the reference device, nan and infinities included."""
import re

import numpy as np

import webtensor as wt


def fn(t):
    return t * wt.clip_by_value(t + 3.0, 0.0, 6.0) / 6.0 + wt.maximum(t, -0.0)


X = np.array([[np.nan, -np.inf, -4.0, -3.0, -0.0, 0.0, 1.5, 3.0, 2.5e38, np.inf, -7.25]], np.float32).repeat(3, 0)


def test_compiled_step_inlines_and_matches_reference():
    with wt.device("reference"):
        want = wt.function(fn)(wt.tensor(X)).numpy()
    with wt.device("wasm"):
        f = wt.function(fn)
        got = f(wt.tensor(X)).numpy()
        steps = f.get_concrete(wt.tensor(X)).exe.program.steps
    expr = str(steps[0].kernel.expr)
    assert len(steps) == 1 and "6.0" in expr and len(set(re.findall(r"in(\d+)\[", expr))) == 1   # only x is loaded
    # (zeros compare equal whatever their sign: a constant operand's max is WebAssembly's pmax, which
    # keeps x = -0.0 against 0.0, as the lowering already does for literal constants such as relu's)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=0)


def test_exported_module_matches(tmp_path):
    with wt.device("wasm"):
        want = wt.function(fn)(wt.tensor(X)).numpy()
    wt.export(fn, (X,), str(tmp_path / "m"), backends=("wasm",))
    got = np.asarray(wt.load(str(tmp_path / "m")).predict(X))
    np.testing.assert_array_equal(got, want)

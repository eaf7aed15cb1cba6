"""Converters written against ops that other branches add under TensorFlow's names (``cumsum``,
``gather_nd``, ``tensor_scatter_nd_*``, ``top_k``): checked here on ONNX's conformance cases with
numpy stand-ins of TensorFlow's semantics (eager), so the converters are right before those ops land.
Once webtensor has an op, its own implementation replaces the stand-in (the case then runs it)."""
import numpy as np
import pytest

pytest.importorskip("onnx")

import webtensor as wt  # noqa: E402
from conformance import cases, run_case  # noqa: E402


def _np(f):
    """``f`` (numpy) as a webtensor op. Inside a trace (load's import-time check) it has no values:
    it runs on zeros of the same shapes to give outputs of the right shapes."""
    def op(*args, **kwargs):
        symbolic = any(isinstance(a, wt.Tensor) and a._sym is not None for a in args)
        args = [(np.zeros(a.shape, a.numpy().dtype if a._sym is None else
                          {"float32": np.float32, "int32": np.int32, "bool": bool, "float16": np.float16}[a.dtype.name])
                 if symbolic else a.numpy()) if isinstance(a, wt.Tensor) else a for a in args]
        out = f(*args, **kwargs)
        return tuple(wt.tensor(o) for o in out) if isinstance(out, tuple) else wt.tensor(out)
    return op


def _cumsum(x, axis=0, exclusive=False, reverse=False):
    if reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis)
    if exclusive:
        y = y - x
    return np.flip(y, axis) if reverse else y


def _scatter(combine):
    def f(t, indices, updates):
        out = t.copy()
        r = indices.shape[-1]
        idx = indices.reshape(-1, r)
        upd = updates.reshape((idx.shape[0],) + t.shape[r:])
        for k in range(idx.shape[0]):
            j = tuple(idx[k])
            out[j] = combine(out[j], upd[k])
        return out
    return f


def _gather_nd(params, indices, batch_dims=0):
    if batch_dims == 0:
        r = indices.shape[-1]
        flat = indices.reshape(-1, r)
        return np.stack([params[tuple(i)] for i in flat]).reshape(indices.shape[:-1] + params.shape[r:])
    return np.stack([_gather_nd(p, i, batch_dims - 1) for p, i in zip(params, indices)])


def _top_k(x, k=1):
    i = np.argsort(-x, axis=-1, kind="stable")[..., :k].astype(np.int32)
    return np.take_along_axis(x, i, -1), i


STAND_INS = {
    "cumsum": _cumsum, "gather_nd": _gather_nd, "top_k": _top_k,
    "tensor_scatter_nd_update": _scatter(lambda old, new: new),
    "tensor_scatter_nd_add": _scatter(lambda old, new: old + new),
    "tensor_scatter_nd_max": _scatter(np.maximum), "tensor_scatter_nd_min": _scatter(np.minimum),
}
PREFIXES = ("test_cumsum", "test_gathernd", "test_scatternd", "test_scatter_elements", "test_top_k")
CASES = [c for c, why in cases() if why is None and c.name.startswith(PREFIXES)]
# reductions ONNX has and TensorFlow's scatter ops do not: 'mul'
EXPECTED_UNSUPPORTED = {"test_scatternd_multiply", "test_scatter_elements_with_reduction_mul"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_converter_with_stand_in(case, monkeypatch):
    for name, f in STAND_INS.items():
        if not hasattr(wt, name):
            monkeypatch.setattr(wt, name, _np(f), raising=False)
    why = run_case(case, "reference", traced=False)
    if case.name in EXPECTED_UNSUPPORTED:
        assert why and "reduction='mul'" in why
    else:
        assert why is None, why

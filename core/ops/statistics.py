"""More reductions (issue 14), under TensorFlow's names: ``reduce_any reduce_all reduce_variance
reduce_std reduce_euclidean_norm``, ``moments`` and ``l2_normalize``. All are compositions of
``reduce_sum`` and elementwise ops (one fused reduction each inside ``webtensor.function``), so they
run on every device and differentiate through the ops they are made of.
"""
from __future__ import annotations

from ..dtypes import bool_, float32, int32
from ..op import as_tensor
from ..shapes import normalize_axes
from ..signature import BOOL, NUMBER, axes_of, op_signature
from .elementwise import cast, equal, greater, maximum, rsqrt, sqrt, stop_gradient
from .movement import reshape
from .reduction import mean, reduce_sum


_DOC_ARGS = """

    Args:
        input_tensor: tensor of any shape.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep reduced axes with size 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``input_tensor``'s shape without the reduced axes (kept as 1 with ``keepdims``),
        of the dtype said above.
    Raises:
        TypeError: ``axis`` not None, an int or a tuple of ints; ``keepdims`` not a bool.
        ValueError: an axis out of range or repeated.
    """


def _axes(x, axis, name):
    return normalize_axes(axis, len(x.shape), name)


def _count_true(x, axes, keepdims):
    """How many elements of ``x`` are nonzero (NaN counts, as numpy's ``any``) over ``axes``, int32."""
    b = x if x.dtype == bool_ else cast(x, dtype=bool_)
    return reduce_sum(cast(b, dtype=int32), axes=axes, keepdims=keepdims)


def _size(x, axes):
    n = 1
    for a in axes:
        n *= x.shape[a]
    return n


def _doc(fn):
    fn.__doc__ += _DOC_ARGS
    return fn


@_doc
@op_signature(axis=axes_of("input_tensor"), keepdims=BOOL)
def reduce_any(input_tensor, axis=None, keepdims=False):
    """Logical OR over ``axis`` (bool result; other dtypes count nonzero as True, as numpy's ``any``);
    an empty reduction is False."""
    x = as_tensor(input_tensor)
    return greater(_count_true(x, _axes(x, axis, "reduce_any"), keepdims), 0)


@_doc
@op_signature(axis=axes_of("input_tensor"), keepdims=BOOL)
def reduce_all(input_tensor, axis=None, keepdims=False):
    """Logical AND over ``axis`` (bool result; nonzero is True); an empty reduction is True."""
    x = as_tensor(input_tensor)
    axes = _axes(x, axis, "reduce_all")
    return equal(_count_true(x, axes, keepdims), _size(x, axes))


def _variance(x, axes, keepdims):
    if not x.dtype.is_floating:
        x = cast(x, dtype=float32)
    m = mean(x, axis=axes, keepdims=True)
    d = x - m
    return mean(d * d, axis=axes, keepdims=keepdims)


@_doc
@op_signature(axis=axes_of("input_tensor"), keepdims=BOOL)
def reduce_variance(input_tensor, axis=None, keepdims=False):
    """Population variance mean((x - mean(x))^2) over ``axis`` (two passes: no cancellation); int and
    bool inputs give float32 (TF accepts floats only); an empty reduction is NaN."""
    x = as_tensor(input_tensor)
    return _variance(x, _axes(x, axis, "reduce_variance"), keepdims)


@_doc
@op_signature(axis=axes_of("input_tensor"), keepdims=BOOL)
def reduce_std(input_tensor, axis=None, keepdims=False):
    """Population standard deviation sqrt(reduce_variance) over ``axis`` (as numpy's ``std``, ddof 0)."""
    x = as_tensor(input_tensor)
    return sqrt(_variance(x, _axes(x, axis, "reduce_std"), keepdims))


@_doc
@op_signature(axis=axes_of("input_tensor"), keepdims=BOOL)
def reduce_euclidean_norm(input_tensor, axis=None, keepdims=False):
    """sqrt(sum(x^2)) over ``axis``, as ``tf.math.reduce_euclidean_norm``; int and bool inputs give
    float32 (TF keeps int). Not rescaled: |x| beyond ~1.8e19 overflows x^2, as in TF. Its gradient at
    an all-zero slice is NaN (0/0), as TF's."""
    x = as_tensor(input_tensor)
    if not x.dtype.is_floating:
        x = cast(x, dtype=float32)
    return sqrt(reduce_sum(x * x, axes=_axes(x, axis, "reduce_euclidean_norm"), keepdims=keepdims))


@op_signature(axes=axes_of("x"), keepdims=BOOL)
def moments(x, axes, keepdims=False):
    """(mean, variance) of ``x`` over ``axes`` (an int or a tuple of ints), as ``tf.nn.moments``:
    variance = mean((x - stop_gradient(mean))^2) (the mean's gradient through the variance is zero
    anyway).

    Args:
        x: a tensor of any shape; int and bool inputs are cast to float32.
        axes: None (all axes), an int or a tuple of ints; negative counts from the end.
        keepdims: keep the reduced axes with size 1.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(mean, variance)``: two tensors of ``x``'s shape with ``axes`` removed (kept as 1 with
        ``keepdims``), of ``x``'s float dtype (float32 for int and bool).
    Raises:
        TypeError: ``axes`` not None, an int or a tuple of ints; ``keepdims`` not a bool.
        ValueError: an axis out of range or repeated.
    """
    x = as_tensor(x)
    if not x.dtype.is_floating:
        x = cast(x, dtype=float32)
    axes = _axes(x, axes, "moments")
    m = mean(x, axis=axes, keepdims=True)
    d = x - stop_gradient(m)
    var = mean(d * d, axis=axes, keepdims=keepdims)
    return (m if keepdims else reshape(m, tuple(var.shape))), var


@op_signature(axis=axes_of("x"), epsilon=NUMBER)
def l2_normalize(x, axis=None, epsilon=1e-12):
    """x / sqrt(max(sum(x^2, axis), epsilon)) along ``axis`` (None: all axes), as
    ``tf.math.l2_normalize``: a slice whose squared norm is below ``epsilon`` is scaled by
    1/sqrt(epsilon) instead of dividing by ~0.

    Args:
        x: a tensor of any shape.
        axis: None (all axes), an int or a tuple of ints; negative counts from the end.
        epsilon: a number, the lower bound of the squared norm.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of ``x``'s shape and float dtype (float32 for int and bool ``x``).
    Raises:
        TypeError: ``axis`` not None, an int or a tuple of ints; ``epsilon`` not a number.
        ValueError: an axis out of range or repeated.
    """
    x = as_tensor(x)
    if not x.dtype.is_floating:
        x = cast(x, dtype=float32)
    ss = reduce_sum(x * x, axes=_axes(x, axis, "l2_normalize"), keepdims=True)
    return x * rsqrt(maximum(ss, float(epsilon)))


__all__ = ["reduce_any", "reduce_all", "reduce_variance", "reduce_std", "reduce_euclidean_norm", "moments",
           "l2_normalize"]

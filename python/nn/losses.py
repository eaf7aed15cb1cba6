"""Losses (Keras names). A ``Loss`` object maps ``(y_true, y_pred)`` to a scalar: the per-example
loss reduced with ``reduction`` ('sum_over_batch_size' = mean, the default; 'sum'; 'none').
The functions (``sparse_categorical_crossentropy`` ...) give the per-example loss.

Built on the core ops ``softmax_cross_entropy``, ``sparse_softmax_cross_entropy`` and ``mse``
(``webtensor.core.ops.nn``): log-softmax is max-subtracted, probabilities are clipped to
``[1e-7, 1 - 1e-7]`` when ``from_logits=False`` (as Keras).

Sparse labels outside ``[0, C)``: a ValueError when their values are known (eager), NaN losses
and gradients for those examples inside traced steps; ``Model.fit``/``evaluate`` check in-memory
labels once, up front (:func:`check_sparse_labels`).
"""
from __future__ import annotations

from .._registry import Registry, exports, snake_case
from ..core import ops as F
from ..core.dtypes import float16, float32, int32
from ..core.op import first_out_of_range
from ..core.ops.sizes import size_value
from ..core.shapes import Dim, broadcast_shapes
from ..tensor import Tensor, tensor

_EPS = 1e-7


def _as_tensors(y_true, y_pred):
    y_pred = y_pred if isinstance(y_pred, Tensor) else tensor(y_pred)
    y_true = y_true if isinstance(y_true, Tensor) else tensor(y_true)
    return y_true, y_pred


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Cross-entropy with integer labels (``keras.losses.sparse_categorical_crossentropy``):
    ``-log p[label]``, ``p = softmax(y_pred)`` with ``from_logits`` else ``y_pred`` clipped to
    ``[1e-7, 1 - 1e-7]``.

    Args:
        y_true: integer class labels ``(N, ...)`` or ``(N, ..., 1)`` (cast to int32).
        y_pred: scores ``(N, ..., C)``: logits, or probabilities when ``from_logits`` is False.
        from_logits: whether ``y_pred`` are logits.
        axis: the class axis; only -1 (the last) is supported.
    Returns:
        Per-example losses ``(N, ...)``, ``y_pred``'s dtype.
    Raises:
        ValueError: shapes that do not match; a label outside ``[0, C)`` whose value is known
            (eager; in a traced step that example's loss is NaN instead).
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    if axis not in (-1, y_pred.ndim - 1):
        raise ValueError("sparse_categorical_crossentropy: only axis=-1 is supported")
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = F.squeeze(y_true, -1)
    if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"sparse_categorical_crossentropy: labels of shape {tuple(y_true.shape)} do not match "
                         f"predictions of shape {tuple(y_pred.shape)} (expected labels {tuple(y_pred.shape[:-1])})")
    return F.sparse_softmax_cross_entropy(F.cast(y_true, int32), y_pred, from_logits=from_logits)


def check_sparse_labels(y_true, num_classes: int, what: str) -> None:
    """Check integer labels for ``num_classes`` classes once, before they reach a traced step (where
    an out-of-range label can only turn into NaN). Labels count as the int32 they cast to.

    Args:
        y_true: the labels (a tensor or array-like).
        num_classes: the number of classes ``C``.
        what: the caller named in the message (``"fit"``).
    Raises:
        ValueError: naming the first label outside ``[0, num_classes)``, its sample and ``what``
            (``"fit"``). Nothing is checked where the values cannot be read now (a browser GPU).
    """
    y = y_true if isinstance(y_true, Tensor) else tensor(y_true)
    bad = first_out_of_range(y, 0, num_classes)
    if bad is not None:
        k, v = bad
        per_sample = y.size // y.shape[0] if y.ndim and y.shape[0] else 1
        raise ValueError(f"{what}: label {v} (sample {k // per_sample}) is out of range for {num_classes} classes; "
                         f"sparse labels must be in [0, {num_classes})")


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy with one-hot (or probability) labels (``keras.losses.categorical_crossentropy``):
    ``-sum(y_true * log p, axis)``, ``p = softmax(y_pred)`` with ``from_logits`` else ``y_pred``
    clipped to ``[1e-7, 1 - 1e-7]``.

    Args:
        y_true: labels ``(N, ..., C)`` (cast to ``y_pred``'s dtype).
        y_pred: scores of the same shape: logits, or probabilities when ``from_logits`` is False.
        from_logits: whether ``y_pred`` are logits.
        label_smoothing: ``s`` in [0, 1]: the labels become ``y (1 - s) + s / C``.
        axis: the class axis.
    Returns:
        Per-example losses ``(N, ...)``, ``y_pred``'s dtype.
    Raises:
        ValueError: shapes differ; ``axis`` out of range.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    y_true = F.cast(y_true, y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    return F.softmax_cross_entropy(y_true, y_pred, axis=axis, from_logits=from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Binary cross-entropy (``keras.losses.binary_crossentropy``), the mean over the last axis of
    ``-(z log p + (1 - z) log(1 - p))``. With logits it is :func:`webtensor.sigmoid_cross_entropy_with_logits`
    (``max(x, 0) - x z + log(1 + exp(-|x|))``, which cannot overflow); probabilities are clipped to
    ``[1e-7, 1 - 1e-7]``.

    Args:
        y_true: labels in {0, 1} (or probabilities) ``(N, ..., K)``.
        y_pred: scores of the same shape: logits, or probabilities when ``from_logits`` is False.
        from_logits: whether ``y_pred`` are logits.
        label_smoothing: ``s`` in [0, 1]: the labels become ``z (1 - s) + s / 2``.
    Returns:
        Per-example losses ``(N, ...)``, ``y_pred``'s dtype.
    Raises:
        ValueError: shapes that do not broadcast.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    z = F.cast(y_true, y_pred.dtype)
    if label_smoothing:
        z = z * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        shape = broadcast_shapes(tuple(z.shape), tuple(y_pred.shape), op="binary_crossentropy")
        per = F.sigmoid_cross_entropy_with_logits(F.broadcast_to(z, shape), F.broadcast_to(y_pred, shape))
    else:
        p = F.minimum(F.maximum(y_pred, _EPS), 1.0 - _EPS)
        per = -(z * F.log(p) + (1.0 - z) * F.log(1.0 - p))
    return F.mean(per, axis=-1)


def mean_squared_error(y_true, y_pred):
    """Mean squared error (``keras.losses.mean_squared_error``): ``mean((y_pred - y_true)**2, axis=-1)``.

    Args:
        y_true: targets ``(N, ..., K)`` (cast to ``y_pred``'s dtype).
        y_pred: predictions of a shape that broadcasts with ``y_true``'s.
    Returns:
        Per-example losses ``(N, ...)``.
    Raises:
        ValueError: shapes that do not broadcast.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    return F.mse(F.cast(y_true, y_pred.dtype), y_pred)


def mean_absolute_error(y_true, y_pred):
    """Mean absolute error (``keras.losses.mean_absolute_error``): ``mean(|y_pred - y_true|, axis=-1)``.

    Args:
        y_true: targets ``(N, ..., K)`` (cast to ``y_pred``'s dtype).
        y_pred: predictions of a shape that broadcasts with ``y_true``'s.
    Returns:
        Per-example losses ``(N, ...)``.
    Raises:
        ValueError: shapes that do not broadcast.
    """
    y_true, y_pred = _as_tensors(y_true, y_pred)
    return F.mean(F.abs(y_pred - F.cast(y_true, y_pred.dtype)), axis=-1)


_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none", None)


class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` (per-example losses).
    ``loss(y_true, y_pred, sample_weight=None)`` multiplies the per-example losses by
    ``sample_weight`` (broadcast) and reduces them; 'sum_over_batch_size' divides the weighted sum
    by the number of losses (as Keras). float16 predictions (a ``mixed_float16`` model's) are cast to
    float32 first, as Keras 3's losses compute in float32.

    Args:
        name: the loss' name (default: the class name in snake_case).
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
    Raises:
        ValueError: an unknown ``reduction``.
    """

    def __init__(self, name: str | None = None, reduction="sum_over_batch_size"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.name, self.reduction = name or _snake(type(self).__name__), reduction

    def call(self, y_true, y_pred):
        """The per-example losses of a batch (subclasses implement it).

        Args:
            y_true: the targets.
            y_pred: the predictions.
        Returns:
            A tensor of per-example losses.
        """
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        if isinstance(y_pred, Tensor) and y_pred.dtype == float16:
            y_pred = F.cast(y_pred, float32)     # as Keras 3: losses compute in float32 (mixed precision)
        per = self.call(y_true, y_pred)
        n = per.size
        if sample_weight is not None:
            per = per * sample_weight
        if self.reduction in ("none", None):
            return per
        total = F.sum(per)
        if self.reduction == "sum":
            return total
        if isinstance(n, Dim):          # a step traced for every batch size: the run-time count
            return total * F.reciprocal(F.maximum(size_value(n, float32), 1.0))
        return total * (1.0 / max(n, 1))


class _FnLoss(Loss):
    _fn = None

    def __init__(self, name=None, reduction="sum_over_batch_size", **options):
        super().__init__(name, reduction)
        self.options = options

    def call(self, y_true, y_pred):
        return type(self)._fn(y_true, y_pred, **self.options)


class SparseCategoricalCrossentropy(_FnLoss):
    """Cross-entropy with integer labels (``keras.losses.SparseCategoricalCrossentropy``): the
    reduction of :func:`sparse_categorical_crossentropy`.

    Args:
        from_logits: True if ``y_pred`` are unnormalised scores, False for probabilities.
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
        name: the loss' name (default: the class name in snake_case).
    """
    _fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        super().__init__(name, reduction, from_logits=from_logits)
        self.from_logits = from_logits


class CategoricalCrossentropy(_FnLoss):
    """Cross-entropy with one-hot labels (``keras.losses.CategoricalCrossentropy``): the reduction
    of :func:`categorical_crossentropy`.

    Args:
        from_logits: True if ``y_pred`` are unnormalised scores, False for probabilities.
        label_smoothing: ``s`` in [0, 1]: the labels become ``y (1 - s) + s / C``.
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
        name: the loss' name (default: the class name in snake_case).
    """
    _fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name, reduction, from_logits=from_logits, label_smoothing=label_smoothing)
        self.from_logits = from_logits


class BinaryCrossentropy(_FnLoss):
    """Binary cross-entropy (``keras.losses.BinaryCrossentropy``): the reduction of
    :func:`binary_crossentropy` (itself a mean over the last axis per example).

    Args:
        from_logits: True if ``y_pred`` are logits, False for probabilities.
        label_smoothing: ``s`` in [0, 1]: the labels become ``z (1 - s) + s / 2``.
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
        name: the loss' name (default: the class name in snake_case).
    """
    _fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name, reduction, from_logits=from_logits, label_smoothing=label_smoothing)
        self.from_logits = from_logits


class MeanSquaredError(_FnLoss):
    """Mean squared error (``keras.losses.MeanSquaredError``): the reduction of :func:`mean_squared_error`.

    Args:
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
        name: the loss' name (default: the class name in snake_case).
    """
    _fn = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name, reduction)


class MeanAbsoluteError(_FnLoss):
    """Mean absolute error (``keras.losses.MeanAbsoluteError``): the reduction of
    :func:`mean_absolute_error`.

    Args:
        reduction: how ``__call__`` reduces the per-example losses: 'sum_over_batch_size' (or
            'mean': the mean over all elements), 'sum', or 'none'/None (no reduction).
        name: the loss' name (default: the class name in snake_case).
    """
    _fn = staticmethod(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name, reduction)


class _Wrapped(Loss):
    """A plain function ``fn(y_true, y_pred)`` (per-example or scalar) used as a loss."""

    def __init__(self, fn):
        super().__init__(getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}


_REGISTRY = Registry("loss", _BY_NAME, base=Loss, wrap=lambda fn: _Wrapped(fn), snake=True)


def get(identifier) -> Loss:
    """A ``Loss`` from a Keras name (``'sparse_categorical_crossentropy'``, ``'mse'``, or the class
    name ``'MeanSquaredError'``), a ``Loss`` instance or class, or a function
    ``(y_true, y_pred) -> losses``.

    Args:
        identifier: a name, a ``Loss`` instance or subclass, or a function.
    Returns:
        A ``Loss``.
    Raises:
        ValueError: an unknown name (the message lists the known ones). TypeError: anything else.
    """
    return _REGISTRY.get(identifier)


def _snake(name: str) -> str:
    return snake_case(name)


__all__, __dir__ = exports(globals())

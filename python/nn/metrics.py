"""Metrics (Keras names) with state in Variables: ``update_state``, ``result``, ``reset_state``.

State lives in non-trainable scalar Variables updated with ``assign_add``, so ``update_state``
works inside a traced step (the update is part of the compiled step) as well as eagerly.
Variables are created on the default device when the metric is made.
"""
from __future__ import annotations

from .._registry import Registry, exports, snake_case
from ..core import ops as F
from ..core.dtypes import float32, int32
from ..core.ops.sizes import size_value
from ..core.shapes import Dim
from ..creation import zeros
from ..tensor import Tensor, Variable, init_scope, tensor
from .losses import mean_absolute_error, mean_squared_error


def _t(x):
    return x if isinstance(x, Tensor) else tensor(x)


class Metric:
    """Base class: subclasses create state with :meth:`add_variable` and implement
    ``update_state(...)`` and ``result()``. ``metric(...)`` updates with a batch and returns the
    running result (as Keras).

    Args:
        name: the metric's name (default: the class name in snake_case).
        dtype: accepted for Keras compatibility; state dtypes are given per variable.
    """

    def __init__(self, name: str | None = None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self._variables: list[Variable] = []

    def add_variable(self, name: str, shape=(), dtype=float32) -> Variable:
        """A new non-trainable state Variable of zeros, named ``<metric>/<name>``, reset by
        :meth:`reset_state`.

        Args:
            name: the variable's name within the metric.
            shape: its shape.
            dtype: its dtype.
        Returns:
            The Variable.
        """
        with init_scope():
            v = Variable(zeros(shape, dtype=dtype), name=f"{self.name}/{name}", trainable=False,
                         synchronization="on_read")    # updated by the coordinator, not per replica
        self._variables.append(v)
        return v

    @property
    def variables(self) -> list[Variable]:
        return list(self._variables)

    def reset_state(self) -> None:
        """Set every state variable back to zeros (between epochs)."""
        for v in self._variables:
            v.assign(zeros(v.shape, dtype=v.dtype))

    def update_state(self, *args, **kwargs):
        """Accumulate a batch into the state (subclasses implement it, with ``assign_add`` so it
        works inside a traced step)."""
        raise NotImplementedError

    def result(self) -> Tensor:
        """The metric's current value, a scalar tensor (subclasses implement it)."""
        raise NotImplementedError

    def __call__(self, *args, **kwargs) -> Tensor:
        """Update with this batch and return the running result (as Keras)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """Running (weighted) mean of all values seen: ``sum(w * v) / sum(w)``; 0 before any update
    (``keras.metrics.Mean``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)
        self.total = self.add_variable("total")
        self.count = self.add_variable("count")

    def update_state(self, values, sample_weight=None):
        """Add ``values`` to the running mean.

        Args:
            values: a tensor of any shape (cast to float32); every element counts.
            sample_weight: weights broadcast to ``values``' shape (None: all 1).
        Raises:
            ValueError: weights that do not broadcast to ``values``' shape.
        """
        values = F.cast(_t(values), float32)
        if sample_weight is None:
            self.total.assign_add(F.sum(values))
            self.count.assign_add(count_of(values.size))
        else:
            w = F.broadcast_to(F.cast(_t(sample_weight), float32), tuple(values.shape))
            self.total.assign_add(F.sum(values * w))
            self.count.assign_add(F.sum(w))

    def result(self) -> Tensor:
        """``total / max(count, 1e-12)``: the weighted mean (0 before any update), float32 scalar."""
        return self.total / F.maximum(self.count, 1e-12)


def count_of(n):
    """A number of elements as a float for ``assign_add``: a Python float, or for a symbolic size (a
    step traced for every batch size) a float32 tensor read at run time.

    Args:
        n: an int, or a symbolic size (:class:`~webtensor.core.shapes.Dim`).
    """
    return size_value(n, float32) if isinstance(n, Dim) else float(n)


class MeanMetricWrapper(Mean):
    """The running mean of ``fn(y_true, y_pred, **options)`` (per-example values), as
    ``keras.metrics.MeanMetricWrapper``.

    Args:
        fn: ``(y_true, y_pred, **options) -> per-example values``.
        name: the metric's name (default: ``fn``'s name).
        dtype: accepted for Keras compatibility; the state is float32.
        **options: keyword arguments passed to ``fn`` on every update.
    """

    def __init__(self, fn, name=None, dtype=None, **options):
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype)
        self._fn, self._options = fn, options

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add ``fn(y_true, y_pred)`` of a batch to the running mean.

        Args:
            y_true: the batch's labels.
            y_pred: the batch's predictions.
            sample_weight: per-example weights (broadcast to ``fn``'s result; None: all 1).
        """
        super().update_state(self._fn(_t(y_true), _t(y_pred), **self._options), sample_weight)


def _labels(y_true, like_ndim):
    """Integer labels, dropping a trailing size-1 axis (``(N, 1)`` -> ``(N,)``)."""
    if y_true.ndim == like_ndim and y_true.ndim > 0 and y_true.shape[-1] == 1:
        y_true = F.squeeze(y_true, -1)
    return F.cast(y_true, int32)


def accuracy(y_true, y_pred):
    """1.0 where ``y_pred == y_true`` exactly, else 0.0, per element (``keras.metrics.accuracy``);
    ``y_pred`` is cast to ``y_true``'s dtype first.

    Args:
        y_true: labels (a tensor or array-like).
        y_pred: predictions.
    Returns:
        float32 of the broadcast shape.
    """
    return F.cast(F.equal(y_true, F.cast(y_pred, y_true.dtype)), float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred, -1)`` equals the integer label, else 0.0
    (``keras.metrics.sparse_categorical_accuracy``).

    Args:
        y_true: integer labels ``(N, ...)`` or ``(N, ..., 1)``.
        y_pred: scores ``(N, ..., C)``.
    Returns:
        float32 ``(N, ...)``.
    """
    return F.cast(F.equal(F.argmax(y_pred, -1), _labels(y_true, y_pred.ndim)), float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred, -1) == argmax(y_true, -1)``, else 0.0
    (``keras.metrics.categorical_accuracy``).

    Args:
        y_true: one-hot labels ``(N, ..., C)``.
        y_pred: scores ``(N, ..., C)``.
    Returns:
        float32 ``(N, ...)``.
    """
    return F.cast(F.equal(F.argmax(y_pred, -1), F.argmax(y_true, -1)), float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``y_pred > threshold`` agrees with ``y_true > 0.5``, else 0.0, per element
    (``keras.metrics.binary_accuracy``).

    Args:
        y_true: labels (a tensor or array-like).
        y_pred: predictions.
        threshold: the decision threshold for ``y_pred``.
    Returns:
        float32 of the broadcast shape.
    """
    return F.cast(F.equal(F.greater(y_pred, threshold), F.greater(F.cast(y_true, float32), 0.5)), float32)


def _auto_accuracy(y_true, y_pred):
    # Keras' rule for the string 'accuracy': binary when y_pred has one score per example,
    # categorical when the labels are one-hot, sparse otherwise.
    if y_pred.ndim == 0 or y_pred.shape[-1] == 1:
        return binary_accuracy(y_true, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1]:
        return categorical_accuracy(y_true, y_pred)
    return sparse_categorical_accuracy(y_true, y_pred)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels exactly: the running mean of :func:`accuracy`
    (``keras.metrics.Accuracy``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the scores ``(N, C)`` equals the integer label ``(N,)``: the running
    mean of :func:`sparse_categorical_accuracy` (``keras.metrics.SparseCategoricalAccuracy``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the scores equals the arg-max of the one-hot labels: the running
    mean of :func:`categorical_accuracy` (``keras.metrics.CategoricalAccuracy``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` agrees with ``y_true > 0.5``: the running mean of
    :func:`binary_accuracy` (``keras.metrics.BinaryAccuracy``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
        threshold: the decision threshold for ``y_pred``.
    """

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class MeanSquaredError(MeanMetricWrapper):
    """The running mean of ``mean((y_pred - y_true)**2, axis=-1)`` (``keras.metrics.MeanSquaredError``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """The running mean of ``mean(|y_pred - y_true|, axis=-1)`` (``keras.metrics.MeanAbsoluteError``).

    Args:
        name: the metric's name (the key in ``fit``'s logs and History).
        dtype: accepted for Keras compatibility; the state is float32.
    """

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy, "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}


_REGISTRY = Registry("metric", _BY_NAME, base=Metric, make=lambda cls, name: cls(name=name),
                     wrap=lambda fn: MeanMetricWrapper(fn), extra_names=("accuracy", "acc"))


def get(identifier) -> Metric:
    """A ``Metric`` from a Keras name, an instance, a class, or a function ``(y_true, y_pred)``.
    ``'accuracy'``/``'acc'`` picks binary, categorical or sparse accuracy from the shapes, as
    Keras does, and keeps the name you gave.

    Args:
        identifier: a name, a ``Metric`` instance or subclass, or a function.
    Returns:
        A ``Metric``.
    Raises:
        ValueError: an unknown name (the message lists the known ones). TypeError: anything else.
    """
    if isinstance(identifier, str) and identifier in ("accuracy", "acc"):
        return MeanMetricWrapper(_auto_accuracy, identifier)
    return _REGISTRY.get(identifier)


__all__, __dir__ = exports(globals())

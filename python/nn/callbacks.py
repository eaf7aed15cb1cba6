"""Training callbacks (Keras hooks): ``Callback``, ``History``, ``EarlyStopping``, ``LambdaCallback``.

``Model.fit`` calls, in order: ``on_train_begin``; per epoch ``on_epoch_begin``, per batch
``on_train_batch_begin``/``on_train_batch_end``, then (with validation data)
``on_test_begin``/``on_test_end``, then ``on_epoch_end(epoch, logs)`` where ``logs`` holds
``loss``, the metrics and their ``val_`` versions; finally ``on_train_end``. A callback stops
training by setting ``self.model.stop_training = True``.
"""
from __future__ import annotations

import math
import sys

from ._registry import exports


class Callback:
    """Base class; override the hooks you need. ``self.model`` and ``self.params`` (``epochs``,
    ``steps``, ``verbose``) are set before training starts. Hooks take ``logs``, a dict (or None)."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        """Give the callback the model being trained (``fit`` calls it before training).

        Args:
            model: the Model.
        """
        self.model = model

    def set_params(self, params: dict) -> None:
        """Give the callback the run's parameters.

        Args:
            params: a dict: ``epochs``, ``steps`` (None when unknown) and ``verbose`` from ``fit``;
                ``steps`` from ``evaluate`` and ``predict``.
        """
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once when ``fit`` starts.

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_train_end(self, logs=None):
        """Called once when ``fit`` ends (also after an early stop).

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch ``epoch`` (0-based) of ``fit``.

        Args:
            epoch: the epoch's index (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch ``epoch``; ``logs`` holds ``loss``, the metrics and their ``val_`` versions (floats).

        Args:
            epoch: the epoch's index (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_train_batch_begin(self, batch, logs=None):
        """Called before training batch ``batch`` (0-based within the epoch).

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_train_batch_end(self, batch, logs=None):
        """Called after training batch ``batch``; ``logs`` holds the running loss and metrics (overriding it makes ``fit`` read them every batch).

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_test_begin(self, logs=None):
        """Called when ``evaluate`` (or ``fit``'s validation) starts.

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_test_end(self, logs=None):
        """Called when ``evaluate`` (or ``fit``'s validation) ends.

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_test_batch_begin(self, batch, logs=None):
        """Called before evaluation batch ``batch``.

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_test_batch_end(self, batch, logs=None):
        """Called after evaluation batch ``batch``.

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_predict_begin(self, logs=None):
        """Called when ``predict`` starts.

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_predict_end(self, logs=None):
        """Called when ``predict`` ends.

        Args:
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before prediction batch ``batch``.

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """

    def on_predict_batch_end(self, batch, logs=None):
        """Called after prediction batch ``batch``.

        Args:
            batch: the batch's index within the epoch (0-based).
            logs: a dict of floats (``loss``, metrics; ``val_`` entries at epoch end), or None.
        """



class CallbackList:
    """Calls a hook on every callback, in order. ``wants_batch_logs`` tells ``fit`` whether any
    callback overrides a per-batch hook (only then are per-batch logs read from the device).

    Args:
        callbacks: the callbacks (an iterable of ``Callback``).
        model: the model given to each (``set_model``).
        params: the parameters given to each (``set_params``).
    """

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.wants_batch_logs = any(
            getattr(type(cb), h) is not getattr(Callback, h) or h in vars(cb)
            for cb in self.callbacks for h in ("on_train_batch_end", "on_test_batch_end", "on_predict_batch_end"))

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for cb in self.callbacks:
                getattr(cb, hook)(*args, **kwargs)
        return call


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` is the list of epoch losses, and so on
    for every metric and ``val_`` entry; ``history.epoch`` lists the epoch indices. ``fit``
    adds one to every run and returns it."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode``: 'min', 'max', or 'auto' ('max' for accuracies, else 'min'). With
    ``restore_best_weights=True`` the weights of the best epoch are restored when training
    stops early (as Keras: only on an early stop). ``baseline``: training stops unless the
    monitor beats it within ``patience`` epochs. ``start_from_epoch``: epochs to wait before
    monitoring. After training, ``stopped_epoch`` (0 if never stopped) and ``best_epoch``.
    Semantics follow ``keras.callbacks.EarlyStopping``.

    Args:
        monitor: the log entry to watch (``'val_loss'``, ``'loss'``, ``'val_accuracy'`` ...); a
            missing one prints a warning listing the available entries and does nothing.
        min_delta: the least change that counts as an improvement (its absolute value is used).
        patience: epochs without improvement before stopping.
        verbose: 1 prints when it stops and restores.
        mode: 'min', 'max' or 'auto'.
        baseline: a value the monitor must beat within ``patience`` epochs; None: none.
        restore_best_weights: restore the best epoch's weights on an early stop.
        start_from_epoch: epochs to wait before monitoring.
    Raises:
        ValueError: an unknown ``mode``.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.monitor, self.min_delta, self.patience, self.verbose = monitor, abs(min_delta), patience, verbose
        self.mode, self.baseline, self.restore_best_weights = mode, baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _better(self, value, reference) -> bool:
        if reference is None:
            return True
        return value - self.min_delta > reference if self.mode == "max" else value + self.min_delta < reference

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            print(f"EarlyStopping: metric {self.monitor!r} is not available; available: {sorted(logs or {})}",
                  file=sys.stderr)
            return
        if epoch < self.start_from_epoch or (isinstance(value, float) and math.isnan(value)):
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(value, self.best):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``
    (``keras.callbacks.LambdaCallback``, with its arguments). Each function takes the hook's
    arguments (``epoch``/``batch`` where the hook has one, then ``logs``).

    Args:
        on_epoch_begin: ``(epoch, logs)`` at the start of every epoch.
        on_epoch_end: ``(epoch, logs)`` at the end of every epoch.
        on_train_begin: ``(logs)`` when training starts.
        on_train_end: ``(logs)`` when training ends.
        on_train_batch_begin: ``(batch, logs)`` before every training batch.
        on_train_batch_end: ``(batch, logs)`` after every training batch.
        **kwargs: any other ``on_*`` hook of :class:`Callback` (``on_test_end``, ...).
    Raises:
        ValueError: a keyword that is not a hook.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if not hasattr(Callback, name) or not name.startswith("on_"):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}")
            if fn is not None:           # an unset hook stays the base class' (per-batch logs are not read)
                setattr(self, name, fn)


__all__, __dir__ = exports(globals())

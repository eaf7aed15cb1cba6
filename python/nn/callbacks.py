"""Training callbacks (Keras hooks): ``Callback``, ``History``, ``EarlyStopping``, ``LambdaCallback``,
``ModelCheckpoint``, ``BackupAndRestore``, ``LearningRateScheduler``, ``ReduceLROnPlateau``,
``CSVLogger``, ``TerminateOnNaN`` and ``TensorBoard``, with Keras 3's arguments and defaults.

``Model.fit`` calls, in order: ``on_train_begin``; per epoch ``on_epoch_begin``, per batch
``on_train_batch_begin``/``on_train_batch_end``, then (with validation data)
``on_test_begin``/``on_test_end``, then ``on_epoch_end(epoch, logs)`` where ``logs`` holds
``loss``, the metrics and their ``val_`` versions; finally ``on_train_end``. A callback stops
training by setting ``self.model.stop_training = True``.
"""
from __future__ import annotations

import json
import math
import os
import sys

from .. import summary
from .._registry import exports
from ..core.dtypes import int32
from ..tensor import Variable, init_scope
from ..train import Checkpoint, CheckpointManager
from .saving import serialize_keras_object, weight_paths


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


def _monitor_op(mode: str, monitor: str, who: str, min_delta: float = 0.0):
    """``(better(current, best), initial best)`` for ``mode`` ('auto': 'max' when ``monitor`` names an
    accuracy, as Keras 3 decides), improvements needing more than ``min_delta``."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "max" or (mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))):
        return (lambda a, b: a > b + min_delta), -math.inf
    return (lambda a, b: a < b - min_delta), math.inf


def _warn(message: str) -> None:
    import warnings
    warnings.warn(message, stacklevel=3)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) during training, as ``keras.callbacks.ModelCheckpoint``.

    ``filepath`` may hold ``str.format`` fields filled from ``epoch`` (1-based) and the logs:
    ``"ckpt/{epoch:02d}-{val_loss:.2f}.keras"``. A whole model needs a ``.keras`` name
    (:meth:`Model.save <webtensor.nn.Model.save>`); with ``save_weights_only=True`` the weights are
    written by ``save_weights`` (safetensors; name it ``*.weights.safetensors``).

    ``save_best_only=True`` saves only when ``monitor`` improves on the best value so far (``mode``
    'min', 'max', or 'auto': 'max' for accuracies, else 'min'; ``initial_value_threshold``: the
    value to beat first); a missing monitor is a warning and no save. ``save_freq``: ``"epoch"``, or
    an int: every that many batches (reads the logs back every batch).

    Args:
        filepath: the file to write (a str or path-like), with optional ``str.format`` fields;
            missing directories are created.
        monitor: the log entry ``save_best_only`` compares (``'val_loss'``, ``'accuracy'`` ...).
        verbose: 1 prints a line at each save (and each skipped save with ``save_best_only``).
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: save the weights alone (``Model.save_weights``), not the whole model.
        mode: 'min', 'max' or 'auto'.
        save_freq: ``"epoch"`` or a positive int (batches).
        initial_value_threshold: None or a number, the value the first save must beat.
    Raises:
        ValueError: a bad ``mode`` or ``save_freq``, or a whole-model ``filepath`` not ending in ``.keras``.
        KeyError: (during fit) a ``filepath`` field that neither the epoch nor the logs fill.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        import os
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only, self.save_freq = save_best_only, save_weights_only, save_freq
        self.monitor_op, best = _monitor_op(mode, monitor, "ModelCheckpoint")
        self.best = best if initial_value_threshold is None else float(initial_value_threshold)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and not isinstance(save_freq, bool)
                                         and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq {save_freq!r}; expected 'epoch' or a "
                             "positive integer")
        if not save_weights_only and not self.filepath.endswith(".keras"):
            raise ValueError("ModelCheckpoint: the filepath provided must end in `.keras` (Keras model format); "
                             f"received filepath={self.filepath!r}")
        self._batches_since_save = 0
        self._epoch = 0
        if isinstance(save_freq, int):
            self.on_train_batch_end = self._on_train_batch_end   # only then does fit read per-batch logs

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _on_train_batch_end(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs) -> str:
        # Keras 3: epoch and batch are 1-based
        try:
            return self.filepath.format(epoch=epoch + 1, **({} if batch is None else {"batch": batch + 1}), **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise KeyError(f"ModelCheckpoint: failed to format the filepath {self.filepath!r} (logs: {sorted(logs)}): "
                           f"{type(e).__name__}: {e}") from None

    def _save(self, epoch, batch, logs):
        import os
        logs = dict(logs or {})
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None or (isinstance(current, float) and math.isnan(current)):
                _warn(f"ModelCheckpoint: can save best model only with {self.monitor} available, skipping "
                      f"(available: {sorted(logs)})")
                return
            better = self.monitor_op(current, self.best)
            path = self._path(epoch, batch, logs)
            if not better:
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        else:
            path = self._path(epoch, batch, logs)
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path, overwrite=True)


class BackupAndRestore(Callback):
    """Back up training at the end of every epoch and resume an interrupted ``fit`` where it stopped,
    as ``keras.callbacks.BackupAndRestore``: the model's weights and state, the optimizer's state
    (slots, ``iterations``, learning rate) and the epoch go into a :class:`webtensor.train.Checkpoint`
    in ``backup_dir``; a ``fit`` that finds one restores it and starts at the next epoch, so the run
    ends as an uninterrupted one would (bit-identical, when the data order does not depend on the
    process: ``shuffle=False``, or a Dataset with a fixed seed). A ``fit`` that finishes deletes the
    backup (``delete_checkpoint=True``).

    Args:
        backup_dir: the directory of the backup (a str or path-like; created when needed).
        save_freq: ``"epoch"`` (back up at each epoch's end) or False (never back up; only restore).
        delete_checkpoint: delete the backup (and ``backup_dir`` when it is left empty) when ``fit``
            finishes.
    Raises:
        ValueError: an empty ``backup_dir``, or ``save_freq`` other than ``"epoch"`` or False
            (saving every N batches, and resuming mid-epoch, is not supported).
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        import os
        if not backup_dir:
            raise ValueError("BackupAndRestore: empty `backup_dir` argument passed")
        if save_freq not in ("epoch", False):
            raise ValueError(f"BackupAndRestore: save_freq must be 'epoch' or False, got {save_freq!r} (backups "
                             "every N batches are not supported)")
        self.backup_dir, self.save_freq, self.delete_checkpoint = os.fspath(backup_dir), save_freq, delete_checkpoint
        self._manager = None

    def on_train_begin(self, logs=None):
        with init_scope():
            self._epoch = Variable(-1, name="epoch", trainable=False, dtype=int32)
        ckpt = Checkpoint(model=self.model, optimizer=self.model.optimizer, epoch=self._epoch)
        self._manager = CheckpointManager(ckpt, self.backup_dir, max_to_keep=1, checkpoint_name="backup")
        if self._manager.latest_checkpoint is not None:
            ckpt.restore(self._manager.latest_checkpoint).assert_consumed()
            self.model._initial_epoch = int(self._epoch) + 1

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._epoch.assign(epoch)
            self._manager.save()

    def on_train_end(self, logs=None):
        import os
        if self.delete_checkpoint and self._manager is not None:
            for path in self._manager.checkpoints:
                os.remove(path + ".safetensors")
            state = os.path.join(self.backup_dir, "checkpoint")
            if os.path.exists(state):
                os.remove(state)
            if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
                os.rmdir(self.backup_dir)


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)`` for a one-argument function), as ``keras.callbacks.LearningRateScheduler``;
    the epoch logs get ``learning_rate``.

    Args:
        schedule: ``schedule(epoch, lr) -> float`` (``epoch`` 0-based, ``lr`` the current rate as a
            float) or ``schedule(epoch) -> float``.
        verbose: 1 prints the rate set at each epoch.
    Raises (during fit):
        ValueError: ``schedule`` returned something other than a number.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:       # a schedule that takes only the epoch
            lr = self.schedule(epoch)
        if not (isinstance(lr, float) or getattr(getattr(lr, "dtype", None), "kind", "") == "f"
                and getattr(lr, "ndim", 0) == 0 and hasattr(lr, "item")):     # a float, or a numpy float (Keras)
            raise ValueError(f"LearningRateScheduler: the output of the `schedule` function should be a float, "
                             f"got {lr!r}")
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs, then wait ``cooldown`` epochs before counting again; never
    below ``min_lr``. Keras 3's ``keras.callbacks.ReduceLROnPlateau`` (same arguments, defaults and
    order of checks); the epoch logs get ``learning_rate``.

    Args:
        monitor: the log entry to watch; a missing one is a warning and no change.
        factor: the multiplier of the learning rate, below 1.
        patience: epochs without improvement before a reduction.
        verbose: 1 prints each reduction.
        mode: 'min', 'max' or 'auto' ('max' when ``monitor`` names an accuracy, else 'min'); another
            value is a warning and means 'auto'.
        min_delta: the least change that counts as an improvement.
        cooldown: epochs after a reduction before counting again.
        min_lr: the least learning rate.
    Raises:
        ValueError: ``factor >= 1``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if mode not in ("auto", "min", "max"):
            _warn(f"ReduceLROnPlateau: mode {mode!r} is unknown, fallback to auto mode")
            mode = "auto"
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), patience, verbose
        self.mode, self.min_delta, self.cooldown, self.min_lr = mode, min_delta, cooldown, float(min_lr)
        self._reset()

    def _reset(self):
        # Keras 3: 'auto' is 'max' only when the monitor names an accuracy
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op, self.best = (lambda a, b: a < b - self.min_delta), math.inf
        else:
            self.monitor_op, self.best = (lambda a, b: a > b + self.min_delta), -math.inf
        self.cooldown_counter, self.wait = 0, 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        """Whether the callback is within ``cooldown`` epochs of its last reduction (Keras' name)."""
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            _warn(f"ReduceLROnPlateau: learning rate reduction is conditioned on metric `{self.monitor}` which is "
                  f"not available. Available metrics are: {','.join(logs)}")
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row (``keras.callbacks.CSVLogger``): the header is ``epoch``
    then the log keys sorted; ``append=True`` appends (without a header when the file has content).
    Numbers are written as Python writes them (``str``); a value missing from a row is ``NA``.

    Args:
        filename: the CSV file (a str or path-like), opened when training begins.
        separator: the field delimiter (a one-character str).
        append: append to an existing file instead of overwriting it.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        import os
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys, self.writer, self.csv_file = None, None, None

    def on_train_begin(self, logs=None):
        import os
        self.append_header = not (self.append and os.path.exists(self.filename)
                                  and os.path.getsize(self.filename) > 0)
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        import csv
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.model is not None and self.model.stop_training:
            logs = {k: logs.get(k, "NA") for k in self.keys}      # an early stop may lack some values
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file, self.writer = None, None


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (``keras.callbacks.TerminateOnNaN``;
    reads the loss back every batch)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Write TensorBoard logs during training, as ``keras.callbacks.TensorBoard``: under ``log_dir``, a
    ``train`` run gets ``epoch_<metric>`` scalars (loss, metrics, ``learning_rate``) at each epoch and a
    ``validation`` run the ``val_`` values under the same names; ``update_freq="batch"`` (or an int N:
    every N batches) adds ``batch_<metric>`` scalars at the global batch index (reading the logs back
    every batch). ``histogram_freq=N`` writes each weight's histogram (``<weight path>/histogram``, e.g.
    ``dense/kernel/histogram``) every N epochs. ``write_graph=True`` writes the model's config (JSON)
    as the text summary ``keras`` at step 0 (TensorBoard's graph view needs a TensorFlow graph, which
    webtensor models do not have). Events go through :mod:`webtensor.summary` (tensorboardX).

    Args:
        log_dir: the directory of the runs (a str or path-like).
        histogram_freq: an int >= 0: write weight histograms every that many epochs; 0: never.
        write_graph: write the model's config as the text summary ``keras``.
        update_freq: ``"epoch"``, ``"batch"`` or a positive int (batches).
    Raises:
        ValueError: a bad ``update_freq`` or ``histogram_freq``.
        ImportError: tensorboardX is missing (``pip install 'webtensor[tensorboard]'``), at ``fit``.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, update_freq="epoch"):
        super().__init__()
        import os
        if update_freq not in ("epoch", "batch") and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, got {update_freq!r}")
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be an int >= 0, got {histogram_freq!r}")
        self.log_dir, self.histogram_freq, self.write_graph = os.fspath(log_dir), histogram_freq, write_graph
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writers: dict = {}
        self._train_step = 0
        if self.update_freq != "epoch":
            self.on_train_batch_end = self._on_train_batch_end

    def _writer(self, run: str):
        if run not in self._writers:
            self._writers[run] = summary.create_file_writer(os.path.join(self.log_dir, run))
        return self._writers[run]

    def on_train_begin(self, logs=None):
        self._train_step = int(self.model.optimizer.iterations) if self.model.optimizer is not None else 0
        if self.write_graph:

            try:
                config = json.dumps(serialize_keras_object(self.model), indent=2)
            except (TypeError, NotImplementedError) as e:      # a model without a config: note why
                config = f"(no config: {e})"
            with self._writer("train").as_default(step=0):
                summary.text("keras", "```\n" + config + "\n```")

    def _on_train_batch_end(self, batch, logs=None):
        self._train_step += 1
        if self._train_step % self.update_freq == 0:
            with self._writer("train").as_default(step=self._train_step):
                for k, v in (logs or {}).items():
                    summary.scalar("batch_" + k, v)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if "learning_rate" not in train and self.model.optimizer is not None:
            train["learning_rate"] = float(self.model.optimizer.learning_rate)
        with self._writer("train").as_default(step=epoch):
            for k, v in train.items():
                summary.scalar("epoch_" + k, v)
            if self.histogram_freq and epoch % self.histogram_freq == 0:
                for path, w in weight_paths(self.model).items():
                    summary.histogram(path + "/histogram", w)
        if val:
            with self._writer("validation").as_default(step=epoch):
                for k, v in val.items():
                    summary.scalar("epoch_" + k, v)

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


__all__, __dir__ = exports(globals())

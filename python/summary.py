"""TensorBoard summaries (``webtensor.summary``), as ``tf.summary``: a writer from
:func:`create_file_writer`, made the default with ``with writer.as_default(step=...):``, then
:func:`scalar`, :func:`histogram`, :func:`image` and :func:`text` record values at a step into
TensorBoard event files that ``tensorboard --logdir`` shows.

The event files are written by ``tensorboardX`` (https://github.com/lanpei/tensorboardX, the
TensorBoard writer maintained outside TensorFlow), an optional dependency:
``pip install 'webtensor[tensorboard]'``; it is imported when the first writer is created.

As in TensorFlow, a summary call without a default writer records nothing and returns False;
``step=None`` takes the step given to ``as_default(step)`` or :func:`set_step`, and with neither
it is a ValueError. Scalars are written as TensorBoard's ``simple_value`` scalars, histograms as
``HistogramProto`` (``buckets`` equal-width bins, 30 by default as in ``tf.summary.histogram``),
images as PNG, text under TensorBoard's text plugin (tag ``<name>/text_summary``). The
``description`` arguments are accepted for ``tf.summary``'s signatures and not written.
"""
from __future__ import annotations

import contextlib
import os
import threading

from .util import require

_local = threading.local()     # per thread, as TF's: .stack of (writer, step) from as_default; .base; .step


def _stack() -> list:
    """The default writers, innermost last: ``set_as_default``'s first, then the ``as_default`` blocks'."""
    if not hasattr(_local, "stack"):
        _local.stack = []
    base = getattr(_local, "base", None)
    return ([base] if base is not None else []) + _local.stack


class SummaryWriter:
    """Writes event files to ``logdir`` (:func:`create_file_writer` makes one). Use it as the default
    writer with ``with writer.as_default():`` (or :meth:`set_as_default`); :meth:`flush` writes what is
    queued, :meth:`close` flushes and ends it (later summaries to it raise RuntimeError)."""

    def __init__(self, logdir, max_queue: int = 10, flush_millis: int = 120_000, filename_suffix: str = ""):
        tbx = require("tensorboardX", "webtensor.summary (TensorBoard event files)")
        self.logdir = os.fspath(logdir)
        self._writer = tbx.SummaryWriter(self.logdir, max_queue=int(max_queue),
                                         flush_secs=max(1, int(flush_millis) // 1000), filename_suffix=filename_suffix)
        self._closed = False

    @contextlib.contextmanager
    def as_default(self, step=None):
        """Within the block this is the default writer (and ``step``, when given, the default step)."""
        _stack()
        _local.stack.append((self, step))
        try:
            yield self
        finally:
            _local.stack.pop()
            self.flush()

    def set_as_default(self, step=None) -> None:
        """Make this the default writer for the rest of the thread (until another takes over)."""
        _local.base = (self, step)

    def flush(self) -> None:
        """Write queued events to disk."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if not self._closed:
            self._writer.close()
            self._closed = True

    def _get(self):
        if self._closed:
            raise RuntimeError(f"summary writer for {self.logdir!r} is closed")
        return self._writer

    def __repr__(self):
        return f"<SummaryWriter logdir={self.logdir!r}{' closed' if self._closed else ''}>"


def create_file_writer(logdir, max_queue: int | None = None, flush_millis: int | None = None,
                       filename_suffix: str | None = None, name: str | None = None) -> SummaryWriter:
    """A :class:`SummaryWriter` for ``logdir`` (created if missing), as ``tf.summary.create_file_writer``:
    events are queued (up to ``max_queue``, default 10) and flushed every ``flush_millis`` (default
    120000) and when the writer's ``as_default`` block ends.

    Raises:
        ImportError: tensorboardX is not installed (``pip install 'webtensor[tensorboard]'``).
    """
    return SummaryWriter(logdir, 10 if max_queue is None else max_queue,
                         120_000 if flush_millis is None else flush_millis, filename_suffix or "")


def set_step(step) -> None:
    """The default step of summaries in this thread (``tf.summary.experimental.set_step``); None unsets it."""
    _local.step = step


def get_step():
    """The default step set by :func:`set_step` (or the innermost ``as_default(step)``), or None."""
    for _, step in reversed(_stack()):
        if step is not None:
            return step
    return getattr(_local, "step", None)


def _target(step, what: str):
    """``(tensorboardX writer, int step)`` or None when there is no default writer."""
    stack = _stack()
    if not stack:
        return None
    if step is None:
        step = get_step()
        if step is None:
            raise ValueError(f"summary.{what}: no step set. Please specify one either through the `step` argument "
                             "or through webtensor.summary.set_step() / as_default(step=...)")
    try:
        step = int(step)
    except (TypeError, ValueError):
        raise TypeError(f"summary.{what}: step must be an integer, got {step!r}") from None
    return stack[-1][0]._get(), step


def _numpy(data, what: str):
    np = require("numpy", f"webtensor.summary.{what}")
    return np, (data.numpy() if hasattr(data, "numpy") and not isinstance(data, np.ndarray) else np.asarray(data))


def _check_name(name, what):
    if not isinstance(name, str) or not name:
        raise TypeError(f"summary.{what}: name must be a non-empty string, got {name!r}")


def scalar(name: str, data, step=None, description=None) -> bool:
    """Record the scalar ``data`` (a number or a 0-d Tensor) under ``name`` at ``step``. Returns True when
    written, False without a default writer.

    Raises:
        ValueError: ``data`` is not a scalar, or no step is known. TypeError: a bad name or step.
    """
    _check_name(name, "scalar")
    target = _target(step, "scalar")
    if target is None:
        return False
    np, value = _numpy(data, "scalar")
    if value.ndim != 0 and value.size != 1 or not np.issubdtype(value.dtype, np.number) and value.dtype != bool:
        raise ValueError(f"summary.scalar: {name!r} must be a number, got shape {value.shape} dtype {value.dtype}")
    target[0].add_scalar(name, float(value.reshape(())), target[1])
    return True


def histogram(name: str, data, step=None, buckets: int | None = None, description=None) -> bool:
    """Record the distribution of ``data`` (any shape, numbers) in ``buckets`` equal-width bins (30
    when None, as ``tf.summary.histogram``). Returns True when written.

    Raises:
        ValueError: ``buckets`` < 1, or non-numeric data.
    """
    _check_name(name, "histogram")
    if buckets is not None and int(buckets) < 1:
        raise ValueError(f"summary.histogram: buckets must be >= 1, got {buckets!r}")
    target = _target(step, "histogram")
    if target is None:
        return False
    np, value = _numpy(data, "histogram")
    if not np.issubdtype(value.dtype, np.number):
        raise ValueError(f"summary.histogram: {name!r} must hold numbers, got dtype {value.dtype}")
    target[0].add_histogram(name, value.astype(np.float64).ravel(), target[1], bins=int(buckets or 30))
    return True


def image(name: str, data, step=None, max_outputs: int = 3, description=None) -> bool:
    """Record images: ``data`` is ``(k, h, w, c)`` with ``c`` 1 (grayscale), 3 (RGB) or 4 (RGBA), uint8,
    or floats in [0, 1] (clipped, then scaled to 0..255), as ``tf.summary.image``. The first
    ``max_outputs`` are written, as ``name`` for one image and ``name/0``, ``name/1``, ... for several.

    Raises:
        ValueError: another rank or channel count.
    """
    _check_name(name, "image")
    target = _target(step, "image")
    if target is None:
        return False
    np, value = _numpy(data, "image")
    if value.ndim != 4 or value.shape[-1] not in (1, 3, 4):
        raise ValueError(f"summary.image: {name!r} must have shape (k, h, w, c) with c in (1, 3, 4), got "
                         f"{value.shape}")
    if value.dtype != np.uint8:
        value = (np.clip(np.nan_to_num(value.astype(np.float64)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    images = value[:max(0, int(max_outputs))]
    for i, img in enumerate(images):
        target[0].add_image(name if len(images) == 1 else f"{name}/{i}", img, target[1], dataformats="HWC")
    return True


def text(name: str, data, step=None, description=None) -> bool:
    """Record the string ``data`` (Markdown, shown by TensorBoard's text dashboard). Returns True when written.

    Raises:
        TypeError: ``data`` is not a string.
    """
    _check_name(name, "text")
    if not isinstance(data, str):
        raise TypeError(f"summary.text: data must be a str, got {type(data).__name__}")
    target = _target(step, "text")
    if target is None:
        return False
    target[0].add_text(name, data, target[1])
    return True


def flush(writer: SummaryWriter | None = None) -> None:
    """Flush ``writer`` (default: the default writer)."""
    if writer is None and _stack():
        writer = _stack()[-1][0]
    if writer is not None:
        writer.flush()


__all__ = ["SummaryWriter", "create_file_writer", "scalar", "histogram", "image", "text", "flush", "set_step",
           "get_step"]


def __dir__():
    return list(__all__)

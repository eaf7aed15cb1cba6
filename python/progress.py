"""Progress display for ``Model.fit``: a tqdm bar when tqdm is installed,
plain lines otherwise. One :class:`Progress` is created per epoch.

``verbose`` follows Keras: 0 = silent, 1 = progress bar, 2 = one line per
epoch. A plain line looks like::

    Epoch 3/10 — 45/45 steps — loss 0.1234 — accuracy 0.9650 — 1.2s

tqdm is optional (``pip install webtensor[progress]``); it is imported only
when a bar is shown, and writes wherever tqdm writes by default (stderr).
Plain lines go to ``file`` (default: ``sys.stdout`` at the time of writing).
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "format_metrics"]

_SEP = " — "


def _format_value(value) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def format_metrics(metrics: dict) -> str:
    """``{'loss': 0.12345}`` -> ``'loss 0.1235'`` (joined with ' — ')."""
    return _SEP.join(f"{k} {_format_value(v)}" for k, v in metrics.items())


class Progress:
    """Progress of one epoch of ``total_steps`` steps.

    ``Progress(total_steps, desc, verbose=1, use_tqdm=None, file=None)``:

    * ``total_steps``: steps in the epoch, or ``None`` if unknown.
    * ``desc``: prefix such as ``"Epoch 3/10"``.
    * ``verbose``: 0 silent, 1 bar, 2 one line at :meth:`close`.
    * ``use_tqdm``: ``None`` = use tqdm if importable (verbose=1 only),
      ``False`` = plain lines, ``True`` = require tqdm.
    * ``file``: stream for plain lines (default ``sys.stdout``).

    Call :meth:`update` after each step and :meth:`close` at the end of the
    epoch (or use it as a context manager). Metrics are keyword arguments;
    the latest value of each is shown.
    """

    def __init__(
        self,
        total_steps: int | None,
        desc: str = "",
        *,
        verbose: int = 1,
        use_tqdm: bool | None = None,
        file=None,
    ):
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.total_steps = total_steps
        self.desc = desc
        self.verbose = verbose
        self.file = file
        self.n = 0
        self.metrics: dict = {}
        self.closed = False
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._bar = None
        self._redraw = False
        if verbose == 1 and use_tqdm is not False:
            try:
                from tqdm import tqdm
            except ImportError:
                if use_tqdm:
                    raise ImportError(
                        "Progress(use_tqdm=True) needs tqdm: pip install tqdm"
                    ) from None
            else:
                self._bar = tqdm(total=total_steps, desc=desc or None, unit="step")
        if verbose == 1 and self._bar is None:
            # No bar: redraw one line in place on a terminal, else print only
            # the final line (logs, captured output, notebooks).
            isatty = getattr(self._stream(), "isatty", None)
            self._redraw = bool(isatty and isatty())

    def _stream(self):
        return self.file if self.file is not None else sys.stdout

    def _write(self, text: str) -> None:
        stream = self._stream()
        try:
            stream.write(text)
        except UnicodeEncodeError:  # a console that cannot print "—"
            stream.write(text.replace(_SEP, " - "))
        stream.flush()

    def line(self) -> str:
        """The plain one-line summary of the current state."""
        steps = (
            f"{self.n}/{self.total_steps} steps"
            if self.total_steps is not None
            else f"{self.n} steps"
        )
        parts = [self.desc] if self.desc else []
        parts.append(steps)
        if self.metrics:
            parts.append(format_metrics(self.metrics))
        parts.append(f"{time.perf_counter() - self._start:.1f}s")
        return _SEP.join(parts)

    def update(self, n: int = 1, **metrics) -> None:
        """Record ``n`` more finished steps and the latest metric values."""
        if self.closed:
            return
        self.n += n
        self.metrics.update(metrics)
        if self._bar is not None:
            if metrics:
                self._bar.set_postfix(
                    {k: _format_value(v) for k, v in self.metrics.items()},
                    refresh=False,
                )
            self._bar.update(n)
        elif self._redraw:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self._write("\r" + self.line())

    def close(self, **metrics) -> None:
        """End the epoch; ``metrics`` (e.g. validation results) are shown last."""
        if self.closed:
            return
        self.closed = True
        self.metrics.update(metrics)
        if self.verbose == 0:
            return
        if self._bar is not None:
            if self.metrics:
                self._bar.set_postfix(
                    {k: _format_value(v) for k, v in self.metrics.items()},
                    refresh=False,
                )
            self._bar.close()
            return
        self._write(("\r" if self._redraw else "") + self.line() + "\n")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""``GradientTape``: records ops on watched tensors and differentiates them (reverse mode).

Semantics follow ``tf.GradientTape``: trainable variables are watched automatically
(``watch_accessed_variables``), other tensors with ``watch``; a non-persistent tape
can compute one gradient; tapes nest, and the outer tape records the inner tape's
gradient computation, giving higher-order derivatives.
"""
from __future__ import annotations

from . import _state
from .core import ops as F
from .core.autodiff import Record, backward
from .tensor import Tensor, Variable, tensor


class GradientTape:
    """Records the ops run inside ``with GradientTape() as tape:`` on watched tensors (trainable
    Variables, and what ``tape.watch`` names) so ``tape.gradient(target, sources)`` can
    differentiate them, as ``tf.GradientTape``. Tapes nest: an outer tape records an inner
    tape's gradient computation (higher derivatives).

    Args:
        persistent: allow more than one ``gradient`` call (else the second raises RuntimeError).
        watch_accessed_variables: watch every trainable Variable the block reads.
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._records: list[Record] = []
        self._tracked: dict[int, object] = {}  # id -> tensor (kept alive so ids stay unique)
        self._used = False

    def __enter__(self):
        _state.local.tapes.append(self)
        return self

    def __exit__(self, *exc):
        _state.local.tapes.remove(self)

    def watch(self, tensors) -> None:
        """Watch tensors so gradients can be taken with respect to them (``tf.GradientTape.watch``).

        Args:
            tensors: a tensor, or a list/tuple/dict of them (nested).
        Raises:
            TypeError: something that is not a tensor.
        """
        for t in _leaves(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch: expected tensors, got {type(t).__name__}")
            self._tracked[id(t)] = t

    def watched_variables(self) -> list[Variable]:
        """The Variables this tape watches (read in its block, or named by ``watch``)."""
        return [t for t in self._tracked.values() if isinstance(t, Variable)]

    def _record(self, rec: Record) -> None:
        hit = False
        for x in rec.inputs:
            if id(x) in self._tracked:
                hit = True
            elif self.watch_accessed_variables and isinstance(x, Variable) and x.trainable:
                self._tracked[id(x)] = x
                hit = True
        if hit:
            self._records.append(rec)
            for out in rec.out if isinstance(rec.out, tuple) else (rec.out,):
                self._tracked[id(out)] = out

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients: str = "none"):
        """d target / d sources, shaped like ``sources`` (a tensor, or a list/tuple/dict of them).

        Args:
            target: a float tensor, or a list of them (their gradients add).
            sources: a tensor, or a list/tuple/dict of them: the watched tensors to differentiate by.
            output_gradients: seeds of the backward pass, one per target, shaped like it (default: ones).
            unconnected_gradients: 'none' (an unconnected source gives None) or 'zero' (zeros).
        Returns:
            The gradients, structured like ``sources``.
        Raises:
            ValueError: ``unconnected_gradients`` not 'none' or 'zero'.
            RuntimeError: a non-persistent tape used twice.
            TypeError: a non-float target.
        """
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a non-persistent tape; "
                               "use GradientTape(persistent=True)")
        self._used = True
        targets = list(_leaves(target))
        seeds = list(_leaves(output_gradients)) if output_gradients is not None else [None] * len(targets)
        src = list(_leaves(sources))
        records = list(self._records)
        total = [None] * len(src)
        for t, seed in zip(targets, seeds):
            if not t.dtype.is_floating:
                raise TypeError(f"GradientTape.gradient: target must be floating point, got {t.dtype}")
            seed = F.broadcast_to(tensor(1.0, t.dtype, t.device), t.shape) if seed is None else seed
            for i, g in enumerate(backward(records, t, seed, src)):
                if g is not None:
                    total[i] = g if total[i] is None else total[i] + g
        # Only watched tensors (and results of recorded ops) are sources, as in TF.
        total = [g if id(s) in self._tracked else None for g, s in zip(total, src)]
        if unconnected_gradients == "zero":
            total = [F.broadcast_to(tensor(0.0, s.dtype, s.device), s.shape) if g is None else g
                     for g, s in zip(total, src)]
        elif unconnected_gradients != "none":
            raise ValueError("unconnected_gradients must be 'none' or 'zero'")
        return _restructure(sources, total)


def _leaves(x):
    if isinstance(x, dict):
        for k in sorted(x):
            yield from _leaves(x[k])
    elif isinstance(x, (list, tuple)):
        for t in x:
            yield from _leaves(t)
    else:
        yield x


def _restructure(like, flat):
    it = iter(flat)

    def go(x):
        if isinstance(x, dict):
            return {k: go(x[k]) for k in sorted(x)}
        if isinstance(x, (list, tuple)):
            return type(x)(go(t) for t in x)
        return next(it)
    return go(like)

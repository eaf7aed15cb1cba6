"""Learning-rate schedules (``webtensor.optimizers.schedules``), as in Keras 3.

A schedule is a callable ``schedule(step) -> float32 scalar Tensor``. ``step`` is an int or a
scalar Tensor (int32 or float32: an optimizer passes its ``iterations`` counter, which counts
the updates done so far, so the first update uses ``schedule(0)``). Every formula is written
with tensor ops, so a schedule inside a ``webtensor.function`` training step becomes part of
the traced graph and follows the step counter on later calls without retracing.

Formulas: ``keras/src/optimizers/schedules/learning_rate_schedule.py`` (Keras 3).
"""
from __future__ import annotations

import math

from .core import ops as F
from .core.dtypes import float32
from .tensor import Tensor, tensor


def _step(step) -> Tensor:
    """``step`` as a float32 scalar tensor (on the step tensor's device, or the default device)."""
    t = step if isinstance(step, Tensor) else tensor(step)
    if t.shape != ():
        raise ValueError(f"learning-rate schedule: step must be a scalar, got shape {t.shape}")
    return F.cast(t, float32)


def _positive(name, value):
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` with tensor ops and ``get_config()``."""

    def __call__(self, step) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self) -> dict:
        """The constructor's arguments as a dict: ``type(s).from_config(s.get_config())`` rebuilds ``s``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict):
        """A schedule from ``get_config()``'s dict (its keys are the constructor's arguments).

        Args:
            config: the dict.
        """
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _StepDecay(LearningRateSchedule):
    """Shared by the decays of ``p = step / decay_steps`` (``floor``-ed with ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        _positive("decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase = decay_rate, staircase

    def __call__(self, step) -> Tensor:
        p = _step(step) / float(self.decay_steps)
        if self.staircase:
            p = F.floor(p)
        return self._decay(p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is ``floor(step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: the steps per decay period (> 0).
        decay_rate: the factor per period.
        staircase: decay in whole periods (``floor(step / decay_steps)``).
    Raises:
        ValueError: ``decay_steps <= 0``.
    """

    def _decay(self, p) -> Tensor:
        return F.pow(float(self.decay_rate), p) * float(self.initial_learning_rate)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while ``step <= boundaries[1]``,
    ..., ``values[-1]`` after ``boundaries[-1]``.

    Args:
        boundaries: strictly increasing step numbers.
        values: the rates, one more than ``boundaries``.
    Raises:
        ValueError: ``len(boundaries) != len(values) - 1`` or boundaries not strictly increasing.
    """

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. Received: "
                             f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of "
                             f"length {len(values)}.")
        if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must be strictly increasing, got {boundaries}")
        self.boundaries, self.values = boundaries, values

    def __call__(self, step) -> Tensor:
        s = _step(step)
        out = F.cast(float(self.values[-1]), float32)
        for b, v in reversed(list(zip(self.boundaries, self.values))):
            out = F.where(s <= float(b), float(v), out)
        return out

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}


class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov & Hutter 2017, "SGDR", arXiv:1608.03983) with an optional linear
    warmup (Goyal et al. 2017, arXiv:1706.02677).

    Without ``warmup_target``: ``lr(s) = lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s' / decay_steps)) + alpha)``
    with ``s' = min(s, decay_steps)``. With ``warmup_target``: for ``s < warmup_steps`` the rate goes
    linearly from ``lr0`` to ``warmup_target``; afterwards the cosine decay above runs from
    ``warmup_target`` over ``decay_steps`` steps (``s`` is clipped to ``warmup_steps + decay_steps``).

    Args:
        initial_learning_rate: ``lr0``, the rate at step 0.
        decay_steps: the length of the cosine decay (> 0).
        alpha: the final rate as a fraction of the rate the decay starts from.
        warmup_target: the rate reached at the end of the warmup; None: no warmup.
        warmup_steps: the length of the warmup.
    Raises:
        ValueError: ``decay_steps <= 0``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0,
                 warmup_target: float | None = None, warmup_steps: int = 0):
        _positive("decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps, self.alpha = initial_learning_rate, decay_steps, alpha
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, s, start_lr):
        cosine = (F.cos(s * (math.pi / float(self.decay_steps))) + 1.0) * 0.5
        return ((1.0 - self.alpha) * cosine + float(self.alpha)) * start_lr

    def __call__(self, step) -> Tensor:
        s = _step(step)
        lr0, decay_steps = float(self.initial_learning_rate), float(self.decay_steps)
        if self.warmup_target is None:
            return self._decay(F.minimum(s, decay_steps), lr0)
        target, warm = float(self.warmup_target), float(self.warmup_steps)
        s = F.minimum(s, decay_steps + warm)
        # tensor-valued cond: both branches are computed and ``where`` picks one (warmup_steps=0 makes
        # the warmup branch divide by zero, but then it is never picked).
        warmup = (s / warm) * (target - lr0) + lr0
        return F.where(s < warm, warmup, self._decay(s - warm, target))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase`` the
    quotient is ``floor(step / decay_steps)``.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: the steps per decay period (> 0).
        decay_rate: the growth of the divisor per period.
        staircase: decay in whole periods (``floor(step / decay_steps)``).
    Raises:
        ValueError: ``decay_steps <= 0``.
    """

    def _decay(self, p) -> Tensor:
        return float(self.initial_learning_rate) / (p * float(self.decay_rate) + 1.0)


__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay", "InverseTimeDecay"]

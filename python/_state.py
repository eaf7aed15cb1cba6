"""Thread-unaware global execution state: the trace being built, active tapes, default device."""
from __future__ import annotations

traces: list = []        # innermost last; ``None`` entries are init scopes (eager inside a trace)
tapes: list = []         # active GradientTapes
device_stack: list = []  # from ``webtensor.device(...)`` contexts


def current_trace():
    return traces[-1] if traces else None

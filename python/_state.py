"""Per-thread execution state: the trace being built, active tapes, the ``webtensor.device`` scopes,
the ``webtensor.distribute`` strategy scopes.

As in TensorFlow, these belong to the thread that opened them: an op run by another thread is
neither traced into this thread's ``webtensor.function`` nor recorded by its ``GradientTape``, and
a new thread starts on the default device. Read them through ``local`` (a ``threading.local``).
"""
from __future__ import annotations

import threading


class _Local(threading.local):
    def __init__(self):
        self.traces: list = []        # innermost last; ``None`` entries are init scopes (eager inside a trace)
        self.autocast = None          # a float DType while a mixed-precision layer runs its call (else None)
        self.tapes: list = []         # active GradientTapes
        self.device_stack: list = []  # from ``webtensor.device(...)`` contexts
        self.strategy_stack: list = []  # from ``strategy.scope()`` contexts
        self.replica = None           # ``ReplicaContext`` while ``strategy.run`` runs a replica's fn


local = _Local()


def current_trace():
    traces = local.traces
    return traces[-1] if traces else None


def current_strategy():
    """The strategy whose ``scope()`` is innermost in this thread, else None."""
    stack = local.strategy_stack
    return stack[-1] if stack else None


def replica_context():
    """The ``ReplicaContext`` of the replica this thread runs inside ``strategy.run``, else None."""
    return local.replica

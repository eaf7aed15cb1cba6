"""Mirrored variables and the replica context: what lets custom training loops run under
``MirroredStrategy.run`` (TensorFlow's ``MirroredVariable`` and ``ReplicaContext``).

A ``MirroredVariable`` keeps one copy per replica device. Inside ``strategy.run`` each replica's
thread reads and assigns its own copy; outside (the cross-replica context) reads see replica 0's
copy and ``assign`` writes every copy. ``Optimizer.apply_gradients`` called in a replica context
first all-reduces the gradients (``ReplicaContext.all_reduce``, a SUM as TF's default
``experimental_aggregate_gradients=True``: scale the loss by the global batch, e.g. with
``compute_average_loss``), so every replica applies the same update to its copy and the copies
stay equal. Optimizer state created on the first update is made once, for all replicas, at the
all-reduce's rendezvous (TF's ``merge_call``).
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _state
from ..device import get_device
from ..tensor import Tensor, Variable, tensor

__all__ = ["MirroredVariable", "ReplicaContext"]


class MirroredVariable(Variable):
    """A Variable with one copy per replica of the ``MirroredStrategy`` in whose scope it was made
    (``tf.distribute.MirroredVariable``); made by ``Variable(...)`` inside ``strategy.scope()``.

    Besides the replicas' copies it has a primary copy on the device where it was made (shared with a
    replica on that device): what is read outside ``strategy.run`` (``evaluate``, saving,
    ``numpy()``). Replica 0's updates also reach the primary copy; an ``assign`` outside
    ``strategy.run`` writes every copy.

    Raises:
        RuntimeError: created inside ``strategy.run`` (create variables, e.g. build the model, in
            ``strategy.scope()`` before running steps; optimizer state is handled for you).
    """
    __slots__ = ("_copies", "_strategy", "_primary", "_ready")

    def __init__(self, initial_value, name=None, trainable=True, dtype=None, device=None, synchronization="auto"):
        if _state.local.replica is not None:
            raise RuntimeError("MirroredVariable: variables cannot be created inside strategy.run; build the "
                               "model (call it once or model.build) inside strategy.scope() before running steps")
        self._strategy = _state.current_strategy()
        self._ready, self._copies = False, [[None, None]]
        super().__init__(initial_value, name=name, trainable=trainable, dtype=dtype, device=device)
        first = Tensor(self._copies[0][0], self._aval, self._copies[0][1])
        copies = [[t._data, t._device] for t in (first.to(get_device(d)) for d in self._strategy._device_names)]
        devices = [dev for _, dev in copies]
        if first.device in devices:
            self._primary = devices.index(first.device)
        else:
            self._primary = len(copies)
            copies.append([first._data, first.device])
        self._copies, self._ready = copies, True

    def _replica_id(self):
        """This thread's replica, or None outside ``strategy.run``."""
        ctx = _state.local.replica
        return ctx.replica_id if ctx is not None and ctx.strategy is self._strategy else None

    @property
    def values(self) -> tuple:
        """The replicas' copies as plain tensors, in replica order."""
        n = self._strategy.num_replicas_in_sync
        return tuple(Tensor(d, self._aval, dev) for d, dev in self._copies[:n])

    def _copy(self):
        if not self._ready:
            return self._copies[0]
        r = self._replica_id()
        return self._copies[self._primary if r is None else r]

    @property
    def _data(self):
        return self._copy()[0]

    @_data.setter
    def _data(self, data):
        if not self._ready:
            self._copies[0][0] = data
            return
        r = self._replica_id()
        if r is not None:             # this replica's copy (the replicas' updates agree by construction)
            self._copies[r][0] = data
            if r == 0 and self._primary == self._strategy.num_replicas_in_sync:   # a copy of its own
                primary = self._copies[-1]
                primary[0] = Tensor(data, self._aval, self._copies[0][1]).to(primary[1])._data
            return
        value = Tensor(data, self._aval, self._copies[self._primary][1])   # cross-replica: every copy
        for copy in self._copies:
            copy[0] = value.to(copy[1])._data

    @property
    def _device(self):
        return self._copy()[1]

    @_device.setter
    def _device(self, dev):
        if not self._ready:
            self._copies[0][1] = dev

    def __repr__(self):
        return (f"<MirroredVariable {self.name!r} shape={self.shape} dtype={self.dtype.name} "
                f"devices={[dev.name for _, dev in self._copies]}>")


class _Rendezvous:
    """Every replica thread hands in a value; one of them combines all (``combine(values)``) and
    every thread gets the result. A failing replica breaks the barrier, so the others raise
    instead of waiting forever."""

    def __init__(self, n: int):
        self._values = [None] * n
        self._result = None
        self._error = None
        self._combine = None
        self._enter = threading.Barrier(n, action=self._run)
        self._leave = threading.Barrier(n)

    def _run(self):
        try:
            self._result, self._error = self._combine(self._values), None
        except BaseException as e:   # re-raised in every replica's thread
            self._result, self._error = None, e

    def exchange(self, replica_id: int, value, combine):
        self._values[replica_id], self._combine = value, combine
        self._enter.wait()
        result, error = self._result, self._error
        self._leave.wait()            # nobody starts the next exchange before all have read this one
        if error is not None:
            raise error
        return result

    def abort(self):
        self._enter.abort()
        self._leave.abort()


class ReplicaContext:
    """The replica a thread runs inside ``strategy.run`` (``tf.distribute.ReplicaContext``).

    Attributes:
        strategy: the strategy.
        replica_id_in_sync_group: this replica's index, 0 … ``num_replicas_in_sync - 1``.
    """

    def __init__(self, strategy, replica_id: int, rendezvous: _Rendezvous):
        self.strategy, self.replica_id, self._rendezvous = strategy, replica_id, rendezvous

    @property
    def replica_id_in_sync_group(self) -> int:
        return self.replica_id

    @property
    def num_replicas_in_sync(self) -> int:
        return self.strategy.num_replicas_in_sync

    def all_reduce(self, reduce_op, values, merge_fn=None):
        """Combine ``values`` (a list of tensors) element-wise across the replicas; every replica gets
        the result on its own device. Summation runs in replica order in float32, so every replica
        (and every run) gets the same bits.

        Args:
            reduce_op: ``"SUM"`` or ``"MEAN"``.
            values: tensors, the same shapes and dtypes in every replica.
            merge_fn: called once, in the cross-replica context, while all replicas wait (TF's
                ``merge_call``): e.g. to create optimizer state for every replica.
        Raises:
            ValueError: an unknown ``reduce_op``, or replicas with different shapes.
            threading.BrokenBarrierError: another replica failed.
            NotImplementedError: called while tracing a ``webtensor.function``.
        """
        op = getattr(reduce_op, "value", reduce_op)
        if op not in ("SUM", "MEAN"):
            raise ValueError(f"all_reduce: reduce_op must be 'SUM' or 'MEAN', got {reduce_op!r}")
        if _state.current_trace() is not None:
            raise NotImplementedError("all_reduce inside webtensor.function under strategy.run: run the "
                                      "custom step eagerly, or train with model.fit (which compiles it)")
        arrays = [np.asarray(v.numpy() if isinstance(v, Tensor) else v) for v in values]

        def combine(per_replica):
            shapes = {tuple(a.shape for a in arrays) for arrays in per_replica}
            if len(shapes) != 1:
                raise ValueError(f"all_reduce: replicas passed different shapes {sorted(shapes)}")
            if merge_fn is not None:
                saved, _state.local.replica = _state.local.replica, None
                try:
                    merge_fn()
                finally:
                    _state.local.replica = saved
            out = []
            for parts in zip(*per_replica):
                acc = parts[0].copy()
                for p in parts[1:]:
                    acc += p
                out.append(acc / np.asarray(len(parts), acc.dtype) if op == "MEAN" else acc)
            return out
        reduced = self._rendezvous.exchange(self.replica_id, arrays, combine)
        dev = get_device(self.strategy._device_names[self.replica_id])
        return [tensor(a, device=dev) for a in reduced]

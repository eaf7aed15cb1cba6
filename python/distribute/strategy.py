"""``tf.distribute``'s strategies: the common part and ``MirroredStrategy`` (one process).

Synchronous data parallelism (``MirroredStrategy``; ``MultiWorkerMirroredStrategy`` in ``cluster.py``
is the same over Ray actors): each global batch is split across the replicas; every replica runs the
compiled step (``replica.py``) on its shard; the replicas exchange their gradients (one flat buffer
each; here through per-replica inboxes, as threads of one process) and each sums them weighted by
its shard's share of the real rows, in replica order, so every replica applies the same bits and
all hold the same variables after every step. The coordinator hands the replicas
``steps_per_execution`` steps at a time (``compile``'s argument): one hand-off per execution.
The model's own Variables are copied back from replica 0 at the end of each epoch (before
validation and callbacks) and of ``fit``; they are the checkpoint a replaced replica restarts from
when no replica survives.
"""
from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _state
from .._state import current_strategy
from ..core import ops as F
from ..device import device, get_device
from ..tensor import Tensor, tensor
from ..tree import map_structure
from .replica import ReplicaRunner, _pad, export_program, weighted_sum
from .values import MirroredVariable, ReplicaContext, _Rendezvous

__all__ = ["Strategy", "MirroredStrategy", "PerReplica", "ReduceOp", "get_strategy", "has_strategy",
           "get_replica_context", "compute_average_loss", "MirroredVariable", "ReplicaContext"]

class ReduceOp:
    """How ``Strategy.reduce`` combines per-replica values (``tf.distribute.ReduceOp``)."""
    SUM = "SUM"
    MEAN = "MEAN"


class PerReplica:
    """One value per replica (``tf.distribute.DistributedValues``): ``values`` in replica order."""

    def __init__(self, values):
        self.values = tuple(values)

    def __repr__(self):
        return f"PerReplica({list(self.values)!r})"


def get_strategy():
    """The strategy whose ``scope()`` is active in this thread, else None."""
    return current_strategy()


def has_strategy() -> bool:
    return get_strategy() is not None


def get_replica_context():
    """The ``ReplicaContext`` of the replica this thread runs inside ``strategy.run``, else None
    (TensorFlow returns a default context outside; here None means the cross-replica context)."""
    return _state.replica_context()


def compute_average_loss(per_example_loss, global_batch_size=None):
    """``sum(per_example_loss) / global_batch_size`` (``tf.nn.compute_average_loss``): the loss a
    replica returns in a custom loop, so that the replicas' gradients SUM to the global mean's.

    Args:
        per_example_loss: a tensor of shape ``(batch,)`` (this replica's examples).
        global_batch_size: the global batch; default: this batch times ``num_replicas_in_sync``.
    Returns:
        A float32 scalar tensor.
    Raises:
        ValueError: a ``per_example_loss`` that is not 1-D, or a non-positive ``global_batch_size``.
    """
    if len(per_example_loss.shape) != 1:
        raise ValueError(f"compute_average_loss: per_example_loss must be 1-D, got shape {per_example_loss.shape}")
    if global_batch_size is None:
        ctx = _state.replica_context()
        global_batch_size = per_example_loss.shape[0] * (ctx.num_replicas_in_sync if ctx is not None else 1)
    if global_batch_size <= 0:
        raise ValueError(f"compute_average_loss: global_batch_size must be positive, got {global_batch_size}")
    return F.sum(per_example_loss) / float(global_batch_size)


def _split(a: np.ndarray, parts: int, rows: int) -> list:
    """``a`` split along axis 0 into ``parts`` consecutive shards of at most ``rows`` rows."""
    return [a[r * rows:(r + 1) * rows] for r in range(parts)]


def _host(x):
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


class Strategy:
    """The common part of the strategies (``tf.distribute.Strategy``)."""

    num_replicas_in_sync: int = 1
    _times = None             # a _StepTimes to fill (bench_distribute --profile), else None
    _variable_class = None    # the class a Variable made in this scope becomes (mirrored strategies)

    @contextlib.contextmanager
    def scope(self):
        """``with strategy.scope():`` models compiled inside train with this strategy (``fit``). Under
        ``MirroredStrategy`` variables made inside are ``MirroredVariable`` s."""
        stack = _state.local.strategy_stack
        stack.append(self)
        try:
            yield self
        finally:
            stack.pop()

    # ---- data ----
    def experimental_distribute_dataset(self, dataset):
        """A dataset whose elements are split into one shard per replica along the batch axis: each
        array in an element becomes a ``PerReplica`` of its shards (nested tuples/dicts kept), so
        ``for x, y in dist_dataset: strategy.run(step, args=(x, y))`` works as in TensorFlow."""
        return _DistributedDataset(self, dataset)

    def _shard(self, element):
        """``element`` with each array leaf replaced by a ``PerReplica`` of its shards (TF's layout:
        the structure outside, ``PerReplica`` at the leaves)."""
        n = self.num_replicas_in_sync

        def split(x):
            a = _host(x)
            return PerReplica(_split(a, n, math.ceil(a.shape[0] / n)))
        return map_structure(split, element)

    # ---- custom steps ----
    def run(self, fn, args=(), kwargs=None):
        """Run ``fn(*args, **kwargs)`` once per replica, on its device, with each ``PerReplica``
        argument replaced by that replica's value. Returns a ``PerReplica`` of the results.

        Under ``MirroredStrategy`` the replicas run in parallel threads, each in a ``ReplicaContext``
        (``wt.distribute.get_replica_context()``): ``fn`` reads its own copy of every
        ``MirroredVariable``, and ``optimizer.apply_gradients`` sums the gradients across replicas
        before every replica applies the same update (so divide the loss by the global batch size,
        e.g. with ``compute_average_loss``), as in TensorFlow's custom training loops.

        Raises:
            Whatever ``fn`` raises in any replica (the other replicas stop at their next all-reduce).
        """
        kwargs = kwargs or {}
        n = self.num_replicas_in_sync
        rendezvous = _Rendezvous(n) if self._variable_class is not None else None

        def pick(v, r):       # replica r's value of every PerReplica in the nest
            return map_structure(lambda x: x.values[r] if isinstance(x, PerReplica) else x, v)

        def one(r):
            with device(self._device_names[r]), self._replica(r, rendezvous):
                a = [tensor(x) if isinstance(x, np.ndarray) else x for x in (pick(v, r) for v in args)]
                k = {key: pick(v, r) for key, v in kwargs.items()}
                try:
                    return fn(*a, **k)
                except BaseException:
                    if rendezvous is not None:
                        rendezvous.abort()
                    raise
        return PerReplica(self._map(one, range(n)))

    @contextlib.contextmanager
    def _replica(self, replica_id, rendezvous):
        """This thread runs replica ``replica_id`` (in the strategy's scope, in its replica context)."""
        if rendezvous is None:
            yield
            return
        local = _state.local
        saved = local.replica
        local.replica = ReplicaContext(self, replica_id, rendezvous)
        local.strategy_stack.append(self)
        try:
            yield
        finally:
            local.strategy_stack.pop()
            local.replica = saved

    def reduce(self, reduce_op, value, axis=None):
        """Combine a ``PerReplica`` (or a plain value, seen as every replica's) into one numpy array:
        ``reduce_op`` ``"SUM"`` or ``"MEAN"`` across replicas, and with ``axis`` also along that axis of
        each value (``axis=0`` after ``run`` on a distributed batch gives the global batch's sum/mean).

        Raises:
            ValueError: an unknown ``reduce_op``.
        """
        op = getattr(reduce_op, "value", reduce_op)
        if op not in (ReduceOp.SUM, ReduceOp.MEAN):
            raise ValueError(f"reduce: reduce_op must be 'SUM' or 'MEAN', got {reduce_op!r}")
        values = value.values if isinstance(value, PerReplica) else (value,) * self.num_replicas_in_sync
        arrays = [_host(v).astype(np.float64) for v in values]
        if axis is None:
            total = sum(arrays)
            return np.asarray(total if op == ReduceOp.SUM else total / len(arrays), np.float32)
        total = sum(a.sum(axis=axis) for a in arrays)
        count = sum(a.shape[axis] for a in arrays)
        return np.asarray(total if op == ReduceOp.SUM else total / count, np.float32)

    def gather(self, value, axis=0):
        """The replicas' values concatenated along ``axis`` (numpy)."""
        values = value.values if isinstance(value, PerReplica) else (value,)
        return np.concatenate([_host(v) for v in values], axis=axis)

    # ---- what fit uses (overridden by the cluster strategies) ----
    def _map(self, fn, items):
        return [fn(i) for i in items]

    def _train_step(self, model):
        return _SyncStep(self, model)


class _DistributedDataset:
    def __init__(self, strategy, dataset):
        self._strategy, self._dataset = strategy, dataset

    def __iter__(self):
        for element in self._dataset:
            yield self._strategy._shard(element)


class _StepTimes:
    """Where a distributed ``fit``'s time goes (``strategy._times = _StepTimes()``; bench_distribute
    ``--profile``), in seconds summed over ``steps``: ``data`` (the fit loop between steps: the
    input pipeline, callbacks), ``coordinator`` (preparing steps, metrics), and per execution its
    wall time, of which the replicas report (their mean) ``compute`` (gathering rows, the two
    signatures), ``exchange`` (sending and receiving gradients, waiting for the slowest replica
    included) and ``sum`` (the all-reduce's arithmetic); the rest is ``handoff`` (thread hand-offs
    or Ray calls, serialisation); ``sync`` is the copy of the replicas' variables into the model at
    each epoch's end."""

    def __init__(self):
        self.steps = 0
        self.data = self.coordinator = self.execution = self.compute = self.exchange = self.sum = self.sync = 0.0

    def add(self, replica_times: list) -> None:
        """Add the replicas' reported ``compute``/``exchange``/``sum`` seconds (their mean)."""
        for key in ("compute", "exchange", "sum"):
            setattr(self, key, getattr(self, key) + sum(t.get(key, 0.0) for t in replica_times) / len(replica_times))

    def per_step_ms(self) -> dict:
        n = max(self.steps, 1)
        handoff = self.execution - self.compute - self.exchange - self.sum
        return {k: 1e3 * v / n for k, v in (("data", self.data), ("coordinator", self.coordinator),
                                            ("compute", self.compute), ("exchange", self.exchange),
                                            ("sum", self.sum), ("handoff", handoff), ("sync", self.sync))}


class _SyncStep:
    """``fit``'s train step under a synchronous strategy (module docstring). Batches are queued and
    run ``model.steps_per_execution`` at a time: one hand-off to the replicas per execution (a
    thread hand-off, a Ray call), which all-reduce between themselves after every step; metrics
    are updated per step when an execution returns."""

    def __init__(self, strategy, model):
        self.strategy, self.model = strategy, model
        self.program = None
        self.dirty = False
        self.queue = []         # steps not run yet: (replica items, scales, real rows, x, y, w, weighted)
        self.source = None      # run_rows: (fit's arrays, their host copies, the program they went to)
        self.last = None        # when the previous call returned (profile: the fit loop's share)

    def _ensure(self, xs, y, global_batch):
        n = self.strategy.num_replicas_in_sync
        rows = math.ceil(global_batch / n)
        if self.program is None or rows > self.program.batch:
            if self.program is not None:
                self.sync()
            backends = sorted(set(getattr(self.strategy, "_backends", ["wasm"])), key=["wasm", "webgpu"].index)
            self.program = export_program(self.model, xs if len(xs) > 1 else xs[0], y, rows, backends=backends,
                                          flat=True)
            self.strategy._start(self.program)

    def __call__(self, x, y, sample_weight=None):
        """A step on a batch (arrays or tensors): split and padded here, shipped with the execution."""
        start = self._begin()
        xs = [_host(v) for v in (x if isinstance(x, (list, tuple)) else [x])]
        if isinstance(x, dict):
            raise TypeError("distributed fit: pass several inputs as a list in input order, not a dict")
        yt = _host(y)
        total = xs[0].shape[0]
        self._ensure(xs, yt, total)
        n, rows = self.strategy.num_replicas_in_sync, self.program.batch
        w = np.ones((total,), np.float32) if sample_weight is None else _host(sample_weight).astype(np.float32)
        items, reals, scales = [], [], [rows / total for _ in range(n)]
        for r in range(n):
            part = [a[r * rows:(r + 1) * rows] for a in (*xs, yt, w)]
            items.append(([_pad(a, rows) for a in part[:-2]], _pad(part[-2], rows), _pad(part[-1], rows), scales))
            reals.append(part[0].shape[0])
        self.queue.append((items, scales, reals, xs[0], yt, w, sample_weight is not None))
        self._end(start)

    def run_rows(self, x, y, sample_weight, idx):
        """A step on rows ``idx`` of in-memory data (``x``, ``y``, ``sample_weight``: the whole arrays
        as ``fit`` holds them): the data goes to the replicas once, and each gathers its shard of
        every batch itself; an execution carries only row indices."""
        start = self._begin()
        if self.source is None or any(a is not b for a, b in zip(self.source[0], (x, y, sample_weight))):
            if isinstance(x, dict):
                raise TypeError("distributed fit: pass several inputs as a list in input order, not a dict")
            xs = [_host(v) for v in (x if isinstance(x, (list, tuple)) else [x])]
            w = None if sample_weight is None else _host(sample_weight).astype(np.float32)
            self.source = ((x, y, sample_weight), [*xs, _host(y), w], None)
        _, arrays, shipped = self.source
        idx = np.asarray(idx, np.int64)
        total = idx.shape[0]
        self._ensure(arrays[:-2], arrays[-2], total)
        if shipped is not self.program:          # a new source, or replicas started since
            self._execute()
            self.strategy._set_source(arrays)
            self.source = (*self.source[:2], self.program)
        n, rows = self.strategy.num_replicas_in_sync, self.program.batch
        parts = [idx[r * rows:(r + 1) * rows] for r in range(n)]
        scales = [rows / total for _ in range(n)]
        metrics = bool(self.model.compiled_metrics)
        yt = arrays[-2][idx] if metrics else None
        w = arrays[-1][idx] if metrics and arrays[-1] is not None else None
        self.queue.append(([(p, scales) for p in parts], scales, [len(p) for p in parts], idx, yt, w,
                           sample_weight is not None))
        self._end(start)

    def _begin(self) -> float:
        start = time.perf_counter()
        if self.strategy._times is not None and self.last is not None:
            self.strategy._times.data += start - self.last
        return start

    def _end(self, start: float) -> None:
        spent = self._execute() if len(self.queue) >= getattr(self.model, "steps_per_execution", 1) else 0.0
        self.last = time.perf_counter()
        if self.strategy._times is not None:
            self.strategy._times.coordinator += self.last - start - spent

    def _execute(self, last: bool = False) -> float:
        """Run the queued steps as one execution, then update the metrics; returns the seconds it took.
        ``last``: the epoch's last (the replicas may send their variables back with the results)."""
        queue, self.queue = self.queue, []
        if not queue:
            return 0.0
        n, times = self.strategy.num_replicas_in_sync, self.strategy._times
        begin = time.perf_counter()
        per_replica = [[step[0][r] for step in queue] for r in range(n)]
        start = time.perf_counter()
        results, replica_times = self.strategy._run_steps(per_replica, bool(self.model.compiled_metrics), last)
        end = time.perf_counter()
        if times is not None:
            times.steps += len(queue)
            times.execution += end - start
            times.add(replica_times)
        self.dirty = True
        self._update_metrics(queue, results)
        if times is not None:
            times.coordinator += (start - begin) + (time.perf_counter() - end)
        return time.perf_counter() - begin

    def _update_metrics(self, queue, results):
        """The metrics of an execution's steps: step by step for one (as plain ``fit``); for several,
        one update with every step's loss weighted by its batch size (the running sums add in
        another order: the logged loss may differ from one step at a time in its last bits)."""
        model, metrics = self.model, self.model.compiled_metrics
        losses, counts, ys, preds, ws = [], [], [], [], []
        for (_, scale, reals, x0, yt, w, weighted), res in zip(queue, results):
            losses.append(np.float32(sum(np.float64(s) * np.float64(r[0]) for s, r in zip(scale, res))))
            counts.append(x0.shape[0])
            if metrics:     # the loss tracker needs only the loss and the batch size
                ys.append(yt)
                preds.append(np.concatenate([r[1][:real] for r, real in zip(res, reals)]))
                ws.append(w if weighted else None)
        if len(queue) == 1:
            x0 = queue[0][3]
            y_t, pred_t, w_t = (tensor(ys[0]), tensor(preds[0]), None if ws[0] is None else tensor(ws[0])) \
                if metrics else (None, None, None)
            model._update_metrics(tensor(losses[0]), x0, y_t, pred_t, w_t)
            return
        model._loss_tracker.update_state(tensor(np.array(losses, np.float32)),
                                         sample_weight=tensor(np.array(counts, np.float32)))
        if metrics:
            w_t = None if ws[0] is None else tensor(np.concatenate(ws))
            y_t, pred_t = tensor(np.concatenate(ys)), tensor(np.concatenate(preds))
            for m in metrics:
                m.update_state(y_t, pred_t, w_t)

    def sync(self):
        """Run the queued steps, then copy replica 0's variables (weights and optimizer state) into
        the model's Variables."""
        self._execute(last=True)
        self.last = None
        if not self.dirty or self.program is None:
            return
        start = time.perf_counter()
        weights = self.strategy._weights()
        for name, v in self.program.variables.items():
            if name in weights:
                v.assign(weights[name].astype(v.dtype.name if hasattr(v.dtype, "name") else weights[name].dtype))
        self.dirty = False
        if self.strategy._times is not None:
            self.strategy._times.sync += time.perf_counter() - start


class _Exchange:
    """The all-reduce's rendezvous of ``MirroredStrategy``'s replica threads: each posts its step's
    item to every other replica's inbox (a ``queue.SimpleQueue``: put and a blocking get are C
    calls, a third of a ``threading.Barrier``'s cost per step) and takes the others' from its own.
    A replica posts step ``j + 1`` only after it has every replica's step ``j``, so a peer's item
    is at most one step early; such items wait in ``early`` for the step that takes them.
    :meth:`abort` makes every waiting and later call raise ``threading.BrokenBarrierError``."""

    _ABORT = object()

    def __init__(self, n: int):
        self.inboxes = [queue.SimpleQueue() for _ in range(n)]
        self.early = [{} for _ in range(n)]     # replica -> {peer: its next step's item}
        self.aborted = False
        self._sum_lock, self._sum_step, self._sum = threading.Lock(), None, None

    def reduce(self, j: int, scales, flats: list) -> list:
        """Step ``j``'s ``weighted_sum``, computed by the first replica to ask and shared (read only:
        the replicas copy it into their engines), so that two threads do not run the same numpy
        loops side by side, trading the GIL. No replica asks for step ``j + 1``'s before all have
        step ``j``'s: a replica's step ``j + 1`` item needs the others' step ``j`` done."""
        with self._sum_lock:
            if self._sum_step != j:
                self._sum, self._sum_step = weighted_sum(scales, flats), j
            return self._sum

    def __call__(self, r: int, j: int, item) -> list:
        if self.aborted:
            raise threading.BrokenBarrierError
        for p, box in enumerate(self.inboxes):
            if p != r:
                box.put((j, r, item))
        every = [None] * len(self.inboxes)
        every[r] = item
        early, missing = self.early[r], len(self.inboxes) - 1
        for p in list(early):
            every[p] = early.pop(p)
            missing -= 1
        while missing:
            message = self.inboxes[r].get()
            if message is self._ABORT:      # after the items posted before the abort
                raise threading.BrokenBarrierError
            step, p, value = message
            if step == j:
                every[p] = value
                missing -= 1
            else:
                early[p] = value
        return every

    def abort(self) -> None:
        self.aborted = True
        for box in self.inboxes:
            box.put(self._ABORT)


class MirroredStrategy(Strategy):
    """Synchronous data parallelism on several devices of one process (``tf.distribute.MirroredStrategy``).

    Args:
        devices: device names, TensorFlow style: ``"wasm:0"``, ``"wasm:1"`` (each its own WebAssembly
            engine; they run in parallel threads, so one process trains on every core), ``"webgpu:0"``.
            Default: one ``"wasm:k"`` per CPU core.

    ``with strategy.scope(): model.compile(...)``; then ``model.fit`` splits each global batch (its
    ``batch_size``) across the replicas. Gradients are all-reduced (a mean weighted by real rows), so
    ``N`` steps on ``R`` replicas with global batch ``B`` give the weights of one replica with batch
    ``B`` up to float32 summation order.

    Raises:
        ValueError: an unknown or repeated device name.
    """

    def __init__(self, devices=None):
        if devices is None:
            devices = [f"wasm:{k}" for k in range(max(1, os.cpu_count() or 1))]
        devices = list(devices)
        if not devices or len(set(devices)) != len(devices):
            raise ValueError(f"MirroredStrategy: devices must be distinct names, got {devices}")
        self._backends = []
        for d in devices:
            kind, _, index = d.partition(":")
            if kind not in ("wasm", "webgpu") or (index and not index.isdigit()):
                raise ValueError(f"MirroredStrategy: unknown device {d!r} (use 'wasm:K' or 'webgpu:K')")
            self._backends.append(kind)
        self._device_names = devices
        self.extended_devices = tuple(devices)
        self.num_replicas_in_sync = len(devices)
        self._pool = ThreadPoolExecutor(max(1, len(devices) - 1), thread_name_prefix="webtensor-replica")
        self._variable_class = MirroredVariable
        self._runners = []

    def _map(self, fn, items):
        # the first item runs in the calling thread: one thread hand-off fewer per step (the caller
        # would only wait), and none with one replica
        items = list(items)
        futures = [self._pool.submit(fn, i) for i in items[1:]]
        try:
            first = fn(items[0]) if items else None
        except BaseException:
            for f in futures:       # no replica is left running when the error propagates
                f.exception()
            raise
        return [first, *(f.result() for f in futures)] if items else []

    def _start(self, program):
        self._runners = self._map(lambda r: ReplicaRunner(program, self._backends[r]), range(self.num_replicas_in_sync))

    def _run_steps(self, per_replica, want_pred, last=False):
        """One execution: every replica runs its steps in its thread (replica 0 in this one),
        all-reducing through an :class:`_Exchange` after each. Returns (each step's ``[(loss,
        y_pred)]``, each replica's times)."""
        exchange = _Exchange(self.num_replicas_in_sync)

        def one(r):
            out, times = [], {}
            try:
                self._runners[r].run_steps(per_replica[r], lambda j, item: exchange(r, j, item), want_pred, out, times,
                                           exchange.reduce)
            except BaseException as e:      # the others stop waiting (BrokenBarrierError)
                exchange.abort()
                return e
            return out, times
        done = self._map(one, range(self.num_replicas_in_sync))
        errors = [e for e in done if isinstance(e, BaseException)]
        if errors:
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return done[0][0], [t for _, t in done]

    def _set_source(self, arrays):
        for runner in self._runners:
            runner.source = arrays

    def _weights(self):
        return self._runners[0].get_weights()

    def __repr__(self):
        return f"MirroredStrategy(devices={self._device_names})"

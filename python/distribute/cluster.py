"""Strategies over a Ray cluster (``pip install 'webtensor[distributed]'``): worker actors (one per
process or machine) and parameter server actors, as TensorFlow's distributed runtime has them.

- :class:`MultiWorkerMirroredStrategy`: synchronous; every worker actor runs the step compiled once
  by the coordinator (``replica.py``: shipped as an artifact through Ray's object store). The
  coordinator hands each worker ``steps_per_execution`` steps' shards in one call; after each step
  the workers send their gradients (one flat buffer) straight to each other over TCP links that
  Ray set up (``mesh.py``), and each sums them (``weighted_sum``, in the same order
  everywhere, so the workers stay bitwise equal) and applies the update. Faults: when a worker
  dies the survivors are stopped, it is replaced and given the state of the survivor that finished
  fewest steps (all hold the same variables after every step) and the unfinished steps run again,
  so no step is lost; when none survives, the workers restart from the last checkpoint (the
  model's Variables, copied back at each epoch's end).
- :class:`ParameterServerStrategy` with :class:`ClusterCoordinator`: asynchronous; parameter server
  actors each hold a shard of the variables and its optimizer state and apply the updates pushed to
  them; worker actors pull the current weights, compute gradients on their batch and push them;
  the coordinator schedules steps on free workers and reschedules a step whose worker died.

Ray: the cluster is the one ``ray.init`` connected to; when Ray is not initialised, the strategy
starts a local one (``ray.init(num_cpus=...)``, or ``ray.init(address=address)`` for an existing
cluster when ``address`` is given).
"""
from __future__ import annotations

import faulthandler
import math
import os
import pickle
import socket
import threading
from collections import deque

import numpy as np

from .. import __version__
from ..tensor import tensor
from .mesh import Mesh, PeerLost
from .replica import ReplicaProgram, ReplicaRunner, _pad, export_program
from .strategy import Strategy, _host

__all__ = ["MultiWorkerMirroredStrategy", "ParameterServerStrategy", "ClusterCoordinator", "RemoteValue"]


# Ray's crash reporter (absl's failure signal handler, in the driver and every worker) replaces the
# SIGILL/SIGSEGV handlers wasmtime uses for WebAssembly traps, so the first trap (an out-of-bounds
# access, a timeout) would kill the process instead of raising. Workers started by this process
# inherit the variable; the flag is also set on an already imported Ray before it starts.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("webtensor.distribute: the cluster strategies run on Ray; "
                          "install it with pip install 'webtensor[distributed]'") from None
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and not ray.is_initialized():
        constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    return ray


def _connect(address, num_cpus):
    """Ray, initialised: the running cluster, the one at ``address``, or a new local one."""
    ray = _ray()
    if not ray.is_initialized():
        _probe(address)
        had_faulthandler = faulthandler.is_enabled()
        try:
            if address is not None:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        except ConnectionError as e:
            raise ConnectionError(f"webtensor.distribute: cannot reach the Ray cluster at {address!r}: {e}") from None
        finally:
            # ray.init enables Python's faulthandler, whose SIGILL/SIGSEGV handler would sit over
            # wasmtime's trap handler; disabling it puts back the handler that was there before
            if not had_faulthandler and faulthandler.is_enabled():
                faulthandler.disable()
    return ray


def _probe(address, timeout: float = 5.0) -> None:
    """Fail fast (ConnectionError) when ``address`` is ``host:port`` and nothing listens there: Ray's
    own client retries for minutes before giving up."""
    if address is None or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"webtensor.distribute: cannot reach the Ray cluster at {address!r}: {e}") from None


class _Worker:
    """The actor behind every worker and parameter server: a :class:`ReplicaRunner` in its process."""

    def __init__(self):
        self.runner = None
        self.mesh, self.rank = Mesh(), 0

    def version(self) -> str:
        return __version__

    def pid(self) -> int:
        return os.getpid()

    def start(self, program: ReplicaProgram, backend: str) -> None:
        self.runner = ReplicaRunner(program, backend)

    # synchronous workers (MultiWorkerMirroredStrategy): executions of several steps, gradients
    # sent worker to worker over the mesh's links; ``abort`` runs in the actor's second thread
    def listen(self) -> tuple:
        return self.mesh.listen(_ray().util.get_node_ip_address())

    def connect(self, rank: int, addresses: list, token: bytes) -> None:
        self.rank = rank
        self.mesh.connect(rank, addresses, token)

    def run_steps(self, steps: list, want_pred: bool, weights: int = 0):
        """Run ``steps`` (``ReplicaRunner.run_steps``), exchanging each step's item with the peers.
        Returns ``(steps finished, their [(loss, y_pred)] of every worker, times, whether the
        variables follow)``: fewer steps when a peer's link broke (it died) or the coordinator
        aborted. With ``weights`` > 0 (called with ``num_returns=1 + weights``) that many more
        return values follow: the variables after the steps when all finished (:func:`_chunks`),
        else empty."""
        out, times = [], {}
        self.mesh.aborted = False
        try:
            self.runner.run_steps(steps, lambda j, item: self.mesh.exchange(self.rank, item), want_pred, out, times)
        except PeerLost:
            self.mesh.close_links()     # the coordinator links the workers again
        done = weights > 0 and len(out) == len(steps)
        status = (len(out), out, times, done)
        if not weights:
            return status
        return (status, *(_chunks(self.runner.get_weights(), weights) if done else [b""] * weights))

    def abort(self) -> None:
        self.mesh.aborted = True

    def set_source(self, arrays) -> None:
        self.runner.source = arrays

    def get_weights(self, names=None) -> dict:
        weights = self.runner.get_weights()
        return weights if names is None else {n: weights[n] for n in names}

    def set_weights(self, weights) -> None:
        self.runner.set_weights(weights)

    # parameter servers
    def apply_shard(self, k: int, grads) -> None:
        self.runner.apply_shard(k, grads)

    # asynchronous workers: pull, compute, push (the parameter servers are actor handles)
    def ps_step(self, servers, shards, names, xs, y, w):
        ray = _ray()
        pulled = ray.get([ps.get_weights.remote(n) for ps, n in zip(servers, names)])
        weights = {k: v for part in pulled for k, v in part.items()}
        self.runner.set_weights(weights)
        loss, y_pred, grads = self.runner.compute_gradients(xs, y, w)
        ray.get([ps.apply_shard.remote(k, [grads[i] for i in shard]) for k, (ps, shard) in enumerate(zip(servers, shards))])
        return loss, y_pred

    def call(self, fn, args, kwargs):
        return fn(*args, **kwargs)


# Ray returns a value under 100 KiB inline with the reply and a larger one through its object store,
# which costs ~2 ms more per call on this 2-core machine (the digits CNN's variables, 165 kB: one
# value 1.9-3.4 ms, two halves 0.85-0.93 ms, a call returning nothing 0.5-0.8 ms)
_INLINE_BYTES = 64 << 10


def _weight_chunks(program: ReplicaProgram) -> int:
    """How many return values carry ``program``'s variables (:func:`_chunks`): each well under Ray's
    inline limit, with room for pickle's framing."""
    nbytes = sum(math.prod(v.shape) * np.dtype(v.dtype.name if hasattr(v.dtype, "name") else v.dtype).itemsize
                 for v in program.variables.values())
    return max(1, -(-(nbytes + 16384) // _INLINE_BYTES))


def _chunks(weights: dict, k: int) -> list:
    """``weights`` pickled and cut into ``k`` pieces of about equal size (:func:`_unchunk` joins them)."""
    blob = pickle.dumps(weights, protocol=5)
    size = -(-len(blob) // k)
    return [blob[i * size:(i + 1) * size] for i in range(k)]


def _unchunk(parts: list) -> dict:
    return pickle.loads(b"".join(parts))


class _Cluster(Strategy):
    """What both cluster strategies share: Ray, the actor class, starting and checking actors."""

    def __init__(self, address, num_cpus):
        self._ray = _connect(address, num_cpus)
        self._actor_class = self._ray.remote(num_cpus=1)(_Worker)
        self._device_names = ["wasm"] * self.num_replicas_in_sync

    def _new_actor(self, program_ref, backend):
        ray = self._ray
        actor = self._actor_class.remote()
        try:
            version = ray.get(actor.version.remote(), timeout=120)
        except Exception as e:
            raise RuntimeError(f"webtensor.distribute: a worker could not start: {e}") from None
        if version != __version__:
            raise RuntimeError(f"webtensor.distribute: a worker runs webtensor {version}, the coordinator "
                               f"{__version__}; install the same version on every node")
        ray.get(actor.start.remote(program_ref, backend))
        return actor


class MultiWorkerMirroredStrategy(_Cluster):
    """Synchronous data parallelism over Ray worker actors (``tf.distribute.MultiWorkerMirroredStrategy``).

    Args:
        num_workers: worker actors (each one replica, one CPU); ``num_replicas_in_sync`` equals it.
        address: a running Ray cluster's address (``ray.init(address=...)``); default: the cluster
            Ray is connected to, else a new local one with ``num_workers`` CPUs.

    Use as :class:`MirroredStrategy`: ``with strategy.scope(): model.compile(...)``, then ``fit``.

    Raises:
        ImportError: Ray is not installed. ConnectionError: the cluster cannot be reached.
        RuntimeError: a worker cannot start or runs another webtensor version.
    """

    def __init__(self, num_workers: int = 2, address: str | None = None):
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"MultiWorkerMirroredStrategy: num_workers must be a positive int, got {num_workers!r}")
        self.num_replicas_in_sync = num_workers
        super().__init__(address, num_workers)
        # a second thread per actor receives the peers' gradients while the first runs steps
        self._actor_class = self._ray.remote(num_cpus=1, max_concurrency=2)(_Worker)
        self._workers: list = []
        self._program_ref = None
        self._checkpoint = None
        self._linked = False         # the workers' links (mesh.py) are up
        self._source = None          # fit's in-memory data in the object store (run_rows), for new workers
        self._last_weights = None    # the variables returned with an epoch's last execution
        self.restarts = 0

    def _start(self, program):
        self._program_ref = self._ray.put(program)
        self._weight_chunks = _weight_chunks(program)
        for a in self._workers:
            self._ray.kill(a)
        self._workers = [self._new_actor(self._program_ref, "wasm") for _ in range(self.num_replicas_in_sync)]
        self._checkpoint = None
        self._linked = False
        self._source = None

    def _alive(self) -> list[bool]:
        ray = self._ray
        alive = []
        for a in self._workers:
            try:
                ray.get(a.pid.remote(), timeout=60)
                alive.append(True)
            except Exception:
                alive.append(False)
        return alive

    def _recover(self, source=None):
        """Replace dead workers; give every worker but ``source`` (a survivor, else any) its state,
        else, when none survives, the last checkpoint's."""
        alive = self._alive()
        if source is None or not alive[source]:
            source = alive.index(True) if any(alive) else None
        state = self._ray.get(self._workers[source].get_weights.remote()) if source is not None else self._checkpoint
        for i, ok in enumerate(alive):
            if not ok:
                self._workers[i] = self._new_actor(self._program_ref, "wasm")
                if self._source is not None:
                    self._ray.get(self._workers[i].set_source.remote(self._source))
                self.restarts += 1
        if state is not None:
            self._ray.get([a.set_weights.remote(state) for i, a in enumerate(self._workers) if i != source])

    def _each(self, call, attempts: int = 3):
        """``call(worker, index)`` on every worker (Ray refs); when a worker dies it is replaced
        (``_recover``) and the call made again."""
        ray = self._ray
        for attempt in range(attempts):
            try:
                return ray.get([call(a, i) for i, a in enumerate(self._workers)])
            except ray.exceptions.RayActorError:      # a worker died (ActorDiedError is one)
                if attempt == attempts - 1:
                    raise
                self._recover()

    def _run_steps(self, per_replica, want_pred, last=False):
        """One execution: every worker runs its steps (``_Worker.run_steps``), sending gradients to
        the others after each. When a worker dies, the survivors are stopped, it is replaced with
        the state of the survivor that finished fewest steps (all hold the same variables after a
        step) and the unfinished steps run again: no step is lost. Returns (each step's ``[(loss,
        y_pred)]``, each worker's times). ``last``: worker 0 (or the survivor whose state all got)
        also returns its variables, kept for :meth:`_weights` (one round trip fewer per epoch)."""
        ray = self._ray
        total, results, times = len(per_replica[0]), [], []
        self._last_weights = None
        for attempt in range(3):
            if not self._linked:
                try:
                    self._link()
                except ray.exceptions.RayActorError:
                    if attempt == 2:
                        raise
                    self._recover()
                    continue
            workers, start = list(self._workers), len(results)
            k = self._weight_chunks if last else 0      # worker 0 returns its variables too
            refs = [a.run_steps.options(num_returns=1 + k).remote(per_replica[i][start:], want_pred, k) if i == 0 and k
                    else a.run_steps.remote(per_replica[i][start:], want_pred) for i, a in enumerate(workers)]
            chunk_refs = refs[0][1:] if k else []
            refs[0] = refs[0][0] if k else refs[0]
            try:
                outs = ray.get(refs)
            except ray.exceptions.RayActorError:
                if attempt == 2:
                    raise
                for a in workers:         # the survivors stop waiting (their links to it break, too)
                    a.abort.remote()
                outs = []
                for ref in refs:
                    try:
                        outs.append(ray.get(ref))
                    except ray.exceptions.RayActorError:
                        outs.append(None)
            survivors = [i for i, o in enumerate(outs) if o is not None]
            done = {i: outs[i][0] for i in survivors}
            least = min(survivors, key=done.get) if survivors else None
            if least is not None:
                results += outs[least][1]
                times += [outs[i][2] for i in survivors]
                if outs[least][3]:      # worker 0, all steps done: its variables follow
                    self._last_weights = _unchunk(ray.get(chunk_refs))
            if len(survivors) < len(outs) or len(set(done.values())) > 1:
                self._recover(least)    # the replaced workers, and any survivor ahead, get its state
            if len(survivors) < len(outs) or len(results) < total:
                self._linked = False    # a worker that lost a peer closed its links
            if len(results) == total:
                return results, times or [{}]
        raise RuntimeError("webtensor.distribute: workers kept dying")    # not reached: the last attempt raises

    def _set_source(self, arrays):
        self._source = self._ray.put(arrays)
        self._each(lambda a, i: a.set_source.remote(self._source))

    def _link(self):
        """Link every two workers (``mesh.py``), with a fresh token."""
        ray = self._ray
        addresses = ray.get([a.listen.remote() for a in self._workers])
        token = os.urandom(16)
        ray.get([a.connect.remote(i, addresses, token) for i, a in enumerate(self._workers)])
        self._linked = True

    def _weights(self):
        weights, self._last_weights = self._last_weights, None
        if weights is None:
            weights = self._each(lambda a, i: a.get_weights.remote() if i == 0 else a.pid.remote())[0]
        self._checkpoint = weights
        return weights

    def shutdown(self):
        """Stop the worker actors (Ray itself keeps running)."""
        for a in self._workers:
            self._ray.kill(a)
        self._workers = []

    def __repr__(self):
        return f"MultiWorkerMirroredStrategy(num_workers={self.num_replicas_in_sync})"


class RemoteValue:
    """The result of :meth:`ClusterCoordinator.schedule`: ``fetch()`` waits for it (re-raising the
    function's error)."""

    def __init__(self):
        self._done = threading.Event()
        self._value = self._error = None

    def _set(self, value=None, error=None):
        self._value, self._error = value, error
        self._done.set()

    def fetch(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def done(self) -> bool:
        return self._done.is_set()


class ClusterCoordinator:
    """Schedules functions on the worker actors of a :class:`ParameterServerStrategy`
    (``tf.distribute.experimental.coordinator.ClusterCoordinator``).

    ``schedule(fn, args=(), kwargs=None)`` queues ``fn(*args, **kwargs)`` to run on a free worker
    (``fn`` is pickled by Ray and runs in the worker's process) and returns a :class:`RemoteValue`;
    a function whose worker dies is rescheduled on another (a replacement worker is started).
    ``join()`` waits for everything scheduled; ``done()`` says whether all of it has finished.
    """

    def __init__(self, strategy: "ParameterServerStrategy"):
        if not isinstance(strategy, ParameterServerStrategy):
            raise TypeError("ClusterCoordinator: the strategy must be a ParameterServerStrategy")
        self.strategy = strategy
        self._lock = threading.Condition()
        self._pending: deque = deque()
        self._running = 0
        self._idle = deque(range(strategy.num_workers))
        self.rescheduled = 0

    def schedule(self, fn, args=(), kwargs=None) -> RemoteValue:
        return self._submit(lambda worker: worker.call.remote(fn, tuple(args), dict(kwargs or {})))

    def _submit(self, make_ref) -> RemoteValue:
        rv = RemoteValue()
        with self._lock:
            self._pending.append((make_ref, rv))
            self._running += 1
        self._dispatch()
        return rv

    def _dispatch(self):
        with self._lock:
            while self._pending and self._idle:
                make_ref, rv = self._pending.popleft()
                w = self._idle.popleft()
                ref = make_ref(self.strategy._workers[w])
                threading.Thread(target=self._wait, args=(w, ref, make_ref, rv), daemon=True).start()

    def _wait(self, w, ref, make_ref, rv):
        ray = self.strategy._ray
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError:          # the worker died: reschedule elsewhere
            self.strategy._replace_worker(w)
            with self._lock:
                self.rescheduled += 1
                self._pending.appendleft((make_ref, rv))
                self._idle.append(w)
            self._dispatch()
            return
        except Exception as e:
            rv._set(error=e)
        else:
            rv._set(value=value)
        with self._lock:
            self._idle.append(w)
            self._running -= 1
            self._lock.notify_all()
        self._dispatch()

    def join(self) -> None:
        with self._lock:
            while self._running:
                self._lock.wait()

    def done(self) -> bool:
        with self._lock:
            return self._running == 0

    def fetch(self, values):
        """``RemoteValue``s (nested in lists/tuples) replaced by their values."""
        if isinstance(values, RemoteValue):
            return values.fetch()
        if isinstance(values, (list, tuple)):
            return type(values)(self.fetch(v) for v in values)
        return values


class ParameterServerStrategy(_Cluster):
    """Asynchronous training with parameter servers on Ray (``tf.distribute.experimental.ParameterServerStrategy``).

    Args:
        num_workers: worker actors computing gradients. num_ps: parameter server actors, each holding
            a shard of the trainable variables (balanced by size) and its optimizer state.
        address: as for :class:`MultiWorkerMirroredStrategy`.

    ``with strategy.scope(): model.compile(...)``, then ``model.fit``: each batch becomes a step
    scheduled on a free worker by a :class:`ClusterCoordinator` (``strategy.coordinator``), which
    pulls the current weights from the parameter servers, computes gradients and pushes them; each
    server applies its shard's gradients as they come (no barrier: updates may use weights a few
    steps old, as in TensorFlow). A worker that dies mid-step is replaced and the step rescheduled.
    Non-trainable state (BatchNormalization statistics) stays on the workers.
    """

    def __init__(self, cluster_resolver=None, num_workers: int = 2, num_ps: int = 1, address: str | None = None):
        if cluster_resolver is not None:
            raise NotImplementedError("ParameterServerStrategy: cluster_resolver is not supported; "
                                      "connect Ray (ray.init(address=...)) and give num_workers/num_ps")
        for what, v in (("num_workers", num_workers), ("num_ps", num_ps)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"ParameterServerStrategy: {what} must be a positive int, got {v!r}")
        self.num_workers, self.num_ps = num_workers, num_ps
        self.num_replicas_in_sync = 1       # as in TensorFlow: each step runs on one worker
        super().__init__(address, num_workers + num_ps)
        self._workers: list = []
        self._servers: list = []
        self.coordinator = None

    def _train_step(self, model):
        return _AsyncStep(self, model)

    def _start(self, program: ReplicaProgram, shards, names):
        ray = self._ray
        self._program_ref = ray.put(program)
        for a in self._workers + self._servers:
            ray.kill(a)
        self._servers = [self._new_actor(self._program_ref, "wasm") for _ in range(self.num_ps)]
        self._workers = [self._new_actor(self._program_ref, "wasm") for _ in range(self.num_workers)]
        self._shards, self._names = shards, names
        self.coordinator = ClusterCoordinator(self)

    def _replace_worker(self, w):
        self._workers[w] = self._new_actor(self._program_ref, "wasm")

    def _schedule_step(self, xs, y, w) -> RemoteValue:
        servers, shards, names = self._servers, self._shards, self._names
        return self.coordinator._submit(lambda worker: worker.ps_step.remote(servers, shards, names, xs, y, w))

    def _pull(self) -> dict:
        parts = self._ray.get([ps.get_weights.remote(n) for ps, n in zip(self._servers, self._names)])
        return {k: v for part in parts for k, v in part.items()}

    def shutdown(self):
        for a in self._workers + self._servers:
            self._ray.kill(a)
        self._workers, self._servers = [], []

    def __repr__(self):
        return f"ParameterServerStrategy(num_workers={self.num_workers}, num_ps={self.num_ps})"


def _balanced_shards(sizes: list[int], k: int) -> list[list[int]]:
    """Variable indices in ``k`` shards of about equal total size (largest first, to the lightest)."""
    shards, loads = [[] for _ in range(k)], [0] * k
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        j = loads.index(min(loads))
        shards[j].append(i)
        loads[j] += sizes[i]
    return [sorted(s) for s in shards]


class _AsyncStep:
    """``fit``'s train step under a ParameterServerStrategy: schedules the batch and returns; at most
    one step per worker is in flight (the oldest result is awaited first: back-pressure)."""

    def __init__(self, strategy: ParameterServerStrategy, model):
        self.strategy, self.model = strategy, model
        self.program = None
        self.in_flight: deque = deque()

    def __call__(self, x, y, sample_weight=None):
        xs = [_host(v) for v in (x if isinstance(x, (list, tuple)) else [x])]
        yt = _host(y)
        n = xs[0].shape[0]
        if self.program is None or n > self.program.batch:
            self.sync()
            trainable = self.model.trainable_variables
            self.model.optimizer.build(trainable)
            shards = _balanced_shards([math.prod(v.shape) for v in trainable], self.strategy.num_ps)
            self.program = export_program(self.model, xs if len(xs) > 1 else xs[0], yt, n, shards=shards)
            self._weight_names = [[self.program.trainable[i] for i in shard] for shard in shards]
            self.strategy._start(self.program, shards, self._weight_names)
        b = self.program.batch
        w = np.ones((n,), np.float32) if sample_weight is None else _host(sample_weight).astype(np.float32)
        args = ([_pad(a, b) for a in xs], _pad(yt, b), _pad(w, b))
        while len(self.in_flight) >= self.strategy.num_workers:
            self._finish_one()
        self.in_flight.append((self.strategy._schedule_step(*args), n, x, y, sample_weight))
        return tensor(np.float32(0))

    def _finish_one(self):
        rv, n, x, y, sw = self.in_flight.popleft()
        loss, y_pred = rv.fetch()
        scale = np.float32(self.program.batch / n)
        self.model._update_metrics(tensor(np.float32(loss) * scale), x, tensor(_host(y)), tensor(y_pred[:n]),
                                   None if sw is None else tensor(_host(sw)))

    def sync(self):
        """Wait for the scheduled steps, then copy the parameter servers' weights into the model."""
        while self.in_flight:
            self._finish_one()
        if self.program is None:
            return
        weights = self.strategy._pull()
        for name, v in self.program.variables.items():
            if name in weights:
                v.assign(weights[name])

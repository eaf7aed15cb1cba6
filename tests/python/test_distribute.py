"""webtensor.distribute: synchronous strategies are exact (R replicas with global batch B give the
weights of one replica with batch B, up to float32 summation order), the parameter-server strategy
trains to the main job's accuracy, and a worker killed during ``fit`` loses nothing.

Tolerance: the replicas' gradients are summed in another order than one replica's (a weighted mean of
per-replica means): measured max |difference| of the weights after 20 Adam steps 7.2e-8 (weights up
to 0.4) when the replicas ran module.wasm, 4.5e-8 since they run module_relaxed.wasm (multiply-adds
fused, as the reference's in-process "wasm" device); the tests allow 1e-6.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import webtensor as wt

pytest.importorskip("wasmtime")
nn = wt.nn
ATOL = 1e-6


def make_model(seed=0, steps_per_execution=1):
    wt.set_seed(seed)
    m = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(8, 3, padding="same", activation="relu"), nn.MaxPool2D(),
                       nn.Flatten(), nn.Dense(32, activation="relu"), nn.Dense(10)])
    m.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
              steps_per_execution=steps_per_execution)
    return m


@pytest.fixture(scope="module")
def digits():
    (x, y), (xt, yt) = wt.datasets.digits(seed=0)
    return np.asarray(x), np.asarray(y), np.asarray(xt), np.asarray(yt)


def reference_fit(x, y, **kw):
    with wt.device("wasm"):
        m = make_model()
        h = m.fit(x, y, shuffle=False, verbose=0, **kw)
    return m, h


def strategy_fit(strategy, x, y, callbacks=None, steps_per_execution=1, **kw):
    with wt.device("wasm"):
        with strategy.scope():
            m = make_model(steps_per_execution=steps_per_execution)
        h = m.fit(x, y, shuffle=False, verbose=0, callbacks=callbacks, **kw)
    return m, h


def assert_same_weights(a, b, atol=ATOL):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(np.asarray(wa), np.asarray(wb), rtol=0, atol=atol)


@pytest.mark.parametrize("n", [640, 600])     # 600: the last batch (24 rows) is split 12 + 12 ... padded
def test_mirrored_equals_one_replica(digits, n):
    x, y = digits[0][:n], digits[1][:n]
    ref, h_ref = reference_fit(x, y, batch_size=64, epochs=2)
    got, h_got = strategy_fit(wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"]), x, y, batch_size=64, epochs=2)
    assert_same_weights(ref, got)
    np.testing.assert_allclose(h_got.history["loss"], h_ref.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(h_got.history["accuracy"], h_ref.history["accuracy"], rtol=1e-6)


@pytest.mark.parametrize("mapped", [False, True])
def test_mirrored_steps_per_execution_is_exact(digits, mapped):
    """3 steps per hand-off (executions of 3, 3, 3 and the epoch's last 1): the weights, losses and
    accuracies of one replica, step by step; in-memory data (the replicas gather their rows) or a
    mapped Dataset (batches split by the coordinator)."""
    x, y = digits[0][:600], digits[1][:600]
    ref, h_ref = reference_fit(x, y, batch_size=64, epochs=2)
    s = wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])
    if mapped:
        ds = wt.data.Dataset.from_tensor_slices((x, y)).batch(64).map(lambda a, b: (a, b))
        got, h_got = strategy_fit(s, ds, None, steps_per_execution=3, epochs=2)
    else:
        got, h_got = strategy_fit(s, x, y, steps_per_execution=3, batch_size=64, epochs=2)
    assert_same_weights(ref, got)
    np.testing.assert_allclose(h_got.history["loss"], h_ref.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(h_got.history["accuracy"], h_ref.history["accuracy"], rtol=1e-6)
    with pytest.raises(ValueError, match="steps_per_execution"):
        make_model(steps_per_execution=0)


def test_mirrored_shuffled_fit_sees_plain_fits_batches(digits):
    """The replicas gather rows in the order the shuffled Dataset would yield them (same seed)."""
    x, y = digits[0][:384], digits[1][:384]
    with wt.device("wasm"):
        ref = make_model()
        ref.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=True, seed=5)
        s = wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])
        with s.scope():
            got = make_model(steps_per_execution=2)
        got.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=True, seed=5)
    assert_same_weights(ref, got)


def test_mirrored_replica_error_propagates_and_nothing_hangs(digits, monkeypatch):
    """A replica that fails mid-execution: its error reaches fit (the other leaves the barrier)."""
    from webtensor.distribute.replica import ReplicaRunner
    x, y = digits[0][:256], digits[1][:256]
    s = wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])
    real = ReplicaRunner.compute_gradients
    calls = []

    def flaky(self, *a):
        calls.append(self)
        if len(calls) == 5:
            raise OSError("replica lost")
        return real(self, *a)
    monkeypatch.setattr(ReplicaRunner, "compute_gradients", flaky)
    with pytest.raises(OSError, match="replica lost"):
        strategy_fit(s, x, y, steps_per_execution=2, batch_size=64, epochs=1)


def test_mirrored_exchange_gives_every_replica_each_step_in_replica_order():
    """Three replica threads running at different speeds (a peer's item arrives up to a step early)
    get every replica's item of the same step, in replica order; a replica that aborts releases the
    others waiting (BrokenBarrierError)."""
    import random
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from webtensor.distribute.strategy import _Exchange
    ex, steps = _Exchange(3), 40

    def replica(r):
        rng, seen = random.Random(r), []
        for j in range(steps):
            threading.Event().wait(rng.random() * 1e-3)
            seen.append(ex(r, j, (r, j)))
        return seen
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(replica, range(3)))
    for seen in results:
        assert seen == [[(0, j), (1, j), (2, j)] for j in range(steps)]
    # the step's sum: computed once (the first replica to ask), the same array for every replica
    flats = [[np.full(5, k + 1, np.float32)] for k in range(3)]
    first = ex.reduce(7, [0.5, 0.25, 0.25], flats)
    np.testing.assert_array_equal(first[0], np.full(5, 1.75, np.float32))
    assert ex.reduce(7, [0.5, 0.25, 0.25], flats) is first
    assert ex.reduce(8, [1.0, 0.0, 0.0], flats) is not first
    ex = _Exchange(3)

    def failing(r):
        if r == 2:
            ex(r, 0, "a")
            ex.abort()
            return "aborted"
        ex(r, 0, "a")
        with pytest.raises(threading.BrokenBarrierError):
            ex(r, 1, "b")
        return "released"
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(failing, range(3))) == ["released", "released", "aborted"]


def test_variables_return_from_ray_in_pieces_under_its_inline_limit(digits):
    """The epoch's last Ray execution returns worker 0's variables as pickled pieces, each under Ray's
    100 KiB inline limit (a larger value goes through the object store, ~2 ms more per call); the
    pieces join back into the same arrays."""
    from webtensor.__main__ import build_model
    from webtensor.distribute.cluster import _chunks, _unchunk, _weight_chunks
    from webtensor.distribute.replica import ReplicaRunner, export_program
    x, y = digits[0][:32], digits[1][:32]
    with wt.device("wasm"):
        wt.set_seed(0)
        m = build_model("cnn")
        m.compile(wt.optimizers.Adam(1e-3), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m(x[:2])
        program = export_program(m, x, y, 32, flat=True)
    weights = ReplicaRunner(program).get_weights()
    k = _weight_chunks(program)
    parts = _chunks(weights, k)
    assert len(parts) == k >= 2 and all(len(part) < 100 * 1024 for part in parts)
    assert sum(a.nbytes for a in weights.values()) > 100 * 1024        # one value would not be inline
    back = _unchunk(parts)
    assert back.keys() == weights.keys()
    for name, a in weights.items():
        np.testing.assert_array_equal(back[name], a)
        assert back[name].dtype == a.dtype


def test_mirrored_optimizer_state_returns_to_the_model(digits):
    """After a distributed fit, training on without the strategy continues from the replicas' state."""
    x, y = digits[0][:256], digits[1][:256]
    ref, _ = reference_fit(x, y, batch_size=64, epochs=2)
    with wt.device("wasm"):
        s = wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])
        with s.scope():
            m = make_model()
        m.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
        m.distribute_strategy = None
        m.train_function = None
        m.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    assert int(m.optimizer.iterations.numpy()) == 8
    assert_same_weights(ref, m)


def test_run_reduce_and_distributed_dataset_match_numpy():
    s = wt.distribute.MirroredStrategy(["wasm:0", "wasm:1"])
    assert s.num_replicas_in_sync == 2
    a = np.arange(24, dtype=np.float32).reshape(6, 4)
    ds = wt.data.Dataset.from_tensor_slices(a).batch(6)
    (per,) = list(s.experimental_distribute_dataset(ds))
    assert [v.shape for v in per.values] == [(3, 4), (3, 4)]
    out = s.run(lambda t: wt.reduce_sum(t * t, axis=1), args=(per,))
    assert [v.device for v in out.values] == [wt.get_device("wasm:0"), wt.get_device("wasm:1")]
    assert out.values[0].device is not out.values[1].device       # an engine each
    np.testing.assert_allclose(s.gather(out), (a * a).sum(1))
    np.testing.assert_allclose(s.reduce("SUM", out, axis=0), (a * a).sum(), rtol=1e-6)
    np.testing.assert_allclose(s.reduce(wt.distribute.ReduceOp.MEAN, out, axis=0), (a * a).sum(1).mean(), rtol=1e-6)
    np.testing.assert_allclose(s.reduce("MEAN", s.run(lambda: wt.tensor(3.0))), 3.0)
    with pytest.raises(ValueError, match="reduce_op"):
        s.reduce("MAX", out)
    with pytest.raises(ValueError, match="unknown device"):
        wt.distribute.MirroredStrategy(["gpu:0"])
    with pytest.raises(ValueError, match="distinct"):
        wt.distribute.MirroredStrategy(["wasm:0", "wasm:0"])


def test_cluster_strategies_say_when_ray_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"webtensor\[distributed\]"):
        wt.distribute.MultiWorkerMirroredStrategy(num_workers=2)


def test_wasm_traps_still_raise_after_ray_ran_in_this_process():
    """Ray's failure signal handler would turn a WebAssembly trap (SIGILL) into a crash."""
    import subprocess
    pytest.importorskip("ray")
    code = (
        "import wasmtime\n"
        "e = wasmtime.Engine(); s = wasmtime.Store(e)\n"       # wasmtime's handlers first, as in a session
        "m = wasmtime.Module(e, '(module (func (export \"f\") unreachable))')\n"
        "f = wasmtime.Instance(s, m, []).exports(s)['f']\n"
        "import ray\n"
        "from webtensor.distribute import cluster\n"
        "cluster._connect(None, 1)\n"
        "ray.shutdown()\n"
        "try:\n    f(s)\nexcept wasmtime.Trap:\n    print('trap raised')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "trap raised" in out.stdout, out.stderr[-2000:]


def test_unreachable_cluster_is_a_clear_error(monkeypatch):
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray is connected already")
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster"):
        wt.distribute.MultiWorkerMirroredStrategy(num_workers=1, address="127.0.0.1:1")


# ---- on a local Ray cluster (2 CPUs, as CI's machine) ---------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    from webtensor.distribute import cluster
    ray = pytest.importorskip("ray")
    cluster._ray()          # before Ray starts: no crash handler over wasmtime's trap handlers
    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


class KillWorker(nn.callbacks.Callback):
    """Kill one worker actor after ``at`` training batches (a fault injected mid-epoch)."""

    def __init__(self, strategy, at):
        super().__init__()
        self.strategy, self.at, self.seen = strategy, at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            import ray
            ray.kill(self.strategy._workers[0], no_restart=True)


def test_multi_worker_mirrored_is_exact_and_survives_a_killed_worker(digits, ray_cluster):
    x, y = digits[0][:640], digits[1][:640]
    ref, h_ref = reference_fit(x, y, batch_size=64, epochs=2)
    s = wt.distribute.MultiWorkerMirroredStrategy(num_workers=2)
    got, h_got = strategy_fit(s, x, y, batch_size=64, epochs=2, callbacks=[KillWorker(s, at=13)])
    assert s.restarts == 1
    assert_same_weights(ref, got)
    np.testing.assert_allclose(h_got.history["loss"], h_ref.history["loss"], rtol=1e-6)
    s.shutdown()


class KillWorkerSoon(nn.callbacks.Callback):
    """Kill worker 0 a few milliseconds after batch ``at`` ends: during an execution, or between two."""

    def __init__(self, strategy, at, delay=0.005):
        super().__init__()
        self.strategy, self.at, self.delay, self.seen = strategy, at, delay, 0

    def on_train_batch_end(self, batch, logs=None):
        import threading

        import ray
        self.seen += 1
        if self.seen == self.at:
            threading.Timer(self.delay, ray.kill, (self.strategy._workers[0],), {"no_restart": True}).start()


def test_multi_worker_steps_per_execution_survives_a_worker_killed_mid_execution(digits, ray_cluster):
    """4 steps per Ray call, gradients sent worker to worker; a worker killed during an execution:
    the survivor stops, the replacement gets its state, the unfinished steps run again (exact)."""
    x, y = digits[0][:1280], digits[1][:1280]
    ref, h_ref = reference_fit(x, y, batch_size=64, epochs=2)
    s = wt.distribute.MultiWorkerMirroredStrategy(num_workers=2)
    got, h_got = strategy_fit(s, x, y, steps_per_execution=4, batch_size=64, epochs=2,
                              callbacks=[KillWorkerSoon(s, at=9)])
    assert s.restarts == 1
    assert_same_weights(ref, got)
    np.testing.assert_allclose(h_got.history["loss"], h_ref.history["loss"], rtol=1e-6)
    s.shutdown()


def test_worker_version_mismatch_is_a_clear_error(digits, ray_cluster, monkeypatch):
    import webtensor.distribute.cluster as cluster
    s = wt.distribute.MultiWorkerMirroredStrategy(num_workers=1)
    monkeypatch.setattr(cluster, "__version__", "0.0.0-other")
    with pytest.raises(RuntimeError, match="runs webtensor 0.1.0, the coordinator 0.0.0-other"):
        strategy_fit(s, digits[0][:64], digits[1][:64], batch_size=64, epochs=1)


def test_parameter_server_trains_to_accuracy_and_reschedules_a_killed_workers_step(digits, ray_cluster):
    from webtensor.__main__ import BATCH_SIZE, LEARNING_RATE, build_model
    x, y, xt, yt = digits
    s = wt.distribute.ParameterServerStrategy(num_workers=2, num_ps=2)
    epochs = 30
    with wt.device("wasm"):
        with s.scope():
            wt.set_seed(0)
            m = build_model("cnn")
            steps = -(-x.shape[0] // BATCH_SIZE)
            m.compile(wt.optimizers.Adam(wt.optimizers.schedules.CosineDecay(LEARNING_RATE, epochs * steps)),
                      nn.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        m.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, callbacks=[KillWorker(s, at=100)])
        _, acc = m.evaluate(xt, yt, verbose=0)
    assert s.coordinator.rescheduled >= 1
    # Every scheduled step was applied once by each parameter server (its optimizer counts them).
    counts = [int(w["optimizer/iterations"]) for w in ray_cluster.get([ps.get_weights.remote() for ps in s._servers])]
    # (a step killed between its two pushes is applied again by the server that had it: at most once more)
    assert all(epochs * steps <= c <= epochs * steps + s.coordinator.rescheduled for c in counts), counts
    assert acc >= 0.97
    s.shutdown()

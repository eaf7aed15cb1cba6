"""Custom training loops under ``MirroredStrategy.run``: mirrored variables, gradients summed across
replicas inside ``apply_gradients``, optimizer state made once for all replicas.

Reference: the same loop with no strategy, one device, on the whole global batch. The replicas sum
per-replica partial sums of the loss gradient (another summation order): measured max |difference|
of the weights after 6 Adam steps 1.5e-8 (weights up to 0.9); the test allows 1e-6.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

import webtensor as wt

pytest.importorskip("wasmtime")
D = wt.distribute
GLOBAL = 32


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(GLOBAL, 6)).astype(np.float32), rng.normal(size=(GLOBAL, 1)).astype(np.float32)


def make_model():
    init = wt.nn.initializers.GlorotUniform
    m = wt.nn.Sequential([wt.nn.Dense(8, activation="tanh", kernel_initializer=init(seed=1)),
                          wt.nn.Dense(1, kernel_initializer=init(seed=2))])
    m(np.zeros((1, 6), np.float32))
    return m, wt.optimizers.Adam(0.01)


def step_fn(model, opt):
    def step(x, y):
        with wt.GradientTape() as tape:
            per_example = wt.reduce_mean((model(x) - y) ** 2, axis=1)
            loss = D.compute_average_loss(per_example, global_batch_size=GLOBAL)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return step


def reference(steps):
    x, y = data()
    with wt.device("wasm"):
        model, opt = make_model()
        step = step_fn(model, opt)
        losses = [float(step(wt.tensor(x), wt.tensor(y)).numpy()) for _ in range(steps)]
    return [v.numpy() for v in model.trainable_variables], losses, opt


@pytest.mark.parametrize("devices", [["wasm:0"], ["wasm:0", "wasm:1"], ["wasm:0", "wasm:1", "wasm:2"]])
def test_custom_loop_equals_one_device(devices):
    steps = 6
    ref_w, ref_losses, ref_opt = reference(steps)
    strategy = D.MirroredStrategy(devices)
    with strategy.scope():
        model, opt = make_model()
    assert all(isinstance(v, D.MirroredVariable) for v in model.trainable_variables)
    step = step_fn(model, opt)
    x, y = data()
    losses = []
    for _ in range(steps):
        for xs, ys in strategy.experimental_distribute_dataset([(x, y)]):
            losses.append(float(strategy.reduce("SUM", strategy.run(step, args=(xs, ys)))))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    for a, b in zip(ref_w, (v.numpy() for v in model.trainable_variables)):
        np.testing.assert_allclose(b, a, atol=1e-6)
    for v in model.trainable_variables + opt.variables:      # every replica holds the same bits
        copies = [c.numpy() for c in v.values]
        assert all(np.array_equal(copies[0], c) for c in copies[1:]), v.name
        assert [c.device.name for c in v.values] == [wt.get_device(d).name for d in devices]
    assert int(opt.iterations.numpy()) == steps == int(ref_opt.iterations.numpy())


def test_cross_replica_assign_writes_every_copy_and_replica_reads_its_own():
    strategy = D.MirroredStrategy(["wasm:0", "wasm:1"])
    with strategy.scope():
        v = wt.Variable(np.zeros(3, np.float32), name="v")
    v.assign(np.arange(3, dtype=np.float32))
    assert [c.numpy().tolist() for c in v.values] == [[0, 1, 2], [0, 1, 2]]
    seen = strategy.run(lambda: (v.device.name, v + 0.0))
    assert [s[0] for s in seen.values] == [wt.get_device("wasm:0").name, wt.get_device("wasm:1").name]
    assert all(s[1].device.name == s[0] for s in seen.values)


def test_errors_are_clear_and_nothing_hangs():
    strategy = D.MirroredStrategy(["wasm:0", "wasm:1"])
    with strategy.scope():
        model, opt = make_model()
    with pytest.raises(RuntimeError, match="inside strategy.run"):
        strategy.run(lambda: wt.Variable(1.0))

    def fails_in_replica_1(x):
        ctx = D.get_replica_context()
        if ctx.replica_id_in_sync_group == 1:
            raise ValueError("replica 1 fails")
        return ctx.all_reduce("SUM", [x])    # replica 0 waits here: it must not hang
    per = D.PerReplica([wt.tensor([1.0]), wt.tensor([2.0])])
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(Exception, strategy.run, fails_in_replica_1,
                                                                  args=(per,))))
    t.start()
    t.join(60)
    assert not t.is_alive() and done
    summed = strategy.run(lambda x: D.get_replica_context().all_reduce("MEAN", [x])[0], args=(per,))
    assert [s.numpy().tolist() for s in summed.values] == [[1.5], [1.5]]   # a new run works again
    with pytest.raises(ValueError, match="reduce_op"):
        strategy.run(lambda: D.get_replica_context().all_reduce("MAX", [wt.tensor(1.0)]))
    assert D.get_replica_context() is None
    with pytest.raises(ValueError, match="1-D"):
        D.compute_average_loss(wt.tensor([[1.0]]))


def test_webgpu_replica_beside_wasm_in_fit_and_custom_loop():
    """A replica on "webgpu:0" beside "wasm:0": the artifact carries both backends' code. WebGPU's
    kernels sum in another order: measured max |difference| 1.6e-6 after 8 Adam steps (fit), 4.8e-7
    after the custom loop's 6 steps; allowed 1e-5."""
    pytest.importorskip("wgpu")
    try:
        wt.get_device("webgpu")
    except Exception as e:  # noqa: BLE001 - conftest turns a missing adapter into a failure in CI
        pytest.skip(f"no webgpu device: {e}")
    (x, y), _ = wt.datasets.digits(seed=0)
    x, y = np.asarray(x)[:256], np.asarray(y)[:256]
    nn = wt.nn

    def fit(devices):
        strategy = D.MirroredStrategy(devices)
        with strategy.scope():
            wt.set_seed(0)
            m = nn.Sequential([nn.Input((8, 8, 1)), nn.Conv2D(4, 3, padding="same", activation="relu"),
                               nn.Flatten(), nn.Dense(10)])
            m.compile(wt.optimizers.Adam(1e-2), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        h = m.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        return [v.numpy() for v in m.trainable_variables], h.history["loss"]
    ref_w, ref_loss = fit(["wasm:0"])
    w, loss = fit(["wasm:0", "webgpu:0"])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(ref_w, w):
        np.testing.assert_allclose(b, a, atol=1e-5)

    ref_w, _, _ = reference(6)
    strategy = D.MirroredStrategy(["wasm:0", "webgpu:0"])
    with strategy.scope():
        model, opt = make_model()
    step = step_fn(model, opt)
    xs, ys = data()
    for _ in range(6):
        for a, b in strategy.experimental_distribute_dataset([(xs, ys)]):
            strategy.run(step, args=(a, b))
    for a, b in zip(ref_w, (v.numpy() for v in model.trainable_variables)):
        np.testing.assert_allclose(b, a, atol=1e-5)

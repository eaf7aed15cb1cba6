"""Optimizers and learning-rate schedules against straightforward numpy re-implementations of
the Keras 3 formulas (keras/src/optimizers/*.py, schedules/learning_rate_schedule.py)."""
import bisect
import math

import numpy as np
import pytest

import webtensor as wt
from webtensor import optimizers
from webtensor.optimizers import schedules

STEPS = 6
# Gradient scales that rise and fall, so AMSGrad's running max and RMSprop's averages matter.
SCALES = [3.0, 0.1, 2.0, 0.05, 1.0, 0.01]


# ---- numpy references (float64) -------------------------------------------------------------

def np_lr(lr, t):
    return float(np_schedule(lr, t)) if isinstance(lr, schedules.LearningRateSchedule) else lr


def np_weight_decay(w, wd, lr):
    return w if wd is None else w - w * wd * lr


def np_sgd(w, s, g, lr, t, momentum=0.0, nesterov=False, weight_decay=None):
    w = np_weight_decay(w, weight_decay, lr)
    if momentum == 0:
        return w - lr * g
    s["m"] = momentum * s.get("m", 0.0) - lr * g
    return w + (momentum * s["m"] - lr * g if nesterov else s["m"])


def np_adam(w, s, g, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None):
    w = np_weight_decay(w, weight_decay, lr)
    step = t + 1
    alpha = lr * math.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - beta_1)
    s["v"] = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - beta_2)
    v = s["v"]
    if amsgrad:
        s["vhat"] = v = np.maximum(s.get("vhat", 0.0), v)
    return w - s["m"] * alpha / (np.sqrt(v) + epsilon)


def np_rmsprop(w, s, g, lr, t, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None):
    w = np_weight_decay(w, weight_decay, lr)
    s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    if centered:
        s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g
        denom = s["v"] - s["a"] ** 2 + epsilon
    else:
        denom = s["v"] + epsilon
    inc = lr * g / np.sqrt(denom)
    if momentum > 0:
        s["mom"] = momentum * s.get("mom", 0.0) + inc
        return w - s["mom"]
    return w - inc


def np_schedule(sched, step):
    c = sched.get_config()
    s = float(step)
    if isinstance(sched, schedules.ExponentialDecay):
        p = s / c["decay_steps"]
        return c["initial_learning_rate"] * c["decay_rate"] ** (math.floor(p) if c["staircase"] else p)
    if isinstance(sched, schedules.InverseTimeDecay):
        p = s / c["decay_steps"]
        return c["initial_learning_rate"] / (1 + c["decay_rate"] * (math.floor(p) if c["staircase"] else p))
    if isinstance(sched, schedules.PiecewiseConstantDecay):
        return c["values"][bisect.bisect_left(c["boundaries"], s)]
    if isinstance(sched, schedules.CosineDecay):
        lr0, ds, alpha = c["initial_learning_rate"], c["decay_steps"], c["alpha"]
        target, warm = c["warmup_target"], c["warmup_steps"]

        def decay(x, start):
            return start * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * x / ds)) + alpha)
        if target is None:
            return decay(min(s, ds), lr0)
        s = min(s, ds + warm)
        return lr0 + (target - lr0) * s / warm if s < warm else decay(s - warm, target)
    raise AssertionError(sched)


CASES = [
    (optimizers.SGD, np_sgd, dict(learning_rate=0.1)),
    (optimizers.SGD, np_sgd, dict(learning_rate=0.1, momentum=0.9)),
    (optimizers.SGD, np_sgd, dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    (optimizers.SGD, np_sgd, dict(learning_rate=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)),
    (optimizers.SGD, np_sgd, dict(learning_rate=0.05, weight_decay=0.2)),
    (optimizers.Adam, np_adam, dict(learning_rate=0.1)),
    (optimizers.Adam, np_adam, dict(learning_rate=0.1, amsgrad=True)),
    (optimizers.Adam, np_adam, dict(learning_rate=0.05, beta_1=0.5, beta_2=0.9, epsilon=1e-3, weight_decay=0.05)),
    (optimizers.AdamW, np_adam, dict(learning_rate=0.1)),
    (optimizers.AdamW, np_adam, dict(learning_rate=0.1, weight_decay=0.1, amsgrad=True)),
    (optimizers.RMSprop, np_rmsprop, dict(learning_rate=0.01)),
    (optimizers.RMSprop, np_rmsprop, dict(learning_rate=0.01, momentum=0.5)),
    (optimizers.RMSprop, np_rmsprop, dict(learning_rate=0.01, centered=True)),
    (optimizers.RMSprop, np_rmsprop, dict(learning_rate=0.01, momentum=0.5, centered=True, rho=0.8, weight_decay=0.1)),
    (optimizers.SGD, np_sgd, dict(learning_rate=schedules.ExponentialDecay(0.1, 2, 0.5), momentum=0.9)),
    (optimizers.Adam, np_adam, dict(learning_rate=schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01]))),
    (optimizers.RMSprop, np_rmsprop, dict(learning_rate=schedules.CosineDecay(0.0, 4, warmup_target=0.02,
                                                                              warmup_steps=2), centered=True)),
]


def _ids(case):
    cls, _, kw = case
    return cls.__name__ + "-" + "-".join(f"{k}={type(v).__name__ if callable(v) else v}" for k, v in kw.items())


def _np_kwargs(cls, kw):
    kw = {k: v for k, v in kw.items() if k != "learning_rate"}
    if cls is optimizers.AdamW:
        kw.setdefault("weight_decay", 0.004)  # AdamW's default
    return kw


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_matches_numpy_reference(case):
    cls, ref, kw = case
    rng = np.random.default_rng(0)
    inits = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    grads = [[rng.normal(size=a.shape) * SCALES[t] for a in inits] for t in range(STEPS)]
    vars_ = [wt.Variable(a.astype(np.float32), name=f"v{i}") for i, a in enumerate(inits)]
    untouched = wt.Variable(np.ones(2, np.float32), name="untouched")
    opt = cls(**kw)
    want = [a.copy() for a in inits]
    states = [{} for _ in inits]
    for t in range(STEPS):
        lr = np_lr(kw["learning_rate"], t)
        assert opt.learning_rate == pytest.approx(lr, rel=1e-6)
        pairs = [(wt.tensor(g.astype(np.float32)), v) for g, v in zip(grads[t], vars_)] + [(None, untouched)]
        opt.apply_gradients(pairs)
        want = [ref(w, s, g, lr, t, **_np_kwargs(cls, kw)) for w, s, g in zip(want, states, grads[t])]
        for v, w in zip(vars_, want):
            np.testing.assert_allclose(v.numpy(), w, rtol=1e-4, atol=1e-5, err_msg=f"step {t}")
    assert int(opt.iterations) == STEPS
    np.testing.assert_array_equal(untouched.numpy(), np.ones(2))
    # state: iterations, the learning rate when it is a float, then the slots of the two updated variables
    n_fixed = 1 + (not callable(kw["learning_rate"]))
    assert len(opt.variables) == n_fixed + 2 * len(opt._slot_names())


def _setup(cls, kw, seed=1):
    rng = np.random.default_rng(seed)
    w = wt.Variable(rng.normal(size=(4, 2)).astype(np.float32), name="kernel")
    b = wt.Variable(np.zeros(2, np.float32), name="bias")
    return [w, b], cls(**kw)


def _loss(params, x, y):
    w, b = params
    return wt.mean(wt.square(x @ w + b - y))


def _grad_apply(params, opt, x, y):
    with wt.GradientTape() as tape:
        loss = _loss(params, x, y)
    opt.apply_gradients(zip(tape.gradient(loss, params), params))
    return loss


TRACE_CASES = [CASES[i] for i in (2, 3, 6, 9, 13, 14, 15, 16)]


@pytest.mark.parametrize("case", TRACE_CASES, ids=[_ids(c) for c in TRACE_CASES])
def test_traced_step_matches_eager(case):
    cls, _, kw = case
    rng = np.random.default_rng(2)
    x = wt.tensor(rng.normal(size=(8, 4)).astype(np.float32))
    y = wt.tensor(rng.normal(size=(8, 2)).astype(np.float32))
    eager_params, eager_opt = _setup(cls, kw)
    traced_params, traced_opt = _setup(cls, kw)
    step = wt.function(lambda x, y: _grad_apply(traced_params, traced_opt, x, y))
    for _ in range(5):
        le = _grad_apply(eager_params, eager_opt, x, y)
        lt = step(x, y)
        np.testing.assert_allclose(lt.numpy(), le.numpy(), rtol=1e-5, atol=1e-6)
    assert step.trace_count == 1
    for a, b in zip(eager_params + eager_opt.variables, traced_params + traced_opt.variables):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    assert int(traced_opt.iterations) == 5
    # State created during tracing is concrete and lives on the variables' device.
    for v in traced_opt.variables:
        assert v._data is not None and v.device is traced_params[0].device


def test_learning_rate_change_reaches_traced_step_without_retrace():
    params, opt = _setup(optimizers.SGD, dict(learning_rate=0.1))
    x, y = wt.ones((3, 4)), wt.zeros((3, 2))
    step = wt.function(lambda x, y: _grad_apply(params, opt, x, y))
    step(x, y)
    before = [p.numpy().copy() for p in params]
    opt.learning_rate = 0.0
    assert opt.learning_rate == 0.0
    step(x, y)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    opt.learning_rate = 0.1
    step(x, y)
    assert not np.array_equal(params[0].numpy(), before[0])
    assert step.trace_count == 1 and int(opt.iterations) == 3


@pytest.mark.parametrize("opt", [optimizers.SGD(0.1), optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                                 optimizers.Adam(0.1), optimizers.AdamW(0.1, weight_decay=0.01),
                                 optimizers.RMSprop(0.02), optimizers.RMSprop(0.01, momentum=0.5, centered=True)],
                         ids=lambda o: type(o).__name__)
def test_minimizes_a_quadratic(opt):
    target = np.array([1.5, -2.0, 0.5], np.float32)
    w = wt.Variable(np.zeros(3, np.float32))
    c = wt.tensor(target)

    @wt.function
    def step(c):
        with wt.GradientTape() as tape:
            loss = wt.sum(wt.square(w - c))
        opt.apply_gradients([(tape.gradient(loss, w), w)])
        return loss

    first = float(step(c))
    for _ in range(300):
        last = float(step(c))
    assert last < 1e-3 * first
    np.testing.assert_allclose(w.numpy(), target, atol=0.05)


def test_build_creates_state_and_exclusions():
    w = wt.Variable(np.ones((2, 2), np.float32), name="dense/kernel")
    b = wt.Variable(np.ones(2, np.float32), name="dense/bias")
    opt = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    assert opt.variables == []
    opt.build([w, b])
    names = [v.name for v in opt.variables]
    assert names == ["adamw/iterations", "adamw/learning_rate", "dense/kernel_momentum", "dense/kernel_velocity",
                     "dense/bias_momentum", "dense/bias_velocity"]
    assert all(v.device is w.device and not v.trainable for v in opt.variables)
    assert opt.iterations.dtype == wt.int32 and int(opt.iterations) == 0
    # Excluded variables get no weight decay; a zero gradient then leaves them unchanged.
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply_gradients([(wt.zeros((2, 2)), w), (wt.zeros(2), b)])
    np.testing.assert_allclose(w.numpy(), np.full((2, 2), 1 - 0.5 * 0.1), rtol=1e-6)
    np.testing.assert_array_equal(b.numpy(), np.ones(2))


def test_errors():
    w = wt.Variable(np.ones(2, np.float32))
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="no gradients"):
        opt.apply_gradients([(None, w)])
    with pytest.raises(TypeError, match="Variable"):
        opt.apply_gradients([(wt.ones(2), wt.ones(2))])
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([(wt.ones(3), w)])
    assert opt.apply_gradients([]) is None and int(opt.iterations) == 0
    assert opt.variables == [opt.iterations]  # nothing created for the refused updates
    assert isinstance(optimizers.get("adam"), optimizers.Adam) and optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adagradx")
    sched = optimizers.Adam(learning_rate=schedules.InverseTimeDecay(0.1, 1, 0.5))
    with pytest.raises(TypeError, match="schedule"):
        sched.learning_rate = 0.1


def test_defaults_are_keras():
    sgd, adam, adamw, rms = optimizers.SGD(), optimizers.Adam(), optimizers.AdamW(), optimizers.RMSprop()
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov, sgd.weight_decay) == (pytest.approx(0.01), 0.0, False, None)
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon, adam.amsgrad) == \
        (pytest.approx(0.001), 0.9, 0.999, 1e-7, False)
    assert (adamw.weight_decay, adamw.beta_1, adamw.beta_2, adamw.epsilon) == (0.004, 0.9, 0.999, 1e-7)
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == \
        (pytest.approx(0.001), 0.9, 0.0, 1e-7, False)


# ---- schedules --------------------------------------------------------------------------------

SCHEDULES = [
    schedules.ExponentialDecay(0.1, 10, 0.5),
    schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
    schedules.PiecewiseConstantDecay([5, 10, 100], [1.0, 0.5, 0.1, 0.01]),
    schedules.PiecewiseConstantDecay([], [0.3]),
    schedules.CosineDecay(0.2, 50),
    schedules.CosineDecay(0.2, 50, alpha=0.1),
    schedules.CosineDecay(0.0, 50, warmup_target=0.1, warmup_steps=10),
    schedules.CosineDecay(0.01, 50, alpha=0.2, warmup_target=0.1, warmup_steps=10),
    schedules.InverseTimeDecay(0.1, 10, 0.5),
    schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=True),
]
STEP_VALUES = [0, 1, 5, 6, 9, 10, 11, 37, 59, 60, 100, 101, 1000]


@pytest.mark.parametrize("sched", SCHEDULES, ids=repr)
def test_schedule_matches_numpy(sched):
    traced = wt.function(lambda s: sched(s))
    for s in STEP_VALUES:
        want = np_schedule(sched, s)
        for step in (s, wt.tensor(s, dtype=wt.int32), wt.tensor(float(s))):
            got = sched(step)
            assert got.shape == () and got.dtype == wt.float32
            np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-8, err_msg=f"step {s}")
        np.testing.assert_allclose(float(traced(wt.tensor(s, dtype=wt.int32))), want, rtol=1e-5, atol=1e-8)
    assert traced.trace_count == 1


def test_schedule_errors():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.CosineDecay(0.1, -1)
    with pytest.raises(ValueError, match="length of boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="increasing"):
        schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scalar"):
        schedules.ExponentialDecay(0.1, 1, 0.5)(wt.ones(2))

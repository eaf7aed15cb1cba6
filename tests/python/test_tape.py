"""``GradientTape`` semantics (those of ``tf.GradientTape``)."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def close(t, expected, rtol=1e-6, atol=1e-6):
    assert isinstance(t, wt.Tensor), t
    np.testing.assert_allclose(t.numpy(), expected, rtol=rtol, atol=atol)


X = np.array([0.5, -1.5, 2.0], np.float32)


def test_watch():
    x, c = wt.tensor(X), wt.tensor(X * 2)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = wt.sum(x * x * c)
    gx, gc = tape.gradient(y, [x, c])
    close(gx, 2 * X * (X * 2))
    assert gc is None                      # constants are not watched


def test_watch_nested_structures_and_rejects_non_tensors():
    a, b = wt.tensor(X), wt.tensor(X[:2])
    with wt.GradientTape() as tape:
        tape.watch({"a": a, "rest": [b]})
        y = wt.sum(a) + wt.sum(b * 3.0)
    ga, gb = tape.gradient(y, [a, b])
    close(ga, np.ones(3))
    close(gb, [3, 3])
    with wt.GradientTape() as tape, pytest.raises(TypeError, match="watch"):
        tape.watch([a, 1.0])


def test_trainable_variables_are_watched_automatically():
    v = wt.Variable(X, name="v")
    frozen = wt.Variable(X, name="frozen", trainable=False)
    with wt.GradientTape() as tape:
        y = wt.sum(v * v + frozen)
    gv, gf = tape.gradient(y, [v, frozen])
    close(gv, 2 * X)
    assert gf is None
    assert tape.watched_variables() == [v]


def test_watch_accessed_variables_false():
    v, w = wt.Variable(X, name="v"), wt.Variable(X, name="w")
    with wt.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(w)
        y = wt.sum(v * w)
    gv, gw = tape.gradient(y, [v, w])
    assert gv is None
    close(gw, X)
    assert tape.watched_variables() == [w]


def test_frozen_variable_can_be_watched_explicitly():
    frozen = wt.Variable(X, trainable=False)
    with wt.GradientTape() as tape:
        tape.watch(frozen)
        y = wt.sum(wt.exp(frozen))
    close(tape.gradient(y, frozen), np.exp(X), rtol=1e-6)


def test_persistent_tape_gives_several_gradients():
    x = wt.tensor(X)
    with wt.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = wt.sum(x * x)
        z = wt.sum(wt.sin(x))
    close(tape.gradient(y, x), 2 * X)
    close(tape.gradient(z, x), np.cos(X))
    close(tape.gradient(y, x), 2 * X)


def test_non_persistent_tape_second_call_raises():
    x = wt.tensor(X)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = wt.sum(x * x)
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent"):
        tape.gradient(y, x)


def test_nested_tapes_give_second_and_third_derivatives():
    x = wt.tensor(X)
    with wt.GradientTape() as t3:
        t3.watch(x)
        with wt.GradientTape() as t2:
            t2.watch(x)
            with wt.GradientTape() as t1:
                t1.watch(x)
                y = x ** 3
            dy = t1.gradient(y, x)          # 3x^2, recorded by t2 and t3
        d2y = t2.gradient(dy, x)            # 6x
    d3y = t3.gradient(d2y, x)               # 6
    close(dy, 3 * X ** 2, rtol=1e-5)
    close(d2y, 6 * X, rtol=1e-5)
    close(d3y, np.full(3, 6.0), rtol=1e-5)


def test_second_derivative_with_a_persistent_outer_tape_and_variables():
    v = wt.Variable(np.float32([1.0, 2.0]))
    with wt.GradientTape(persistent=True) as outer:
        with wt.GradientTape() as inner:
            y = wt.sum(wt.exp(v) * v)
        g = inner.gradient(y, v)            # (1 + v) e^v
    close(g, (1 + v.numpy()) * np.exp(v.numpy()), rtol=1e-6)
    close(outer.gradient(g, v), (2 + v.numpy()) * np.exp(v.numpy()), rtol=1e-6)


def test_unconnected_gradients():
    x, y = wt.tensor(X), wt.tensor(np.ones((2, 2), np.float32))
    with wt.GradientTape(persistent=True) as tape:
        tape.watch([x, y])
        z = wt.sum(x * 2.0)
    gx, gy = tape.gradient(z, [x, y])
    close(gx, [2, 2, 2])
    assert gy is None
    gx, gy = tape.gradient(z, [x, y], unconnected_gradients="zero")
    close(gy, np.zeros((2, 2)))
    assert gy.shape == (2, 2) and gy.dtype == wt.float32
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(z, x, unconnected_gradients="nope")


def test_gradients_with_respect_to_lists_tuples_and_dicts():
    a, b, c = wt.tensor(X), wt.tensor(np.float32(2.0)), wt.Variable(X[::-1].copy())
    with wt.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        y = wt.sum(a * b * c)
    g = tape.gradient(y, {"a": a, "params": (b, [c])})
    assert set(g) == {"a", "params"} and isinstance(g["params"], tuple) and isinstance(g["params"][1], list)
    close(g["a"], 2 * X[::-1])
    close(g["params"][0], np.sum(X * X[::-1]))
    close(g["params"][1][0], 2 * X)
    ga, gb = tape.gradient(y, (a, b))
    close(ga, 2 * X[::-1])


def test_output_gradients_seed_the_backward_pass():
    x = wt.tensor(X)
    seed = np.array([1.0, -2.0, 0.5], np.float32)
    with wt.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * x                                     # not a scalar
    close(tape.gradient(y, x), 2 * X)                 # default seed: ones (the sum)
    close(tape.gradient(y, x, output_gradients=wt.tensor(seed)), 2 * X * seed)


def test_list_of_targets_adds_their_gradients():
    x = wt.tensor(X)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y1, y2 = wt.sum(x * x), wt.sum(3.0 * x)
    close(tape.gradient([y1, y2], x), 2 * X + 3)


def test_gradient_accumulates_over_every_use():
    x = wt.tensor(X)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = x * x + x + wt.sum(x) * x
    # d/dx_k sum_j (x_j^2 + x_j + S x_j) with S = sum(x): 2 x_k + 1 + S + S
    close(tape.gradient(y, x), 2 * X + 1 + 2 * np.sum(X), rtol=1e-5)


def test_ops_after_the_block_are_not_recorded():
    x = wt.tensor(X)
    with wt.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = x * 2.0
    z = wt.sum(y * y)   # outside the tape: unrecorded, so z is unconnected to x
    assert tape.gradient(z, x) is None
    close(tape.gradient(y, x), [2, 2, 2])


def test_integer_target_raises_type_error():
    x = wt.tensor(X)
    with wt.GradientTape() as tape:
        tape.watch(x)
        y = wt.argmax(x)
    with pytest.raises(TypeError, match="floating"):
        tape.gradient(y, x)


def test_integer_source_gets_no_gradient():
    i = wt.tensor([1, 2, 3])
    x = wt.tensor(X)
    with wt.GradientTape() as tape:
        tape.watch([i, x])
        y = wt.sum(wt.cast(i, wt.float32) * x)
    gi, gx = tape.gradient(y, [i, x])
    assert gi is None
    close(gx, [1, 2, 3])


def test_read_value_is_differentiable():
    v = wt.Variable(X)
    with wt.GradientTape() as tape:
        y = wt.sum(v.read_value() * 2.0)
    close(tape.gradient(y, v), [2, 2, 2])

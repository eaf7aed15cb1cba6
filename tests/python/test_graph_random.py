"""Random ops inside ``webtensor.function`` draw in the graph (``webtensor._graph_random``): two calls
of a traced function give different numbers, ``set_seed`` replays the sequence, every device draws
the same stream, and the samples have the distribution asked for (moments within 5 standard errors
of the sample: n = 200_000)."""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt

N = 200_000


@pytest.fixture(params=["reference", "wasm"])
def device(request):
    if request.param == "wasm":
        pytest.importorskip("wasmtime")
    with wt.device(request.param):
        yield request.param


def test_two_calls_of_a_traced_function_draw_different_numbers_and_set_seed_replays_them(device):
    f = wt.function(lambda x: (x + wt.uniform((5,)), x + wt.normal((5,), seed=7)))
    x = wt.zeros((5,))
    wt.set_seed(11)
    first, second = [[t.numpy() for t in f(x)] for _ in range(2)]
    for a, b in zip(first, second):
        assert not np.any(a == b)
    wt.set_seed(11)
    again = [t.numpy() for t in f(x)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert f.trace_count == 1


def test_every_device_draws_the_same_stream():
    outs = {}
    for dev in ("reference", "wasm"):
        with wt.device(dev):
            wt.set_seed(3)
            f = wt.function(lambda x: (x + wt.uniform((64,), -2.0, 3.0), x + wt.normal((64,))))
            outs[dev] = [t.numpy() for t in f(wt.zeros((64,)))]
    # the hash is integer arithmetic; scaling to [-2, 3) rounds differently (fused multiply-add): 2.4e-7
    np.testing.assert_allclose(outs["reference"][0], outs["wasm"][0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(outs["reference"][1], outs["wasm"][1], rtol=1e-5, atol=1e-6)   # log, cos


def test_distributions(device):
    f = wt.function(lambda x: (x + wt.uniform((N,), -1.0, 3.0, seed=1), x + wt.normal((N,), 2.0, 0.5, seed=2),
                               x + wt.truncated_normal((N,), seed=3), wt.uniform((N,), 0, 10, dtype=wt.int32)))
    u, n, t, i = [a.numpy() for a in f(wt.zeros((N,)))]
    se = 1 / np.sqrt(N)
    assert u.min() >= -1.0 and u.max() < 3.0
    assert abs(u.mean() - 1.0) < 5 * se * 4 / np.sqrt(12) and abs(u.var() - 16 / 12) < 5 * se * 16 / np.sqrt(180)
    assert abs(n.mean() - 2.0) < 5 * se * 0.5 and abs(n.std() - 0.5) < 5 * se * 0.5
    assert np.abs(t).max() <= 2.0 and abs(t.std() - 0.8796) < 0.01
    assert i.dtype == np.int32 and set(np.unique(i)) == set(range(10))
    assert np.abs(np.bincount(i) / N - 0.1).max() < 5 * np.sqrt(0.09 / N)


def test_random_inside_a_loop_body_draws_new_numbers_every_iteration(device):
    g = wt.random.Generator.from_seed(9)

    @wt.function
    def f(x):
        return wt.scan(lambda a, e: (wt.uniform((3,)), g.normal((3,))), x,
                       initializer=(wt.zeros((3,)), wt.zeros((3,))))
    for a in f(wt.zeros((6, 1))) + f(wt.zeros((6, 1))):
        rows = a.numpy()
        assert len({tuple(r) for r in rows}) == 6     # no two iterations drew the same numbers
    u = f(wt.zeros((6, 1)))[0].numpy()
    assert u.min() >= 0.0 and u.max() < 1.0


def test_generator_draws_the_same_stream_eagerly_traced_and_on_every_device():
    outs = []
    for dev in ("reference", "wasm"):
        with wt.device(dev):
            for traced in (False, True):
                g = wt.random.Generator.from_seed(1234)
                draw = (lambda: (g.uniform((3, 4)), g.normal((5,), 1.0, 2.0), g.uniform((6,), 0, 7, dtype=wt.int32)))
                if traced:
                    draw = wt.function(draw)
                outs.append([[t.numpy() for t in draw()] for _ in range(2)])
                if traced:
                    assert draw.trace_count == 1
    first = outs[0]
    assert not np.any(first[0][0] == first[1][0])          # the state advanced between calls
    for other in outs[1:]:
        for call_a, call_b in zip(first, other):
            for a, b in zip(call_a, call_b):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    g = wt.random.Generator.from_seed(1234)
    g.uniform((2,))
    g.reset_from_seed(1234)
    np.testing.assert_array_equal(g.uniform((3, 4)).numpy(), first[0][0])


def test_generator_distributions_and_errors(device):
    g = wt.random.Generator.from_seed(5)
    n, t = g.normal((N,), 2.0, 0.5).numpy(), g.truncated_normal((N,)).numpy()
    assert abs(n.mean() - 2.0) < 5 * 0.5 / np.sqrt(N) and abs(n.std() - 0.5) < 5 * 0.5 / np.sqrt(N)
    assert np.abs(t).max() <= 2.0 and abs(t.std() - 0.8796) < 0.01
    with pytest.raises(ValueError, match="needs maxval"):
        g.uniform((2,), dtype=wt.int32)
    with pytest.raises(TypeError, match="seed must be an int"):
        wt.random.Generator.from_seed(1.5)
    with pytest.raises(ValueError, match="default algorithm"):
        wt.random.Generator.from_seed(1, alg="philox")


def test_webgpu_draws_the_same_stream():
    pytest.importorskip("wgpu")
    try:
        gpu = wt.get_device("webgpu")
    except RuntimeError as e:
        pytest.skip(f"no webgpu device: {e}")
    outs = []
    for dev in ("reference", gpu):
        with wt.device(dev):
            wt.set_seed(3)
            f = wt.function(lambda x: (x + wt.uniform((64,), -2.0, 3.0), x + wt.normal((64,))))
            outs.append([t.numpy() for t in f(wt.zeros((64,)))] + [wt.random.Generator.from_seed(8).uniform((99,)).numpy()])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)    # measured: 2.1e-7 (normal's log and cos)


def test_categorical_and_shuffle(device):
    """Frequencies of categorical samples against softmax(logits) (5 standard errors of N samples),
    eagerly, traced (new samples every call) and from a Generator; shuffle is a permutation."""
    logits = wt.tensor(np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], np.float32)))
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    n = 20_000
    f = wt.function(lambda l: wt.random.categorical(l, n))
    g = wt.random.Generator.from_seed(2)
    draws = [wt.random.categorical(logits, n, seed=4), f(logits), f(logits), g.categorical(logits, n)]
    assert not np.array_equal(draws[1].numpy(), draws[2].numpy())
    for d in draws:
        d = d.numpy()
        assert d.shape == (2, n) and d.dtype == np.int32
        for row in range(2):
            freq = np.bincount(d[row], minlength=3) / n
            assert np.all(np.abs(freq - p[row]) < 5 * np.sqrt(p[row] * (1 - p[row]) / n)), (freq, p[row])
    x = wt.tensor(np.arange(10, dtype=np.float32).reshape(5, 2))
    sh = wt.function(lambda x: wt.random.shuffle(x))
    a, b = sh(x).numpy(), sh(x).numpy()
    for s in (a, b, wt.random.shuffle(x, seed=1).numpy()):
        assert sorted(map(tuple, s)) == sorted(map(tuple, x.numpy()))
    with pytest.raises(ValueError, match="num_classes"):
        wt.random.categorical(wt.tensor([1.0, 2.0]), 3)

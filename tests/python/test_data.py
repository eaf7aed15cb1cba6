"""webtensor.data.Dataset: tf.data semantics, checked against numpy slicing."""
import collections

import numpy as np
import pytest

import webtensor as wt
from webtensor.data import INFINITE_CARDINALITY, Dataset


def values(ds):
    """A dataset of scalar (or batched int) tensors as a list of Python values."""
    return [el.numpy().tolist() for el in ds]


def test_order_and_element_types():
    ds = Dataset.from_tensor_slices(np.arange(10, dtype=np.int32))
    els = list(ds)
    assert all(isinstance(e, wt.Tensor) and e.shape == () and e.dtype == wt.int32 for e in els)
    assert [int(e) for e in els] == list(range(10))
    assert values(ds) == list(range(10))  # iterating again gives the same elements


def test_inputs_tensor_numpy_list_variable():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    for src in (x, wt.tensor(x), x.tolist(), wt.Variable(x)):
        els = list(Dataset.from_tensor_slices(src))
        assert len(els) == 4 and all(e.shape == (3,) and e.dtype == wt.float32 for e in els)
        np.testing.assert_array_equal(np.stack([e.numpy() for e in els]), x)


def test_tuple_and_dict_structures():
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    y = np.arange(5, dtype=np.int32)
    z = np.arange(10, dtype=np.float32).reshape(5, 2)
    for i, (a, b) in enumerate(Dataset.from_tensor_slices((x, y))):
        np.testing.assert_array_equal(a.numpy(), x[i])
        assert int(b) == y[i]
    for i, el in enumerate(Dataset.from_tensor_slices({"img": x, "meta": (y, z)})):
        assert isinstance(el, dict) and list(el) == ["img", "meta"] and isinstance(el["meta"], tuple)
        np.testing.assert_array_equal(el["img"].numpy(), x[i])
        np.testing.assert_array_equal(el["meta"][1].numpy(), z[i])
    Point = collections.namedtuple("Point", "x y")
    el = next(iter(Dataset.from_tensor_slices(Point(x, y))))
    assert isinstance(el, Point) and el.x.shape == (3,)


def test_shuffle_seeded_is_deterministic_and_reshuffles_each_epoch():
    def epochs(ds, n=3):
        return [values(ds) for _ in range(n)]
    a = epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=7))
    b = epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=7))
    assert a == b
    assert all(sorted(e) == list(range(20)) for e in a)
    assert a[0] != a[1] != a[2] and a[0] != list(range(20))
    c = epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=8))
    assert c != a
    fixed = epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=7, reshuffle_each_iteration=False))
    assert fixed[0] == fixed[1] == fixed[2] and sorted(fixed[0]) == list(range(20))
    wt.random.set_seed(3)
    d = epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20))
    wt.random.set_seed(3)
    assert epochs(Dataset.from_tensor_slices(np.arange(20)).shuffle(20)) == d


def test_shuffle_buffer_semantics():
    assert values(Dataset.from_tensor_slices(np.arange(10)).shuffle(1, seed=0)) == list(range(10))
    for seed in range(20):
        out = values(Dataset.from_tensor_slices(np.arange(30)).shuffle(3, seed=seed))
        assert sorted(out) == list(range(30))
        # With a buffer of 3, output j is one of the first j + 3 inputs.
        assert all(v < j + 3 for j, v in enumerate(out)), out
    # A buffer as large as the data gives a uniform permutation: the first element is uniform.
    counts = np.zeros(5)
    for seed in range(1000):
        counts[int(next(iter(Dataset.from_tensor_slices(np.arange(5)).shuffle(5, seed=seed))))] += 1
    assert counts.min() > 150 and counts.max() < 250, counts


@pytest.mark.parametrize("drop", [False, True])
def test_batch_shapes_and_values(drop):
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int32)
    ds = Dataset.from_tensor_slices((x, y)).batch(4, drop_remainder=drop)
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3)] + ([] if drop else [(2, 3)])
    assert [b[1].shape for b in batches] == [(4,), (4,)] + ([] if drop else [(2,)])
    assert len(ds) == ds.cardinality() == (2 if drop else 3)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x[:8] if drop else x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y[:8] if drop else y)


def test_shuffled_batches_follow_the_shuffled_order():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    order = values(Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=5))
    batches = list(Dataset.from_tensor_slices((x, np.arange(20))).shuffle(20, seed=5).batch(6))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), order)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x[order])


def test_batching_rows_uses_one_gather_per_component(monkeypatch):
    from webtensor.core import dispatch as op_module
    calls = collections.Counter()
    dispatch = op_module._dispatch

    def counting(op, inputs, attrs):
        calls[op.name] += 1
        return dispatch(op, inputs, attrs)
    x, y = wt.tensor(np.ones((50, 4), np.float32)), wt.tensor(np.zeros(50, np.int32))
    ds = Dataset.from_tensor_slices((x, y)).shuffle(50, seed=0).repeat(2).batch(10).prefetch(2)
    monkeypatch.setattr(op_module, "_dispatch", counting)
    batches = list(ds)
    monkeypatch.undo()
    assert len(batches) == 10
    assert calls["gather"] == 2 * len(batches) and calls["concat"] == 0, calls
    calls.clear()
    monkeypatch.setattr(op_module, "_dispatch", counting)
    list(Dataset.from_tensor_slices((x, y)).batch(10))  # in order: contiguous rows are sliced
    monkeypatch.undo()
    assert calls["gather"] == 0 and calls["slice"] == 2 * 5, calls


def test_repeat():
    ds = Dataset.from_tensor_slices(np.arange(5))
    assert values(ds.repeat(3)) == list(range(5)) * 3 and ds.repeat(3).cardinality() == 15
    assert values(ds.repeat(0)) == [] and len(ds.repeat(0)) == 0
    assert values(ds.repeat().take(12)) == (list(range(5)) * 3)[:12]
    assert ds.repeat().cardinality() == ds.repeat(-1).cardinality() == INFINITE_CARDINALITY
    assert ds.repeat().take(12).cardinality() == 12
    # batch after repeat crosses epoch boundaries, as in tf.data
    assert values(ds.repeat(2).batch(4)) == [[0, 1, 2, 3], [4, 0, 1, 2], [3, 4]]
    # shuffle before repeat: a new permutation each epoch
    eps = values(ds.shuffle(5, seed=1).repeat(4))
    perms = [eps[i:i + 5] for i in range(0, 20, 5)]
    assert all(sorted(p) == list(range(5)) for p in perms) and len({tuple(p) for p in perms}) > 1
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())
    empty = Dataset.from_tensor_slices(np.zeros((0, 2)))
    assert values(empty.repeat()) == [] and empty.repeat().cardinality() == 0


def test_take():
    ds = Dataset.from_tensor_slices(np.arange(7))
    assert values(ds.take(3)) == [0, 1, 2] and len(ds.take(3)) == 3
    assert values(ds.take(-1)) == list(range(7)) and len(ds.take(100)) == 7
    assert values(ds.take(0)) == []


def test_map_structures():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6, dtype=np.int32)
    # a tuple element is unpacked into positional arguments
    ds = Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a * 2.0, b + 1))
    for i, (a, b) in enumerate(ds):
        np.testing.assert_array_equal(a.numpy(), x[i] * 2)
        assert int(b) == y[i] + 1
    # a dict element is passed whole; lists returned become tuples; non-tensors become tensors
    ds = Dataset.from_tensor_slices({"x": x, "y": y}).map(lambda d: [d["x"].sum(), 3.5])
    els = list(ds)
    assert all(isinstance(e, tuple) and isinstance(e[1], wt.Tensor) for e in els)
    assert [float(e[0]) for e in els] == x.sum(1).tolist() and float(els[0][1]) == 3.5
    # a single tensor is one argument; map before batch stacks, map after batch runs per batch
    before = list(Dataset.from_tensor_slices(x).map(lambda t: t * t).batch(4))
    after = list(Dataset.from_tensor_slices(x).batch(4).map(lambda t: t * t))
    assert [b.shape for b in before] == [b.shape for b in after] == [(4, 2), (2, 2)]
    for b1, b2 in zip(before, after):
        np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in before]), x * x)
    assert Dataset.from_tensor_slices(x).map(lambda t: t).cardinality() == 6


def test_batch_of_mapped_dicts_and_batch_of_batches():
    x = np.arange(8, dtype=np.float32)
    ds = Dataset.from_tensor_slices(x).map(lambda t: {"a": t, "b": (t + 1.0, t * 0.0)}).batch(3)
    el = next(iter(ds))
    assert el["a"].shape == (3,) and el["b"][0].shape == (3,)
    np.testing.assert_array_equal(el["b"][0].numpy(), x[:3] + 1)
    bb = list(Dataset.from_tensor_slices(x).batch(2).batch(2))
    assert [b.shape for b in bb] == [(2, 2), (2, 2)]
    np.testing.assert_array_equal(bb[1].numpy(), x[4:].reshape(2, 2))
    with pytest.raises(ValueError, match="stack"):
        list(Dataset.from_tensor_slices(x).map(lambda t: wt.ones((int(t) + 1,))).batch(2))


def test_cardinality_and_prefetch():
    ds = Dataset.from_tensor_slices(np.arange(10))
    assert ds.cardinality() == len(ds) == 10
    assert ds.shuffle(4, seed=0).cardinality() == 10
    assert ds.batch(3).cardinality() == 4 and ds.batch(3, drop_remainder=True).cardinality() == 3
    assert ds.repeat().batch(3).cardinality() == INFINITE_CARDINALITY
    assert values(ds.prefetch(wt.data.AUTOTUNE)) == list(range(10)) and len(ds.prefetch(2)) == 10
    assert [a.tolist() for a in ds.batch(5).as_numpy_iterator()] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_errors():
    with pytest.raises(ValueError, match="same size in their first dimension"):
        Dataset.from_tensor_slices((np.zeros((3, 2)), np.zeros(4)))
    with pytest.raises(ValueError, match="rank >= 1"):
        Dataset.from_tensor_slices(np.float32(1.0))
    with pytest.raises(ValueError, match="at least one"):
        Dataset.from_tensor_slices(())
    ds = Dataset.from_tensor_slices(np.arange(3))
    with pytest.raises(ValueError, match="batch_size"):
        ds.batch(0)
    with pytest.raises(ValueError, match="buffer_size"):
        ds.shuffle(0)
    with pytest.raises(ValueError, match="count"):
        ds.repeat(-2)
    with pytest.raises(ValueError, match="count"):
        ds.take(-3)
    with pytest.raises(TypeError, match="callable"):
        ds.map(3)

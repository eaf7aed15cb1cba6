"""webtensor.hostdata (host data without numpy) against numpy, and the awaited readback API."""
import array
import asyncio

import numpy as np
import pytest

import webtensor as wt
from webtensor import hostdata as H
from webtensor.core.dtypes import bool_, float16, float32, int32
from webtensor.core.numpy_util import float_to_int32

CASES = [1.5, 3, True, [1, 2, 3], [[1.0, 2], [3, 4]], [[True, False]], [], [[], []], [1, 2.5, True],
         [[[1], [2]], [[3], [4]]], (1, 2), [2**31 - 1, -2**31], [-1.7, 2.9], [[0.1, 1e-30], [3e38, -0.0]]]


@pytest.mark.parametrize("data", CASES, ids=repr)
def test_from_python_matches_numpy(data):
    buf, shape, dt = H.from_python(data)
    a = np.asarray(data)
    assert dt.name == {"b": "bool", "i": "int32", "f": "float32"}[a.dtype.kind]
    assert shape == a.shape
    want = a.astype(H.NUMPY[dt.name])
    assert bytes(H.byte_view(buf)) == want.tobytes()
    assert H.to_list(buf, shape, dt) == want.tolist()


@pytest.mark.parametrize("data,dtype", [([1.7, -2.9, 1e9], int32), ([70000.0, 1.0, 1e-8, -65519.0], float16),
                                        ([0.0, 2.0, -0.5], bool_), ([2**31 - 1, -2**31, 2**33 + 3.5], int32),
                                        ([1e40, -1e40], float32), ([True, 3], float32)], ids=repr)
def test_conversions_match_numpy_astype(data, dtype):
    buf, shape, dt = H.from_python(data, dtype)
    with np.errstate(over="ignore"):
        want = np.asarray(data, dtype=np.float64 if isinstance(data[0], float) else None)
        want = float_to_int32(want) if dtype is int32 and want.dtype.kind == "f" else want.astype(H.NUMPY[dtype.name])
    assert dt is dtype and bytes(H.byte_view(buf)) == want.tobytes()
    assert H.to_list(buf, shape, dt) == want.tolist()


@pytest.mark.parametrize("a", [np.arange(6, dtype=np.float32).reshape(2, 3), np.arange(6, dtype=np.int64),
                               np.array([True, False]), np.array([1.5, -2], np.float16),
                               np.array(3.0, np.float32), np.arange(4, dtype=np.uint8)], ids=lambda a: str(a.dtype))
def test_buffers_keep_format_and_shape(a):
    buf, shape, dt = H.from_python(memoryview(a))
    assert shape == a.shape
    assert H.to_list(buf, shape, dt) == a.astype(H.NUMPY[dt.name]).tolist()
    assert H.from_python(array.array("d", [1, 2.5]))[2] is float32


@pytest.mark.parametrize("shape", [(2, 0), (0, 3), (2, 0, 3), (2, 3, 0), (0,)])
def test_empty_shapes_nest_like_numpy(shape):
    for dt in (float32, float16, int32, bool_):
        assert H.to_list(b"", shape, dt) == np.zeros(shape).tolist()


def test_ragged_and_bad_data_raise():
    for bad in ([1, [2, 3]], [[1, 2], [3]], [[1, 2], 3], [[[1]], [2]]):
        with pytest.raises(ValueError, match="ragged"):
            H.from_python(bad)
    with pytest.raises(TypeError, match="str"):
        H.from_python(["a", "b"])
    with pytest.raises(OverflowError, match="2147483648 is out of range for int32"):
        H.from_python([2**31], int32)
    with pytest.raises(TypeError, match="format"):
        H.from_python(memoryview(b"ab").cast("c"))


def test_storage_round_trips():
    for dt, st, vals in ((bool_, "i32", [True, False, True]), (float16, "f32", [1.5, -2, 65504, 1e-7])):
        a = np.array(vals, H.NUMPY[dt.name])
        s = H.to_storage(a, dt, st)
        assert bytes(s) == a.astype("<i4" if st == "i32" else "<f4").tobytes()
        assert bytes(H.from_storage(s, dt, st)) == a.tobytes()
    assert H.from_storage(np.array([1e6], np.float32), float16, "f32") == np.float16(np.inf).tobytes()
    # bool bytes other than 0/1 (a numpy view of uint8 data) are stored as 1, as the artifact loader does
    raw = np.array([0, 2, 1, 255], np.uint8)
    assert bytes(H.to_storage(raw.view(bool), bool_, "i32")) == np.array([0, 1, 1, 1], "<i4").tobytes()


@pytest.mark.parametrize("device", ["reference", "wasm", "webgpu"])
def test_tensor_from_buffers_matches_numpy_path(device):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    t1 = wt.tensor(array.array("f", a.ravel()), device=device).reshape((3, 4))
    t2 = wt.tensor(memoryview(a), device=device)
    np.testing.assert_array_equal(t1.numpy(), a)
    np.testing.assert_array_equal(t2.numpy(), a)
    assert t2.tolist() == a.tolist() and wt.tensor(a, device=device).tolist() == a.tolist()
    h = wt.tensor(memoryview(np.array([1.5, -3.0], np.float16)), device=device)
    assert h.dtype == float16 and h.tolist() == [1.5, -3.0]


@pytest.mark.parametrize("device", ["reference", "wasm", "webgpu"])
def test_async_readback_matches_sync(device):
    x = wt.tensor([[1.0, -2.5], [3.0, 0.5]], device=device)
    y = wt.exp(x) > 1.0

    async def read():
        return await x.numpy_async(), await y.tolist_async(), await x.sum().item_async()
    a, b, c = asyncio.run(read())
    np.testing.assert_array_equal(a, x.numpy())
    assert b == y.tolist() == [[True, False], [True, True]] and c == 2.0


def test_fit_async_and_evaluate_async_match_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)

    def train(use_async):
        wt.set_seed(3)
        with wt.device("wasm"):
            m = wt.nn.Sequential([wt.nn.Input((5,)), wt.nn.Dense(8, activation="relu"), wt.nn.Dense(2)])
            m.compile(optimizer="adam", loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
            kw = dict(batch_size=32, epochs=2, verbose=0, seed=1, validation_split=0.25)
            if use_async:
                h = asyncio.run(m.fit_async(x, y, **kw))
                ev = asyncio.run(m.evaluate_async(x, y, verbose=0, return_dict=True))
            else:
                h, ev = m.fit(x, y, **kw), m.evaluate(x, y, verbose=0, return_dict=True)
        return h.history, ev
    assert train(True) == train(False)
    hist, ev = train(True)
    assert set(hist) == {"loss", "accuracy", "val_loss", "val_accuracy"} and len(hist["loss"]) == 2
    assert set(ev) == {"loss", "accuracy"}


@pytest.mark.parametrize("device", ["reference", "wasm", "webgpu"])
def test_tensors_own_their_data(device):
    """Like tf.constant / torch.tensor: the tensor copies the caller's array, and .numpy() is the
    caller's copy: changing either afterwards leaves the tensor as it was."""
    a = np.arange(6, dtype=np.float32)
    t = wt.tensor(a, device=device)
    a[0] = 100.0
    got = t.numpy()
    np.testing.assert_array_equal(got, np.arange(6, dtype=np.float32))
    got[1] = -5.0
    np.testing.assert_array_equal(t.numpy(), np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal((t * 2.0).numpy(), 2 * np.arange(6, dtype=np.float32))

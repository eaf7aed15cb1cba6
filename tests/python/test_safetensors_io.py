"""safetensors_io: round trips, interop with the reference library, damage."""

import json
import struct

import pytest

from webtensor import safetensors_io as st


def _sample():
    import array

    f32 = array.array("f", [0.5, -1.25, 3.0, 4.5, 1e-3, -7.0])
    i32 = array.array("i", [1, -2, 3, 2**31 - 1])
    return {
        "weight": ("float32", (2, 3), f32.tobytes()),
        "step": ("int32", (4,), i32.tobytes()),
        "mask": ("bool", (3,), bytes([1, 0, 1])),
        "half": ("float16", (2,), struct.pack("<2e", 1.5, -2.0)),
        "scalar": ("float32", (), struct.pack("<f", 2.5)),
        "empty": ("float32", (0, 4), b""),
    }


def test_round_trip():
    tensors = _sample()
    meta = {"format": "webtensor", "note": "ünïcode ok"}
    data = st.save(tensors, meta)
    (n,) = struct.unpack_from("<Q", data, 0)
    assert n % 8 == 0
    loaded, loaded_meta = st.load(data)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, (dtype, shape, raw) in tensors.items():
        l_dtype, l_shape, view = loaded[name]
        assert isinstance(view, memoryview)
        assert (l_dtype, l_shape, bytes(view)) == (dtype, shape, raw)


def test_round_trip_no_metadata_and_file(tmp_path):
    tensors = _sample()
    path = tmp_path / "m.safetensors"
    st.save_file(path, tensors)
    loaded, meta = st.load_file(path)
    assert meta == {}
    assert {k: (d, s, bytes(v)) for k, (d, s, v) in loaded.items()} == tensors


def test_empty_dict():
    loaded, meta = st.load(st.save({}))
    assert loaded == {} and meta == {}


def test_writer_order_alignment_then_name():
    data = st.save(_sample())
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n])
    # 4-byte dtypes first (by name), then 2-byte, then 1-byte.
    assert list(header) == ["empty", "scalar", "weight", "step", "half", "mask"]
    loaded, _ = st.load(data)
    assert list(loaded) == list(header)


def test_readable_by_safetensors_library(tmp_path):
    np = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = _sample()
    data = st.save(tensors, {"a": "b"})
    got = safetensors_numpy.load(data)
    expected = {
        "weight": np.array([[0.5, -1.25, 3.0], [4.5, 1e-3, -7.0]], np.float32),
        "step": np.array([1, -2, 3, 2**31 - 1], np.int32),
        "mask": np.array([True, False, True]),
        "half": np.array([1.5, -2.0], np.float16),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    assert set(got) == set(expected)
    for name, arr in expected.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr)
    # and through the file API
    path = tmp_path / "ours.safetensors"
    st.save_file(path, tensors)
    got = safetensors_numpy.load_file(str(path))
    np.testing.assert_array_equal(got["weight"], expected["weight"])


def test_reads_safetensors_library_output(tmp_path):
    np = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    arrays = {
        "dense/kernel": rng.standard_normal((5, 7)).astype(np.float32),
        "dense/bias": rng.standard_normal((7,)).astype(np.float32),
        "labels": rng.integers(-100, 100, (3, 2)).astype(np.int32),
        "flags": rng.random(9) > 0.5,
        "h": rng.standard_normal((2, 2, 2)).astype(np.float16),
        "d": rng.standard_normal((3,)),
        "u8": rng.integers(0, 255, (4,)).astype(np.uint8),
        "i64": rng.integers(-5, 5, (2,)).astype(np.int64),
    }
    data = safetensors_numpy.save(arrays, metadata={"framework": "numpy"})
    loaded, meta = st.load(data)
    assert meta == {"framework": "numpy"}
    names = {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32",
             np.dtype(np.bool_): "bool", np.dtype(np.float16): "float16",
             np.dtype(np.float64): "float64", np.dtype(np.uint8): "uint8",
             np.dtype(np.int64): "int64"}
    for name, arr in arrays.items():
        dtype, shape, view = loaded[name]
        assert dtype == names[arr.dtype]
        assert shape == arr.shape
        back = np.frombuffer(view, dtype=arr.dtype).reshape(shape)
        np.testing.assert_array_equal(back, arr)
    # file API on the library's file
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(arrays, str(path))
    loaded, meta = st.load_file(path)
    assert meta == {}
    assert loaded["labels"][1] == (3, 2)


def test_byte_identical_to_reference_writer():
    np = pytest.importorskip("numpy")
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = _sample()
    arrays = {}
    np_dtypes = {"float32": np.float32, "int32": np.int32, "bool": np.bool_,
                 "float16": np.float16}
    for name, (dtype, shape, raw) in tensors.items():
        arrays[name] = np.frombuffer(raw, dtype=np_dtypes[dtype]).reshape(shape)
    assert st.save(tensors) == safetensors_numpy.save(arrays)


def _make(header: dict, buffer: bytes, pad=True) -> bytes:
    h = json.dumps(header).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + buffer


GOOD_HEADER = {
    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    "b": {"dtype": "I32", "shape": [1], "data_offsets": [8, 12]},
}


def test_handmade_file_loads():
    loaded, _ = st.load(_make(GOOD_HEADER, bytes(12)))
    assert loaded["a"][:2] == ("float32", (2,))
    # unpadded header is accepted too
    st.load(_make(GOOD_HEADER, bytes(12), pad=False))


@pytest.mark.parametrize("cut", [0, 4, 7, 8, 20, -1, -4])
def test_truncated(cut):
    data = st.save(_sample())
    with pytest.raises(ValueError):
        st.load(data[:cut])


def test_header_length_past_end():
    data = bytearray(st.save(_sample()))
    struct.pack_into("<Q", data, 0, len(data))
    with pytest.raises(ValueError, match="past the end"):
        st.load(bytes(data))
    struct.pack_into("<Q", data, 0, 2**63)
    with pytest.raises(ValueError, match="header length"):
        st.load(bytes(data))


@pytest.mark.parametrize(
    "header_bytes, match",
    [
        (b"{not json}      ", "not valid JSON"),
        (b"\xff\xfe{}      ", "UTF-8"),
        (b"[1, 2, 3]       ", "not a JSON object"),
        (b'{"a": 1}        ', "'a'.*not a JSON object"),
        (b'{"a":{},"a":{}} ', "duplicate"),
    ],
)
def test_bad_header(header_bytes, match):
    data = struct.pack("<Q", len(header_bytes)) + header_bytes
    with pytest.raises(ValueError, match=match):
        st.load(data)


def test_bad_metadata():
    with pytest.raises(ValueError, match="__metadata__"):
        st.load(_make({"__metadata__": {"k": 1}}, b""))


@pytest.mark.parametrize(
    "b_info, buffer_len, match",
    [
        # overlapping the previous tensor
        ({"dtype": "I32", "shape": [1], "data_offsets": [4, 8]}, 12, "'b'.*overlap"),
        # past the end of the buffer
        ({"dtype": "I32", "shape": [1], "data_offsets": [8, 12]}, 10, "'b'.*past the end"),
        # gap in the buffer
        ({"dtype": "I32", "shape": [1], "data_offsets": [9, 13]}, 13, "'b'.*gap"),
        # size does not match shape x itemsize
        ({"dtype": "I32", "shape": [2], "data_offsets": [8, 12]}, 12, "'b'.*needs 8"),
        # reversed offsets
        ({"dtype": "I32", "shape": [1], "data_offsets": [12, 8]}, 12, "'b'.*before"),
        # malformed offsets
        ({"dtype": "I32", "shape": [1], "data_offsets": [8]}, 12, "'b'.*data_offsets"),
        ({"dtype": "I32", "shape": [1], "data_offsets": [8, -4]}, 12, "'b'.*data_offsets"),
        # unknown dtype
        ({"dtype": "F8_E4M3", "shape": [4], "data_offsets": [8, 12]}, 12, "'b'.*dtype"),
        ({"dtype": "float32", "shape": [1], "data_offsets": [8, 12]}, 12, "'b'.*dtype"),
        # bad shape
        ({"dtype": "I32", "shape": [-1], "data_offsets": [8, 12]}, 12, "'b'.*shape"),
        ({"dtype": "I32", "shape": "1", "data_offsets": [8, 12]}, 12, "'b'.*shape"),
        # missing field
        ({"dtype": "I32", "shape": [1]}, 12, "'b'.*data_offsets"),
    ],
)
def test_bad_offsets_and_infos(b_info, buffer_len, match):
    header = {"a": GOOD_HEADER["a"], "b": b_info}
    with pytest.raises(ValueError, match=match):
        st.load(_make(header, bytes(buffer_len)))


def test_buffer_not_covered():
    with pytest.raises(ValueError, match="cover"):
        st.load(_make(GOOD_HEADER, bytes(16)))


def test_load_file_names_path(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(st.save(_sample())[:-3])
    with pytest.raises(ValueError, match="broken.safetensors"):
        st.load_file(path)


def test_save_validation():
    with pytest.raises(ValueError, match="'x'.*needs 8"):
        st.save({"x": ("float32", (2,), bytes(4))})
    with pytest.raises(ValueError, match="'x'.*unknown dtype"):
        st.save({"x": ("complex64", (1,), bytes(8))})
    with pytest.raises(ValueError, match="'x'.*shape"):
        st.save({"x": ("float32", (-1,), b"")})
    with pytest.raises(ValueError, match="reserved"):
        st.save({"__metadata__": ("float32", (), bytes(4))})
    with pytest.raises(TypeError):
        st.save({"x": ("float32", (1,), bytes(4))}, {"k": 1})

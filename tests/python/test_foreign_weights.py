"""Foreign data and weights (issue 12): buffers keep their format, ``webtensor.load_safetensors`` /
``save_safetensors``, and ``Model.load_weights(by_name=, name_map=, skip_mismatch=)`` loading
weights trained elsewhere (PyTorch names and layouts), checked against numpy."""
from __future__ import annotations

import array
import ctypes
import warnings

import numpy as np
import pytest

import webtensor as wt
from webtensor import nn

safetensors_numpy = pytest.importorskip("safetensors.numpy")
rng = np.random.default_rng(5)


# ---- buffers: their format and shape, or a TypeError naming the format -----------------------------

def test_raw_bytes_are_refused_not_read_as_int32():
    raw = np.arange(4, dtype=np.float32).tobytes()
    for data in (memoryview(raw), bytearray(raw), raw, memoryview(bytearray(raw))[4:]):
        with pytest.raises(TypeError, match=r"raw bytes \(format 'B'\).*cast\('f'\)"):
            wt.tensor(data)
    # cast to the element type, or ask for the byte values explicitly
    np.testing.assert_array_equal(wt.tensor(memoryview(raw).cast("f")).numpy(), np.arange(4, dtype=np.float32))
    t = wt.tensor(memoryview(raw), dtype="int32")
    assert t.dtype == wt.int32 and t.numpy().tolist() == list(raw)


@pytest.mark.parametrize("make, want", [
    (lambda: memoryview(np.arange(6, dtype=np.uint8).reshape(2, 3)), np.arange(6).reshape(2, 3).astype(np.int32)),
    (lambda: array.array("b", [-3, 5]), np.array([-3, 5], np.int32)),
    (lambda: array.array("d", [1.5, -2.25]), np.array([1.5, -2.25], np.float32)),
    (lambda: memoryview(np.array([True, False])), np.array([True, False])),
    (lambda: memoryview(np.array([1.5, -2.0], ">f4")), np.array([1.5, -2.0], np.float32)),
    (lambda: memoryview(np.array([7, -8], ">i4")), np.array([7, -8], np.int32)),
    (lambda: memoryview(np.array([[1.0, 2.0]], ">f8")), np.array([[1.0, 2.0]], np.float32)),
    (lambda: (ctypes.c_float * 3)(1, 2, 3), np.array([1, 2, 3], np.float32)),
    (lambda: (ctypes.c_float.__ctype_be__ * 2)(1.5, 4), np.array([1.5, 4], np.float32)),
    (lambda: (ctypes.c_int16 * 2)(-2, 9), np.array([-2, 9], np.int32)),
    (lambda: (ctypes.c_long * 2)(3, -4), np.array([3, -4], np.int32)),
    (lambda: memoryview(np.array(2.5, np.float32)), np.array(2.5, np.float32)),
    (lambda: memoryview(np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]), np.array([[0, 2], [3, 5]], np.float32)),
], ids=["uint8-2d", "array-b", "array-d", "bool", "f4-big-endian", "i4-big-endian", "f8-big-endian",
        "ctypes-float", "ctypes-float-be", "ctypes-int16", "ctypes-long", "scalar", "strided"])
def test_typed_buffers_keep_format_and_shape_as_numpy_arrays_do(make, want):
    data = make()
    t = wt.tensor(data)
    assert t.shape == want.shape
    assert t.dtype.name == {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32", np.dtype(bool): "bool"}[want.dtype]
    np.testing.assert_array_equal(t.numpy(), want)
    if not isinstance(data, array.array | ctypes.Array):
        np.testing.assert_array_equal(t.numpy(), wt.tensor(np.asarray(data)).numpy())   # as numpy input


@pytest.mark.parametrize("make, fmt", [
    (lambda: memoryview(np.zeros(2, np.complex64)), "Zf"),
    (lambda: memoryview(b"ab").cast("c"), "c"),
    (lambda: memoryview(np.zeros(2, [("a", "f4"), ("b", "i4")])), "T{"),
    (lambda: memoryview(np.zeros(2, np.intp)).cast("B").cast("P"), "P"),
])
def test_unsupported_buffer_formats_raise_naming_the_format(make, fmt):
    with pytest.raises(TypeError, match=f"format '{fmt}"):
        wt.tensor(make())


# ---- load_safetensors / save_safetensors ---------------------------------------------------------

def test_load_safetensors_converts_as_tensor_does_numpy_arrays(tmp_path):
    arrays = {"f32": rng.standard_normal((2, 3)).astype(np.float32), "f64": rng.standard_normal(4),
              "f16": np.array([1.5, -2.0], np.float16), "i64": np.array([[1, -2]], np.int64),
              "u8": np.array([0, 255], np.uint8), "flag": np.array([True, False]), "scalar": np.array(3.5, np.float32),
              "empty": np.zeros((0, 3), np.float32)}
    path = tmp_path / "foreign.safetensors"
    safetensors_numpy.save_file(arrays, str(path))
    for source in (path, str(path), path.read_bytes()):
        got = wt.load_safetensors(source)
        assert sorted(got) == sorted(arrays)
        for k, a in arrays.items():
            want = wt.tensor(a)            # numpy input: float64 -> float32, ints -> int32, float16 stays
            assert isinstance(got[k], wt.Tensor) and got[k].dtype == want.dtype and got[k].shape == a.shape, k
            np.testing.assert_array_equal(got[k].numpy(), want.numpy(), err_msg=k)
    # bfloat16 (no numpy dtype): its bits are the top half of a float32's
    from webtensor import safetensors_io
    f = np.array([1.0, -2.5, 3.140625], np.float32)
    bf16 = (f.view(np.uint32) >> 16).astype("<u2").tobytes()
    got = wt.load_safetensors(safetensors_io.save({"b": ("bfloat16", (3,), bf16)}))["b"]
    assert got.dtype == wt.float32
    np.testing.assert_array_equal(got.numpy(), f)
    with pytest.raises(ValueError, match="foreign.safetensors"):
        (tmp_path / "foreign.safetensors").write_bytes(b"\x05")
        wt.load_safetensors(path)


def test_save_safetensors_is_read_by_the_safetensors_package(tmp_path):
    x = rng.standard_normal((3, 2)).astype(np.float32)
    tensors = {"x": wt.tensor(x), "i": np.arange(3, dtype=np.int32), "b": wt.tensor([True, False])}
    wt.save_safetensors(tmp_path / "mine.safetensors", tensors, metadata={"source": "test"})
    back = safetensors_numpy.load_file(str(tmp_path / "mine.safetensors"))
    np.testing.assert_array_equal(back["x"], x)
    np.testing.assert_array_equal(back["i"], np.arange(3))
    np.testing.assert_array_equal(back["b"], [True, False])
    assert wt.save_safetensors(None, tensors, metadata={"source": "test"}) == (tmp_path / "mine.safetensors").read_bytes()


# ---- load_weights with foreign names ------------------------------------------------------------

def mlp():
    wt.set_seed(0)
    return nn.Sequential([nn.Input((4,)), nn.Dense(8, activation="relu"), nn.Dense(3)])


def torch_file(tmp_path):
    """A PyTorch-style state dict (``nn.Linear`` stores ``weight`` as [out, in]), written by safetensors."""
    sd = {"fc1.weight": rng.standard_normal((8, 4)).astype(np.float32),
          "fc1.bias": rng.standard_normal(8).astype(np.float32),
          "fc2.weight": rng.standard_normal((3, 8)).astype(np.float32),
          "fc2.bias": rng.standard_normal(3).astype(np.float32)}
    path = tmp_path / "torch.safetensors"
    safetensors_numpy.save_file(sd, str(path))
    return path, sd


def torch_forward(sd, x):
    return np.maximum(x @ sd["fc1.weight"].T + sd["fc1.bias"], 0) @ sd["fc2.weight"].T + sd["fc2.bias"]


def torch_names(name):
    """fc1.weight -> ('dense/kernel', transpose); fc1.bias -> 'dense/bias' (the docstring's example)."""
    layer, kind = name.split(".")
    ours = {"fc1": "dense", "fc2": "dense_1"}[layer]
    return (f"{ours}/kernel", lambda t: t.T) if kind == "weight" else f"{ours}/bias"


def test_pytorch_weights_load_with_a_name_map_callable(tmp_path):
    path, sd = torch_file(tmp_path)
    m = mlp()
    m.load_weights(path, name_map=torch_names)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(m.predict(x, verbose=0).numpy(), torch_forward(sd, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.layers[0].kernel.numpy(), sd["fc1.weight"].T)


def test_pytorch_weights_load_with_a_name_map_dict(tmp_path):
    path, sd = torch_file(tmp_path)
    m = mlp()
    t = lambda w: w.T  # noqa: E731
    m.load_weights(path, name_map={"fc1.weight": ("dense/kernel", t), "fc1.bias": "dense/bias",
                                   "fc2.weight": ("dense_1/kernel", t), "fc2.bias": "dense_1/bias"})
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(m(x).numpy(), torch_forward(sd, x), rtol=1e-5, atol=1e-5)


def test_foreign_names_without_a_map_fail_listing_both_sides(tmp_path):
    path, _ = torch_file(tmp_path)
    m = mlp()
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"missing from the file: \['dense/kernel', 'dense/bias', 'dense_1/kernel', "
                                         r"'dense_1/bias'\]; in the file but not in the model: \['fc1.bias', 'fc1.weight'"):
        m.load_weights(path)
    # a map without the transpose: the shape mismatch names both names and both shapes; nothing is assigned
    with pytest.raises(ValueError, match=r"'fc1.weight' \(as 'dense/kernel'\): file has shape \(8, 4\), model has "
                                         r"\(4, 8\).*'fc2.weight' \(as 'dense_1/kernel'\)"):
        m.load_weights(path, name_map=lambda n: torch_names(n)[0] if n.endswith("weight") else torch_names(n))
    for u, v in zip(before, m.get_weights()):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match=r"'fc1.bias' and 'fc2.bias' both map to 'dense/bias'"):
        m.load_weights(path, name_map=lambda n: "dense/bias" if n.endswith("bias") else torch_names(n))
    with pytest.raises(TypeError, match="name_map"):
        m.load_weights(path, name_map=42)


def test_skip_mismatch_loads_the_rest_and_warns(tmp_path):
    path, sd = torch_file(tmp_path)
    m = mlp()
    old_kernel = m.layers[0].kernel.numpy()
    no_t = lambda n: torch_names(n) if n != "fc1.weight" else "dense/kernel"  # noqa: E731
    with pytest.warns(UserWarning, match=r"skipped.*'fc1.weight' \(as 'dense/kernel'\): file has shape \(8, 4\)"):
        m.load_weights(path, name_map=no_t, skip_mismatch=True)
    np.testing.assert_array_equal(m.layers[0].kernel.numpy(), old_kernel)     # skipped
    np.testing.assert_array_equal(m.layers[0].bias.numpy(), sd["fc1.bias"])   # loaded
    np.testing.assert_array_equal(m.layers[1].kernel.numpy(), sd["fc2.weight"].T)


def test_by_name_loads_what_matches_and_warns_about_the_rest(tmp_path):
    wt.set_seed(1)
    small = nn.Sequential([nn.Input((4,)), nn.Dense(3, name="shared"), nn.Dense(2, name="head_a")])
    small.save_weights(tmp_path / "small.safetensors")
    wt.set_seed(2)
    other = nn.Sequential([nn.Input((4,)), nn.Dense(3, name="shared"), nn.Dense(5, name="head_b")])
    head_before = other.layers[1].kernel.numpy()
    with pytest.warns(UserWarning, match=r"not in the file.*head_b/kernel.*not in the model.*head_a/kernel"):
        other.load_weights(tmp_path / "small.safetensors", by_name=True)
    np.testing.assert_array_equal(other.layers[0].kernel.numpy(), small.layers[0].kernel.numpy())
    np.testing.assert_array_equal(other.layers[1].kernel.numpy(), head_before)
    unrelated = nn.Sequential([nn.Input((4,)), nn.Dense(3, name="x")])
    with pytest.raises(ValueError, match="no weight of the file matches"):
        unrelated.load_weights(tmp_path / "small.safetensors", by_name=True)


def test_float64_and_float16_files_load_into_float32_models_but_ints_do_not(tmp_path):
    m = mlp()
    sd = {k: v.numpy().astype(np.float64) for k, v in nn.saving.weight_paths(m).items()}
    sd = {k: v + 1.0 for k, v in sd.items()}
    safetensors_numpy.save_file(sd, str(tmp_path / "f64.safetensors"))
    m.load_weights(tmp_path / "f64.safetensors")
    for k, v in nn.saving.weight_paths(m).items():
        np.testing.assert_array_equal(v.numpy(), sd[k].astype(np.float32), err_msg=k)
    safetensors_numpy.save_file({k: v.astype(np.int64) for k, v in sd.items()}, str(tmp_path / "i64.safetensors"))
    with pytest.raises(ValueError, match=r"'dense/kernel': file has dtype int64, model has float32"):
        m.load_weights(tmp_path / "i64.safetensors")


def test_loaded_weights_from_a_name_map_round_trip_through_save_weights(tmp_path):
    path, sd = torch_file(tmp_path)
    m = mlp()
    m.load_weights(path, name_map=torch_names)
    m.save_weights(tmp_path / "ours.safetensors")
    ours = wt.load_safetensors(tmp_path / "ours.safetensors")
    np.testing.assert_array_equal(ours["dense_1/kernel"].numpy(), sd["fc2.weight"].T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp().load_weights(tmp_path / "ours.safetensors")     # our own names: strict and silent

"""Error paths: wrong shapes, dtypes and devices fail early with messages that name the op and
the shapes or axis involved (and the same errors come out of a traced function)."""
from __future__ import annotations

import importlib
import re

import numpy as np
import pytest

import webtensor as wt

device_module = importlib.import_module("webtensor.core.runtime.device")  # the module (``wt.device`` is the function)


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def ones(*shape, dtype=wt.float32):
    return wt.ones(shape, dtype=dtype)


ERRORS = [  # (id, thunk, exception type, fragments the message must contain)
    ("broadcast", lambda: ones(2, 3) + ones(4), ValueError, ["add", "(2, 3)", "(4,)", "broadcast"]),
    ("broadcast_where", lambda: wt.where(ones(2, dtype=wt.bool), ones(3), ones(2)), ValueError,
     ["where", "(2,)", "(3,)"]),
    ("broadcast_to", lambda: wt.broadcast_to(ones(2, 3), (3, 3)), ValueError, ["broadcast_to", "(2, 3)", "(3, 3)"]),
    ("matmul_inner", lambda: wt.matmul(ones(2, 3), ones(4, 5)), ValueError, ["matmul", "(2, 3)", "(4, 5)", "inner"]),
    ("matmul_inner_transposed", lambda: wt.matmul(ones(2, 3), ones(4, 5), transpose_b=True), ValueError,
     ["matmul", "(2, 3)", "(4, 5)", "transpose_b=True"]),
    ("matmul_1d", lambda: ones(3) @ ones(4), ValueError, ["matmul", "(1, 3)", "(4, 1)"]),
    ("matmul_batch", lambda: wt.matmul(ones(2, 3, 4), ones(3, 4, 5)), ValueError,
     ["matmul", "(2, 3, 4)", "(3, 4, 5)"]),
    ("matmul_scalar", lambda: wt.matmul(ones(), ones(2, 2)), ValueError, ["matmul", "scalar"]),
    ("reshape", lambda: wt.reshape(ones(2, 3), (4, 2)), ValueError, ["reshape", "(2, 3)", "(4, 2)"]),
    ("reshape_infer", lambda: ones(2, 3).reshape(4, -1), ValueError, ["reshape", "(2, 3)", "(4, -1)"]),
    ("reshape_two_unknowns", lambda: wt.reshape(ones(2, 3), (-1, -1)), ValueError, ["reshape", "-1"]),
    ("sum_axis", lambda: wt.sum(ones(2, 3), axis=2), ValueError, ["sum", "axis 2", "rank 2"]),
    ("mean_axis_negative", lambda: wt.mean(ones(2, 3), axis=-3), ValueError, ["mean", "axis -3", "rank 2"]),
    ("max_axis_repeated", lambda: wt.max(ones(2, 3), axis=(1, -1)), ValueError, ["max", "repeated"]),
    ("max_empty", lambda: wt.max(ones(0, 3), axis=0), ValueError, ["max", "(0, 3)", "empty"]),
    ("argmax_axis", lambda: wt.argmax(ones(2, 3), axis=3), ValueError, ["argmax", "axis 3"]),
    ("softmax_axis", lambda: wt.softmax(ones(2, 3), axis=5), ValueError, ["softmax", "axis 5"]),
    ("concat_axis", lambda: wt.concat([ones(2, 3), ones(2, 3)], axis=2), ValueError, ["concat", "axis 2"]),
    ("concat_shapes", lambda: wt.concat([ones(2, 3), ones(3, 2)], axis=0), ValueError,
     ["concat", "(2, 3)", "(3, 2)", "axis 0"]),
    ("stack_shapes", lambda: wt.stack([ones(2, 3), ones(3)]), ValueError, ["stack", "(2, 3)", "(3,)"]),
    ("transpose_perm", lambda: wt.transpose(ones(2, 3), (0, 0)), ValueError, ["transpose", "(0, 0)", "(2, 3)"]),
    ("squeeze", lambda: wt.squeeze(ones(2, 3), 0), ValueError, ["squeeze", "axis 0", "(2, 3)"]),
    ("expand_dims_axis", lambda: wt.expand_dims(ones(2, 3), 4), ValueError, ["expand_dims", "axis 4"]),
    ("pad_pairs", lambda: wt.pad(ones(2, 3), [(1, 1)]), ValueError, ["pad", "(2, 3)"]),
    ("gather_axis", lambda: wt.gather(ones(2, 3), wt.tensor([0]), axis=2), ValueError, ["gather", "axis 2"]),
    ("index_too_many", lambda: ones(2, 3)[0, 0, 0], IndexError, ["too many indices", "rank 2"]),
    ("index_out_of_bounds", lambda: ones(2, 3)[:, 3], IndexError, ["index 3", "axis 1", "size 3"]),
    ("cross_entropy_shapes", lambda: wt.softmax_cross_entropy(ones(2, 3), ones(2, 4)), ValueError,
     ["softmax_cross_entropy", "(2, 3)", "(2, 4)"]),
    ("sparse_cross_entropy_shapes", lambda: wt.sparse_softmax_cross_entropy(wt.tensor([0, 1, 2]), ones(2, 4)),
     ValueError, ["sparse_softmax_cross_entropy", "(3,)", "(2,)"]),
    # conv2d
    ("conv_channels", lambda: wt.conv2d(ones(1, 5, 5, 3), ones(3, 3, 2, 4)), ValueError,
     ["conv2d", "C_in=3", "(3, 3, 2, 4)"]),
    ("conv_channels_nchw", lambda: wt.conv2d(ones(1, 3, 5, 5), ones(3, 3, 5, 4), data_format="NCHW"), ValueError,
     ["conv2d", "C_in=3", "(3, 3, 5, 4)"]),
    ("conv_rank", lambda: wt.conv2d(ones(5, 5, 3), ones(3, 3, 3, 4)), ValueError, ["conv2d", "rank 4", "(5, 5, 3)"]),
    ("conv_padding", lambda: wt.conv2d(ones(1, 5, 5, 3), ones(3, 3, 3, 4), padding="full"), ValueError,
     ["conv2d", "'full'"]),
    ("conv_format", lambda: wt.conv2d(ones(1, 5, 5, 3), ones(3, 3, 3, 4), data_format="NWHC"), ValueError,
     ["conv2d", "'NWHC'"]),
    ("conv_window", lambda: wt.conv2d(ones(1, 2, 2, 3), ones(3, 3, 3, 4)), ValueError, ["(3, 3)", "2x2"]),
    ("pool_rank", lambda: wt.max_pool2d(ones(4, 4, 1)), ValueError, ["max_pool2d", "rank 4"]),
    # dtypes: bool where a number is needed, and other dtype errors
    ("matmul_bool", lambda: wt.matmul(ones(2, 2, dtype=wt.bool), ones(2, 2, dtype=wt.bool)), TypeError,
     ["matmul", "bool"]),
    ("neg_bool", lambda: -ones(2, dtype=wt.bool), TypeError, ["neg", "bool", "logical_not"]),
    ("matmul_mixed", lambda: wt.matmul(ones(2, 3), ones(3, 2, dtype=wt.int32)), TypeError,
     ["matmul", "float32", "int32"]),
    ("where_condition", lambda: wt.where(ones(2), ones(2), ones(2)), TypeError, ["where", "bool", "float32"]),
    ("gather_float_indices", lambda: wt.gather(ones(3), wt.tensor([0.5])), TypeError, ["gather", "int32", "float32"]),
    ("one_hot_float", lambda: wt.one_hot(wt.tensor([0.0, 1.0]), 3), TypeError, ["one_hot", "int32", "float32"]),
    ("concat_dtypes", lambda: wt.concat([ones(2), ones(2, dtype=wt.int32)]), TypeError, ["concat", "int32"]),
    ("unknown_dtype", lambda: wt.cast(ones(2), "float128"), TypeError, ["float128", "float32"]),
    ("index_array_out_of_bounds", lambda: ones(3, 2)[[0, 3]], IndexError, ["[0, 3]", "axis 0", "size 3"]),
    ("index_array_negative_out_of_bounds", lambda: ones(3)[[-4]], IndexError, ["[-4]", "size 3"]),
    ("float_index", lambda: ones(3)[wt.tensor(1.0)], TypeError, ["int32", "float32"]),
    # construction
    ("ragged", lambda: wt.tensor([[1.0, 2.0], [3.0]]), ValueError, ["ragged"]),
    ("strings", lambda: wt.tensor(["a", "b"]), TypeError, ["dtype"]),
    ("variable_assign_shape", lambda: wt.Variable([1.0, 2.0], name="w").assign([1.0, 2.0, 3.0]), ValueError,
     ["'w'", "(3,)", "(2,)"]),
    ("variable_assign_dtype", lambda: wt.Variable([1.0, 2.0], name="w").assign(wt.tensor([1, 2])), TypeError,
     ["'w'", "int32", "float32"]),
    ("truth_value", lambda: bool(ones(3) > 0), ValueError, ["ambiguous"]),
]


@pytest.mark.parametrize("thunk,exc,fragments", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_message(thunk, exc, fragments):
    with pytest.raises(exc) as info:
        thunk()
    msg = str(info.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} missing from: {msg}"


@pytest.mark.parametrize("thunk,exc,fragments", [e[1:] for e in ERRORS if e[0] in
                                                  ("broadcast", "matmul_inner", "reshape", "sum_axis", "conv_channels",
                                                   "matmul_bool", "where_condition")],
                         ids=["broadcast", "matmul_inner", "reshape", "sum_axis", "conv_channels", "matmul_bool",
                              "where_condition"])
def test_same_errors_while_tracing(thunk, exc, fragments):
    f = wt.function(lambda x: thunk())
    with pytest.raises(exc) as info:
        f(ones(1))
    for frag in fragments:
        assert frag in str(info.value)


def test_traced_shape_error_names_the_traced_shapes():
    f = wt.function(lambda x, y: x @ y)
    f(ones(2, 3), ones(3, 4))
    with pytest.raises(ValueError, match=re.escape("(2, 3) and (2, 4)")):
        f(ones(2, 3), ones(2, 4))


# ---- devices ------------------------------------------------------------------------------------

def test_unknown_device_lists_known_devices():
    with pytest.raises(ValueError) as info:
        wt.device("nope")                   # raises at the call, before any `with`
    assert "'nope'" in str(info.value) and "reference" in str(info.value)
    with pytest.raises(ValueError, match="known devices"):
        wt.tensor([1.0], device="nope")
    with pytest.raises(ValueError, match="known devices"):
        ones(2).to("nope")


def test_unavailable_device_raises_runtime_error(monkeypatch):
    def broken():
        raise RuntimeError("no adapter for 'flaky' on this machine")
    monkeypatch.setitem(device_module._FACTORIES, "flaky", broken)
    with pytest.raises(RuntimeError, match="flaky"):
        wt.device("flaky")


@pytest.fixture
def other_device(monkeypatch):
    """A second numpy device, registered only for the test."""
    class Other(device_module.ReferenceDevice):
        name = "other"
    monkeypatch.setitem(device_module._FACTORIES, "other", Other)
    monkeypatch.delitem(device_module._INSTANCES, "other", raising=False)
    yield "other"
    device_module._INSTANCES.pop("other", None)


def test_tensors_on_different_devices(other_device):
    a = wt.tensor([1.0, 2.0])
    b = a.to(other_device)
    assert b.device.name == "other" and a.device.name == "reference"
    np.testing.assert_array_equal((b * 2.0).numpy(), [2, 4])   # fine on its own device
    with pytest.raises(ValueError) as info:
        a + b
    msg = str(info.value)
    assert "add" in msg and "reference" in msg and "other" in msg and ".to(" in msg
    with pytest.raises(ValueError, match="different devices"):
        wt.concat([a, b])
    with pytest.raises(ValueError, match="different devices"):
        wt.function(lambda x, y: x + y)(a, b)


def test_variable_on_another_device_in_a_function(other_device):
    v = wt.Variable([1.0, 2.0], name="v", device=other_device)
    with pytest.raises(ValueError, match="'v'.*other.*reference"):
        wt.function(lambda x: x * v)(wt.tensor([1.0, 1.0]))


def test_device_context_places_new_tensors(other_device):
    with wt.device(other_device):
        t = wt.ones((2,))
    assert t.device.name == "other"
    assert wt.ones((2,)).device.name == "reference"

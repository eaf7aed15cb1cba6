"""Every public op checks its arguments in one place (``webtensor.core.signature``): the number of
tensor arguments, unknown or repeated arguments, and each attribute's type and range. Errors are
TypeError (wrong kind) or ValueError (right kind, bad value) and name the op and the argument."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import ops
from webtensor.core.op import Op

ALIASES = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"]   # TF names in the top-level package
PUBLIC = sorted(ops.__all__) + ALIASES


@pytest.fixture(autouse=True)
def _reference_device():
    with wt.device("reference"):
        yield


def t(*shape, dtype=wt.float32):
    return wt.ones(shape, dtype=dtype)


def idx(*values):
    return wt.tensor(list(values), dtype=wt.int32)


def public(name):
    return getattr(wt, name)


def n_positional(fn) -> int:
    """How many arguments ``fn`` takes positionally (tensor arguments, then attributes)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(fn).parameters.values())


# ---- arity ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PUBLIC)
def test_no_arguments_names_the_op_and_its_tensor_arguments(name):
    with pytest.raises(TypeError) as info:
        public(name)()
    msg = str(info.value)
    assert msg.startswith(f"{name}() takes ") and "tensor argument" in msg, msg


@pytest.mark.parametrize("name", PUBLIC)
def test_too_many_positional_arguments(name):
    fn = public(name)
    args = [t(2, 2)] * (n_positional(fn) + 1)
    with pytest.raises(TypeError) as info:
        fn(*args)
    assert str(info.value).startswith(f"{name}() takes "), str(info.value)


@pytest.mark.parametrize("name", PUBLIC)
def test_unknown_keyword_argument(name):
    with pytest.raises(TypeError) as info:
        public(name)(t(2, 2), nonsense=1)
    msg = str(info.value)
    assert msg.startswith(f"{name}() ") and "'nonsense'" in msg, msg


def test_arity_message_reads_as_the_issue_asks():
    with pytest.raises(TypeError, match=r"^exp\(\) takes 1 tensor argument \(x\), got 0$"):
        wt.exp()
    with pytest.raises(TypeError, match=r"^add\(\) takes 2 tensor arguments \(x, y\), got 1$"):
        wt.add(t(2))
    with pytest.raises(TypeError, match=r"^conv2d\(\) takes 2 tensor arguments \(x, filters\), got 1$"):
        wt.conv2d(t(1, 4, 4, 1))
    with pytest.raises(TypeError, match=r"^where\(\) takes 3 tensor arguments \(condition, x, y\), got 2$"):
        wt.where(t(2, dtype=wt.bool), t(2))
    with pytest.raises(TypeError, match=r"^sum\(\) got multiple values for argument 'axis'$"):
        wt.sum(t(2, 2), 0, axis=1)


def test_every_public_op_has_a_declared_signature():
    from webtensor.core.signature import Signature
    for name in PUBLIC:
        sig = getattr(public(name), "signature", None)
        assert isinstance(sig, Signature) and sig.name == name, name
        assert sig.tensors, name


# ---- attributes ------------------------------------------------------------------------------------

X4 = lambda: (t(1, 6, 6, 2),)                     # noqa: E731  an NHWC image
CONV = lambda: (t(1, 6, 6, 2), t(3, 3, 2, 4))       # noqa: E731
POOL_BAD = [(dict(pool_size=0), ValueError, "pool_size"), (dict(pool_size=1.5), TypeError, "pool_size"),
            (dict(strides=0), ValueError, "strides"), (dict(strides=(1, 2, 3)), ValueError, "strides"),
            (dict(padding="full"), ValueError, "padding"), (dict(data_format="NWHC"), ValueError, "data_format")]
REDUCE_BAD = [(dict(axis=1.0), TypeError, "axis"), (dict(axis=(0, 1.0)), TypeError, "axis"),
              (dict(axis="0"), TypeError, "axis"), (dict(axis=2), ValueError, "axis"),
              (dict(axis=(0, -2)), ValueError, "axis"), (dict(keepdims="yes"), TypeError, "keepdims")]
UNARY_BAD = [(dict(axis=0), TypeError, "axis")]

# name -> (tensor arguments, [(bad keyword arguments, exception type, argument the message names)])
BAD = {
    "argmax": (lambda: (t(2, 3),), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=(0, 1)), TypeError, "axis"),
                                    (dict(axis=2), ValueError, "axis")]),
    "argmin": (lambda: (t(2, 3),), [(dict(axis="1"), TypeError, "axis"), (dict(axis=-3), ValueError, "axis")]),
    "avg_pool2d": (X4, POOL_BAD),
    "broadcast_to": (lambda: (t(2, 1),), [(dict(shape=(2, -3)), ValueError, "shape"),
                                          (dict(shape=(2, 1.5)), TypeError, "shape"),
                                          (dict(shape=None), TypeError, "shape")]),
    "cast": (lambda: (t(2),), [(dict(dtype="float128"), TypeError, "dtype"), (dict(dtype=3), TypeError, "dtype")]),
    "concat": (lambda: ([t(2, 3), t(2, 3)],), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=2), ValueError, "axis"),
                                              (dict(values=[]), ValueError, "values")]),
    "conv2d": (CONV, [(dict(strides=0), ValueError, "strides"), (dict(strides=(1, -1)), ValueError, "strides"),
                      (dict(strides=1.5), TypeError, "strides"), (dict(dilations=0), ValueError, "dilations"),
                      (dict(padding="full"), ValueError, "padding"),
                      (dict(padding=((1, 1), (-1, 0))), ValueError, "padding"),
                      (dict(data_format="NWHC"), ValueError, "data_format")]),
    "expand_dims": (lambda: (t(2, 3),), [(dict(axis=1.5), TypeError, "axis"), (dict(axis=3), ValueError, "axis")]),
    "extract_patches": (X4, [(dict(ksize=0, strides=1, dilations=1, pads=((0, 0), (0, 0)), pad_value=0.0),
                              ValueError, "ksize"),
                             (dict(ksize=2, strides=0, dilations=1, pads=((0, 0), (0, 0)), pad_value=0.0),
                              ValueError, "strides"),
                             (dict(ksize=2, strides=1, dilations=1, pads=((0, 0), (-1, 0)), pad_value=0.0),
                              ValueError, "pads"),
                             (dict(ksize=2, strides=1, dilations=1, pads=((0, 0), (0, 0))), TypeError, "pad_value")]),
    "extract_patches_grad": (lambda: (t(1, 5, 5, 2, 2, 2),),
                             [(dict(shape=(1, 6, 6, 2), ksize=2, strides=0, dilations=1, pads=((0, 0), (0, 0))),
                               ValueError, "strides"),
                              (dict(shape=(1, 6, 6, 2), ksize=2, strides=1, dilations=1), TypeError, "pads")]),
    "flatten": (lambda: (t(2, 3),), [(dict(start_axis=1.5), TypeError, "start_axis"),
                                     (dict(start_axis=3), ValueError, "start_axis")]),
    "gather": (lambda: (t(3, 2), idx(0)), [(dict(axis=1.5), TypeError, "axis"), (dict(axis=2), ValueError, "axis")]),
    "gelu": (lambda: (t(2),), [(dict(approximate="tanh"), TypeError, "approximate")]),
    "log_softmax": (lambda: (t(2, 3),), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=2), ValueError, "axis")]),
    "logsumexp": (lambda: (t(2, 3),), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=-3), ValueError, "axis"),
                                       (dict(keepdims=None), TypeError, "keepdims")]),
    "matmul": (lambda: (t(2, 2), t(2, 2)), [(dict(transpose_a="yes"), TypeError, "transpose_a"),
                                            (dict(transpose_b=None), TypeError, "transpose_b")]),
    "max_pool2d": (X4, POOL_BAD),
    "one_hot": (lambda: (idx(0, 1),), [(dict(depth=-3), ValueError, "depth"), (dict(depth=0), ValueError, "depth"),
                                       (dict(depth=2.5), TypeError, "depth"), (dict(depth=3, axis=2), ValueError, "axis"),
                                       (dict(depth=3, dtype="nope"), TypeError, "dtype")]),
    "pad": (lambda: (t(2, 3),), [(dict(paddings=((1, 1),)), ValueError, "paddings"),
                                 (dict(paddings=((1, 1), (-1, 0))), ValueError, "paddings"),
                                 (dict(paddings=((1, 1), (0, 0.5))), TypeError, "paddings"),
                                 (dict(paddings=((1, 1), (0, 0)), constant_values="a"), TypeError, "constant_values")]),
    "reshape": (lambda: (t(2, 3),), [(dict(shape=(2, 1.5)), TypeError, "shape"), (dict(shape=(-2, -3)), ValueError, "shape"),
                                     (dict(shape=(-1, -1)), ValueError, "shape")]),
    "slice": (lambda: (t(4, 4),), [(dict(begin=(0.5, 0)), TypeError, "begin"),
                                   (dict(begin=(0, 0), strides=(0, 1)), ValueError, "strides"),
                                   (dict(begin=(0, 0, 0)), ValueError, "begin")]),
    "softmax": (lambda: (t(2, 3),), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=(0, 1)), TypeError, "axis"),
                                     (dict(axis=2), ValueError, "axis")]),
    "softmax_cross_entropy": (lambda: (t(2, 3), t(2, 3)), [(dict(axis=1.5), TypeError, "axis"),
                                                           (dict(axis=2), ValueError, "axis"),
                                                           (dict(from_logits="yes"), TypeError, "from_logits")]),
    "sparse_softmax_cross_entropy": (lambda: (idx(0, 1), t(2, 3)), [(dict(from_logits=1.0), TypeError, "from_logits")]),
    "squeeze": (lambda: (t(1, 3),), [(dict(axis=1.5), TypeError, "axis"), (dict(axis=2), ValueError, "axis")]),
    "stack": (lambda: ([t(2), t(2)],), [(dict(axis=1.5), TypeError, "axis"), (dict(axis=2), ValueError, "axis"),
                                        (dict(values=[]), ValueError, "values")]),
    "take_along_axis": (lambda: (t(2, 3), wt.zeros((2, 1), dtype=wt.int32)),
                        [(dict(axis=1.5), TypeError, "axis"), (dict(axis=None), TypeError, "axis"),
                         (dict(axis=2), ValueError, "axis")]),
    "transpose": (lambda: (t(2, 3),), [(dict(perm=(0, 1.5)), TypeError, "perm"), (dict(perm=(0, 0)), ValueError, "perm"),
                                       (dict(perm=(0,)), ValueError, "perm"), (dict(perm=(0, 2)), ValueError, "perm")]),
}
AXIS_BAD = [(dict(axis=1.5), TypeError, "axis"), (dict(axis=2), ValueError, "axis")]
SCAN_BAD = AXIS_BAD + [(dict(exclusive="yes"), TypeError, "exclusive"), (dict(reverse=None), TypeError, "reverse")]
SORT_BAD = AXIS_BAD + [(dict(direction="UP"), ValueError, "direction")]
BLOCK_BAD = [(dict(block_size=1), ValueError, "block_size"), (dict(block_size=2.5), TypeError, "block_size"),
             (dict(block_size=2, data_format="NWHC"), ValueError, "data_format")]
BAD.update({   # issue 14's ops
    "sort": (lambda: (t(2, 3),), SORT_BAD),
    "argsort": (lambda: (t(2, 3),), SORT_BAD + [(dict(stable="yes"), TypeError, "stable")]),
    "top_k": (lambda: (t(2, 3),), [(dict(k=1.5), TypeError, "k"), (dict(k=-1), ValueError, "k"),
                                   (dict(k=4), ValueError, "k"), (dict(sorted="no"), TypeError, "sorted")]),
    "cumsum": (lambda: (t(2, 3),), SCAN_BAD),
    "cumprod": (lambda: (t(2, 3),), SCAN_BAD),
    "gather_nd": (lambda: (t(3, 2), idx(0)), [(dict(batch_dims=1.5), TypeError, "batch_dims"),
                                              (dict(batch_dims=-1), ValueError, "batch_dims")]),
    "scatter_nd": (lambda: (wt.zeros((1, 1), dtype=wt.int32), t(1)), [(dict(shape=(2, -1)), ValueError, "shape"),
                                                                      (dict(shape=1.5), TypeError, "shape")]),
    "unsorted_segment_sum": (lambda: (t(2), idx(0, 1)), [(dict(num_segments=1.5), TypeError, "num_segments"),
                                                          (dict(num_segments=-1), ValueError, "num_segments")]),
    "boolean_mask": (lambda: (t(2, 3), wt.ones((2,), dtype=wt.bool)), AXIS_BAD),
    "tile": (lambda: (t(2, 3),), [(dict(multiples=1.5), TypeError, "multiples"), (dict(multiples=(1,)), ValueError, "multiples"),
                                  (dict(multiples=(1, -1)), ValueError, "multiples")]),
    "split": (lambda: (t(4, 3),), [(dict(num_or_size_splits=1.5), TypeError, "num_or_size_splits"),
                                   (dict(num_or_size_splits=3), ValueError, "num_or_size_splits"),
                                   (dict(num_or_size_splits=(1, 1)), ValueError, "num_or_size_splits"),
                                   (dict(num_or_size_splits=2, axis=2), ValueError, "axis")]),
    "unstack": (lambda: (t(2, 3),), AXIS_BAD + [(dict(num=1.5), TypeError, "num"), (dict(num=3), ValueError, "num")]),
    "reverse": (lambda: (t(2, 3),), AXIS_BAD + [(dict(axis=(1, -1)), ValueError, "axis")]),
    "roll": (lambda: (t(2, 3),), [(dict(shift=1.5, axis=0), TypeError, "shift"), (dict(shift=1, axis=2), ValueError, "axis"),
                                  (dict(shift=(1, 2), axis=0), ValueError, "shift")]),
    "repeat": (lambda: (t(2, 3),), [(dict(repeats=1.5), TypeError, "repeats"), (dict(repeats=-1), ValueError, "repeats"),
                                    (dict(repeats=2, axis=2), ValueError, "axis")]),
    "space_to_depth": (X4, BLOCK_BAD),
    "depth_to_space": (X4, BLOCK_BAD),
    "tensordot": (lambda: (t(2, 3), t(3, 2)), [(dict(axes=1.5), TypeError, "axes"), (dict(axes=-1), ValueError, "axes"),
                                               (dict(axes=3), ValueError, "axes")]),
})
for _name in ("sum", "prod", "max", "min", "mean") + tuple(ALIASES):
    BAD[_name] = (lambda: (t(2, 3),), REDUCE_BAD)
# issue 14's reductions and ops with attributes
for _name in ("reduce_any", "reduce_all", "reduce_variance", "reduce_std", "reduce_euclidean_norm"):
    BAD[_name] = (lambda: (t(2, 3),), REDUCE_BAD)
BAD["moments"] = (lambda: (t(2, 3),), [(dict(axes=1.0), TypeError, "axes"), (dict(axes=2), ValueError, "axes"),
                                       (dict(axes=0, keepdims="yes"), TypeError, "keepdims")])
BAD["l2_normalize"] = (lambda: (t(2, 3),), [(dict(axis=1.0), TypeError, "axis"), (dict(axis=2), ValueError, "axis"),
                                            (dict(epsilon="small"), TypeError, "epsilon")])
BAD["leaky_relu"] = (lambda: (t(2),), [(dict(alpha="0.2"), TypeError, "alpha")])
BAD["elu"] = (lambda: (t(2),), [(dict(alpha=None), TypeError, "alpha")])
for _name in PUBLIC:                       # ops with no attributes: an attribute is an unexpected argument
    if _name not in BAD:
        fn = public(_name)
        n = len(fn.signature.tensors) if hasattr(fn, "signature") else (
            3 if _name == "where" else 2 if _name in ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                       "equal", "not_equal", "less", "less_equal", "greater",
                                                       "greater_equal", "logical_and", "logical_or", "mse") else 1)
        BAD[_name] = ((lambda n=n: (t(2),) * n), UNARY_BAD)

CASES = [(name, make, kwargs, exc, arg) for name, (make, bad) in sorted(BAD.items()) for kwargs, exc, arg in bad]


def test_the_table_covers_every_public_op():
    assert sorted(BAD) == sorted(PUBLIC)


@pytest.mark.parametrize("name,make,kwargs,exc,arg", CASES,
                         ids=[f"{c[0]}-{'-'.join(f'{k}={v!r}' for k, v in c[2].items())}" for c in CASES])
def test_bad_attribute(name, make, kwargs, exc, arg):
    args = make()
    if "values" in kwargs:
        args = ()
    with pytest.raises(exc) as info:
        public(name)(*args, **kwargs)
    msg = str(info.value)
    assert msg.startswith(f"{name}: ") or msg.startswith(f"{name}() "), msg
    assert arg in msg, f"{arg!r} missing from: {msg}"


def test_attribute_messages_read_as_the_issue_asks():
    with pytest.raises(ValueError, match=r"^conv2d: strides must be positive integers, got 0$"):
        wt.conv2d(*CONV(), strides=0)
    with pytest.raises(TypeError, match=r"^sum: axis must be an int or a tuple of ints, got 1\.0$"):
        wt.sum(t(2, 3), axis=1.0)
    with pytest.raises(TypeError, match=r"^reduce_sum: axis must be an int or a tuple of ints, got 1\.0$"):
        wt.reduce_sum(t(2, 3), axis=1.0)
    with pytest.raises(ValueError, match=r"^one_hot: depth must be a positive integer, got -3$"):
        wt.one_hot(idx(0, 1), -3)
    with pytest.raises(TypeError, match=r"^sum: axis must be an int or a tuple of ints, got 1\.0$"):
        t(2, 3).sum(axis=1.0)                         # the Tensor method goes through the same check


def test_the_same_checks_apply_while_tracing():
    f = wt.function(lambda x: wt.conv2d(x, wt.ones((3, 3, 2, 4)), strides=0))
    with pytest.raises(ValueError, match="conv2d: strides"):
        f(t(1, 6, 6, 2))
    g = wt.function(lambda x: wt.exp(x, x))
    with pytest.raises(TypeError, match=r"exp\(\) takes 1 tensor argument"):
        g(t(2))


def test_valid_attributes_are_accepted_in_every_spelling():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(wt.sum(x, axis=np.int64(1)).numpy(), x.sum(axis=1))
    np.testing.assert_array_equal(wt.sum(x, axis=[0, -1]).numpy(), x.sum(axis=(0, 2)))
    np.testing.assert_array_equal(wt.mean(x, axis=(0,), keepdims=np.bool_(True)).numpy(), x.mean((0,), keepdims=True))
    np.testing.assert_array_equal(wt.reshape(x, [np.int32(4), -1]).numpy(), x.reshape(4, -1))
    np.testing.assert_array_equal(wt.one_hot(idx(0, 2), np.int64(3), dtype="int32").numpy(), np.eye(3, dtype=np.int32)[[0, 2]])
    img = np.random.default_rng(0).normal(size=(1, 6, 6, 2)).astype(np.float32)
    a = wt.max_pool2d(img, pool_size=[2, 2], strides=(2, 2), padding="SAME").numpy()
    b = wt.max_pool2d(img, 2).numpy()
    np.testing.assert_array_equal(a, b)


def test_primitive_ops_check_arity_and_attribute_names_too():
    from webtensor.core.op import OPS
    with pytest.raises(TypeError, match=r"^reshape\(\) takes 1 tensor argument \(x\), got 2$"):
        OPS["reshape"](t(2), t(2), shape=(2,))
    with pytest.raises(TypeError, match=r"^reduce_sum\(\) missing attribute 'keepdims'$"):
        OPS["reduce_sum"](t(2), axes=(0,))
    with pytest.raises(TypeError, match=r"^concat\(\) takes at least 1 tensor argument"):
        OPS["concat"](axis=0)
    assert all(isinstance(op, Op) for op in OPS.values())


def test_tensor_arguments_by_name():
    a, b = np.array([1.0, 2.0], np.float32), np.array([3.0, 5.0], np.float32)
    np.testing.assert_array_equal(wt.sub(x=a, y=b).numpy(), a - b)
    np.testing.assert_array_equal(wt.sub(a, y=b).numpy(), a - b)
    np.testing.assert_array_equal(wt.where(wt.tensor([True, False]), y=b, x=a).numpy(), [1.0, 5.0])
    np.testing.assert_array_equal(wt.gather(indices=[1, -2], params=a).numpy(), a[[1, -2]])
    with pytest.raises(TypeError, match=r"^sub\(\) got multiple values for argument 'x'$"):
        wt.sub(a, x=b)
    with pytest.raises(TypeError, match=r"^sub\(\) takes 2 tensor arguments \(x, y\), got 1$"):
        wt.sub(y=b)


def test_ops_checked_on_every_call_get_normalised_defaults():
    """An op with a required attribute or a sequence of tensors is checked on every call, its
    defaults included, so its body checks nothing again (issue 13: one place for each check)."""
    with pytest.raises(ValueError, match=r"^concat: values must be a non-empty sequence of tensors, got \[\]$"):
        wt.concat([])                                   # positional: no fast path for a tensor list
    with pytest.raises(ValueError, match=r"^stack: values must be a non-empty sequence of tensors, got \(\)$"):
        wt.stack(())
    with pytest.raises(TypeError, match=r"^stack: values must be a sequence of tensors, got 3$"):
        wt.stack(3)
    assert wt.one_hot.signature.defaults == {"axis": -1, "dtype": wt.float32}
    np.testing.assert_array_equal(wt.one_hot(idx(2, 0), 3).numpy(), np.eye(3, dtype=np.float32)[[2, 0]])
    np.testing.assert_array_equal(wt.one_hot(idx(2, 0), 3, axis=0).numpy(), np.eye(3, dtype=np.float32)[[2, 0]].T)
    np.testing.assert_array_equal(wt.stack([t(2), t(2)], axis=-1).numpy(), np.ones((2, 2), np.float32))

"""Every public callable documents itself (issue 13): a docstring that is not the generic one an op
helper writes, a real signature (not ``*args, **kwargs`` only), and a Google-style ``Args:``
section (as TensorFlow's) naming exactly the parameters of that signature. A new public op or
layer fails here until it is documented: that is the point.

Public means: the names in ``__all__`` of ``webtensor``, ``webtensor.nn`` and its modules,
``webtensor.optimizers`` (and ``optimizers.schedules``), ``webtensor.data``, and the functions of
``webtensor.random``. For a class the signature is its constructor's and the ``Args:`` section
is in the class docstring (as Keras writes them). Public methods of public classes need a
docstring, and an ``Args:`` section that names exactly their parameters when they have one.
"""
from __future__ import annotations

import inspect
import re
import types

import pytest

import webtensor as wt
from webtensor import data, nn, optimizers

MODULES = [wt, nn, nn.layers, nn.losses, nn.metrics, nn.initializers, nn.activations, nn.callbacks,
           optimizers, optimizers.schedules, data]

# What a helper writes when an op is defined without a doc (``elementwise(..., doc="")``).
GENERIC = [re.compile(r"^Elementwise ``\w+`` of ``\w+``"), re.compile(r"^TensorFlow's name for :func:`\w+`\.\s*$")]

SECTIONS = ("Args:", "Arguments:", "Returns:", "Return:", "Raises:", "Yields:", "Example:", "Examples:", "Note:",
            "Notes:", "Attributes:", "Shapes:", "Call arguments:", "References:", "Reference:")


def _public():
    """(qualified name, object) for every public callable, each object once."""
    out, seen = [], set()
    for mod in MODULES:
        for name in mod.__all__:
            v = getattr(mod, name)
            if isinstance(v, types.ModuleType) or not callable(v) or id(v) in seen:
                continue
            if isinstance(v, wt.DType):            # dtypes are values (wt.float32), not functions
                continue
            seen.add(id(v))
            out.append((f"{mod.__name__}.{name}", v))
    for name in ("normal", "uniform", "truncated_normal", "set_seed"):
        v = getattr(wt.random, name)
        if id(v) not in seen:
            seen.add(id(v))
            out.append((f"webtensor.random.{name}", v))
    return out


PUBLIC = _public()


def _methods():
    """(qualified name, function) for the public methods public classes define (each once)."""
    out, seen = [], set()
    for qual, cls in PUBLIC:
        if not inspect.isclass(cls) or not cls.__module__.startswith("webtensor"):
            continue
        for klass in cls.__mro__:
            if not klass.__module__.startswith("webtensor"):
                continue
            for name, f in vars(klass).items():
                if name.startswith("_") or isinstance(f, property):
                    continue
                f = f.__func__ if isinstance(f, (staticmethod, classmethod)) else f
                if not inspect.isfunction(f) or id(f) in seen:
                    continue
                seen.add(id(f))
                out.append((f"{klass.__module__}.{klass.__qualname__}.{name}", f))
    return out


METHODS = _methods()


def documented_args(doc: str):
    """The parameter names of the ``Args:`` section of a Google-style docstring, or None when it has
    none. An entry is a line at the section's first indentation, ``name: ...`` or
    ``name (type): ...``; ``*args``/``**kwargs`` keep their stars."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines):
        if line.strip() in ("Args:", "Arguments:"):
            break
    else:
        return None
    names, indent = [], None
    for line in lines[i + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0 or line.strip() in SECTIONS:
            break
        if indent is None:
            indent = depth
        if depth == indent:
            m = re.match(r"\s*(\*{0,2}\w+)\s*(\([^)]*\))?\s*:", line)
            assert m, f"unreadable Args entry: {line!r}"
            names.append(m.group(1))
    return names


def signature_args(obj):
    """The parameter names a caller passes (``self`` excluded), ``*args``/``**kwargs`` with stars."""
    params = inspect.signature(obj).parameters.values()
    return [("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name
            for p in params if p.name not in ("self", "cls")]


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "")


def test_the_survey_finds_the_api():
    names = {q for q, _ in PUBLIC}
    assert {"webtensor.exp", "webtensor.add", "webtensor.conv2d", "webtensor.GradientTape", "webtensor.nn.Dense",
            "webtensor.nn.losses.get", "webtensor.optimizers.Adam", "webtensor.data.Dataset",
            "webtensor.normal"} <= names           # webtensor.random.normal is webtensor.normal
    assert len(PUBLIC) > 150 and len(METHODS) > 50


def test_the_args_parser():
    doc = """Summary.

    Args:
        x: a tensor.
            More about x.
        axis (int): an axis.
        **kwargs: passed on.
    Returns:
        y: not an argument.
    """
    assert documented_args(doc) == ["x", "axis", "**kwargs"]
    assert documented_args("No section.") is None


@pytest.mark.parametrize("qual,obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_public_callable_is_documented(qual, obj):
    doc = _doc(obj)
    assert doc, f"{qual} has no docstring"
    for generic in GENERIC:
        assert not generic.search(doc), f"{qual} has the generic docstring {doc!r}"
    params = signature_args(obj)
    assert not params or any(not p.startswith("*") for p in params), \
        f"{qual}{inspect.signature(obj)}: a *args/**kwargs-only signature"
    documented = documented_args(doc)
    if params:
        assert documented is not None, f"{qual}{inspect.signature(obj)}: no Args: section"
        assert documented == params, f"{qual}: Args: documents {documented}, the signature takes {params}"
    else:
        assert not documented, f"{qual} takes no arguments but documents {documented}"


# Methods whose own docstring must have an Args: section when they take arguments: the Keras and
# tf.data API (webtensor.nn, optimizers, schedules, data) and GradientTape. Tensor's methods delegate
# to the functions of the same name, Device's are the backend interface (docs/architecture.md).
STRICT = ("webtensor.nn.", "webtensor.data.", "webtensor.optimizers.", "webtensor.schedules.", "webtensor.tape.")
SAME_AS = re.compile(r"[Ss]ame arguments.*?:meth:`(\w+)`", re.S)


@pytest.mark.parametrize("qual,fn", METHODS, ids=[q for q, _ in METHODS])
def test_public_method_is_documented(qual, fn):
    # An override may keep the docstring of the method it overrides (as Keras documents Layer.call
    # once); its own docstring's Args must match its own parameters.
    assert inspect.getdoc(fn), f"{qual} has no docstring (nor does the method it overrides)"
    if not fn.__doc__:
        return
    doc, params = _doc(fn), signature_args(fn)
    documented = documented_args(doc)
    if documented is not None:
        assert documented == params, f"{qual}: Args: documents {documented}, the signature takes {params}"
        return
    same = SAME_AS.search(doc)
    if same:                                 # "same arguments as :meth:`fit`": then they must be the same
        cls = vars(inspect.getmodule(fn))[fn.__qualname__.split(".")[0]]
        assert params == signature_args(getattr(cls, same.group(1))), qual
        return
    if qual.startswith(STRICT) and any(not p.startswith("*") for p in params):
        pytest.fail(f"{qual}{inspect.signature(fn)}: no Args: section")


def test_op_signatures_show_what_is_checked():
    """An op's visible signature is the one its checks enforce: tensor arguments by position or by
    name, attributes by keyword (raw ops) or position (front doors)."""
    sig = inspect.signature(wt.add)
    assert list(sig.parameters) == ["x", "y", "name"]
    assert [p.kind for p in sig.parameters.values()] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2 + \
        [inspect.Parameter.KEYWORD_ONLY]
    with wt.device("reference"):
        assert float(wt.add(x=1.0, y=2.0)) == 3.0
        assert float(wt.where(condition=True, x=1.0, y=2.0)) == 1.0
    n = 0
    for qual, obj in PUBLIC:
        check = getattr(obj, "signature", None)
        if check is None:
            continue
        n += 1
        shown = inspect.signature(obj).parameters
        # the tensors in order, after the arguments a caller may pass before them (only einsum's
        # equation: tf.einsum(equation, *inputs)); every other op takes its tensors first
        assert list(shown)[:len(check.positional)] == list(check.positional), qual
        assert [p for p in shown if p in check.tensors] == list(check.tensors), qual
        assert list(shown)[:len(check.tensors)] == list(check.tensors) or qual == "webtensor.einsum", qual
        # every op also takes TensorFlow's keyword-only name=None, checked and dropped
        assert set(shown) == set(check.tensors) | set(check.attrs) | {"name"}, qual
        assert shown["name"].kind is inspect.Parameter.KEYWORD_ONLY and shown["name"].default is None, qual
    assert n > 60


@pytest.mark.parametrize("call", [lambda n: wt.exp(1.0, name=n), lambda n: wt.reduce_sum([1.0, 2.0], 0, name=n),
                                  lambda n: wt.concat([[1.0], [2.0]], name=n), lambda n: wt.cast(1, wt.float32, name=n),
                                  lambda n: wt.extract_patches(wt.ones((1, 2, 2, 1)), ksize=1, strides=1, dilations=1,
                                                               pads=((0, 0), (0, 0)), pad_value=0.0, name=n),
                                  lambda n: wt.einsum("ij->ji", [[1.0, 2.0]], name=n)])
def test_ops_take_tensorflows_name(call):
    with wt.device("reference"):
        a, b = call(None), call("my_op")
        assert a.shape == b.shape and (a.numpy() == b.numpy()).all()
        with pytest.raises(TypeError, match=r": name must be a str or None, got 3$"):
            call(3)

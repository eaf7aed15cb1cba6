"""Op signatures: what each op takes, checked in one place whenever it is called.

Every op declares its signature once, beside its definition:

- a primitive :class:`~webtensor.core.op.Op` takes its tensor inputs from the positional
  parameters of its ``infer`` rule (``inputs=`` names them where ``infer`` takes ``*xs``) and its
  attributes from ``infer``'s keyword-only parameters; ``Op(..., attrs={name: kind})`` adds a
  check for attributes users pass directly (``extract_patches``);
- a public op written as a Python function is decorated with :func:`op_signature`, which names
  the kind of each attribute parameter; every other parameter is a tensor argument::

      @op_signature(strides=POSITIVE_PAIR, padding=PADDING, data_format=one_of("NHWC", "NCHW"),
                    dilations=POSITIVE_PAIR)
      def conv2d(x, filters, strides=1, padding="valid", data_format="NHWC", dilations=1): ...

:class:`Signature` does the checking for both: the number of tensor arguments, unknown and
repeated arguments, then each attribute through its *kind*, a function
``kind(value, check) -> value`` that returns the value normalised (an axis made non-negative,
an int made a pair) or raises. Errors name the op and the argument:

- ``TypeError`` for the wrong number of tensors or an argument of the wrong type
  (``exp() takes 1 tensor argument (x), got 0``; ``sum: axis must be an int or a tuple of ints,
  got 1.0``);
- ``ValueError`` for a value of the right type out of its range (``conv2d: strides must be
  positive integers, got 0``; ``softmax: axis 2 is out of range for a tensor of rank 2``).

Every op also takes TensorFlow's keyword-only ``name=None`` (a str or None, the op's name in TF's
graphs). webtensor's graphs do not name ops, so it is checked and then dropped: code written for
TensorFlow runs unchanged.

A call that passes exactly the tensor arguments and nothing else skips the attribute checks (the
defaults are valid), so the common call costs one comparison; the op's body converts its tensor
arguments itself (``as_tensor``) and resolves defaults that depend on them (``axis=-1``). An op
with a required attribute or a sequence-of-tensors argument (``concat``'s ``values``) is checked
on every call, so its body receives only checked, normalised values and checks nothing again.
"""
from __future__ import annotations

import functools
import inspect
import operator
from numbers import Number

from .dispatch import as_tensor
from .dtypes import DTYPES, as_dtype
from .shapes import Dim


# ---- the check ------------------------------------------------------------------------------------

NAME = inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None)   # TF's op name, dropped


def _drop_name(op: str, kwargs: dict) -> dict:
    """``kwargs`` without TF's ``name`` (checked: a str or None)."""
    name = kwargs.pop("name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{op}: name must be a str or None, got {name!r}")
    return kwargs


def with_name(sig: inspect.Signature) -> inspect.Signature:
    """``sig`` with TF's keyword-only ``name=None`` appended (what an op shows ``inspect.signature``)."""
    return sig.replace(parameters=[*sig.parameters.values(), NAME])


class Signature:
    """The declared arguments of one op: ``tensors`` (names, in order), whether the last one is
    variadic (``*xs``), and ``attrs`` (name -> kind, or None for an attribute checked only for
    presence). ``positional``: the names a call may pass positionally; ``defaults``: the default
    of each optional attribute (a checked call normalises it like a given value)."""

    def __init__(self, name: str, tensors, attrs: dict, *, variadic: bool = False, positional=None,
                 required=(), defaults=None):
        self.name, self.tensors, self.attrs, self.variadic = name, tuple(tensors), dict(attrs), variadic
        self.positional = tuple(positional) if positional is not None else self.tensors
        self.required = frozenset(required)        # attributes with no default
        self.defaults = dict(defaults or {})
        self.arity = -1 if variadic else len(self.tensors)
        self.attr_names = frozenset(self.attrs)
        self.checked = any(k is not None for k in self.attrs.values())   # a primitive with attribute kinds

    def renamed(self, name: str) -> "Signature":
        return Signature(name, self.tensors, self.attrs, variadic=self.variadic, positional=self.positional,
                         required=self.required, defaults=self.defaults)

    def __repr__(self):
        args = list(self.tensors) + [f"{a}=" for a in self.attrs if a not in self.tensors]
        return f"<signature {self.name}({', '.join(args)})>"

    # -- arity --
    def _arity_error(self, got: int) -> TypeError:
        n = len(self.tensors)
        if self.variadic:
            return TypeError(f"{self.name}() takes at least 1 tensor argument ({self.tensors[0]}...), got {got}")
        return TypeError(f"{self.name}() takes {n} tensor argument{'s' if n != 1 else ''} "
                         f"({', '.join(self.tensors)}), got {got}")

    def check_op_call(self, inputs, attrs):
        """A primitive's call -> ``(inputs, attrs)``: the tensors (positional, or by name as in
        ``add(x=a, y=b)``) and exactly the declared attributes."""
        if "name" in attrs and "name" not in self.attr_names:
            attrs = _drop_name(self.name, dict(attrs))
        named = [k for k in attrs if k in self.tensors and not self.variadic]
        if named:
            attrs = dict(attrs)
            given = dict(zip(self.tensors, inputs))
            for k in named:
                if k in given:
                    raise TypeError(f"{self.name}() got multiple values for argument {k!r}")
                given[k] = attrs.pop(k)
            if len(inputs) > len(self.tensors):
                raise self._arity_error(len(inputs) + len(named))
            inputs = tuple(given[k] for k in self.tensors if k in given)
        for k in attrs:
            if k not in self.attr_names:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {k!r}")
        if (len(inputs) != self.arity) if not self.variadic else not inputs:
            raise self._arity_error(len(inputs))
        for k in sorted(self.attr_names):
            if k not in attrs:
                raise TypeError(f"{self.name}() missing attribute {k!r}")
        return inputs, attrs

    def bind(self, args, kwargs) -> dict:
        """``{parameter: value}`` for a call of a public op function.

        Raises:
            TypeError: too many positional arguments, an unknown or repeated keyword, a missing
                tensor argument or a missing required attribute.
        """
        if len(args) > len(self.positional):
            if len(self.positional) == len(self.tensors):
                raise self._arity_error(len(args))
            raise TypeError(f"{self.name}() takes {len(self.tensors)} tensor argument"
                            f"{'s' if len(self.tensors) != 1 else ''} ({', '.join(self.tensors)}) and at most "
                            f"{len(self.positional)} positional arguments ({', '.join(self.positional)}), "
                            f"got {len(args)}")
        bound = dict(zip(self.positional, args))
        if "name" in kwargs and "name" not in self.attrs:
            kwargs = _drop_name(self.name, dict(kwargs))
        for k, v in kwargs.items():
            if k not in self.attrs and k not in self.tensors:
                names = self.tensors + tuple(a for a in self.attrs if a not in self.tensors)
                raise TypeError(f"{self.name}() got an unexpected keyword argument {k!r}; it takes "
                                f"{', '.join(names)}")
            if k in bound:
                raise TypeError(f"{self.name}() got multiple values for argument {k!r}")
            bound[k] = v
        given = sum(1 for k in self.tensors if k in bound)
        if given != len(self.tensors):
            raise self._arity_error(given)
        for k in self.required:
            if k not in bound:
                raise TypeError(f"{self.name}() missing required argument {k!r}")
        return bound

    def check(self, bound: dict) -> dict:
        """Tensor arguments converted to tensors, then each attribute (given, else its default)
        checked and normalised by its kind, so the op's body gets every argument in one form."""
        for k in self.tensors:
            v = bound[k]
            bound[k] = _tensor_list(v, Check(self.name, k, bound)) if self.attrs.get(k) is TENSORS else as_tensor(v)
        for k, kind in self.attrs.items():
            if kind is not None and kind is not TENSORS and (k in bound or k in self.defaults):
                bound[k] = kind(bound[k] if k in bound else self.defaults[k], Check(self.name, k, bound))
        return bound

    def check_attrs(self, attrs: dict) -> dict:
        """A primitive's attributes through their kinds."""
        for k, kind in self.attrs.items():
            if kind is not None:
                attrs[k] = kind(attrs[k], Check(self.name, k, attrs))
        return attrs



class Check:
    """What a kind needs to know: the op and argument (for messages) and the other arguments
    (an axis is checked against the rank of the tensor it refers to)."""
    __slots__ = ("op", "arg", "bound")

    def __init__(self, op, arg, bound):
        self.op, self.arg, self.bound = op, arg, bound

    def type_error(self, what, value) -> TypeError:
        return TypeError(f"{self.op}: {self.arg} must be {what}, got {value!r}")

    def value_error(self, rule, value) -> ValueError:
        """``rule`` says what the value must be or have: 'must be positive integers'."""
        return ValueError(f"{self.op}: {self.arg} {rule}, got {value!r}")

    def rank(self, of: str) -> int:
        v = self.bound[of]
        return len(v[0].shape) if isinstance(v, list) else len(v.shape)


def op_signature(name: str | None = None, **kinds):
    """Declare a public op function's attributes (``name=kind``); every other parameter is a
    tensor argument (and must have no default). The wrapper checks each call through
    :class:`Signature` and exposes it as ``fn.signature``."""

    def wrap(fn):
        sig = _function_signature(name or fn.__name__, fn, kinds)
        n = _fast_arity(sig)

        @functools.wraps(fn)
        def op(*args, **kwargs):
            if len(args) == n and not kwargs:     # just the tensors: the defaults need no check
                return fn(*args)
            return fn(**sig.check(sig.bind(args, kwargs)))

        op.signature = sig
        op.__signature__ = with_name(inspect.signature(fn))
        if name:
            op.__name__ = op.__qualname__ = name
        return op

    return wrap


def alias(fn, name: str):
    """``fn`` (an :func:`op_signature` function) under another name, used in its messages
    (``reduce_sum`` for ``sum``)."""
    sig = fn.signature.renamed(name)
    inner = fn.__wrapped__
    n = _fast_arity(sig)

    @functools.wraps(inner)
    def op(*args, **kwargs):
        if len(args) == n and not kwargs:
            return inner(*args)
        return inner(**sig.check(sig.bind(args, kwargs)))

    op.signature = sig
    op.__signature__ = with_name(inspect.signature(inner))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"TensorFlow's name for :func:`{fn.__name__}`.\n\n{fn.__doc__ or ''}"
    return op


def _fast_arity(sig: Signature) -> int:
    """How many positional arguments a call that skips the checks passes (just the tensors), or -1
    when every call must be checked: a required attribute, or a sequence of tensors to check."""
    if sig.required or any(sig.attrs.get(k) is TENSORS for k in sig.tensors):
        return -1
    return len(sig.tensors)


def _function_signature(name, fn, kinds) -> Signature:
    params = inspect.signature(fn).parameters.values()
    positional, tensors, required, defaults = [], [], [], {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{name}: op functions take named arguments only")
        if p.kind is p.POSITIONAL_OR_KEYWORD:
            positional.append(p.name)
        if p.name in kinds and kinds[p.name] is not TENSORS:
            if p.default is p.empty:
                required.append(p.name)
            else:
                defaults[p.name] = p.default
        else:
            if p.default is not p.empty or p.kind is p.KEYWORD_ONLY:
                raise TypeError(f"{name}: parameter {p.name!r} has a default but no declared kind")
            tensors.append(p.name)
    unknown = set(kinds) - {p.name for p in params}
    if unknown:
        raise TypeError(f"{name}: kinds declared for unknown parameters {sorted(unknown)}")
    if positional[:len(tensors)] != tensors:
        raise TypeError(f"{name}: tensor arguments must come first")
    return Signature(name, tensors, kinds, positional=positional, required=required, defaults=defaults)


# ---- kinds ----------------------------------------------------------------------------------------
# A kind is ``kind(value, check) -> value``: the value normalised, or TypeError/ValueError.

def _int(v):
    """``v`` as an int if it is an integer (Python, numpy or a 0-d int tensor), else None."""
    if type(v) is int:
        return v
    if isinstance(v, (bool, float, str, bytes, tuple, list)) or v is None or _is_bool(v):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _is_bool(v) -> bool:
    return isinstance(v, bool) or getattr(getattr(v, "dtype", None), "kind", None) == "b" and \
        getattr(v, "shape", None) == ()


def _seq(v):
    """A list/tuple (or other sequence, not a string or tensor) as a tuple, else None."""
    if type(v) is tuple:
        return v
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or hasattr(v, "_aval"):
        return None
    return tuple(v)


def _ints(v):
    """A sequence of integers as a tuple of ints, else None."""
    if type(v) in (tuple, list) and all(type(a) is int for a in v):
        return tuple(v)
    s = _seq(v)
    if s is None:
        return None
    out = tuple(_int(a) for a in s)
    return None if any(a is None for a in out) else out


def BOOL(v, c: Check):
    """True or False (numpy bools too)."""
    if v is True or v is False:
        return v
    if not _is_bool(v):
        raise c.type_error("a bool", v)
    return bool(v)


def NUMBER(v, c: Check):
    """A Python or numpy scalar number."""
    if isinstance(v, (str, bytes)) or not isinstance(v, Number) and not (hasattr(v, "dtype") and
                                                                        getattr(v, "shape", None) == ()):
        raise c.type_error("a number", v)
    return v


def NON_NEGATIVE_INT(v, c: Check):
    """An int >= 0 (``top_k``'s ``k``, ``batch_dims``, ``num_segments``)."""
    i = _int(v)
    if i is None:
        raise c.type_error("an int", v)
    if i < 0:
        raise c.value_error("must be a non-negative integer", v)
    return i


def POSITIVE_INT(v, c: Check):
    """An int > 0."""
    i = _int(v)
    if i is None:
        raise c.type_error("an int", v)
    if i <= 0:
        raise c.value_error("must be a positive integer", v)
    return i


def POSITIVE_PAIR(v, c: Check):
    """An int or a pair of ints, all positive (strides, dilations, window sizes) -> a pair."""
    i = _int(v)
    pair = (i, i) if i is not None else _ints(v)
    if pair is None:
        raise c.type_error("an int or a pair of ints", v)
    if len(pair) != 2:
        raise c.value_error("must be an int or a pair of ints", v)
    if min(pair) <= 0:
        raise c.value_error("must be positive integers", v)
    return pair


def optional(kind):
    """``kind`` or None."""
    def check(v, c: Check):
        return None if v is None else kind(v, c)
    check.__name__ = f"optional({kind.__name__})"
    return check


def one_of(*choices):
    """One of ``choices`` (strings compare as given)."""
    def check(v, c: Check):
        if not any(v == ch and type(v) is type(ch) for ch in choices):
            raise c.value_error("must be one of " + ", ".join(map(repr, choices)), v)
        return v
    check.__name__ = f"one_of{choices}"
    return check


def DTYPE(v, c: Check):
    """A webtensor dtype, its name, a numpy dtype or a Python type (``webtensor.as_dtype``)."""
    try:
        return as_dtype(v)
    except TypeError:
        raise c.type_error(f"a dtype ({', '.join(sorted(DTYPES))})", v) from None


def axis_of(of: str, new: int = 0):
    """One axis of tensor argument ``of`` (of rank r; ``new=1``: of the result, which has one more
    axis), in ``[-(r + new), r + new)`` -> a non-negative int."""
    def check(v, c: Check):
        i = _int(v)
        if i is None:
            raise c.type_error("an int", v)
        r = c.rank(of)
        n = r + new
        if not -n <= i < n:
            where = f"a tensor of rank {r}" if not new else f"a new axis of a tensor of rank {r} ([{-n}, {n}))"
            raise ValueError(f"{c.op}: {c.arg} {i} is out of range for {where}")
        return i % n
    check.__name__ = f"axis_of({of!r})"
    return check


def axes_of(of: str):
    """None (all axes), an int or a sequence of distinct ints, each an axis of ``of`` -> None or a
    sorted tuple of non-negative ints."""
    def check(v, c: Check):
        if v is None:
            return None
        i = _int(v)
        s = (i,) if i is not None else _ints(v)
        if s is None:
            raise c.type_error("an int or a tuple of ints", v)
        n = c.rank(of)
        for a in s:
            if not -n <= a < n:
                raise ValueError(f"{c.op}: {c.arg} {a} is out of range for a tensor of rank {n}")
        out = tuple(sorted(a % n for a in s))
        if len(set(out)) != len(out):
            raise c.value_error("must not contain a repeated axis", v)
        return out
    check.__name__ = f"axes_of({of!r})"
    return check


def perm_of(of: str):
    """None or a permutation of the axes of ``of`` (negative entries count from the end)."""
    def check(v, c: Check):
        if v is None:
            return None
        s = _ints(v)
        if s is None:
            raise c.type_error("a sequence of ints", v)
        n = c.rank(of)
        out = tuple(a % n if -n <= a < n else a for a in s)
        if sorted(out) != list(range(n)):
            raise c.value_error(f"must be a permutation of the axes of a tensor of shape {tuple(c.bound[of].shape)}",
                                tuple(s))
        return out
    check.__name__ = f"perm_of({of!r})"
    return check


def _shape(v, c: Check, inferred: bool):
    i = _int(v)
    s = (i,) if i is not None else _ints(v)
    if s is None and _seq(v) is not None and any(isinstance(d, Dim) for d in _seq(v)):
        s = _symbolic_shape(_seq(v))     # symbolic sizes (a None dimension of an input_signature)
    if s is None:
        raise c.type_error("an int or a sequence of ints", v)
    if any(d < -int(inferred) for d in s if not isinstance(d, Dim)) or s.count(-1) > 1:
        raise c.value_error("must hold non-negative sizes" + (" and at most one -1" if inferred else ""), s)
    return s


def _symbolic_shape(s):
    out = tuple(d if isinstance(d, Dim) else _int(d) for d in s)
    return None if any(d is None for d in out) else out


def SHAPE(v, c: Check):
    """A shape: an int or a sequence of non-negative ints -> a tuple."""
    return _shape(v, c, False)


def NEW_SHAPE(v, c: Check):
    """A reshape target: an int or a sequence of ints, non-negative but for at most one -1."""
    return _shape(v, c, True)


def ints_per_axis_of(of: str, nonzero: bool = False, minimum: int | None = None):
    """A sequence of at most rank-of-``of`` ints (slice bounds, steps) -> a tuple; None allowed."""
    def check(v, c: Check):
        if v is None:
            return None
        s = _ints(v)
        if s is None:
            raise c.type_error("a sequence of ints", v)
        n = c.rank(of)
        if len(s) > n:
            raise c.value_error(f"must have at most {n} entries (one per axis of a tensor of rank {n})", s)
        if nonzero and 0 in s:
            raise c.value_error("must be nonzero integers", s)
        if minimum is not None and any(a < minimum for a in s):
            raise c.value_error(f"must be integers >= {minimum}", s)
        return s
    check.__name__ = f"ints_per_axis_of({of!r})"
    return check


def _pairs(v, c: Check, what: str):
    s = _seq(v)
    pairs = tuple(_ints(p) for p in s) if s is not None else None
    if pairs is None or any(p is None or len(p) != 2 for p in pairs):
        raise c.type_error(what, v)
    if any(a < 0 for p in pairs for a in p):
        raise c.value_error("must be pairs of non-negative ints", v)
    return pairs


def paddings_of(of: str):
    """One non-negative ``(before, after)`` pair of ints per axis of ``of`` -> a tuple of pairs."""
    def check(v, c: Check):
        pairs = _pairs(v, c, "(before, after) pairs of ints")
        if len(pairs) != c.rank(of):
            raise c.value_error(f"must have one (before, after) pair per axis of a tensor of shape "
                                f"{tuple(c.bound[of].shape)}", v)
        return pairs
    check.__name__ = f"paddings_of({of!r})"
    return check


def PADS(v, c: Check):
    """Explicit 2-D padding ``((top, bottom), (left, right))``, non-negative ints."""
    pairs = _pairs(v, c, "((top, bottom), (left, right)) pairs of ints")
    if len(pairs) != 2:
        raise c.value_error("must be ((top, bottom), (left, right))", v)
    return pairs


def PADDING(v, c: Check):
    """TF's 2-D padding: 'valid', 'same' (any case) or explicit ``((top, bottom), (left, right))``."""
    if isinstance(v, str):
        if v.lower() not in ("valid", "same"):
            raise c.value_error("must be 'valid', 'same' or ((top, bottom), (left, right))", v)
        return v.lower()
    try:
        return PADS(v, c)
    except TypeError:
        raise c.type_error("'valid', 'same' or ((top, bottom), (left, right))", v) from None


def TENSORS(v, c: Check):
    """A non-empty sequence of tensors (converted): ``concat``/``stack``'s ``values``."""
    return _tensor_list(v, c)


def _tensor_list(v, c: Check):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise c.type_error("a sequence of tensors", v)
    out = [as_tensor(t) for t in v]
    if not out:
        raise c.value_error("must be a non-empty sequence of tensors", v)
    return out

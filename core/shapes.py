"""Shape rules shared by all ops: numpy broadcasting and axis normalisation."""
from __future__ import annotations

from math import prod

Shape = tuple[int, ...]


def broadcast_shapes(*shapes: Shape, op: str = "op") -> Shape:
    """numpy broadcasting (https://numpy.org/doc/stable/user/basics.broadcasting.html).

    Raises:
        ValueError: naming the op and the shapes when they do not broadcast.
    """
    if len(shapes) == 2:                # fast paths for what nearly every binary op sees
        a, b = shapes
        if a == b or not b:
            return tuple(a)
        if not a:
            return tuple(b)
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError(f"{op}: shapes {', '.join(map(str, shapes))} are not broadcast-compatible "
                             f"(dimension {i - ndim}: sizes {sorted(dims)})")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, ndim: int, op: str = "op") -> int:
    """A possibly negative axis as a non-negative one. Raises ValueError if out of range."""
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim


def normalize_axes(axis, ndim: int, op: str = "op") -> tuple[int, ...]:
    """``None`` (all axes), an int or a sequence of ints as a sorted tuple of distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    axes = tuple(sorted(normalize_axis(a, ndim, op) for a in axis))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return axes


def normalize_pair(v, name: str) -> tuple[int, int]:
    """An int or a pair of ints (kernel size, strides, dilations) as a pair; ``ValueError`` otherwise."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v}")
    return v


def strides_of(shape: Shape) -> Shape:
    """Row-major element strides of a contiguous tensor."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def size_of(shape: Shape) -> int:
    return prod(shape)


class SymbolicSizeError(TypeError):
    """A symbolic size (:class:`Dim`) was used where its value is needed (``int()``, ``bool()``, an
    undecidable comparison or division)."""


class Dim:
    """A symbolic size: a polynomial with int coefficients in named sizes known only at run time
    (``None`` dimensions of a :class:`~webtensor.TensorSpec`). Shape rules compute with it as with
    an int (``+``, ``-``, ``*``, ``//`` by an int dividing every coefficient); equal polynomials are
    equal and hash alike, so ``B * 784 == (B * 28) * 28``. An expression without symbols is a plain
    int. What needs the value (``int()``, comparisons, ``bool()``) raises TypeError: the value is
    only known when the graph is specialised for concrete sizes (:meth:`evaluate`).

    Args:
        name: the symbol's name (``Dim("batch")``).
    """
    __slots__ = ("terms",)

    def __init__(self, name: str):
        self.terms = (((name,), 1),)     # sorted ((symbols, sorted, repeated for powers), coefficient)

    @staticmethod
    def _of(terms: dict):
        terms = {m: c for m, c in terms.items() if c}
        if not any(terms):                              # no symbols left: a plain int
            return terms.get((), 0)
        d = Dim.__new__(Dim)
        d.terms = tuple(sorted(terms.items()))
        return d

    @staticmethod
    def _terms(x) -> dict:
        if isinstance(x, Dim):
            return dict(x.terms)
        if isinstance(x, int) and not isinstance(x, bool):
            return {(): x}
        return None

    def __add__(self, other):
        o = Dim._terms(other)
        if o is None:
            return NotImplemented
        t = dict(self.terms)
        for m, c in o.items():
            t[m] = t.get(m, 0) + c
        return Dim._of(t)

    __radd__ = __add__

    def __neg__(self):
        return Dim._of({m: -c for m, c in self.terms})

    def __sub__(self, other):
        return self + (-other) if Dim._terms(other) is not None else NotImplemented

    def __rsub__(self, other):
        return (-self) + other if Dim._terms(other) is not None else NotImplemented

    def __mul__(self, other):
        o = Dim._terms(other)
        if o is None:
            return NotImplemented
        t: dict = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.items():
                m = tuple(sorted(m1 + m2))
                t[m] = t.get(m, 0) + c1 * c2
        return Dim._of(t)

    __rmul__ = __mul__

    def _exact_div(self, other):
        """``self / other`` when ``other`` (an int > 0, or a one-term Dim) divides every term exactly
        (``36*b / b == 36``), else None."""
        if isinstance(other, int) and not isinstance(other, bool):
            if other <= 0:
                return None
            dm, dc = (), other
        elif isinstance(other, Dim) and len(other.terms) == 1 and other.terms[0][1] > 0:
            dm, dc = other.terms[0]
        else:
            return None
        out = {}
        for m, c in self.terms:
            rest = list(m)
            for sym in dm:
                if sym not in rest:
                    return None
                rest.remove(sym)
            if c % dc:
                return None
            out[tuple(rest)] = c // dc
        return Dim._of(out)

    def __floordiv__(self, other):
        q = self._exact_div(other)
        if q is None:
            raise SymbolicSizeError(f"symbolic size {self} // {other!r}: only exact division by an int or a "
                                    "symbol that divides it is known before run time")
        return q

    def __mod__(self, other):
        if self._exact_div(other) is None:
            raise SymbolicSizeError(f"symbolic size {self} % {other!r} is not known before run time")
        return 0

    def __rfloordiv__(self, other):
        q = Dim._terms(other)
        if q is None:
            return NotImplemented
        return _div_by_dim(other, self)

    def __rmod__(self, other):
        if Dim._terms(other) is None:
            return NotImplemented
        _div_by_dim(other, self)
        return 0

    def __eq__(self, other):
        return isinstance(other, Dim) and self.terms == other.terms

    def __hash__(self):
        return hash(("Dim", self.terms))

    def _unknown(self, *_):
        raise SymbolicSizeError(f"the symbolic size {self} has no value before run time (a None dimension of an "
                        "input_signature); compute with it as a size, or use webtensor.shape(x) for its value")

    __int__ = __index__ = __bool__ = __float__ = _unknown

    # Comparisons with an int are answered where every value agrees (symbols are sizes, >= 0:
    # ``d < 0`` is False), else raise as ``int()`` does.
    def _low(self):
        """A lower bound of every value (None if not known: a negative coefficient)."""
        if any(c < 0 for m, c in self.terms if m):
            return None
        return dict(self.terms).get((), 0)

    def _compare(self, k, when_low_ge, answer):
        low = self._low() if isinstance(k, int) else None
        if low is not None and (low >= k if when_low_ge else low > k):
            return answer
        self._unknown()

    def __lt__(self, k):
        return self._compare(k, True, False)

    def __ge__(self, k):
        return self._compare(k, True, True)

    def __gt__(self, k):
        return self._compare(k, False, True)

    def __le__(self, k):
        return self._compare(k, False, False)

    def evaluate(self, sizes: dict) -> int:
        """The size for concrete symbol values ``sizes`` (``{name: int}``). Raises KeyError for an
        unbound symbol."""
        total = 0
        for m, c in self.terms:
            for s in m:
                c *= sizes[s]
            total += c
        return total

    def __repr__(self):
        parts = []
        for m, c in self.terms:
            p = "*".join(m)
            parts.append(p if c == 1 else f"{c}" if not m else f"{c}*{p}")
        return " + ".join(parts)


def _div_by_dim(n: int, d: "Dim"):
    raise SymbolicSizeError(f"{n} // {d}: the symbolic size {d} has no value before run time")


def is_symbolic(shape) -> bool:
    """Whether ``shape`` holds a :class:`Dim`."""
    return any(isinstance(d, Dim) for d in shape)


def evaluate_shape(shape, sizes: dict) -> Shape:
    """``shape`` with each :class:`Dim` replaced by its value for ``sizes``."""
    return tuple(d.evaluate(sizes) if isinstance(d, Dim) else d for d in shape)

"""The kernel IR: what every op's kernel is described in, and what backends lower.

A kernel is a loop nest over an index *space* (a tuple of extents) computing one
scalar expression per point and storing it to one contiguous row-major output:

- ``map``:    ``out[i0..in] = expr``                          (space == out.shape)
- ``reduce``: ``out[i0..ik] = combine over j of expr(i, j)``  (space == out.shape + reduced extents)

The expression is a DAG of :class:`Expr` nodes over a small vocabulary
(:data:`UNARY`, :data:`BINARY`, ``where``, ``cast``, ``const``, ``idx``, ``load``).
Semantics every backend implements (this module's :func:`evaluate` is their oracle): ``cast``
float -> int truncates toward zero, saturates to int32's range and maps NaN to 0; ``max``/``min``
(binary and as combiners) propagate NaN, as numpy's ``maximum``/``max``; argmax/argmin pick the
first NaN; comparisons with NaN are false except ``ne``.
A ``load`` reads input buffer *k* at a multi-dimensional index whose entries are
integer expressions of the loop indices (``idx(d)``) — so broadcasting, transposes,
slicing, padding, gathers and im2col are all plain ``map`` kernels, and a chain of
elementwise ops fuses by substituting one kernel's expression into another's load.
Loads are in bounds by construction (ops clamp computed indices).

A ``reduce`` kernel may carry an *epilogue* (``Kernel.epilogue``, set by ``core/compile.py``): a
``map`` kernel over the output's shape that consumes the reduced value, computed before the store
(``relu(x @ w + b)`` is one kernel). Its inputs are the reduce kernel's inputs plus one more, the
reduced value (``Kernel.acc``: ``load(acc, output index)``), so its loads share the kernel's input
numbering. A backend computes ``epilogue(reduced value)`` with exactly the float operations the
map would run on the stored value, so fusing one changes no result.

A ``map`` kernel may carry *siblings* (``Kernel.siblings``, also set by ``core/compile.py``): map
kernels over the same space and inputs, each stored to an output of its own by the same loop
(Adam's new moments beside the new weights: one dispatch instead of three).

A map kernel, or a reduction with an epilogue, may write an output *in place* (``Kernel.inplace``:
``(input k, output j)`` pairs, output 0 the kernel's own, ``j`` its sibling ``j``; set by the
exporters from the buffer plan, ``core.runtime.artifacts.plan_signature``): input ``k`` is then
output ``j``'s buffer. The plan allows it only where every element of ``k`` is read at its own
index, before it is written, and by no part of the kernel stored after output ``j``
(``core.compile.writes_in_place``), so the values are those of separate buffers; WebGPU, which may
not bind one buffer read-only and writable in one dispatch, reads ``k`` through the output's
binding, and the wasm lowering of a reduction keeps its reduced values in scratch, not in the output.

Heavy kernels carry an optional ``template`` hint (``'matmul'``) with parameters;
a backend that has a tuned template for it uses that, any other backend lowers the
generic form, which is always present and always correct. Backends know this
vocabulary, never op names (docs/architecture.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .dtypes import DType, bool_, float32, int32, result_type, dtype_of_scalar

UNARY = ("neg", "abs", "exp", "log", "sqrt", "sin", "cos", "tanh", "erf", "floor", "ceil", "round", "not")
BINARY = ("add", "sub", "mul", "div", "idiv", "mod", "max", "min", "pow",
          "lt", "le", "eq", "ne", "gt", "ge", "and", "or")
COMPARISONS = ("lt", "le", "eq", "ne", "gt", "ge")
COMBINERS = ("sum", "prod", "max", "min", "argmax", "argmin")
KINDS = frozenset(UNARY + BINARY + ("where", "cast", "const", "idx", "load"))


@dataclass(frozen=True)
class Expr:
    """One node of a scalar expression, of one of the :data:`KINDS`. ``arg`` holds the constant
    value (const), the loop dimension (idx), the input number (load) — never anything else.

    A backend that needs node kinds of its own while lowering (an address computation, a load at
    a flat offset) defines them in a subclass that sets ``KINDS`` (``wasm/ir.py``): they share
    this class's hashing and traversals (``core/simplify.py``) but are never core ``Expr`` nodes."""
    op: str
    dtype: DType
    args: tuple["Expr", ...] = ()
    arg: Any = None
    _hash: int = field(default=0, compare=False, repr=False)
    KINDS: ClassVar[frozenset] = KINDS

    def __post_init__(self):
        if self.op not in self.KINDS:
            raise ValueError(f"{type(self).__name__} has no node kind {self.op!r}")
        object.__setattr__(self, "_hash", hash((self.op, self.dtype.name, self.args, self.arg)))

    def __hash__(self):
        return self._hash

    # Operators make op definitions read like math: 0.5 * x * (1 + tanh(x)).
    def _bin(self, op, other, swap=False):
        a, b = (lift(other, self.dtype), self) if swap else (self, lift(other, self.dtype))
        return binary(op, a, b)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __floordiv__(self, o): return self._bin("idiv", o)
    def __mod__(self, o): return self._bin("mod", o)
    def __neg__(self): return unary("neg", self)
    def __lt__(self, o): return self._bin("lt", o)
    def __le__(self, o): return self._bin("le", o)
    def __gt__(self, o): return self._bin("gt", o)
    def __ge__(self, o): return self._bin("ge", o)

    def __str__(self) -> str:
        if self.op == "const":
            return repr(self.arg)
        if self.op == "idx":
            return f"i{self.arg}"
        if self.op == "load":
            return f"in{self.arg}[{', '.join(map(str, self.args))}]"
        if self.op == "cast":
            return f"{self.dtype.name}({self.args[0]})"
        return f"{self.op}({', '.join(map(str, self.args))})"


def const(value, dtype: DType | None = None) -> Expr:
    dtype = dtype or dtype_of_scalar(value)
    value = bool(value) if dtype.kind == "b" else int(value) if dtype.kind == "i" else float(value)
    return Expr("const", dtype, (), value)


def lift(v, dtype: DType) -> Expr:
    return v if isinstance(v, Expr) else const(v, dtype)


def idx(dim: int) -> Expr:
    """The loop index along dimension ``dim`` of the kernel's space (int32)."""
    return Expr("idx", int32, (), dim)


def load(input_index: int, index: tuple[Expr | int, ...], dtype: DType) -> Expr:
    """Input buffer ``input_index`` (of dtype ``dtype``) at a multi-dimensional index."""
    return Expr("load", dtype, tuple(lift(i, int32) for i in index), input_index)


def cast(x: Expr, dtype: DType) -> Expr:
    return x if x.dtype == dtype else Expr("cast", dtype, (x,))


def unary(op: str, x: Expr) -> Expr:
    assert op in UNARY, op
    return Expr(op, bool_ if op == "not" else x.dtype, (x,))


def binary(op: str, a: Expr, b: Expr) -> Expr:
    assert op in BINARY, op
    if a.dtype != b.dtype:
        t = result_type(a.dtype, b.dtype)
        a, b = cast(a, t), cast(b, t)
    out = bool_ if op in COMPARISONS or op in ("and", "or") else a.dtype
    return Expr(op, out, (a, b))


def where(c: Expr, a: Expr | float, b: Expr | float) -> Expr:
    dt = a.dtype if isinstance(a, Expr) else b.dtype if isinstance(b, Expr) else dtype_of_scalar(a)
    a, b = lift(a, dt), lift(b, dt)
    if a.dtype != b.dtype:
        t = result_type(a.dtype, b.dtype)
        a, b = cast(a, t), cast(b, t)
    return Expr("where", a.dtype, (c, a, b))


# Short names for op definitions.
def exp(x): return unary("exp", x)
def log(x): return unary("log", x)
def sqrt(x): return unary("sqrt", x)
def tanh(x): return unary("tanh", x)
def erf(x): return unary("erf", x)
def maximum(a, b): return binary("max", a, lift(b, a.dtype))
def minimum(a, b): return binary("min", a, lift(b, a.dtype))
def clamp(x, lo, hi): return minimum(maximum(x, lo), hi)


@dataclass(frozen=True)
class Buffer:
    """A kernel operand or result: a contiguous row-major array."""
    shape: tuple[int, ...]
    dtype: DType


@dataclass(frozen=True)
class Kernel:
    """A loop nest (see the module docstring). ``inputs[k]`` is what ``load(k, ...)`` reads."""
    kind: str                      # 'map' | 'reduce'
    inputs: tuple[Buffer, ...]
    out: Buffer
    space: tuple[int, ...]
    expr: Expr
    combiner: str | None = None    # reduce only; one of COMBINERS
    template: str | None = None    # optional hint for a tuned lowering, e.g. 'matmul'
    params: tuple = ()             # the template's parameters, as sorted (key, value) pairs
    epilogue: "Kernel | None" = None   # reduce only: a map applied to the reduced value (module docstring)
    siblings: tuple = ()           # map only: further map kernels (same space and inputs), own outputs
    inplace: tuple = ()            # (input, output) pairs sharing a buffer (module docstring)

    @property
    def n_reduce(self) -> int:
        return len(self.space) - len(self.out.shape)

    @property
    def acc(self) -> int:
        """The epilogue's input number of the reduced value: one past the kernel's inputs."""
        return len(self.inputs)

    def loaded(self) -> set[int]:
        """The inputs that the kernel's expression or its epilogue read."""
        exprs = [self.expr] + ([self.epilogue.expr] if self.epilogue is not None else []) + \
            [k.expr for k in self.siblings]
        out, stack, seen = set(), exprs, set()
        while stack:
            e = stack.pop()
            if e not in seen:
                seen.add(e)
                if e.op == "load":
                    out.add(e.arg)
                stack.extend(e.args)
        out.discard(self.acc if self.epilogue is not None else -1)
        return out

    def param(self, key, default=None):
        return dict(self.params).get(key, default)

    def __str__(self) -> str:
        head = f"{self.kind}{'/' + self.combiner if self.combiner else ''} space={self.space}"
        ins = ", ".join(f"in{k}:{b.dtype.name}{list(b.shape)}" for k, b in enumerate(self.inputs))
        tmpl = f" template={self.template}{dict(self.params)}" if self.template else ""
        epi = f"\n  epilogue(in{self.acc}): {self.epilogue.expr}" if self.epilogue is not None else ""
        epi += "".join(f"\n  sibling -> {k.out.dtype.name}{list(k.out.shape)}: {k.expr}" for k in self.siblings)
        epi += f"\n  in place (input, output): {list(self.inplace)}" if self.inplace else ""
        return f"{head} ({ins}) -> {self.out.dtype.name}{list(self.out.shape)}{tmpl}\n  {self.expr}{epi}"


def map_kernel(inputs, out: Buffer, expr: Expr) -> Kernel:
    return Kernel("map", tuple(inputs), out, tuple(out.shape), cast(expr, out.dtype))


def reduce_kernel(inputs, out: Buffer, reduced: tuple[int, ...], expr: Expr, combiner: str,
                  template: str | None = None, params: dict | None = None) -> Kernel:
    assert combiner in COMBINERS, combiner
    if combiner not in ("argmax", "argmin"):
        expr = cast(expr, out.dtype)
    return Kernel("reduce", tuple(inputs), out, tuple(out.shape) + tuple(reduced), expr, combiner,
                  template, tuple(sorted((params or {}).items())))


# ---- index helpers used by op definitions --------------------------------------------------

def broadcast_index(in_shape, out_dims: list[Expr], out_ndim: int | None = None) -> tuple[Expr, ...]:
    """Index into an input of ``in_shape`` broadcast (numpy rules) against output indices."""
    n = len(out_dims) if out_ndim is None else out_ndim
    lead = n - len(in_shape)
    return tuple(const(0, int32) if d == 1 else out_dims[lead + k] for k, d in enumerate(in_shape))


def linear_index(dims: list[Expr], shape) -> Expr:
    """Row-major linear offset of a multi-index into ``shape``."""
    lin = const(0, int32)
    for e, d in zip(dims, shape):
        lin = lin * d + e if lin.op != "const" or lin.arg != 0 else e
    return lin


def unravel(lin: Expr, shape) -> tuple[Expr, ...]:
    """Multi-index of a row-major linear offset into ``shape``."""
    out, stride = [], 1
    for d in reversed(shape):
        out.append(const(0, int32) if d == 1 else (lin // stride) % d if stride > 1 else lin % d)
        stride *= d
    return tuple(reversed(out))


# ---- the oracle for the IR itself: a vectorised numpy evaluator ------------------------------

_NP_UNARY = {"neg": "negative", "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "sin": "sin",
             "cos": "cos", "tanh": "tanh", "floor": "floor", "ceil": "ceil", "round": "rint",
             "not": "logical_not"}
_NP_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide",
              "idiv": "floor_divide", "mod": "mod", "max": "maximum", "min": "minimum", "pow": "power",
              "lt": "less", "le": "less_equal", "eq": "equal", "ne": "not_equal", "gt": "greater",
              "ge": "greater_equal", "and": "logical_and", "or": "logical_or"}


def evaluate(kernel: Kernel, arrays: list) -> Any:
    """Run a kernel with numpy (tests use this to check every op's kernel against its reference).

    Args:
        kernel: the kernel.
        arrays: one numpy array per ``kernel.inputs`` entry, of that shape.
    Returns:
        A numpy array of ``kernel.out.shape`` and dtype.
    """
    import numpy as np
    from .numpy_util import np_dtype, erf as np_erf, float_to_int32

    space = kernel.space
    nd = len(space)
    memo: dict[Expr, Any] = {}

    def ev(e: Expr):
        if e in memo:
            return memo[e]
        if e.op == "const":
            r = np.array(e.arg, dtype=np_dtype(e.dtype))
        elif e.op == "idx":
            shape = [1] * nd
            shape[e.arg] = space[e.arg]
            r = np.arange(space[e.arg], dtype=np.int32).reshape(shape)
        elif e.op == "load":
            ix = [np.asarray(ev(a)) for a in e.args]
            src = arrays[e.arg]
            if ix:
                ix = np.broadcast_arrays(*ix)
                for k, a in enumerate(ix):
                    if a.size and (a.min() < 0 or a.max() >= src.shape[k]):
                        raise IndexError(f"kernel loads input {e.arg} out of bounds on axis {k}: {kernel}")
                r = src[tuple(ix)]
            else:
                r = src.reshape(())
        elif e.op == "cast":
            r = ev(e.args[0])
            r = float_to_int32(r) if e.dtype.kind == "i" and r.dtype.kind == "f" else r.astype(np_dtype(e.dtype))
        elif e.op == "where":
            c, a, b = (ev(x) for x in e.args)
            r = np.where(c, a, b).astype(np_dtype(e.dtype))
        elif e.op == "erf":
            r = np_erf(ev(e.args[0]))
        elif e.op in _NP_UNARY:
            with np.errstate(all="ignore"):
                r = getattr(np, _NP_UNARY[e.op])(ev(e.args[0]))
        else:
            a, b = ev(e.args[0]), ev(e.args[1])
            with np.errstate(all="ignore"):
                if e.op == "div" and e.dtype.kind != "f":
                    r = np.floor_divide(a, b)
                else:
                    r = getattr(np, _NP_BINARY[e.op])(a, b)
        r = np.asarray(r)
        if e.op not in ("idx",) and r.dtype != np_dtype(e.dtype):
            r = r.astype(np_dtype(e.dtype))
        memo[e] = r
        return r

    if kernel.epilogue is not None:
        plain = evaluate(Kernel(kernel.kind, kernel.inputs, kernel.out, space, kernel.expr, kernel.combiner), arrays)
        return evaluate(kernel.epilogue, list(arrays) + [plain])
    val = np.broadcast_to(ev(kernel.expr), space)
    if kernel.kind == "map":
        return np.array(val, dtype=np_dtype(kernel.out.dtype), order="C")  # ascontiguousarray makes 0-d 1-d
    k = kernel.n_reduce
    axes = tuple(range(nd - k, nd))
    if kernel.combiner in ("argmax", "argmin"):
        flat = val.reshape(val.shape[: nd - k] + (-1,))
        r = (np.argmax if kernel.combiner == "argmax" else np.argmin)(flat, axis=-1)
    else:
        fn = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[kernel.combiner]
        if val.size == 0 and kernel.combiner in ("max", "min"):
            raise ValueError("reduction of an empty extent has no identity")
        r = fn(val, axis=axes)
    return np.asarray(r).astype(np_dtype(kernel.out.dtype)).reshape(kernel.out.shape)

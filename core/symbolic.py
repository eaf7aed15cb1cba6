"""Graphs with symbolic sizes: specialising a graph traced with :class:`~webtensor.core.shapes.Dim`
sizes (the ``None`` dimensions of an ``input_signature``) for concrete sizes.

A graph is traced once with symbolic input shapes; each op's ``infer`` computes with the symbols
(``Dim`` is a polynomial), and attributes that hold sizes (``reshape``'s target, ``broadcast_to``'s
shape) hold ``Dim`` values. :func:`specialize` binds the symbols from the concrete input shapes,
substitutes them into every attribute and re-runs each op's ``infer`` on concrete avals: the
result is an ordinary fixed-shape graph that the passes and devices compile as before. Values that
depend on a size (``mean``'s ``1 / n``, ``webtensor.shape``) are computed in the graph from
``broadcast_to`` of a constant (``size_value``), so they take the run-time size and constant-fold
after specialisation.
"""
from __future__ import annotations

from .control import TupleAval, is_control
from .graph import Graph, Node, Value
from .op import Aval
from .shapes import Dim, evaluate_shape, is_symbolic


def bind(symbolic: list, concrete: list, what: str = "input") -> dict:
    """``{symbol: size}`` from the symbolic input shapes (each ``Dim`` a lone symbol) and the
    concrete ones. Raises ValueError when a shape does not match or one symbol gets two sizes."""
    sizes: dict = {}
    for i, (s, c) in enumerate(zip(symbolic, concrete)):
        if len(s) != len(c):
            raise ValueError(f"{what} {i}: expected rank {len(s)} (shape {_fmt(s)}), got shape {tuple(c)}")
        for d, n in zip(s, c):
            if isinstance(d, Dim):
                (name,), _ = d.terms[0]
                if sizes.setdefault(name, n) != n:
                    raise ValueError(f"{what} {i}: size {name} is {sizes[name]} elsewhere, {n} here")
            elif d != n:
                raise ValueError(f"{what} {i}: expected shape {_fmt(s)}, got {tuple(c)}")
    return sizes


def _fmt(shape) -> str:
    dims = ", ".join("None" if isinstance(d, Dim) else str(d) for d in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _subst(x, sizes):
    if isinstance(x, Dim):
        return x.evaluate(sizes)
    if isinstance(x, Graph):            # a control node's branch, loop condition or body
        return specialize(x, sizes)
    if type(x) is tuple:
        return tuple(_subst(a, sizes) for a in x)
    if type(x) is list:
        return [_subst(a, sizes) for a in x]
    return x


def graph_is_symbolic(g: Graph) -> bool:
    """Whether any value of ``g`` has a symbolic size."""
    return any(is_symbolic(v.aval.shape) for v in g.inputs) or any(is_symbolic(n.out.aval.shape) for n in g.nodes)


def specialize(g: Graph, sizes: dict) -> Graph:
    """``g`` with every symbol replaced by its size in ``sizes``: new values with concrete avals,
    each node's attributes substituted and its ``infer`` re-run (which raises the op's own error for
    sizes that do not fit, e.g. a reshape). Constants and captures are shared with ``g``. A
    control-flow node (``core/control.py``) has its sub-graphs (branches, loop condition and body,
    traced with the same symbols) specialised the same way, its ``maximum_iterations`` evaluated
    (a ``scan`` over a None axis), and its results' avals evaluated; a ``get`` takes its part.
    """
    env: dict[Value, Value] = {}

    def new(v: Value, aval: Aval | None = None) -> Value:
        nv = env[v] = Value(aval or Aval(evaluate_shape(v.aval.shape, sizes), v.aval.dtype))
        return nv

    out = Graph(inputs=[new(v) for v in g.inputs], captures=[(new(v), k) for v, k in g.captures])
    for v, data in g.consts.items():
        out.consts[new(v)] = data
    for n in g.nodes:
        ins = [env[v] for v in n.inputs]
        attrs = {k: _subst(a, sizes) for k, a in n.attrs.items()}
        if is_control(n.op) and n.op.kind == "get":
            aval = ins[0].aval.avals[attrs["index"]]
        elif is_control(n.op):
            aval = TupleAval(tuple(Aval(evaluate_shape(a.shape, sizes), a.dtype) for a in n.out.aval.avals))
        else:
            aval = n.op.infer(*(v.aval for v in ins), **attrs)
        out.nodes.append(Node(n.op, ins, attrs, new(n.out, aval)))
    out.outputs = [env[v] for v in g.outputs]
    out.updates = [(k, env[v]) for k, v in g.updates]
    return out


# ---- independent rows ---------------------------------------------------------------------------
#
# A signature's rows are independent along a symbolic size ``b`` when every row of each output
# depends only on the same row of the inputs: then running it on chunks of rows (padding the last)
# and concatenating is exact, which is how artifacts compiled for a fixed chunk serve any batch.
# The proof is a forward pass over the graph: each value is "free" (no b in its shape: the same for
# every row), "rows k" (shape (k*b, concrete...): rows of the input come in contiguous groups of k),
# or "mixed" (anything else). Each op keeps rows only under a rule of its own (below); every other
# op, or any rule not met, makes its result mixed. Conservative by construction: an op not listed
# is mixed.

_ROWWISE_UNARY = {"abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cast", "ceil", "cos", "cosh", "elu",
                  "erf", "erfc", "exp", "expm1", "floor", "gelu_erf", "gelu_tanh", "identity", "is_finite", "is_inf",
                  "is_nan", "leaky_relu", "log", "log1p", "logical_not", "neg", "reciprocal", "relu", "relu6",
                  "round", "rsqrt", "selu", "sigmoid", "sign", "silu", "sin", "sinh", "softplus", "softsign",
                  "sqrt", "square", "stop_gradient", "tan", "tanh"}
_ROWWISE_NARY = {"add", "atan2", "div", "equal", "floormod", "greater", "greater_equal", "less", "less_equal",
                 "logical_and", "logical_or", "logical_xor", "maximum", "minimum", "mul", "not_equal", "pow", "sub",
                 "truncatemod", "where"}
_FREE, _MIXED = 0, -1       # else the state is k >= 1: rows come in groups of k


def _state(shape, symbol: str) -> int:
    if not is_symbolic(shape):
        return _FREE
    d = shape[0]
    if isinstance(d, Dim) and len(d.terms) == 1 and d.terms[0][0] == (symbol,) and d.terms[0][1] > 0 and \
            not is_symbolic(shape[1:]):
        return d.terms[0][1]
    return _MIXED


def _keeps_rows(n: Node, ins: list[int], out: int) -> bool:
    """Whether node ``n`` (input states ``ins``, output state ``out`` >= 1) keeps rows apart."""
    name, a = n.op.name, n.attrs
    rank = len(n.out.aval.shape)
    rows = [(s, len(v.aval.shape)) for s, v in zip(ins, n.inputs) if s != _FREE]
    same = all(s == out and r == rank for s, r in rows)     # every batched input aligned with the output
    if name in _ROWWISE_UNARY or name in _ROWWISE_NARY:
        return same
    if name == "one_hot":
        return ins == [out] and a["axis"] % rank != 0
    if name == "reshape":
        return True                     # row-major: groups of whole rows stay whole rows
    if name.startswith("reduce_"):
        return ins == [out] and 0 not in a["axes"]
    if name in ("argmax", "argmin", "cumulative", "sort_rank"):
        return ins == [out] and a["axis"] % len(n.inputs[0].aval.shape) != 0
    if name == "transpose":
        return same and a["perm"][0] == 0
    if name == "broadcast_to":
        return same
    if name == "concat":
        return same and len(rows) == len(ins) and a["axis"] % rank != 0
    if name == "pad":
        return same and tuple(a["paddings"][0]) == (0, 0)
    if name == "slice":
        start, _, step = a["spec"][0]
        return same and start == 0 and step == 1 and n.out.aval.shape[0] == n.inputs[0].aval.shape[0]
    if name == "extract_patches":       # NHWC patches: the batch axis is never padded nor strided
        return ins == [1] and out == 1
    if name in ("conv2d_direct", "depthwise_conv2d_native"):   # each image alone, filters shared by all
        return ins == [1, _FREE] and out == 1
    if name in ("matmul", "quantized_matmul"):
        lhs = ins[0] != _FREE and not a["transpose_a"] and (len(n.inputs[0].aval.shape) > 2 or ins[0] == out)
        return same and lhs and (ins[1] == _FREE or len(n.inputs[0].aval.shape) > 2)
    if name == "gather":
        params, indices = ins
        return (params == _FREE and indices == out and a["axis"] == 0) or \
            (indices == _FREE and params == out and a["axis"] != 0)
    return False


def _keeps_positions(n: Node, ins: list[int], out: int) -> bool:
    """Whether node ``n``, all of whose inputs hold no input data, gives row ``i`` from rows ``<= i``
    only (a row's position, as counter-based random numbers number their draws): a forward
    running sum over the rows."""
    return n.op.name == "cumulative" and ins == [out] and n.attrs["axis"] % len(n.out.aval.shape) == 0 \
        and not n.attrs.get("reverse", False)


def independent_rows(g: Graph, symbol: str, positions: bool = False) -> str | None:
    """None when the rows of ``g`` along the symbolic size ``symbol`` are independent (see above):
    every input and output has ``symbol`` only in axis 0 (times a constant) and no op mixes rows;
    else the reason (naming the first op that mixes them). A graph that updates variables never
    qualifies (a step's update depends on every row).

    Args:
        g: a graph traced with symbolic sizes.
        symbol: the name of the batch size (a :class:`~webtensor.core.shapes.Dim` symbol).
        positions: also let values computed from no input (constants, variables) number the rows
            with a forward running sum (:func:`_keeps_positions`: Dropout's random draws), so
            row ``i`` may depend on its position. Sound only where rows keep their positions: a
            batch padded at its end, never one split into chunks.
    """
    if g.updates:
        return "it updates variables (from all rows at once)"
    state: dict[Value, int] = {v: _FREE for v in g.consts}
    for v, _ in g.captures:
        state[v] = _FREE
    data = set(g.inputs)           # values computed from the inputs (the others hold no row's data)
    for i, v in enumerate(g.inputs):
        state[v] = _state(v.aval.shape, symbol)
        if state[v] == _MIXED:
            return f"input {i} has shape {v.aval.shape} (the batch size only in axis 0)"
    for n in g.nodes:
        ins = [state[v] for v in n.inputs]
        out = _state(n.out.aval.shape, symbol)
        if any(v in data for v in n.inputs):
            data.add(n.out)
        if _MIXED in ins:
            out = _MIXED
        elif out != _FREE and positions and n.out not in data and _keeps_positions(n, ins, out):
            pass
        elif out != _FREE and not _keeps_rows(n, ins, out):
            return f"{n.op.name} (shape {list(n.out.aval.shape)}) mixes rows along {symbol}"
        elif out == _FREE and any(ins) or out == _FREE and any(isinstance(x, Dim) for x in _flat(n.attrs)):
            return f"{n.op.name} (shape {list(n.out.aval.shape)}) reduces over {symbol} or reads its size"
        state[n.out] = out
    for i, v in enumerate(g.outputs):
        if state[v] in (_FREE, _MIXED):
            return f"output {i} (shape {list(v.aval.shape)}) is not one row per input row"
    return None


def _flat(x):
    if isinstance(x, dict):
        x = tuple(x.values())
    if isinstance(x, (tuple, list)):
        for a in x:
            yield from _flat(a)
    else:
        yield x

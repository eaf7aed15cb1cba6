"""Exporting a symbolic length axis (a sequence's time steps) bounded by a declared maximum
(``docs/artifact.md``, "Symbolic length").

The signature is compiled once for ``maximum`` steps. A loader given ``L <= maximum`` steps pads
every input's length axis with zero rows to ``maximum``, runs the loops that step over the length
(``while`` steps marked ``"length": true``: a traced ``scan``, so an RNN layer) for ``L`` iterations
only, and cuts every output's length axis to ``L``. That is exact when every row ``t < L`` of each
value depends only on rows ``< L`` of the inputs, which :func:`length_section` proves.

The proof compares two traces of the function, at ``maximum`` and at ``maximum + 1`` steps (as
``batch_steps`` compares ``chunk`` and ``chunk + 1`` rows): both graphs must have the same nodes,
and a value whose shape differs between them in one axis ``a`` by ``k`` (``k * maximum`` at the
first) is a *rows* value ``(a, k)``: row ``t`` of the length is the block ``[t*k, (t+1)*k)`` of axis
``a``; a value whose shape does not differ is *free* (it must not depend on the length). A forward
pass keeps rows apart only through the rules of :func:`_follow` (elementwise ops, transposes,
reshapes that keep the blocks, gathers, matmuls and reductions over other axes, slices and pads that
leave the length axis whole or take its first step, broadcasts) and through loops: a loop whose ``maximum_iterations`` is
the length (``maximum`` then ``maximum + 1``) reads rows of its sequences one per iteration, and its
stacked results are rows; its loop variables and operands must be free. A reversal of the whole
length (``webtensor.reverse``) keeps rows but marks them *reversed* (step ``t`` at row ``n - 1 - t``):
row-wise ops may follow, never mixing reversed and time-ordered inputs, and a second reversal
restores time order (``Bidirectional``'s backward sequence); a reversed value may not reach an
output, a loop or a slice by position. Anything else that touches
a rows value (a reduction over the length, a slice of its last step, attention over all steps) is
refused with the op's name, as is any difference between the two traces that is not a size of the
length: a constant (``webtensor.shape`` read in Python), an attribute of a free node, a sub-graph.
"""
from __future__ import annotations

from math import prod

from .core.control import is_control
from .core.graph import Graph, Node
from .core.symbolic import _ROWWISE_NARY, _ROWWISE_UNARY

_FREE = None


class _Refused(Exception):
    pass


def _pair_captures_and_consts(a: Graph, b: Graph, env: dict, state: dict, size: int, device, what: str,
                              hint: str) -> None:
    """Pair the variables and constants of two traces ``a`` and ``b`` of one function (``size`` and
    ``size + 1`` of a symbolic ``what``: "length", "batch size") into ``env`` (a's value -> b's) and
    ``state`` (a's value -> ``_state``); refuses different variables, a fixed-shape constant whose
    values differ (``hint`` says why it may), and a growing constant that is not one repeated value."""
    for (va, ka), (vb, kb) in zip(a.captures, b.captures):
        if ka is not kb:
            raise _Refused(f"its graphs for two {what}s read different variables")
        env[va], state[va] = vb, _FREE
    for (va, da), (vb, db) in zip(a.consts.items(), b.consts.items()):
        env[va], state[va] = vb, _state(va.aval.shape, vb.aval.shape, size)
        ha, hb = bytes(device.to_host_bytes(da, va.aval)), bytes(device.to_host_bytes(db, vb.aval))
        if state[va] is _FREE and ha != hb:
            raise _Refused(f"a constant of shape {list(va.aval.shape)} depends on the {what} ({hint})")
        if state[va] is not _FREE and not (ha and ha == ha[:4] * (len(ha) // 4) and hb == ha[:4] * (len(hb) // 4)):
            raise _Refused(f"a constant of shape {list(va.aval.shape)} that grows with the {what} is not one "
                           "repeated value")


def _state(sa: tuple, sb: tuple, maximum: int):
    """``(axis, k)`` for a value of shape ``sa`` at ``maximum`` steps and ``sb`` at one more, or free."""
    if len(sa) != len(sb):
        raise _Refused(f"a value of shape {list(sa)} changes rank with the length")
    diff = [i for i, (x, y) in enumerate(zip(sa, sb)) if x != y]
    if not diff:
        return _FREE
    k = sb[diff[0]] - sa[diff[0]]
    if len(diff) > 1 or k <= 0 or sa[diff[0]] != k * maximum:
        raise _Refused(f"a value of shape {list(sa)} (then {list(sb)}) does not grow in one axis by a multiple "
                       "of the length")
    return diff[0], k


def _same(a, b, device) -> bool:
    """Attributes equal in both traces (sub-graphs compared node by node)."""
    if isinstance(a, Graph) and isinstance(b, Graph):
        return _same_graph(a, b, device)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y, device) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], device) for k in a)
    return type(a) is type(b) and a == b


def _same_graph(a: Graph, b: Graph, device) -> bool:
    """Whether two traces of a sub-graph (a loop body, a branch) are the same: it reads no length."""
    if len(a.nodes) != len(b.nodes) or len(a.consts) != len(b.consts) or len(a.inputs) != len(b.inputs):
        return False
    if [v.aval for v in a.inputs] != [v.aval for v in b.inputs]:
        return False
    for (va, da), (vb, db) in zip(a.consts.items(), b.consts.items()):
        if va.aval != vb.aval or bytes(device.to_host_bytes(da, va.aval)) != bytes(device.to_host_bytes(db, vb.aval)):
            return False
    if len(a.captures) != len(b.captures) or any(ka is not kb for (_, ka), (_, kb) in zip(a.captures, b.captures)):
        return False
    env = dict(zip(a.inputs, b.inputs))
    env.update(zip([v for v, _ in a.captures], [v for v, _ in b.captures]))
    env.update(zip(a.consts, b.consts))
    for na, nb in zip(a.nodes, b.nodes):
        if na.op is not nb.op or na.out.aval != nb.out.aval or [env.get(v) for v in na.inputs] != nb.inputs or \
                not _same(na.attrs, nb.attrs, device):
            return False
        env[na.out] = nb.out
    return [env.get(v) for v in a.outputs] == b.outputs


def _follow(n: Node, nb: Node, ins: list, out, device) -> bool:
    """Whether node ``n`` (``nb`` in the longer trace), inputs in states ``ins``, keeps the length's
    rows apart and gives its output the state ``out`` (some input is rows; ``out`` free only where a
    rule allows it: a slice of the first step)."""
    name, a = n.op.name, n.attrs
    shape = n.out.aval.shape
    ranked = [(s, len(v.aval.shape)) for s, v in zip(ins, n.inputs) if s is not _FREE]
    rows = [s for s, _ in ranked]
    if name in _ROWWISE_UNARY or name in _ROWWISE_NARY:
        return all(s == out and r == len(shape) for s, r in ranked)
    if name == "transpose":
        (ax, k), = rows
        return a["perm"] == nb.attrs["perm"] and out == (list(a["perm"]).index(ax), k)
    if name == "reshape":                       # row-major: the blocks of each step stay whole and in place
        (ax, k), = rows
        src = n.inputs[0].aval.shape
        return out is not _FREE and prod(src[:ax]) == prod(shape[:out[0]]) and \
            k * prod(src[ax + 1:]) == out[1] * prod(shape[out[0] + 1:])
    if name == "broadcast_to":
        return all(s == out and r == len(shape) for s, r in ranked)
    if name == "gather":
        params, indices = ins
        g = a["axis"]
        if a != nb.attrs:
            return False
        if params is _FREE:                     # an embedding lookup: indices' axes come first at ``g``
            return out == (g + indices[0], indices[1])
        return indices is _FREE and params[0] != g and \
            out == ((params[0] if params[0] < g else params[0] + len(n.inputs[1].aval.shape) - 1), params[1])
    if name in ("matmul", "quantized_matmul"):
        lhs = n.inputs[0].aval.shape
        return ins[0] is not _FREE and all(s is _FREE for s in ins[1:]) and not a["transpose_a"] and \
            ins[0][0] < len(lhs) - 1 and out == (ins[0][0] + len(shape) - len(lhs), ins[0][1]) and a == nb.attrs
    if name.startswith("reduce_") or name in ("argmax", "argmin", "cumulative", "sort_rank"):
        (ax, k), = rows
        axes = a["axes"] if "axes" in a else (a["axis"] % len(n.inputs[0].aval.shape),)
        return ax not in axes and out is not _FREE and out[1] == k and a == nb.attrs
    if name == "concat":
        return len(rows) == len(ins) and all(s == out for s in rows) and a["axis"] % len(shape) != out[0]
    if name == "slice":                         # the whole length, or its first step (every length has one)
        (ax, k), = rows
        (start, stop, step), (_, stop_b, _) = a["spec"][ax], nb.attrs["spec"][ax]
        whole = start == 0 and step == 1 and stop >= n.inputs[0].aval.shape[ax] and \
            stop_b >= nb.inputs[0].aval.shape[ax] and out == (ax, k)
        first = a["spec"][ax] == nb.attrs["spec"][ax] == (0, k, 1) and out is _FREE
        others = [s for i, s in enumerate(a["spec"]) if i != ax] == [s for i, s in enumerate(nb.attrs["spec"]) if i != ax]
        return (whole or first) and others
    if name == "pad":
        (ax, k), = rows
        return tuple(a["paddings"][ax]) == (0, 0) and out == (ax, k) and a == nb.attrs
    if name == "one_hot":
        (ax, k), = rows
        return a == nb.attrs and a["axis"] % len(shape) > ax and out == (ax, k)
    return False


def length_section(a: Graph, b: Graph, maximum: int, axes: list, device) -> tuple[dict, set]:
    """The signature's ``"length"`` section and the while nodes of ``a`` that step over the length,
    from its traces ``a`` (``maximum`` steps) and ``b`` (``maximum + 1``); ``axes``: the length axis
    of each input (None for an input without one). Raises ValueError naming what refuses it (module
    docstring).

    Args:
        a: the signature's graph traced for ``maximum`` steps.
        b: the same function traced for ``maximum + 1`` steps.
        maximum: the declared maximum length.
        axes: per input of ``a``, its length axis or None.
        device: the device holding the graphs' constants (to compare them).
    """
    try:
        return _prove(a, b, maximum, axes, device)
    except _Refused as e:
        raise ValueError(f"its values are not independent along the length ({e}), so it cannot take a length "
                         "up to a maximum; export it at a fixed length") from None


def _prove(a: Graph, b: Graph, maximum: int, axes: list, device) -> tuple[dict, set]:
    if a.updates or b.updates:
        raise _Refused("it updates variables")
    if len(a.nodes) != len(b.nodes) or len(a.consts) != len(b.consts) or len(a.inputs) != len(b.inputs) or \
            len(a.captures) != len(b.captures):
        raise _Refused("its graphs for two lengths differ")
    env, state = {}, {}
    for va, vb in zip(a.inputs, b.inputs):
        env[va] = vb
        state[va] = _state(va.aval.shape, vb.aval.shape, maximum)
    _pair_captures_and_consts(a, b, env, state, maximum, device, "length", "a size read in Python?")
    for i, (v, ax) in enumerate(zip(a.inputs, axes)):
        if state[v] != (_FREE if ax is None else (ax, 1)):
            raise _Refused(f"input {i} does not have the length in axis {ax}")
    loops, parts = set(), {}
    flipped: set = set()        # rows values whose steps run backwards (webtensor.reverse): row t is step n-1-t
    for na, nb in zip(a.nodes, b.nodes):
        if na.op is not nb.op or [env.get(v) for v in na.inputs] != nb.inputs:
            raise _Refused("its graphs for two lengths differ")
        env[na.out] = nb.out
        ins = [state[v] for v in na.inputs]
        kind = na.op.kind if is_control(na.op) else None
        back = {v in flipped for v, s in zip(na.inputs, ins) if s is not _FREE}
        if len(back) > 1:
            raise _Refused(f"{na.op.name} (shape {list(na.out.aval.shape)}) mixes steps in time order and reversed")
        if back == {True} and (kind is not None or _flips(na, nb, ins) is None and na.op.name == "slice" and
                               _state(na.out.aval.shape, nb.out.aval.shape, maximum) is _FREE):
            raise _Refused(f"{na.op.name} (shape {list(na.out.aval.shape)}) reads reversed steps by position")
        axis = _flips(na, nb, ins)
        if axis is not None:                    # a reversal of the whole length: rows stay rows
            state[na.out] = ins[0]
            if na.inputs[0] not in flipped:
                flipped.add(na.out)
            continue
        if kind == "while":
            parts[na.out] = _loop(na, nb, ins, maximum, device, loops)
            state[na.out] = _FREE           # its results' states: the get nodes below
            continue
        if kind == "get":
            out = parts[na.inputs[0]][na.attrs["index"]]
            if out != _state(na.out.aval.shape, nb.out.aval.shape, maximum):
                raise _Refused("a loop's result does not have the length where expected")
            state[na.out] = out
            continue
        if kind == "cond" and any(s is not _FREE for s in ins):
            raise _Refused("a cond reads values along the length")
        out = _state(na.out.aval.shape, nb.out.aval.shape, maximum) if kind is None else _FREE
        if all(s is _FREE for s in ins):
            ok = na.op.name == "broadcast_to" if out is not _FREE else _same(na.attrs, nb.attrs, device)
        else:
            ok = _follow(na, nb, ins, out, device)
        if not ok:
            raise _Refused(f"{na.op.name} (shape {list(na.out.aval.shape)}) mixes steps of the length or reads it")
        state[na.out] = out
        if back == {True} and out is not _FREE:
            flipped.add(na.out)
    if [env.get(v) for v in a.outputs] != b.outputs:
        raise _Refused("its graphs for two lengths differ")
    outs = []
    for i, v in enumerate(a.outputs):
        s = state[v]
        if v in flipped:
            raise _Refused(f"output {i} (shape {list(v.aval.shape)}) holds the steps reversed")
        if s is not _FREE and s[1] != 1:
            raise _Refused(f"output {i} (shape {list(v.aval.shape)}) is not one row per step")
        outs.append(-1 if s is _FREE else s[0])
    return {"maximum": maximum, "inputs": [-1 if ax is None else ax for ax in axes], "outputs": outs}, loops


def _flips(n: Node, nb: Node, ins: list):
    """The length axis when ``n`` (``nb`` in the longer trace) is a slice that reverses the whole
    length and nothing else (``webtensor.reverse``), else None."""
    if n.op.name != "slice" or ins[0] is _FREE:
        return None
    ax, _ = ins[0]
    size, size_b = n.inputs[0].aval.shape[ax], nb.inputs[0].aval.shape[ax]
    spec, spec_b = n.attrs["spec"], nb.attrs["spec"]
    others = [x for i, x in enumerate(spec) if i != ax] == [x for i, x in enumerate(spec_b) if i != ax]
    whole = all(len(range(*sp[ax])) == sz and sp[ax][0] == sz - 1 and sp[ax][2] == -1
                for sp, sz in ((spec, size), (spec_b, size_b)))
    return ax if others and whole and all(x[2] == 1 and x[0] == 0 for i, x in enumerate(spec) if i != ax) else None


def _loop(na: Node, nb: Node, ins: list, maximum: int, device, loops: set) -> list:
    """The states of a while node's results; records it in ``loops`` when it steps over the length."""
    at, bt = na.attrs, nb.attrs
    k, ns = at["n_vars"], at["n_sliced"]
    steps = at["maximum_iterations"] == maximum and bt["maximum_iterations"] == maximum + 1
    if not steps and at["maximum_iterations"] != bt["maximum_iterations"]:
        raise _Refused("a loop's maximum_iterations changes with the length, not as the length")
    seqs = ins[k:k + ns]
    if any(s is not _FREE for s in ins[:k] + ins[k + ns:]):
        raise _Refused("a loop's variables or operands hold values along the length (it would read every step)")
    if steps and any(s != (0, 1) for s in seqs) or not steps and any(s is not _FREE for s in seqs):
        raise _Refused("a loop's sequences do not have the length as axis 0")
    if not all(_same(at[key], bt[key], device) for key in ("body", "cond", "reverse", "n_vars", "n_sliced", "n_stacked")):
        raise _Refused("a loop's body reads the length")
    if steps:
        loops.add(na)
    return [_FREE] * k + [(0, 1) if steps else _FREE] * at["n_stacked"]

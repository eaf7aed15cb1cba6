"""Proving a signature's rows independent along the batch from two traces, for a signature that
holds control flow or also has a symbolic length (``docs/artifact.md``, "Symbolic batch and length").

The batch section of other signatures is proved on one trace with a symbolic batch
(``core/symbolic.py``, ``independent_rows``). Loops (RNN layers' ``scan``) carry state that holds
one row per batch row; signatures holding them are proved here the way ``export_length.py`` proves
the length: the function traced at ``chunk`` and at ``chunk + 1`` rows (with a length, both at its
maximum), the two graphs compared node by node, and a value
whose shape grows in one axis by ``k`` is a *rows* value (row ``r`` of the batch is the block
``[r*k, (r+1)*k)`` of that axis), every other value must be the same in both traces. Rows stay
apart through the rules of ``export_length._follow`` (elementwise ops, transposes, reshapes that
keep the blocks, gathers, matmuls and reductions over other axes, concatenations, slices and pads
that leave the batch whole, broadcasts, one-hot), never through a value that no longer has the
batch (a slice of the first row, a reduction over the rows), and through loops: a loop runs the
same number of iterations in both traces; its variables, sequences and operands may hold rows (a
sequence not in its axis 0, which the loop steps over); its body, proved the same way from those
states, must give each variable back in the state it came in, and its condition must not read the
rows. A ``cond`` reading rows, a variable update, or any difference between the traces that is
not a size of the batch is refused.
"""
from __future__ import annotations

from .core.control import is_control
from .core.graph import Graph
from .export_length import _FREE, _Refused, _follow, _pair_captures_and_consts, _same, _state


def batch_rows(a: Graph, b: Graph, chunk: int, device) -> str | None:
    """None when the rows of ``a`` (traced at ``chunk`` rows) are independent along axis 0 of its
    inputs and outputs, given ``b`` (the same function at ``chunk + 1`` rows); else the reason,
    naming the op that mixes rows.

    Args:
        a: the signature's graph at ``chunk`` rows.
        b: the same function traced at ``chunk + 1`` rows.
        chunk: the rows of ``a`` (axis 0 of every input).
        device: the device holding the graphs' constants (to compare them).
    """
    try:
        if a.updates or b.updates:
            raise _Refused("it updates variables (from all rows at once)")
        if len(a.inputs) != len(b.inputs) or not a.inputs:
            raise _Refused("it has no inputs" if not a.inputs else "its graphs for two batch sizes differ")
        ins = [_state(va.aval.shape, vb.aval.shape, chunk) for va, vb in zip(a.inputs, b.inputs)]
        for i, s in enumerate(ins):
            if s != (0, 1):
                raise _Refused(f"input {i} (shape {list(a.inputs[i].aval.shape)}) has not the batch as axis 0")
        for i, (v, s) in enumerate(zip(a.outputs, _walk(a, b, chunk, device, ins))):
            if s != (0, 1):
                raise _Refused(f"output {i} (shape {list(v.aval.shape)}) is not one row per input row")
    except _Refused as e:
        return str(e)
    return None


def _walk(a: Graph, b: Graph, chunk: int, device, ins: list) -> list:
    """The states of ``a``'s outputs, its inputs in states ``ins`` (a graph or a loop's body)."""
    if len(a.nodes) != len(b.nodes) or len(a.consts) != len(b.consts) or len(a.captures) != len(b.captures) or \
            len(a.outputs) != len(b.outputs):
        raise _Refused("its graphs for two batch sizes differ")
    env, state = dict(zip(a.inputs, b.inputs)), dict(zip(a.inputs, ins))
    _pair_captures_and_consts(a, b, env, state, chunk, device, "batch size", "read in Python?")
    parts = {}
    for na, nb in zip(a.nodes, b.nodes):
        if na.op is not nb.op or [env.get(v) for v in na.inputs] != nb.inputs:
            raise _Refused("its graphs for two batch sizes differ")
        env[na.out] = nb.out
        ins_n = [state[v] for v in na.inputs]
        kind = na.op.kind if is_control(na.op) else None
        if kind == "get":
            out = parts[na.inputs[0]][na.attrs["index"]]
            if out != _state(na.out.aval.shape, nb.out.aval.shape, chunk):
                raise _Refused("a loop's result does not have the batch where expected")
            state[na.out] = out
            continue
        if kind == "while":
            parts[na.out] = _loop(na, nb, ins_n, chunk, device)
            state[na.out] = _FREE
            continue
        if kind == "cond":
            if any(s is not _FREE for s in ins_n) or not _same(na.attrs, nb.attrs, device):
                raise _Refused("a cond reads values along the batch (each row could take another branch)")
            parts[na.out] = [_FREE] * len(na.out.aval.avals)
            state[na.out] = _FREE
            continue
        out = _state(na.out.aval.shape, nb.out.aval.shape, chunk)
        if all(s is _FREE for s in ins_n):
            ok = na.op.name == "broadcast_to" if out is not _FREE else _same(na.attrs, nb.attrs, device)
        else:       # a value without the batch computed from rows (a first row, a sum over rows) mixes them
            try:
                ok = out is not _FREE and _follow(na, nb, ins_n, out, device)
            except (KeyError, IndexError, TypeError, ValueError):    # attributes no rule expects: not proved
                ok = False
        if not ok:
            raise _Refused(f"{na.op.name} (shape {list(na.out.aval.shape)}) mixes rows of the batch or reads its size")
        state[na.out] = out
    if [env.get(v) for v in a.outputs] != b.outputs:
        raise _Refused("its graphs for two batch sizes differ")
    return [state[v] for v in a.outputs]


def _loop(na, nb, ins: list, chunk: int, device) -> list:
    """The states of a while node's results (its variables, then its stacked values)."""
    at, bt = na.attrs, nb.attrs
    k, ns = at["n_vars"], at["n_sliced"]
    if any(at[key] != bt[key] for key in ("maximum_iterations", "reverse", "n_vars", "n_sliced", "n_stacked")):
        raise _Refused("a loop's iterations change with the batch size")
    rows = []
    for s in ins[k:k + ns]:
        if s is not _FREE and s[0] == 0:
            raise _Refused("a loop steps over the rows of the batch")
        rows.append(s if s is _FREE else (s[0] - 1, s[1]))        # the body reads one row of axis 0
    vars_, ops = ins[:k], ins[k + ns:]
    body = _walk(at["body"], bt["body"], chunk, device, vars_ + rows + ops)
    if body[:k] != vars_:
        raise _Refused("a loop's body does not keep its variables' rows where they came in")
    if _walk(at["cond"], bt["cond"], chunk, device, vars_ + ops)[0] is not _FREE:
        raise _Refused("a loop's condition reads the rows of the batch")
    return vars_ + body[k:]      # a stacked value (1, ...) per iteration keeps its rows' axis

"""Horizontal fusion: independent one-pass ``map`` kernels of a program run as ONE dispatch.

An optimizer updates each parameter with a kernel of its own (Adam: the new weight, with the new
moments as siblings), each a dispatch of a few workgroups; on WebGPU every dispatch has a fixed
cost (a pipeline and bind group switch, a usage scope). :func:`schedule` picks groups of map
steps and :func:`lower_group` lowers each group to one pass whose workgroups are split into
segments: segment k handles linear workgroups ``[W_0 + ... + W_{k-1}, W_0 + ... + W_k)`` and runs
kernel k's body (:class:`~webtensor.webgpu.emit.Segment`) with its workgroup index rebased to 0,
so every invocation computes what it computed in the kernel's own dispatch, with the same WGSL
(results are bitwise those of the separate dispatches).

Both the native runtime (``runtime.Executable``) and the exporter (``export._emit_webgpu``) call
:func:`schedule` with a ``key`` that names the buffer each program buffer is bound to (the
exporter's plan puts an in-place update and its variable in one), so they group the same steps.

Rules (``schedule``):

- a member is a step whose kernel lowers to one pass with a :class:`Segment` (maps without packed
  inputs, run-time rows or a float16 rounding pass), all of one workgroup size;
- members are independent: no member reads or writes a buffer another member writes (the
  invocations of one dispatch run in any order, so read-after-write, write-after-read and
  write-after-write across segments are all excluded); a buffer only read by several members is
  bound once (per WGSL type and fixed length);
- the group's bindings stay within ``maxStorageBuffersPerShaderStage``;
- the group runs where its last member was; an earlier member is moved there past the steps in
  between only if none of them reads what it writes or writes what it reads or writes (a step
  that does closes the group before it). Buffers' lifetimes follow the new order (:func:`liveness`).

Not on CPU adapters (``limits.adapter_class == "cpu"``: lavapipe, SwiftShader, WARP), where a
dispatch costs little and a group was slower: on lavapipe (Mesa 22.3) an MLP 784-256-256-10's
Adam updates grouped took 1.2x as long as the separate dispatches (0.80-0.86x throughput for
groups of 2-3 updates alone; 0.96x for the whole train step), on SwiftShader (Dawn) the
exported train step was within noise (0.96-1.03x).

``HORIZONTAL = False`` turns it off (tests compare the two programs).
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from .emit import MAIN, Lowered, Pass, shader_header, workgroup_grid
from .limits import Limits

HORIZONTAL = True   # group independent maps (module docstring); tests set it False to compare


def binding_buffer(step, name: str) -> int:
    """The program buffer a kernel pass's binding ``name`` reads or writes (``in<k>``: input k,
    ``result``: the output, ``result<j>``: sibling j's output)."""
    if name == "result":
        return step.output
    if name.startswith("result"):
        return step.extra[int(name[6:]) - 1]
    if name.startswith("in"):
        return step.inputs[int(name[2:])]
    raise KeyError(name)


def _segment(low: Lowered):
    return low.passes[0].segment if len(low.passes) == 1 and not low.packed and not low.scratch else None


def _slots(step, seg, key) -> set:
    """The distinct bindings a member needs in a group: (buffer, WGSL type, fixed length, writable)."""
    lengths = dict(seg.lengths)
    return {(key(binding_buffer(step, name)), t, lengths.get(name, 0), w) for name, t, w in seg.decls}


def schedule(steps: Sequence, lowered: Sequence[Lowered], limits: Limits,
             key: Callable[[int], object] = lambda b: b, can: Callable[[int], bool] = lambda i: True
             ) -> list[tuple[int, ...]]:
    """The order to run a program's ``steps`` in, as groups of step indices (most of one step): a
    group of several is one dispatch (:func:`lower_group`).

    Args:
        steps: the program's steps (``core.compile.Step``), in program order.
        lowered: each step's lowering (``wgsl.lower``), as the caller binds it.
        limits: the device limits (``max_storage_buffers_per_shader_stage`` bounds a group's bindings;
            a ``"cpu"`` ``adapter_class`` groups nothing).
        key: the buffer a program buffer is bound to (equal keys: one buffer).
        can: whether step i may join a group at all (the exporter excludes steps followed by a zeroing pass).
    Returns:
        Every step index once; the program's order except that a group's members run together.
    """
    order: list[tuple[int, ...]] = []
    if not HORIZONTAL or limits.adapter_class == "cpu":
        return [(i,) for i in range(len(steps))]
    group: list[int] = []          # the open group
    at = 0                         # where it goes in ``order``: after its last member's predecessors
    reads: set = set()
    writes: set = set()
    slots: set = set()
    size = None

    def close():
        nonlocal group, reads, writes, slots, size
        if group:
            order.insert(at, tuple(group))
        group, reads, writes, slots, size = [], set(), set(), set(), None

    for i, s in enumerate(steps):
        r = {key(b) for b in s.inputs}
        w = {key(b) for b in [s.output] + list(s.extra)}
        seg = _segment(lowered[i]) if can(i) else None
        if seg is not None:
            ws = lowered[i].passes[0].workgroup_size
            mine = _slots(s, seg, key)
            if group and not (w & (reads | writes)) and not (r & writes) and ws == size and \
                    len(slots | mine) <= limits.max_storage_buffers_per_shader_stage:
                group.append(i)
                at = len(order)
                reads, writes, slots = reads | r, writes | w, slots | mine
                continue
            close()
            group, at, reads, writes, slots, size = [i], len(order), r, w, mine, ws
            continue
        if group and (r & writes or w & (reads | writes)):
            close()
        order.append((i,))
    close()
    return order


def liveness(n_bufs: int, order: Sequence[tuple[int, ...]], steps: Sequence, live_out: Sequence[int]) -> list:
    """``(first, last)`` position in ``order`` of each program buffer (``core.compile._liveness`` over
    the groups: a buffer a member uses lives at its group's position); ``live_out`` (outputs,
    updates) live to the end; ``(-1, -1)`` for buffers no step uses."""
    span = [[-1, -1] for _ in range(n_bufs)]
    for pos, group in enumerate(order):
        for i in group:
            s = steps[i]
            for b in list(s.inputs) + [s.output] + list(s.extra):
                if span[b][0] < 0:
                    span[b][0] = pos
                span[b][1] = pos
    for b in live_out:
        span[b][1] = len(order)
    return [tuple(x) for x in span]


_NAME = re.compile(r"\b(in\d+|result\d*)\b")


def lower_group(steps: Sequence, lowered: Sequence[Lowered], limits: Limits,
                key: Callable[[int], object] = lambda b: b) -> Lowered:
    """One pass running the members' segments (their lowerings' :class:`Segment`), each
    ``fn seg<k>(wg, lid)``, selected by the linear workgroup index ``wg`` (folded into a 2-D/3-D
    grid past ``maxComputeWorkgroupsPerDimension`` like any dispatch). Its bindings are named
    ``"<member>:<name>"`` (member k's binding ``name``: resolve it with that step's resolver); a
    buffer read by several members is bound once (``key`` as for :func:`schedule`)."""
    decls, names, lengths, helpers, funcs, calls = [], [], {}, set(), [], []
    index: dict = {}
    start = 0
    wgs = lowered[0].passes[0].workgroup_size
    for k, (s, low) in enumerate(zip(steps, lowered)):
        seg = low.passes[0].segment
        if seg is None or low.passes[0].workgroup_size != wgs:
            raise AssertionError("lower_group: a member is not a one-pass map of the group's workgroup size")
        seg_len = dict(seg.lengths)
        rename = {}
        for name, t, w in seg.decls:
            slot = (key(binding_buffer(s, name)), t, seg_len.get(name, 0), w)
            if w or slot not in index:       # writable: never shared (members are independent)
                index[slot] = len(decls)
                decls.append((f"g{len(decls)}", t, w))
                names.append((f"{k}:{name}", w))
                if name in seg_len:
                    lengths[decls[-1][0]] = seg_len[name]
            rename[name] = decls[index[slot]][0]
        helpers |= seg.helpers
        body = _NAME.sub(lambda m: rename[m.group(1)], seg.body)
        funcs.append(f"fn seg{k}(wg: i32, lid: u32) {{\n  {body}\n}}\n")
        end = start + seg.workgroups
        call = f"seg{k}(wg - {start}, lid);" if start else f"seg{k}(wg, lid);"
        calls.append(f"if (wg < {end}) {{ {call} return; }}" if k < len(steps) - 1 else call)
        start = end
    grid, wg_line = workgroup_grid(start, limits)
    src = shader_header(decls, limits, helpers, lengths=lengths) + "\n" + "\n".join(funcs) + \
        f"\n@compute @workgroup_size({wgs[0]})\n{MAIN} {{\n  {wg_line}\n  " + "\n  ".join(calls) + "\n}\n"
    return Lowered((Pass(src, tuple(names), grid, wgs),))

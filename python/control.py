"""Control flow: ``cond``, ``while_loop`` and ``scan`` (TensorFlow's signatures and semantics).

Eagerly they run as Python (``if``/``while``/``for`` over tensors: TensorFlow 2's eager
behaviour), so a ``GradientTape`` records the ops of the iterations that ran. Inside
``webtensor.function`` each becomes one graph node holding sub-graphs (``core/control.py``):
every branch, loop condition and loop body is traced once into its own graph; tensors of the
enclosing function that it uses (and Variables it reads) become extra inputs of the node.
Graphs holding such nodes run as host-side loops over compiled segments
(``core/runtime/control.py``), on every device.

Gradients (reverse mode) inside traced functions:

- ``cond``: a ``cond`` on the same predicate of the two branches' vector-Jacobian products.
- ``while_loop`` (and ``scan``, the same node): the loop variables each iteration starts from (those
  the backward pass reads) are stacked in ``[maximum_iterations, ...]`` buffers (by the loop itself
  when a tape records it as it is built, else by running it again), then a second loop walks the
  stored iterations backwards applying the body's vector-Jacobian product (the adjoint method through
  a loop, Griewank & Walther 2008, ch. 12; as TensorFlow's while-loop gradient, which stacks the
  values the backward pass needs). Graph shapes are static, so the gradient of a traced
  ``while_loop`` needs ``maximum_iterations`` (as TensorFlow under XLA); ``scan`` always knows its
  length.

Shapes are static: a loop variable must keep its shape and dtype (ValueError/TypeError name
the variable); both branches of a ``cond`` return the same structure, shapes and dtypes.

Variables (as in TensorFlow): a branch may assign them (the new value is an extra output of the
node, assigned after it); a Variable a loop body assigns becomes an extra loop variable (the body is
traced again with it bound), so the condition and later iterations see its current value. As in
TensorFlow, no gradient flows through an assignment. A loop's condition may not assign.
"""
from __future__ import annotations

from . import _state
from .core import dispatch, ops as F, passes
from .core.autodiff import Record, backward_many
from .core.control import ControlOp, TupleAval
from .core.dtypes import bool_, int32
from .core.graph import Value
from .core.shapes import Dim
from .core.op import Aval
from .creation import zeros, zeros_like
from .function import Trace
from .tape import GradientTape
from .tensor import Tensor, Variable, tensor
from .tree import flatten, unflatten


# ---- sub-graphs ----------------------------------------------------------------------------------

class _SubTrace(Trace):
    """The trace of a branch, loop condition or loop body inside an enclosing trace: tensors of an
    enclosing trace and Variables become extra inputs (``externals``, the outer tensors, in the
    order first used)."""

    def __init__(self, parent: Trace, what: str, assigns: str = "", bound: dict | None = None):
        super().__init__(parent.device)
        self.parent, self.what, self.assigns = parent, what, assigns
        self.externals: list = []
        self.keys: list = []
        self._ext: dict = {}
        self.assigned: dict = {}    # Variables assigned here, in order
        self.bound = dict(bound or {})   # Variable -> index of the input that holds its value

    def _encloses(self, tr) -> bool:
        p = self.parent
        while p is not None:
            if p is tr:
                return True
            p = getattr(p, "parent", None)
        return False

    def value_of(self, t: Tensor) -> Value:
        if t._sym is not None and t._sym[0] is not self and self._encloses(t._sym[0]):
            return self._capture((id(t._sym[0]), t._sym[1].id), t)
        return super().value_of(t)

    def _var_value(self, var: Variable) -> Value:
        if var not in self.current:
            self.current[var] = self._capture(("var", id(var)), var)
        return self.current[var]

    def _capture(self, key, t: Tensor) -> Value:
        v = self._ext.get(key)
        if v is None:
            v = self._ext[key] = Value(t._aval)
            self.externals.append(t)
            self.keys.append(key)
        return v

    def assign(self, var, value) -> None:
        """``assigns``: '' (refused), 'branch' (the new value becomes an output of the node) or 'loop'
        (the Variable must be a loop variable: an unbound one makes the loop trace again, bound)."""
        if not self.assigns:
            raise NotImplementedError(
                f"Variable {var.name!r} is assigned inside the {self.what} of a webtensor control-flow op; "
                "return the new value (as a loop variable or branch output) and assign it outside")
        if self.assigns == "loop" and var not in self.bound:
            raise _Rebind(var)
        self._var_value(var)
        self.current[var] = self.value_of(value)
        self.assigned[var] = True


class _Rebind(Exception):
    """A loop body assigned a Variable that is not yet one of its loop variables: trace again with it."""

    def __init__(self, var):
        super().__init__(var.name)
        self.var = var


def _trace_sub(fn, avals: list, what: str, assigns: str = "", bound: dict | None = None):
    """Trace ``fn(*symbolic tensors of avals) -> leaves`` into a sub-graph of the current trace.
    Returns the sub-trace (``graph.inputs`` holds only the explicit inputs so far) and the output
    leaves as its tensors. ``assigns`` and ``bound``: see :class:`_SubTrace` (``bound`` Variables read
    the inputs at those indices)."""
    parent = _state.current_trace()
    sub = _SubTrace(parent, what, assigns, bound)
    sub.graph.inputs = [Value(a) for a in avals]
    for var, i in sub.bound.items():
        sub.current[var] = sub.graph.inputs[i]
    state = _state.local
    saved, state.tapes[:] = list(state.tapes), []     # the enclosing tapes see the node, not its insides
    state.traces.append(sub)
    try:
        outs = fn(*[sub.symbolic(v) for v in sub.graph.inputs])
        outs = [o if o is None or isinstance(o, Tensor) else tensor(o) for o in outs]
        sub.graph.outputs = [sub.value_of(o) for o in outs if o is not None]
    finally:
        state.traces.pop()
        state.tapes[:] = saved
    return sub, outs


def _unify(subs: list) -> list:
    """Give the sub-graphs one list of extra inputs: the union of their externals (each graph gets an
    unused input for those it does not read). Returns the union's outer tensors."""
    keys, ext = [], []
    for s in subs:
        for k, t in zip(s.keys, s.externals):
            if k not in keys:
                keys.append(k)
                ext.append(t)
    for s in subs:
        s.graph.inputs += [s._ext[k] if k in s._ext else Value(t._aval) for k, t in zip(keys, ext)]
    return ext


COND = ControlOp("cond", "cond")
WHILE = ControlOp("while", "while")
GET = ControlOp("get", "get")


def _apply(op: ControlOp, inputs: list, attrs: dict, avals: list, record: bool = True) -> tuple:
    """Add a control node to the current trace; its results as symbolic tensors (recorded by tapes
    unless ``record`` is False)."""
    tr = _state.current_trace()
    node = tr.graph.add(op, [tr.value_of(t) for t in inputs], attrs, TupleAval(tuple(avals)))
    outs = tuple(tr.symbolic(tr.graph.add(GET, [node], {"index": i}, a)) for i, a in enumerate(avals))
    if record:
        for tape in _state.local.tapes:
            tape._record(Record(op, tuple(inputs), attrs, outs))
    return outs


def _replay(graph, inputs: list) -> list:
    """Run a sub-graph's nodes as op calls on ``inputs`` (traced into the current trace, recorded by
    tapes): how gradients re-enter a branch or a loop body."""
    tr = _state.current_trace()
    env = dict(zip(graph.inputs, inputs))
    for v, data in graph.consts.items():
        env[v] = Tensor(data, v.aval, tr.device)
    for n in graph.nodes:
        args = [env[v] for v in n.inputs]
        if n.op is GET:
            env[n.out] = args[0][n.attrs["index"]]
        elif n.op in (COND, WHILE):
            env[n.out] = _apply(n.op, args, n.attrs, list(n.out.aval.avals))
        else:
            env[n.out] = dispatch.run(n.op, args, n.attrs)
    return [env[v] for v in graph.outputs]


# ---- checks ----------------------------------------------------------------------------------------

def _plain(struct):
    """A structure with lists and tuples alike (TensorFlow compares loop structures so)."""
    if struct is None:
        return None
    kind, meta, children = struct
    return (kind, meta if kind == "dict" else "seq", tuple(_plain(c) for c in children))


def _leaves(tree, what: str) -> tuple:
    leaves: list = []
    struct = flatten(tree, leaves)
    out = []
    for x in leaves:
        if x is None:
            out.append(None)
        else:
            try:
                out.append(x if isinstance(x, Tensor) else tensor(x))
            except (TypeError, ValueError) as e:
                raise TypeError(f"{what}: {x!r} is not a tensor ({e})") from None
    return struct, out


def _up_to(struct, tree) -> list:
    """``tree``'s subtrees at the leaves of ``struct`` (a ``flatten`` structure): shapes of loop vars."""
    if struct is None:
        return [tree]
    kind, meta, children = struct
    try:
        parts = [tree[k] for k in meta] if kind == "dict" else list(tree)
    except (TypeError, KeyError, IndexError):
        return [tree, None]     # a mismatch: the caller's length check reports it
    return [x for c, t in zip(children, parts) for x in _up_to(c, t)] + ([None] if len(parts) != len(children) else [])


def _same(what: str, names: str, ref: list, new: list, rule: str) -> None:
    """ValueError/TypeError unless ``new`` tensors have ``ref``'s shapes and dtypes."""
    for k, (a, b) in enumerate(zip(ref, new)):
        if (a is None) != (b is None):
            raise TypeError(f"{what}: {names} {k} is None in one place and a tensor in the other")
        if a is None:
            continue
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"{what}: {names} {k} has shape {tuple(a.shape)} but {tuple(b.shape)} {rule}; "
                             "webtensor graphs have static shapes (pad to a fixed size)")
        if a.dtype != b.dtype:
            raise TypeError(f"{what}: {names} {k} has dtype {a.dtype.name} but {b.dtype.name} {rule}")


def _scalar_bool(what: str, t) -> Tensor:
    t = t if isinstance(t, Tensor) else tensor(t)
    if t.dtype != bool_ or t.shape != ():
        raise TypeError(f"{what} must be a bool scalar, got {t.dtype.name} of shape {tuple(t.shape)}")
    return t


def _symbolic(t) -> bool:
    """Whether ``t``'s value is known only when the traced graph runs."""
    return isinstance(t, Variable) or (isinstance(t, Tensor) and t._sym is not None)


# ---- cond ------------------------------------------------------------------------------------------

def cond(pred, true_fn=None, false_fn=None, name=None):
    """``true_fn()`` if ``pred`` else ``false_fn()``, as ``tf.cond``. Eagerly (or inside
    ``webtensor.function`` when ``pred``'s value is known at trace time: a Python bool, a constant)
    only the chosen function runs. Inside ``webtensor.function`` with a computed ``pred`` (or a
    Variable) both functions are traced into branches of one graph node and only the chosen one runs.
    Differentiable: the gradient flows through the chosen branch (a ``cond`` of the branches'
    gradients).

    Args:
        pred: a bool scalar (tensor, Variable or Python bool).
        true_fn: a function of no arguments returning a (nested) structure of tensors.
        false_fn: a function of no arguments returning the same structure, shapes and dtypes.
        name: TensorFlow's op name (a str or None); unused.
    Returns:
        What the chosen function returns (in a graph: symbolic tensors, ``true_fn``'s structure).
    Raises:
        TypeError: a function is not callable; ``pred`` is not a bool scalar; the branches return
            different structures or dtypes.
        ValueError: the branches return tensors of different shapes.
    """
    if not callable(true_fn) or not callable(false_fn):
        raise TypeError("cond: true_fn and false_fn must be callables of no arguments")
    if isinstance(pred, bool):
        return true_fn() if pred else false_fn()
    pred = _scalar_bool("cond: pred", pred)
    if _state.current_trace() is None or not _symbolic(pred):
        return true_fn() if bool(pred) else false_fn()
    structs, subs, leaves = [], [], []
    for fn, which in ((true_fn, "true_fn"), (false_fn, "false_fn")):
        box = []

        def run(fn=fn, which=which, box=box):
            struct, ls = _leaves(fn(), f"cond: {which}")
            box.append(struct)
            return ls
        sub, outs = _trace_sub(run, [], f"{which} of cond", assigns="branch")
        structs.append(box[0])
        subs.append(sub)
        leaves.append(outs)
    if _plain(structs[0]) != _plain(structs[1]) or len(leaves[0]) != len(leaves[1]):
        raise TypeError("cond: true_fn and false_fn must return the same structure (the same nesting of "
                        "tuples, lists and dicts, and the same number of tensors)")
    _same("cond", "output", leaves[0], leaves[1], "in false_fn (both branches must agree)")
    assigned = list(dict.fromkeys(v for s in subs for v in s.assigned))     # their new values: outputs too
    for s in subs:
        s.graph.outputs += [s._var_value(var) for var in assigned]
    ext = _unify(subs)
    avals = [t._aval for t in leaves[0] if t is not None]
    res = _apply(COND, [pred] + ext, {"branches": (subs[1].graph, subs[0].graph)},
                 avals + [var._aval for var in assigned])
    for var, t in zip(assigned, res[len(avals):]):
        var.assign(t)
    outs = iter(res[:len(avals)])
    return unflatten(structs[0], iter([None if t is None else next(outs) for t in leaves[0]]))


def _vjp(tape, targets: list, seeds: list, sources: list) -> list:
    """The sum of the targets' vector-Jacobian products (one backward pass over the tape's records,
    where ``tape.gradient`` walks once per target); zeros for unconnected sources."""
    grads = backward_many(tape._records, list(zip(targets, seeds)), sources)
    return [g if g is not None else _zeros_for(s) for g, s in zip(grads, sources)]


def _zeros_for(t: Tensor) -> Tensor:
    return zeros_like(t)


def _cond_grad(gs, outs, pred, *operands, branches):
    fin = [i for i, x in enumerate(operands) if x.dtype.is_floating]
    fout = [i for i, y in enumerate(outs) if y.dtype.is_floating]
    if not fin or not fout:
        return (None,) * (1 + len(operands))
    seeds = [gs[i] if gs[i] is not None else _zeros_for(outs[i]) for i in fout]

    def vjp(graph):
        def fn():
            xs = [operands[i] for i in fin]
            with GradientTape() as tape:
                tape.watch(xs)
                ys = _replay(graph, list(operands))
            return tuple(_vjp(tape, [ys[i] for i in fout], seeds, xs))
        return fn
    grads = cond(pred, vjp(branches[1]), vjp(branches[0]))
    out = [None] * len(operands)
    for i, g in zip(fin, grads):
        out[i] = g
    return (None, *out)


COND.grad = _cond_grad


# ---- while_loop ------------------------------------------------------------------------------------

def _max_iterations(m):
    """An int, None, or a computed int32 scalar tensor (kept as is: the traced loop counts against it)."""
    if m is None or isinstance(m, Dim):     # a Dim: a None size of an input_signature (x.shape[0])
        return m
    if _symbolic(m):
        if m.dtype != int32 or m.shape != ():
            raise TypeError(f"while_loop: maximum_iterations must be an int32 scalar, got {m.dtype.name} of "
                            f"shape {tuple(m.shape)}")
        return m
    m = int(m)
    if m < 0:
        raise ValueError(f"while_loop: maximum_iterations must be >= 0, got {m}")
    return m


def while_loop(cond, body, loop_vars, shape_invariants=None, parallel_iterations=10, back_prop=True,
               swap_memory=False, maximum_iterations=None, name=None):
    """Repeat ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` is true, at most
    ``maximum_iterations`` times, as ``tf.while_loop``: ``loop_vars`` is a (nested) tuple, list or
    dict of tensors (a single tensor is passed as one argument); ``body`` returns the same
    structure with the same shapes and dtypes (lists and tuples count as alike). Eagerly it runs as
    a Python loop; inside ``webtensor.function`` it is one graph node whose condition and body are
    traced once (their Python code runs once, at trace time). Differentiable eagerly (the tape
    records every iteration) and, inside ``webtensor.function``, when ``maximum_iterations`` is given
    (the gradient stores each iteration's loop variables in ``[maximum_iterations, ...]`` buffers
    and runs the body's vector-Jacobian products backwards).

    Args:
        cond: a function of the loop variables returning a bool scalar.
        body: a function of the loop variables returning their next values.
        loop_vars: the initial values: a tensor or a (nested) structure of tensors.
        shape_invariants: None, or the loop variables' shapes (structured like ``loop_vars``; None or
            the same shapes: webtensor's loop variables keep their shapes).
        parallel_iterations: TensorFlow's bound on iterations run in parallel; unused (iterations run
            one after another).
        back_prop: False: no gradient flows through the loop (its results are ``stop_gradient``-ed).
        swap_memory: TensorFlow's GPU-to-host swapping of stored iterations; unused.
        maximum_iterations: None, an int >= 0, a size of a None dimension of an ``input_signature``
            (``x.shape[0]``: taken when the trace is specialised), or an int32 scalar tensor (a value computed in the
            graph: then no gradient, whose stored iterations need a size known at trace time): stop
            after this many iterations even if ``cond`` is still true.
        name: TensorFlow's op name (a str or None); unused.
    Returns:
        The loop variables after the last iteration, structured like ``loop_vars``.
    Raises:
        TypeError: ``cond``/``body`` not callable; ``cond`` returns no bool scalar; ``body`` returns
            another structure or changes a dtype; ``maximum_iterations`` not an int32 scalar.
        ValueError: ``body`` changes a shape; ``maximum_iterations`` negative; the gradient of a traced
            loop without ``maximum_iterations``; ``shape_invariants`` other than the loop variables' shapes.
        NotImplementedError: a Variable assigned inside ``cond`` while tracing (``body`` may assign:
            the Variable is carried as a loop variable).
    """
    if not callable(cond) or not callable(body):
        raise TypeError("while_loop: cond and body must be callables")
    limit = _max_iterations(maximum_iterations)
    seq = isinstance(loop_vars, (list, tuple))
    struct, init = _leaves(loop_vars, "while_loop: loop_vars")
    if any(t is None for t in init):
        raise TypeError("while_loop: loop_vars must be tensors (None found)")
    if shape_invariants is not None:
        inv = _up_to(struct, shape_invariants)
        if len(inv) != len(init) or any(s is not None and tuple(s) != tuple(t.shape) for s, t in zip(inv, init)):
            raise ValueError("while_loop: shape_invariants must be the loop variables' shapes (webtensor graphs "
                             f"have static shapes): got {inv}, loop variables {[tuple(t.shape) for t in init]}")
    done = (lambda ts: ts) if back_prop else (lambda ts: [F.stop_gradient(t) for t in ts])

    def call(fn, leaves):
        v = unflatten(struct, iter(leaves))
        return fn(*v) if seq else fn(v)

    def step(*leaves):
        out = call(body, list(leaves))
        if seq and len(loop_vars) == 1 and not isinstance(out, (list, tuple)):
            out = [out]     # TensorFlow accepts a bare tensor for a one-variable list
        s, new = _leaves(out, "while_loop: body")
        if _plain(s) != _plain(struct):
            raise TypeError("while_loop: body must return the structure of loop_vars (the same nesting "
                            f"and number of tensors: {len(init)})")
        _same("while_loop", "loop variable", init, new, "after an iteration of body")
        return new

    def test(*leaves):
        return [_scalar_bool("while_loop: cond's result", call(cond, list(leaves)))]

    if _state.current_trace() is None:
        leaves, i = init, 0
        while (limit is None or i < limit) and bool(test(*leaves)[0]):
            leaves, i = step(*leaves), i + 1
        return unflatten(struct, iter(done(leaves)))
    if isinstance(limit, Tensor):     # computed in the graph: a counter loop variable checks it
        (_, *outs), _ = _loop(lambda i, *v: [F.logical_and(i < limit, test(*v)[0])],
                              lambda i, *v: [i + 1] + step(*v), [tensor(0, int32, init[0].device)] + init, [],
                              None, False, "while_loop")
    else:
        outs, _ = _loop(test, step, init, [], limit, False, "while_loop")
    return unflatten(struct, iter(done(outs)))


def _loop(test, step, init: list, seqs: list, limit, reverse: bool, what: str, record: bool = True) -> tuple:
    """Add a ``while`` node (``core/control.py``) to the current trace. ``test(*vars) -> [bool]``;
    ``step(*vars, *rows) -> new vars + per-iteration values`` (each ``[1, ...]``, stacked into
    ``[limit, ...]`` results), ``rows`` the iteration's rows of ``seqs`` (row ``i``, or ``n - 1 - i``
    with ``reverse``, which also reverses the stacking). Returns (final vars, stacks).

    When a tape records the loop (and ``limit`` is known), the node also stacks what the gradient
    will read (:func:`_with_history`), so a gradient does not run the loop again. ``record``: False
    for loops the gradient machinery builds (recorded by the caller, never stacked again)."""
    k, user_init, assigned = len(init), init, []
    while True:     # a Variable the body assigns becomes a loop variable (bound to an extra input)
        init = user_init + assigned
        bound = {var: k + m for m, var in enumerate(assigned)}
        avals = [t._aval for t in init]

        def body_step(*a):
            res = step(*a[:k], *a[len(init):])
            tr = _state.current_trace()
            return list(res[:k]) + [tr.symbolic(tr.current[var]) for var in assigned] + list(res[k:])
        try:
            bsub, outs = _trace_sub(body_step, avals + [Aval(tuple(q.shape[1:]), q.dtype) for q in seqs],
                                    f"body of {what}", "loop", bound)
        except _Rebind as e:
            assigned.append(e.var)
            continue
        csub, _ = _trace_sub(lambda *a: test(*a[:k]), avals, f"cond of {what}", "", bound)
        break
    kv = len(init)
    stacked = [Aval((limit,) + tuple(y.shape[1:]), y.dtype) for y in outs[kv:]]
    ext = _unify([csub, bsub])
    inputs = init + seqs + ext
    attrs = {"cond": csub.graph, "body": bsub.graph, "n_vars": kv, "n_sliced": len(seqs),
             "n_stacked": len(stacked), "maximum_iterations": limit, "reverse": reverse}
    new = None
    if record and limit is not None and _recorded(inputs):
        grad = _LoopVJP(bsub.graph, kv, init, seqs, ext, stacked)
        if grad.fv or grad.fy:
            kept = grad.kept()
            new, ys, n, hs = _with_history(csub.graph, bsub.graph, kv, init, seqs, ext, kept, limit, reverse)
            _record_history(inputs, attrs, new, ys, n, kept, hs)
    if new is None:
        res = _apply(WHILE, inputs, attrs, avals + stacked, record)
        new, ys = list(res[:kv]), list(res[kv:])
    for var, t in zip(assigned, new[k:]):
        var.assign(t)
    return new[:k], ys


def _record_history(inputs: list, attrs: dict, new: list, ys: list, n, kept: list, hs: list) -> None:
    """Record a loop that stacked its history: its results are the final vars, the per-iteration
    values and the stacks (so a tape that records the gradient's backward loop, which reads them,
    sees where they come from: higher-order gradients)."""
    for tape in _state.local.tapes:
        tape._record(Record(WHILE, tuple(inputs), {**attrs, "history": (n, kept, hs)}, tuple(new + ys + hs)))


def _recorded(inputs: list) -> bool:
    """Whether an active tape would record an op of these inputs (``GradientTape._record``'s rule)."""
    return any(id(x) in tape._tracked or (tape.watch_accessed_variables and isinstance(x, Variable) and x.trainable)
               for tape in _state.local.tapes for x in inputs)


class _LoopVJP:
    """A loop body's vector-Jacobian product, and which loop variables it reads. ``fv``, ``fq``,
    ``fe``, ``fy``: the float loop variables, sequences, externals and per-iteration values (the
    gradient's inputs and seeds)."""

    def __init__(self, body, k: int, init: list, seqs: list, ext: list, y_avals: list):
        self.body, self.k, self.init, self.seqs, self.ext, self.y_avals = body, k, init, seqs, ext, y_avals
        self.fv = [i for i in range(k) if init[i].dtype.is_floating]
        self.fy = [m for m, a in enumerate(y_avals) if a.dtype.is_floating]
        self.fq = [q for q, x in enumerate(seqs) if x.dtype.is_floating]
        self.fe = [j for j, e in enumerate(ext) if e.dtype.is_floating]

    def __call__(self, xs, rows, gv, gy) -> list:
        """Gradients of the float vars, rows and externals at loop variables ``xs`` and sequence rows
        ``rows``, seeded with ``gv`` (the float vars') and ``gy`` (the float per-iteration values')."""
        k = self.k
        wrt = [xs[i] for i in self.fv] + [rows[q] for q in self.fq] + [self.ext[j] for j in self.fe]
        with GradientTape() as tape:
            tape.watch(wrt)
            ys = _replay(self.body, list(xs) + list(rows) + self.ext)
        targets = [ys[i] for i in self.fv] + [ys[k + m] for m in self.fy]
        return _vjp(tape, targets, list(gv) + list(gy), wrt)

    def kept(self) -> list:
        """The loop variables the backward pass reads (a scan's accumulator, not the results it only
        writes): that pass traced once; what dead-code elimination keeps."""
        k, ns, nv = self.k, len(self.seqs), len(self.fv)
        avals = ([t._aval for t in self.init] + [Aval(tuple(q.shape[1:]), q.dtype) for q in self.seqs] +
                 [self.init[i]._aval for i in self.fv] +
                 [Aval((1,) + tuple(self.y_avals[m].shape[1:]), self.y_avals[m].dtype) for m in self.fy])
        sub, _ = _trace_sub(lambda *a: self(a[:k], a[k:k + ns], a[k + ns:k + ns + nv], a[k + ns + nv:]), avals,
                            "gradient of while_loop")
        live = passes.dce(sub.graph)
        read = {v for n in live.nodes for v in n.inputs} | set(live.outputs)
        return [i for i in range(k) if sub.graph.inputs[i] in read]


def _with_history(cond, body, k: int, init: list, seqs: list, ext: list, kept: list, n_max: int, reverse: bool):
    """The loop of ``cond``/``body`` with a counter, also stacking the ``kept`` loop variables each
    iteration starts from (a ``while`` node that no tape records). Returns (final vars, per-iteration
    stacks, the iteration count, the kept variables' stacks)."""
    def step(i, *a):
        new = _replay(body, list(a) + ext)
        return [i + 1] + new + [F.expand_dims(a[m], 0) for m in kept]
    counter = tensor(0, int32, (init + seqs)[0].device)
    (n, *new), stacks = _loop(lambda i, *v: _replay(cond, list(v) + ext), step, [counter] + init, seqs, n_max,
                              reverse, "gradient of while_loop", record=False)
    return new, stacks[:len(stacks) - len(kept)], n, stacks[len(stacks) - len(kept):]


def _while_grad(gs, outs, *inputs, cond, body, n_vars, n_sliced, n_stacked, maximum_iterations, reverse,
                history=None):
    k, ns = n_vars, n_sliced
    init, seqs, ext = list(inputs[:k]), list(inputs[k:k + ns]), list(inputs[k + ns:])
    vjp = _LoopVJP(body, k, init, seqs, ext, [o._aval for o in outs[k:k + n_stacked]])
    fv, fy, fq, fe = vjp.fv, vjp.fy, vjp.fq, vjp.fe
    g_hist = list(gs[k + n_stacked:])       # seeds of the stacks (a higher-order gradient), if recorded
    if all(gs[i] is None for i in fv) and all(gs[k + m] is None for m in fy) and all(g is None for g in g_hist):
        return (None,) * len(inputs)
    if maximum_iterations is None:
        raise ValueError("the gradient of a while_loop inside webtensor.function needs maximum_iterations as a "
                         "Python int: the iterations are stored in buffers of static shape "
                         "[maximum_iterations, ...]")
    n_max = maximum_iterations
    dev = (init + seqs)[0].device
    if history is not None:         # stacked by the forward loop itself (_loop, under a tape)
        n, kept, hs = history
    else:                           # run the loop again, stacking what the backward pass reads
        kept = vjp.kept()
        new, ys, n, hs = _with_history(cond, body, k, init, seqs, ext, kept, n_max, reverse)
        _record_history(list(inputs), {"cond": cond, "body": body, "n_vars": n_vars, "n_sliced": n_sliced,
                                       "n_stacked": n_stacked, "maximum_iterations": maximum_iterations,
                                       "reverse": reverse}, new, ys, n, kept, hs)
    hist_seed = {m: g for m, g in zip(kept, g_hist) if g is not None and m in fv}

    def row(j):         # the row forward iteration j read and wrote
        return n_max - 1 - j if reverse else j

    # Backward through the stored iterations; the rows' gradients are stacked in the forward's order.
    def bstep(j, *a):
        gv, ge = a[:len(fv)], a[len(fv):]
        r = row(j)
        stored = dict(zip(kept, hs))
        xs = [F.gather(stored[m], r) if m in stored else _zeros_for(init[m]) for m in range(k)]
        rows = [F.gather(q, r) for q in seqs]
        gy = [F.expand_dims(F.gather(gs[k + m], r), 0) if gs[k + m] is not None else
              zeros((1,) + tuple(outs[k + m].shape[1:]), outs[k + m].dtype, device=dev) for m in fy]
        grads = vjp(xs, rows, gv, gy)
        nv, nq = len(fv), len(fq)
        gxs = [g + F.gather(hist_seed[m], r) if m in hist_seed else g for m, g in zip(fv, grads[:nv])]
        return ([j - 1] + gxs + [a + b for a, b in zip(ge, grads[nv + nq:])] +
                [F.expand_dims(g, 0) for g in grads[nv:nv + nq]])
    g0 = [gs[i] if gs[i] is not None else _zeros_for(outs[i]) for i in fv]
    e0 = [_zeros_for(ext[j]) for j in fe]
    (_, *carried), gq = _loop(lambda j, *a: [j >= 0], bstep, [n - 1] + g0 + e0, [], n_max, not reverse,
                              "gradient of while_loop")
    out = [None] * len(inputs)
    for i, g in zip(fv, carried[:len(fv)]):
        out[i] = g
    for q, g in zip(fq, gq):
        out[k + q] = g
    for j, g in zip(fe, carried[len(fv):]):
        out[k + ns + j] = g
    return tuple(out)


WHILE.grad = _while_grad


# ---- scan ------------------------------------------------------------------------------------------

def scan(fn, elems, initializer=None, parallel_iterations=10, back_prop=True, swap_memory=False, infer_shape=True,
         reverse=False, name=None):
    """``tf.scan``: ``a = fn(a, x)`` for each ``x`` of ``elems`` unstacked along axis 0, returning
    every ``a`` stacked along a new axis 0. ``elems`` is a tensor or a (nested) structure of tensors
    of the same first dimension ``n``; ``a`` starts as ``initializer`` (its structure, shapes and
    dtypes are kept), or as the first element of ``elems`` (then ``fn`` runs ``n - 1`` times and
    the result's first row is that element). Inside ``webtensor.function`` it is a ``while_loop``
    with ``maximum_iterations=n`` (so it is differentiable there too).

    Args:
        fn: ``fn(a, x) -> a``: ``a`` structured like ``initializer``, ``x`` like ``elems``.
        elems: a tensor or (nested) structure of tensors with the same size ``n >= 1`` of axis 0.
        initializer: the initial ``a``; None: the first (last with ``reverse``) element of ``elems``.
        parallel_iterations: TensorFlow's bound on iterations run in parallel; unused.
        back_prop: False: no gradient flows through the scan (its results are ``stop_gradient``-ed).
        swap_memory: TensorFlow's GPU-to-host swapping of stored iterations; unused.
        infer_shape: TensorFlow's shape-consistency switch; shapes are always checked here.
        reverse: scan from the last element to the first (results keep ``elems``' order).
        name: TensorFlow's op name (a str or None); unused.
    Returns:
        ``a``'s structure, each tensor of shape ``(n,) + a.shape``.
    Raises:
        TypeError: ``fn`` not callable, or returns another structure or dtype.
        ValueError: ``elems`` empty, of rank 0 or of different first dimensions; ``fn`` changes a shape.
        NotImplementedError: traced with ``elems``' axis 0 a None dimension of an ``input_signature``
            (the loop then takes its count at run time) and no ``initializer``.
    """
    if not callable(fn):
        raise TypeError("scan: fn must be a callable fn(a, x)")
    done = (lambda ts: ts) if back_prop else (lambda ts: [F.stop_gradient(t) for t in ts])
    estruct, xs = _leaves(elems, "scan: elems")
    if not xs or any(x is None or x.ndim == 0 for x in xs):
        raise ValueError("scan: elems must be tensors of rank >= 1")
    n = xs[0].shape[0]
    if any(x.shape[0] != n for x in xs):
        raise ValueError(f"scan: elems have different first dimensions {[x.shape[0] for x in xs]}")
    if not isinstance(n, Dim) and n == 0:       # a Dim (a None axis) is checked when specialised
        raise ValueError("scan: elems are empty (first dimension 0)")
    if isinstance(n, Dim) and initializer is None:
        raise NotImplementedError("scan: elems' axis 0 is a None dimension of an input_signature, so its first "
                                  "element cannot start the accumulator at trace time; pass an initializer")
    first = n - 1 if reverse else 0
    if initializer is None:
        astruct, a0 = estruct, [x[first] for x in xs]
    else:
        astruct, a0 = _leaves(initializer, "scan: initializer")

    def apply(a, x):
        out = fn(unflatten(astruct, iter(a)), unflatten(estruct, iter(x)))
        s, new = _leaves(out, "scan: fn")
        if _plain(s) != _plain(astruct):
            raise TypeError("scan: fn must return the structure of the accumulator (initializer, or elems "
                            "when there is none)")
        _same("scan", "accumulator", a0, new, "after fn")
        return new

    if _state.current_trace() is None:
        rows = {}
        if initializer is None:
            rows[first] = a0
        order = [t for t in range(n) if initializer is not None or t != first]
        a = a0
        for t in (reversed(order) if reverse else order):
            a = rows[t] = apply(a, [x[t] for x in xs])
        stacked = [F.stack([rows[t][k] for t in range(n)]) for k in range(len(a0))]
        return unflatten(astruct, iter(done(stacked)))

    seqs = xs
    if initializer is None:      # a0 is the first row: scan the others, then put a0 back in its place
        seqs = [x[:-1] if reverse else x[1:] for x in xs]
    m, ka = n - int(initializer is None), len(a0)     # a Dim for a None axis (maximum_iterations at run time)
    ys = []
    if isinstance(m, Dim) or m:
        def step(*args):
            new = apply(list(args[:ka]), list(args[ka:]))
            return new + [F.expand_dims(v, 0) for v in new]
        _, ys = _loop(lambda *a: [tensor(True)], step, a0, seqs, m, reverse, "scan")
    if initializer is None:
        ys = [F.concat([y, F.expand_dims(v, 0)] if reverse else [F.expand_dims(v, 0), y], 0) if m else
              F.expand_dims(v, 0) for y, v in zip(ys or [None] * ka, a0)]     # n == 1: no loop
    return unflatten(astruct, iter(done(ys)))

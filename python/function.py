"""``webtensor.function``: trace Python into a graph, optimise it, compile it, cache it.

Like ``tf.function``: the first call with a new input signature (tensor shapes, dtypes,
device; values of non-tensor arguments) runs the Python function on symbolic tensors,
recording every op into a :class:`~webtensor.core.graph.Graph`. Python control flow is
unrolled at trace time; an ``if`` or ``while`` on a tensor's value raises a TypeError that names
:func:`webtensor.cond` and :func:`webtensor.while_loop`, which put data-dependent control flow in the
graph (``python/control.py``). Variables are read by reference, so later calls see their current
values; assignments inside the function become in-place updates after each run.

The traces belong to the function object: at most ``webtensor.config.get_cache_limits()['traces']``
signatures are kept (least recently used dropped first), and ``del f`` releases them with their
compiled executables. Tracing often (5 traces within 10 calls, TensorFlow's rule) warns once per
function with a :class:`~webtensor.config.RetracingWarning`.

Threads: a function may be called from many threads. Looking up and tracing a signature holds the
function's lock (so each signature is traced once; other callers wait, as in ``tf.function``);
running holds the device's lock, so a call's variable reads, run and updates are not interleaved
with another thread's on that device. Traces record only their own thread's ops.
"""
from __future__ import annotations

import functools
import threading
import warnings

from . import _state
from .config import TICK, LRUCache, RetracingWarning
from .core import passes
from .core.runtime import control
from .core.graph import Graph, Value
from .device import get_device
from .tape import GradientTape
from .tensor import Tensor, Variable, init_scope, tensor
from .tree import flatten, unflatten


class Trace:
    """The graph under construction and the mapping from tensors to its values."""

    def __init__(self, device):
        self.device = device
        self.graph = Graph()
        self._consts: dict[int, tuple[Tensor, Value]] = {}
        self.captures: dict[Variable, Value] = {}
        self.current: dict[Variable, Value] = {}
        self._scalars: dict = {}

    def symbolic(self, value: Value) -> Tensor:
        return Tensor(None, value.aval, self.device, sym=(self, value))

    def value_of(self, t: Tensor) -> Value:
        if t._sym is not None:
            tr, v = t._sym
            if tr is not self:
                raise RuntimeError("a symbolic tensor from another webtensor.function trace was used here; "
                                   "return it from its function instead")
            return v
        if isinstance(t, Variable):
            return self._var_value(t)
        hit = self._consts.get(id(t))
        if hit is None:
            v = Value(t._aval)
            data = t._data if t.device is self.device else t.to(self.device)._data
            self.graph.consts[v] = data
            hit = self._consts[id(t)] = (t, v)  # the tensor is kept alive so its id stays unique
        return hit[1]

    def scalar(self, x, dtype) -> Tensor:
        """A Python scalar operand: one constant per distinct (value, dtype) in the graph."""
        key = (dtype.name, repr(x))
        t = self._scalars.get(key)
        if t is None:
            with init_scope():
                t = self._scalars[key] = tensor(x, dtype=dtype, device=self.device)
        return t

    def _var_value(self, var: Variable) -> Value:
        if var in self.current:
            return self.current[var]
        if var.device is not self.device:
            raise ValueError(f"Variable {var.name!r} is on {var.device.name} but the function runs on "
                             f"{self.device.name}")
        v = self.captures[var] = self.current[var] = Value(var._aval)
        return v

    def apply(self, op, ts, attrs, aval) -> Tensor:
        return self.symbolic(self.graph.add(op, [self.value_of(t) for t in ts], attrs, aval))

    def read(self, var: Variable) -> Tensor:
        return self.symbolic(self._var_value(var))

    def assign(self, var: Variable, value: Tensor) -> None:
        self._var_value(var)
        self.current[var] = self.value_of(value)

    def finish(self, outputs: list[Tensor]) -> Graph:
        g = self.graph
        g.outputs = [self.value_of(t) for t in outputs]
        g.captures = [(v, var) for var, v in self.captures.items()]
        g.updates = [(var, v) for var, v in self.current.items() if v is not self.captures[var]]
        return g


def _is_array(x):
    return hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype")


_TENSOR = object()  # marks the tensor leaves of an output structure (None is a valid static output)


class _Concrete:
    def __init__(self, raw: Graph, graph: Graph, exe, out_struct, out_static, n_outputs):
        self.used = 0   # use stamp (LRUCache)
        self.raw_graph, self.graph, self.exe = raw, graph, exe
        self.out_struct, self.out_static, self.n_outputs = out_struct, out_static, n_outputs


# TensorFlow's rule for its retracing warning: this many traces ...
RETRACE_WARNING_THRESHOLD = 5
# ... within the latest this-many calls
RETRACE_WARNING_CALLS = 10


class Function:
    """A Python function traced per input signature; call it like the original. Made by
    :func:`function`. ``trace_count``: traces so far. The traced signatures (``_cache``, an LRU
    bounded by the ``traces`` cache limit) and their executables are owned by this object.

    Args:
        fn: the Python function.
        name: the name used in messages (default: ``fn``'s).
    """

    def __init__(self, fn, name: str | None = None):
        self.python_function = fn
        self.name = name or getattr(fn, "__name__", "function")
        self._cache = LRUCache("traces")
        self._lock = threading.RLock()
        self.trace_count = 0
        self._calls_per_trace: list[int] = []   # calls since each recent trace, oldest first
        self._recent_calls = 0                  # calls counted in _calls_per_trace
        self._warned = False
        functools.update_wrapper(self, fn)

    def __get__(self, obj, objtype=None):  # decorate methods too
        if obj is None:
            return self
        # One traced function per instance, stored on the instance (no global cache to leak).
        key = f"_webtensor_function_{id(self)}"
        fn = obj.__dict__.get(key)
        if fn is None:      # setdefault: threads racing here all get the same one
            fn = obj.__dict__.setdefault(key, Function(self.python_function.__get__(obj, objtype), self.name))
        return fn

    def _signature(self, args, kwargs):
        leaves: list = []
        struct = flatten((args, kwargs), leaves)
        key, tensors = [], []
        for x in leaves:
            if isinstance(x, Tensor) and not isinstance(x, Variable):
                tensors.append(x)
                key.append(("T", x.shape, x.dtype.name, x.device.name))
            elif _is_array(x):
                t = tensor(x)
                tensors.append(t)
                key.append(("T", t.shape, t.dtype.name, t.device.name))
            elif isinstance(x, Variable):
                key.append(("V", id(x)))
            else:
                try:
                    hash(x)
                except TypeError:
                    raise TypeError(f"{self.name}: argument {x!r} is neither a tensor nor hashable") from None
                key.append(("S", type(x).__name__, x))
        return struct, leaves, tuple(key), tensors

    def _trace(self, struct, leaves, tensors):
        dev = tensors[0].device if tensors else get_device()
        for t in tensors:
            if t.device is not dev:
                raise ValueError(f"{self.name}: arguments are on different devices ({dev.name}, {t.device.name})")
        tr = Trace(dev)
        it = iter(tensors)
        sym_leaves = []
        for x in leaves:
            if (isinstance(x, Tensor) and not isinstance(x, Variable)) or _is_array(x):
                t = next(it)
                v = Value(t._aval)
                tr.graph.inputs.append(v)
                sym_leaves.append(tr.symbolic(v))
            else:
                sym_leaves.append(x)
        args, kwargs = unflatten(struct, iter(sym_leaves))
        _state.local.traces.append(tr)
        try:
            out = self.python_function(*args, **kwargs)
        finally:
            _state.local.traces.pop()
        out_leaves: list = []
        out_struct = flatten(out, out_leaves)
        outputs = [t for t in out_leaves if isinstance(t, Tensor)]
        static = [_TENSOR if isinstance(t, Tensor) else t for t in out_leaves]
        raw = tr.finish(outputs)
        graph = passes.optimize(raw, _evaluator(dev))
        self.trace_count += 1
        return _Concrete(raw, graph, control.compile_graph(dev, graph), out_struct, static, len(outputs))

    def _concrete(self, struct, leaves, key, tensors, count: bool) -> _Concrete:
        """The cached trace for ``key``, else a new one (under the lock: one trace per signature);
        ``count``: a call (counted for the retracing warning)."""
        c = dict.get(self._cache, key)      # a hit needs no lock (dict reads are atomic)
        if c is not None:
            c.used = next(TICK)
            if count:
                self._recent_calls += 1     # _count_call(False), inlined; approximate across threads
                if self._calls_per_trace:
                    self._calls_per_trace[-1] += 1
            return c
        with self._lock:
            c = self._cache.get(key)
            traced = c is None
            if traced:
                c = self._trace(struct, leaves, tensors)
                self._cache.put(key, c)
            if count:
                self._count_call(traced)
        return c

    def _count_call(self, traced: bool) -> None:
        """TensorFlow's frequent-tracing rule: warn (once) when RETRACE_WARNING_THRESHOLD of the
        latest calls, within RETRACE_WARNING_CALLS, traced."""
        per = self._calls_per_trace
        self._recent_calls += 1
        if not traced:
            if per:
                per[-1] += 1
            return
        per.append(1)
        while len(per) > 1 and self._recent_calls - per[0] >= RETRACE_WARNING_CALLS:   # never empties it
            self._recent_calls -= per.pop(0)
        if len(per) >= RETRACE_WARNING_THRESHOLD and not self._warned:
            self._warned = True
            warnings.warn(
                f"{len(per)} out of the last {self._recent_calls} calls to {self.python_function!r} triggered "
                "webtensor.function retracing. Tracing is expensive (each trace is optimised and compiled, and "
                "kept until the 'traces' cache limit drops it) and the excessive number of tracings could be "
                "due to (1) creating @webtensor.function repeatedly in a loop, (2) passing tensors with "
                "different shapes, (3) passing Python objects instead of tensors. For (1), define the function "
                "outside the loop; for (2), use fewer distinct shapes (pad or bucket the inputs); for (3), pass "
                "values that change as tensors (Python values are part of the signature).",
                RetracingWarning, stacklevel=4)

    def get_concrete(self, *args, **kwargs) -> _Concrete:
        """The traced and compiled form for these arguments (tracing if needed); ``.graph`` is the
        optimised graph, ``.raw_graph`` the graph as traced."""
        return self._concrete(*self._signature(args, kwargs), count=False)

    def __call__(self, *args, **kwargs):
        state = _state.local
        if (state.traces and state.traces[-1] is not None) or state.tapes:
            # Inside another trace: inline. Under an eager tape: run eagerly so the tape sees every op.
            return self.python_function(*args, **kwargs)
        struct, leaves, key, tensors = self._signature(args, kwargs)
        c = dict.get(self._cache, key)
        if c is not None:       # _concrete's lock-free hit, inlined (the per-step path)
            c.used = next(TICK)
            self._recent_calls += 1
            if self._calls_per_trace:
                self._calls_per_trace[-1] += 1
        else:
            c = self._concrete(struct, leaves, key, tensors, count=True)
        g = c.graph
        dev = c.exe.device if hasattr(c.exe, "device") else get_device()
        with dev.lock:      # this call's variable reads, run and updates, not interleaved with another's
            outs, updates = c.exe.run([t._data for t in tensors], [var._data for _, var in g.captures])
            for (var, v), data in zip(g.updates, updates):
                var._data = data
        it = iter(Tensor(d, v.aval, dev) for d, v in zip(outs, g.outputs))
        return unflatten(c.out_struct, iter([next(it) if s is _TENSOR else s for s in c.out_static]))


def _evaluator(dev):
    return lambda op, datas, attrs, in_avals, out_aval: dev.execute(op, datas, attrs, in_avals, out_aval)


def function(fn=None, *, name: str | None = None):
    """Decorator: ``@webtensor.function`` traces ``fn`` into an optimised, compiled graph per input
    signature (shapes and dtypes of the tensor arguments, values of the others), as ``tf.function``.
    Works on functions and methods. See the module docstring for the semantics.

    Args:
        fn: the Python function (a :class:`Function` is returned as is); None for
            ``@webtensor.function(name=...)``.
        name: the name used in messages and exported graphs (default: ``fn``'s).
    Returns:
        A :class:`Function` (or a decorator when ``fn`` is None).
    """
    if fn is None:
        return lambda f: Function(f, name)
    return fn if isinstance(fn, Function) else Function(fn, name)


def value_and_grad(fn, argnums=0):
    """``f(*args) -> (value, grads)``: the value of ``fn`` and its gradient with respect to some
    positional arguments (``jax.value_and_grad``). Traced: one graph holds the forward and
    backward passes. Variables used by ``fn`` are differentiated with a tape instead.

    Args:
        fn: a function of tensors returning a float tensor (a scalar, or any shape: its sum is
            differentiated).
        argnums: the position (an int) or positions (a tuple) of the arguments to differentiate.
    Returns:
        A :class:`Function` returning ``(value, grad)``, ``grad`` a tensor for an int ``argnums``
        else a tuple; an argument ``fn`` does not use gets zeros.
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def vg(*args):
        with GradientTape() as tape:
            for i in nums:
                tape.watch(args[i])
            y = fn(*args)
        grads = tape.gradient(y, [args[i] for i in nums], unconnected_gradients="zero")
        return y, grads[0] if isinstance(argnums, int) else tuple(grads)

    return function(vg, name=f"value_and_grad({getattr(fn, '__name__', 'f')})")


def grad(fn, argnums=0):
    """``f(*args) -> grads``: the gradient of ``fn`` (``jax.grad``; see :func:`value_and_grad`).

    Args:
        fn: a function of tensors returning a float tensor.
        argnums: the position (an int) or positions (a tuple) of the arguments to differentiate.
    Returns:
        A :class:`Function` returning the gradient (a tensor, or a tuple for a tuple ``argnums``).
    """
    vg = value_and_grad(fn, argnums)
    return function(lambda *args: vg.python_function(*args)[1], name=f"grad({getattr(fn, '__name__', 'f')})")

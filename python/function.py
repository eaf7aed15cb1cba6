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
import inspect
import threading
import warnings

from . import _state
from .config import TICK, LRUCache, RetracingWarning
from .core import passes
from .core.runtime import control
from .core.graph import Graph, Value
from .core.op import Aval
from .core.shapes import Dim
from .core.symbolic import bind, graph_is_symbolic, specialize
from .device import get_device
from .tape import GradientTape
from .tensor import Tensor, Variable, init_scope, tensor
from .tensor_spec import TensorSpec
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
        self.sizes = None   # a symbolic trace (graph and exe None): its specialisations per input shapes

    def specialized(self, tensors, lock) -> "_Concrete":
        """This trace compiled for ``tensors``' shapes: itself for a fixed-shape trace; for a symbolic
        one (an ``input_signature`` with None sizes), the raw graph specialised for the concrete
        sizes (``core/symbolic.py``), optimised and compiled once per distinct input shapes, kept in
        an LRU bounded by the ``traces`` cache limit. No retrace: the Python function is not run."""
        if self.sizes is None:
            return self
        key = tuple(t.shape for t in tensors)
        c = dict.get(self.sizes, key)
        if c is not None:
            c.used = next(TICK)
            return c
        with lock:
            c = self.sizes.get(key)
            if c is None:
                dev = tensors[0].device if tensors else get_device()
                raw = specialize(self.raw_graph, bind([v.aval.shape for v in self.raw_graph.inputs], key))
                graph = passes.optimize(raw, _evaluator(dev))
                c = _Concrete(raw, graph, control.compile_graph(dev, graph), self.out_struct, self.out_static,
                              self.n_outputs)
                self.sizes.put(key, c)
        return c


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
        input_signature: None, or a sequence of :class:`~webtensor.TensorSpec` (one per positional
            argument): ``fn`` is traced once, for every size its None dimensions take.
    Raises:
        TypeError: ``input_signature`` not a sequence of TensorSpecs.
    """

    def __init__(self, fn, name: str | None = None, input_signature=None):
        self.python_function = fn
        self.name = name or getattr(fn, "__name__", "function")
        if input_signature is not None:
            if isinstance(input_signature, TensorSpec) or not isinstance(input_signature, (list, tuple)) or \
                    not all(isinstance(s, TensorSpec) for s in input_signature):
                raise TypeError(f"{self.name}: input_signature must be a list or tuple of webtensor.TensorSpec, "
                                f"got {input_signature!r}")
            input_signature = tuple(input_signature)
        self.input_signature = input_signature
        # fit/evaluate/predict steps: axis 0 of every tensor argument is one symbol, "batch", so a
        # last partial batch does not retrace; off again after a trace that needs concrete sizes
        self._symbolic_batch = False
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
            f = Function(self.python_function.__get__(obj, objtype), self.name, self.input_signature)
            f._symbolic_batch = self._symbolic_batch
            fn = obj.__dict__.setdefault(key, f)
        return fn

    def experimental_get_tracing_count(self) -> int:
        """How many times the Python function was traced (TensorFlow's name; ``trace_count``)."""
        return self.trace_count

    def _spec_signature(self, args, kwargs):
        """:meth:`_signature` of a function with an ``input_signature``: each argument checked
        against its spec (converted to a tensor of the spec's dtype if it is not one); one key for
        every call (the trace serves every size of the None dimensions)."""
        specs = self.input_signature
        if kwargs:
            try:
                args = inspect.signature(self.python_function).bind(*args, **kwargs).args
            except TypeError as e:
                raise TypeError(f"{self.name}: {e}") from None
            if len(args) != len(specs):
                raise TypeError(f"{self.name}: with an input_signature, arguments must bind to the "
                                f"{len(specs)} positional parameters it describes")
        if len(args) != len(specs):
            raise TypeError(f"{self.name}: takes {len(specs)} positional argument(s) (its input_signature), "
                            f"got {len(args)}")
        tensors = []
        for i, (x, spec) in enumerate(zip(args, specs)):
            if isinstance(x, Variable) or not isinstance(x, Tensor):
                try:
                    x = tensor(x, dtype=spec.dtype)
                except (TypeError, ValueError) as e:
                    raise TypeError(f"{self.name}: argument {i} ({x!r}) cannot be converted to {spec}: {e}") from None
            if x.dtype != spec.dtype:
                raise TypeError(f"{self.name}: argument {i} has dtype {x.dtype.name}, but its input_signature "
                                f"entry is {spec}")
            if not spec.is_compatible_with(x):
                raise ValueError(f"{self.name}: argument {i} has shape {tuple(x.shape)}, incompatible with its "
                                 f"input_signature entry {spec}")
            tensors.append(x)
        leaves: list = []
        struct = flatten((tuple(tensors), {}), leaves)
        return struct, leaves, ("SPEC", tensors[0].device.name if tensors else None), tensors

    def _signature(self, args, kwargs):
        if self.input_signature is not None:
            return self._spec_signature(args, kwargs)
        leaves: list = []
        struct = flatten((args, kwargs), leaves)
        key, tensors = [], []
        batch = self._symbolic_batch
        for x in leaves:
            if (isinstance(x, Tensor) and not isinstance(x, Variable)) or _is_array(x):
                t = x if isinstance(x, Tensor) else tensor(x)
                tensors.append(t)
                shape = (None,) + t.shape[1:] if batch and t.shape else t.shape
                key.append(("T", shape, t.dtype.name, t.device.name))
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
        if not self._symbolic_batch:
            return self._trace_once(struct, leaves, tensors)
        try:
            return self._trace_once(struct, leaves, tensors)    # control flow too: specialised per size
        except Exception:               # noqa: BLE001  (retraced below: a real error raises there again)
            pass                        # the step needs concrete sizes (int(x.shape[0]), a check of a size ...)
        self._symbolic_batch = False    # from now on one trace per batch shape, as before
        return self._trace_once(struct, leaves, tensors)

    def _trace_once(self, struct, leaves, tensors):
        dev = tensors[0].device if tensors else get_device()
        for t in tensors:
            if t.device is not dev:
                raise ValueError(f"{self.name}: arguments are on different devices ({dev.name}, {t.device.name})")
        tr = Trace(dev)
        it = iter(tensors)
        specs = iter(self.input_signature or ())
        sym_leaves = []
        for x in leaves:
            if (isinstance(x, Tensor) and not isinstance(x, Variable)) or _is_array(x):
                t = next(it)
                if self.input_signature is not None:
                    v = Value(_symbolic_aval(next(specs), len(tr.graph.inputs)))
                elif self._symbolic_batch and t.shape:
                    v = Value(Aval((_BATCH,) + t.shape[1:], t.dtype))
                else:
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
        self.trace_count += 1
        if graph_is_symbolic(raw):      # compiled per concrete shapes at call time (_Concrete.specialized)
            c = _Concrete(raw, None, None, out_struct, static, len(outputs))
            c.sizes = LRUCache("traces")
            return c
        graph = passes.optimize(raw, _evaluator(dev))
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
                batch = self._symbolic_batch
                c = self._trace(struct, leaves, tensors)
                if batch and not self._symbolic_batch:      # fell back to concrete shapes: their key
                    shapes = iter(t.shape for t in tensors)
                    key = tuple((k[0], next(shapes)) + k[2:] if k[0] == "T" else k for k in key)
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
        struct, leaves, key, tensors = self._signature(args, kwargs)
        return self._concrete(struct, leaves, key, tensors, count=False).specialized(tensors, self._lock)

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
        if c.sizes is not None:
            c = c.specialized(tensors, self._lock)
        g = c.graph
        dev = c.exe.device if hasattr(c.exe, "device") else get_device()
        with dev.lock:      # this call's variable reads, run and updates, not interleaved with another's
            outs, updates = c.exe.run([t._data for t in tensors], [var._data for _, var in g.captures])
            for (var, v), data in zip(g.updates, updates):
                var._data = data
        it = iter(Tensor(d, v.aval, dev) for d, v in zip(outs, g.outputs))
        return unflatten(c.out_struct, iter([next(it) if s is _TENSOR else s for s in c.out_static]))


_BATCH = Dim("batch")     # the batch size of fit/evaluate/predict steps (Function._symbolic_batch)


def _symbolic_aval(spec: TensorSpec, i: int) -> Aval:
    """The aval of input ``i`` traced for ``spec``: a symbol (:class:`~webtensor.core.shapes.Dim`)
    per None size, named after the spec (or the input's position) and the axis."""
    base = spec.name or f"input_{i}"
    return Aval(tuple(Dim(f"{base}:{a}") if d is None else d for a, d in enumerate(spec.shape)), spec.dtype)


def _evaluator(dev):
    return lambda op, datas, attrs, in_avals, out_aval: dev.execute(op, datas, attrs, in_avals, out_aval)


def function(fn=None, *, name: str | None = None, input_signature=None):
    """Decorator: ``@webtensor.function`` traces ``fn`` into an optimised, compiled graph per input
    signature (shapes and dtypes of the tensor arguments, values of the others), as ``tf.function``.
    Works on functions and methods. See the module docstring for the semantics.

    With ``input_signature`` (as ``tf.function``'s), ``fn`` takes exactly those tensors and is
    traced ONCE: a None size is a symbol (``x.shape[0]`` is a :class:`~webtensor.core.shapes.Dim`,
    which shape rules compute with but which has no value; ``webtensor.shape(x)`` reads it at run
    time, as ``mean`` and ``reshape(x, (-1, ...))`` do). Each new combination of concrete sizes
    specialises the traced graph and compiles it (kept in the ``traces`` LRU), without running
    ``fn`` again.

    Args:
        fn: the Python function (a :class:`Function` is returned as is); None for
            ``@webtensor.function(name=...)``.
        name: the name used in messages and exported graphs (default: ``fn``'s).
        input_signature: None, or a list or tuple of :class:`~webtensor.TensorSpec`, one per
            positional argument.
    Returns:
        A :class:`Function` (or a decorator when ``fn`` is None).
    Raises:
        TypeError: ``input_signature`` is not a sequence of TensorSpecs; at call time, an argument
            whose dtype differs from its spec's, or the wrong number of arguments.
        ValueError: at call time, an argument whose shape is incompatible with its spec.
    """
    if fn is None:
        return lambda f: Function(f, name, input_signature)
    if isinstance(fn, Function) and input_signature is None:
        return fn
    return Function(fn.python_function if isinstance(fn, Function) else fn, name, input_signature)


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

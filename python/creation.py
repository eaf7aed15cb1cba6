"""Tensor creation: constants, ranges, and seeded random tensors.

Random numbers come from Python's ``random.Random`` (Mersenne Twister, seeded
explicitly), so a seed gives the same tensor on every device and in Pyodide,
with or without numpy. Inside ``webtensor.function`` they are computed in the graph instead
(:mod:`webtensor._graph_random`, a counter-based hash of a per-device generator state Variable,
advanced by every traced draw, as TensorFlow's stateful random ops): each call of a traced function
draws new numbers, and :func:`set_seed` makes the sequence reproducible.

Every function here first asks the device whether it can hold the result
(:meth:`webtensor.Device.check_alloc`: the check the device's own allocator runs), so a size
the device cannot hold raises MemoryError, naming the function, the shape and the bytes, before
anything is built; values are then generated straight into the host buffer (4 bytes an element
for float32/int32), never into a Python list.
"""
from __future__ import annotations

import atexit
import math
import random as _random
import weakref
from math import prod

from . import _graph_random, _state
from .core.runtime import hostdata
from .core import ops as F
from .core.dtypes import INT32_MAX, INT32_MIN, as_dtype, float32, int32
from .core.op import Aval
from .core.shapes import Dim
from .device import get_device
from .tensor import Tensor, Variable, init_scope, tensor


def _shape(shape):
    """A shape argument as a tuple of ints, keeping symbolic sizes (inside a function traced with
    ``None`` dimensions): a :class:`~webtensor.core.shapes.Dim` (``x.shape[0]``) or a size read with
    :func:`webtensor.shape` (``wt.shape(x)[0]``, or ``wt.shape(x)`` itself), so that
    ``zeros((wt.shape(x)[0], units))`` takes the run-time batch (an RNN's initial state)."""
    if isinstance(shape, Tensor) and shape._sym is not None:
        parts = _traced_sizes(shape)
        if parts is None:
            raise TypeError("a shape computed in the graph must be read with webtensor.shape (its sizes "
                            "become the run-time sizes); other computed shapes are not supported")
        return parts
    if isinstance(shape, int):
        return (shape,)
    return tuple(d if isinstance(d, Dim) else _traced_size(d) if isinstance(d, Tensor) and d._sym is not None
                 else int(d) for d in shape)


def _traced_size(t: Tensor):
    sizes = _traced_sizes(t)
    if sizes is None or len(sizes) != 1:
        raise TypeError("a size computed in the graph must be read with webtensor.shape (wt.shape(x)[i], "
                        "which becomes the run-time size); other computed sizes are not supported")
    return sizes[0]


def _traced_sizes(t: Tensor):
    """The sizes (ints and Dims) that the traced int32 tensor ``t`` (a scalar or 1-D) holds when it is
    made of :func:`webtensor.shape`'s parts (``core/ops/sizes.py``: each symbolic size a
    ``reduce_sum(broadcast_to(1, (d,)))``, stacked, indexed); None for anything else."""
    trace, v = t._sym
    made = {n.out: n for n in trace.graph.nodes}

    def sizes(v):
        n = made.get(v)
        if n is None:
            data = trace.graph.consts.get(v)
            if data is None or len(v.aval.shape) > 1:
                return None
            return list(trace.device.to_host_bytes(data, v.aval).cast("i")) if v.aval.dtype.name == "int32" else None
        name = n.op.name
        if name == "reduce_sum" and made.get(n.inputs[0]) is not None and made[n.inputs[0]].op.name == "broadcast_to":
            shape = made[n.inputs[0]].attrs["shape"]
            return [shape[0]] if len(shape) == 1 and n.out.aval.shape == () else None
        if name in ("reshape", "cast") and prod(n.out.aval.shape) == prod(n.inputs[0].aval.shape):
            return sizes(n.inputs[0])
        if name == "concat" and n.attrs["axis"] == 0:
            parts = [sizes(i) for i in n.inputs]
            return None if None in parts else [d for p in parts for d in p]
        if name == "slice" and len(n.attrs["spec"]) == 1:
            whole = sizes(n.inputs[0])
            return None if whole is None else whole[slice(*n.attrs["spec"][0])]
        return None
    return sizes(v)


def _count(op: str, what: str, value) -> int:
    """A size argument as an int >= 0 (TypeError for a non-integer, as numpy; ValueError below 0)."""
    import operator
    n = operator.index(value)
    if n < 0:
        raise ValueError(f"{op}: {what} must be non-negative, got {n}")
    return n


def _checked(op: str, shape, dtype, device):
    """(device, aval) for ``op``'s result, after the device's size check (MemoryError if too large)."""
    dev, aval = get_device(device), Aval(tuple(shape), dtype)
    dev.check_alloc(aval, f"the {dtype.name} result of shape {aval.shape} of {op}")
    return dev, aval


def _host(values, dev, aval) -> Tensor:
    """A tensor of ``aval`` on ``dev`` from an iterable of Python numbers (consumed once, in order)."""
    buf = hostdata.pack(values, aval.dtype)
    return Tensor(dev.from_host(buf, aval), aval, dev)


def _full(op, shape, fill_value, dtype, device) -> Tensor:
    shape = _shape(shape)
    value = tensor(fill_value, dtype=dtype, device=device)
    if not any(isinstance(d, Dim) for d in shape):     # symbolic sizes: checked where the run allocates
        _checked(op, shape, value.dtype, value.device)
    return F.broadcast_to(value, shape)


def full(shape, fill_value, dtype=None, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (tf.fill, numpy.full).

    Args:
        shape: an int or a sequence of ints.
        fill_value: a Python number or bool (or a scalar tensor).
        dtype: the dtype (default: inferred from ``fill_value`` as :func:`webtensor.tensor` does).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape`` and that dtype.
    Raises:
        MemoryError: the device cannot hold the result (checked first; so for all the functions below).
        ValueError: a negative size.
    """
    return _full("full", shape, fill_value, dtype, device)


def zeros(shape, dtype=float32, device=None) -> Tensor:
    """A tensor of ``shape`` filled with 0, as ``numpy.zeros``/``tf.zeros``.

    Args:
        shape: an int or a sequence of ints.
        dtype: the dtype (float32 by default).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape`` and ``dtype``.
    Raises:
        MemoryError: the device cannot hold the result. ValueError: a negative size.
        TypeError: an unknown dtype.
    """
    return _full("zeros", shape, 0, dtype, device)


def ones(shape, dtype=float32, device=None) -> Tensor:
    """A tensor of ``shape`` filled with 1, as ``numpy.ones``/``tf.ones``.

    Args:
        shape: an int or a sequence of ints.
        dtype: the dtype (float32 by default).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape`` and ``dtype``.
    Raises:
        MemoryError: the device cannot hold the result. ValueError: a negative size.
        TypeError: an unknown dtype.
    """
    return _full("ones", shape, 1, dtype, device)


def zeros_like(x, dtype=None) -> Tensor:
    """Zeros with ``x``'s shape, on ``x``'s device (tf.zeros_like, numpy.zeros_like).

    Args:
        x: a tensor.
        dtype: the result's dtype (default: ``x``'s).
    Returns:
        A tensor of ``x``'s shape.
    Raises:
        MemoryError: the device cannot hold the result. TypeError: an unknown dtype.
    """
    return _full("zeros_like", x.shape, 0, dtype or x.dtype, x.device)


def ones_like(x, dtype=None) -> Tensor:
    """Ones with ``x``'s shape, on ``x``'s device (tf.ones_like, numpy.ones_like).

    Args:
        x: a tensor.
        dtype: the result's dtype (default: ``x``'s).
    Returns:
        A tensor of ``x``'s shape.
    Raises:
        MemoryError: the device cannot hold the result. TypeError: an unknown dtype.
    """
    return _full("ones_like", x.shape, 1, dtype or x.dtype, x.device)


def _first_outside_int32(start: int, step: int, n: int):
    """The first of ``start + i * step`` (i < n) outside int32's range, or None."""
    last = start + (n - 1) * step
    if n == 0 or INT32_MIN <= min(start, last) and max(start, last) <= INT32_MAX:
        return None
    if not INT32_MIN <= start <= INT32_MAX:
        return start
    bound = INT32_MAX + 1 if step > 0 else INT32_MIN - 1
    return start + -((start - bound) // step) * step    # ceil((bound - start) / step) steps on


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """numpy.arange: ``ceil((stop - start) / step)`` values ``start + i * step`` (computed in Python's
    float64 for floats, then rounded); ints give int32, any float gives float32.

    Args:
        start: the first value; with ``stop`` None, the stop (and the start is 0).
        stop: the end (exclusive).
        step: the spacing (nonzero).
        dtype: the dtype (default: int32 for int arguments, else float32).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of shape ``(n,)``.
    Raises:
        ZeroDivisionError: ``step`` 0.
        MemoryError: the device cannot hold the result (checked before anything is built).
        OverflowError: an int32 result would hold a value outside int32's range (named).
    """
    if stop is None:
        start, stop = 0, start
    isint = all(isinstance(v, int) for v in (start, stop, step))
    dt = as_dtype(dtype) if dtype is not None else (int32 if isint else float32)
    n = max(0, math.ceil((stop - start) / step))
    dev, aval = _checked("arange", (n,), dt, device)
    if isint:
        bad = _first_outside_int32(start, step, n) if dt == int32 else None
        if bad is not None:
            raise hostdata.int32_overflow(bad, "arange")
        return _host(range(start, start + n * step, step), dev, aval)
    return _host((start + i * step for i in range(n)), dev, aval)


def linspace(start, stop, num=50, endpoint=True, dtype=float32, device=None) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` (numpy.linspace): ``start + i * step``
    with ``step = (stop - start) / (num - 1)`` (``/ num`` without the endpoint); the last value is
    ``stop`` exactly when ``endpoint``.

    Args:
        start: the first value.
        stop: the last value (or the end, excluded, with ``endpoint=False``).
        num: the number of values, a non-negative int.
        endpoint: whether ``stop`` is included.
        dtype: the dtype (float32 by default).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of shape ``(num,)``.
    Raises:
        ValueError: a negative ``num``. TypeError: a ``num`` that is not an integer.
        MemoryError: the device cannot hold the result (checked before anything is built).
    """
    num = _count("linspace", "num", num)
    div = (num - 1) if endpoint else num
    step = (stop - start) / div if div > 0 else 0.0
    dev, aval = _checked("linspace", (num,), as_dtype(dtype), device)
    last = num - 1 if endpoint and num > 1 else -1
    return _host((stop if i == last else start + i * step for i in range(num)), dev, aval)


def eye(n, m=None, dtype=float32, device=None) -> Tensor:
    """The ``(n, m)`` identity matrix: ones on the main diagonal (numpy.eye, tf.eye).

    Args:
        n: the number of rows, a non-negative int.
        m: the number of columns (default ``n``).
        dtype: the dtype (float32 by default).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of shape ``(n, m)``.
    Raises:
        MemoryError: the device cannot hold the result. ValueError: a negative size.
        TypeError: a size that is not an integer.
    """
    n = _count("eye", "n", n)
    m = n if m is None else _count("eye", "m", m)
    dev, aval = _checked("eye", (n, m), as_dtype(dtype), device)
    return _host((1 if i == j else 0 for i in range(n) for j in range(m)), dev, aval)


_global = _random.Random(0)


def set_seed(seed: int) -> None:
    """Seed the global generator used by random functions called without ``seed`` (tf.random.set_seed),
    and by layers to draw their own seeds (so a model's initial weights are reproducible).

    Args:
        seed: an int.
    """
    _global.seed(seed)
    with init_scope():
        for counter in _COUNTERS.values():
            counter.assign(0)


def _rng(seed):
    return _random.Random(seed) if seed is not None else _random.Random(_global.getrandbits(64))


def uniform(shape, minval=0.0, maxval=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Uniform samples in ``[minval, maxval)`` (tf.random.uniform); the same ``seed`` gives the same
    values on every device (Python's Mersenne Twister).

    Args:
        shape: an int or a sequence of ints.
        minval: the lower bound (included).
        maxval: the upper bound (excluded).
        dtype: the dtype (float32 by default).
        seed: an int; None draws one from the global generator (:func:`set_seed`).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape``.
    Raises:
        MemoryError: the device cannot hold the result (checked before any number is drawn).
    """
    shape = _shape(shape)
    dev, aval = _checked("uniform", shape, as_dtype(dtype), device)
    if _traced("uniform"):
        u = F.minimum(_graph_uniforms(shape, seed, 1)[0], 1.0 - 2.0 ** -24)     # [0, 1)
        v = minval + (maxval - minval) * u
        return F.cast(v if aval.dtype.is_floating else F.floor(v), aval.dtype)
    r, span = _rng(seed), maxval - minval
    return _host((minval + span * r.random() for _ in range(prod(shape))), dev, aval)


def normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Normal samples N(mean, stddev^2) (tf.random.normal), drawn with Python's ``random.gauss``
    (the Kinderman–Monahan ratio method); the same ``seed`` gives the same values everywhere.

    Args:
        shape: an int or a sequence of ints.
        mean: the mean.
        stddev: the standard deviation.
        dtype: the dtype (float32 by default).
        seed: an int; None draws one from the global generator (:func:`set_seed`).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape``.
    Raises:
        MemoryError: the device cannot hold the result (checked before any number is drawn).
    """
    shape = _shape(shape)
    dev, aval = _checked("normal", shape, as_dtype(dtype), device)
    if _traced("normal"):
        return F.cast(mean + stddev * _graph_normals(shape, seed, 1)[0], aval.dtype)
    r = _rng(seed)
    return _host((r.gauss(mean, stddev) for _ in range(prod(shape))), dev, aval)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, device=None) -> Tensor:
    """Normal samples redrawn until within two standard deviations of the mean (as
    tf.random.truncated_normal); their standard deviation is about ``0.88 * stddev``.

    Args:
        shape: an int or a sequence of ints.
        mean: the mean.
        stddev: the standard deviation before truncation.
        dtype: the dtype (float32 by default).
        seed: an int; None draws one from the global generator (:func:`set_seed`).
        device: a device name or Device (default: the current device).
    Returns:
        A tensor of ``shape``.
    Raises:
        MemoryError: the device cannot hold the result (checked before any number is drawn).
    """
    shape = _shape(shape)
    dev, aval = _checked("truncated_normal", shape, as_dtype(dtype), device)
    if _traced("truncated_normal"):
        z = _graph_random.first_within_two(_graph_normals(shape, seed, _graph_random.TRUNCATION_CANDIDATES))
        return F.cast(mean + stddev * z, aval.dtype)
    r = _rng(seed)

    def draws():
        for _ in range(prod(shape)):
            v = r.gauss(0.0, 1.0)
            while not -2.0 <= v <= 2.0:
                v = r.gauss(0.0, 1.0)
            yield mean + stddev * v

    return _host(draws(), dev, aval)


def categorical(logits, num_samples: int, dtype=int32, seed=None) -> Tensor:
    """Samples of class indices from unnormalised log-probabilities (``tf.random.categorical``), by
    the Gumbel-max trick (Gumbel 1954; Maddison et al. 2014, "A* sampling"): ``argmax(logits + g)``
    with ``g = -log(-log(u))``, ``u`` uniform (:func:`uniform`: on the host eagerly, in the graph when
    traced, so every call of a traced function draws new samples).

    Args:
        logits: a float tensor ``[batch, num_classes]``.
        num_samples: an int >= 0: samples per row.
        dtype: int32 (webtensor has no int64).
        seed: an int; None draws one from the global generator (:func:`set_seed`).
    Returns:
        An int32 tensor ``[batch, num_samples]``.
    Raises:
        ValueError: ``logits`` not of rank 2, ``num_samples`` negative. TypeError: ``dtype`` not int32,
            ``logits`` not float.
    """
    logits = tensor(logits) if not isinstance(logits, Tensor) else logits
    if logits.ndim != 2:
        raise ValueError(f"categorical: logits must be [batch, num_classes], got shape {tuple(logits.shape)}")
    if not logits.dtype.is_floating:
        raise TypeError(f"categorical: logits must be float, got {logits.dtype.name}")
    if as_dtype(dtype) != int32:
        raise TypeError(f"categorical: dtype must be int32 (webtensor has no int64), got {as_dtype(dtype).name}")
    n = _count("categorical", "num_samples", num_samples)
    b, c = logits.shape
    u = uniform((b, n, c), 2.0 ** -24, 1.0, seed=seed, device=logits.device)       # (0, 1): finite logs
    return gumbel_argmax(logits, u)


def gumbel_argmax(logits, u) -> Tensor:
    """``argmax(logits[:, None, :] - log(-log(u)), -1)``: the Gumbel-max draw from uniforms ``u``
    ``[batch, samples, classes]`` in (0, 1) (shared by :func:`categorical` and ``Generator``)."""
    g = -F.log(-F.log(u))
    return F.cast(F.argmax(F.expand_dims(F.cast(logits, float32), 1) + g, -1), int32)


def shuffle(value, seed=None) -> Tensor:
    """``value`` with its first axis randomly permuted (``tf.random.shuffle``): a gather at the
    ``argsort`` of :func:`uniform` keys (drawn in the graph when traced: a new order every call).

    Args:
        value: a tensor of rank >= 1.
        seed: an int; None draws one from the global generator (:func:`set_seed`).
    Returns:
        A tensor of ``value``'s shape and dtype.
    Raises:
        ValueError: a 0-d ``value``.
    """
    value = tensor(value) if not isinstance(value, Tensor) else value
    if value.ndim == 0:
        raise ValueError("shuffle: value must have rank >= 1")
    keys = uniform((value.shape[0],), seed=seed, device=value.device)
    return F.gather(value, F.argsort(keys), axis=0)


# ---- random numbers inside webtensor.function ----------------------------------------------------

# device -> its in-graph generator state: an int32 Variable (never trained or saved). Weak: a device
# that is forgotten takes its counter along; cleared at exit before the devices (atexit runs LIFO).
_COUNTERS = weakref.WeakKeyDictionary()
atexit.register(_COUNTERS.clear)


def _traced(op: str) -> bool:
    """Whether a random op is being traced (then it draws in the graph; inside a loop body the
    counter it advances is carried by the loop, so every iteration draws new numbers)."""
    return _state.current_trace() is not None


def _graph_uniforms(shape, seed, n: int) -> list:
    """``n`` independent float32 tensors of ``shape`` in [0, 1], drawn in the graph being traced: the
    device's counter (read, then advanced by one) and a Python seed (``seed``, else one drawn from
    the global generator at trace time, so each call site has its own stream)."""
    dev = _state.current_trace().device
    counter = _COUNTERS.get(dev)
    if counter is None:
        with init_scope():
            counter = _COUNTERS.setdefault(dev, Variable(0, name="random/counter", trainable=False, dtype=int32,
                                                         device=dev))
    base = seed if seed is not None else _global.getrandbits(31)
    now = counter.read_value()
    counter.assign_add(1)
    return [_graph_random.uniform(shape, now, base * 64 + k) for k in range(n)]


def _graph_normals(shape, seed, n: int) -> list:
    """``n`` independent standard normal float32 tensors of ``shape``, drawn in the graph
    (:func:`webtensor._graph_random.box_muller`)."""
    return _graph_random.box_muller(_graph_uniforms(shape, seed, 2 * ((n + 1) // 2)))[:n]

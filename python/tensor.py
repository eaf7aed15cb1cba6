"""``Tensor``, ``Variable``, and the one dispatch point every op call goes through."""
from __future__ import annotations

import numbers
from math import prod

from . import _state
from .core.runtime import hostdata
from .core import ops as F
from .core.dtypes import INT32_MAX, INT32_MIN, DType, as_dtype, bool_, dtype_of_scalar, float32, int32, result_type
from .core.op import Aval, set_dispatcher
from .core.shapes import Dim
from .core.autodiff import Record
from .device import Device, get_device


class OperatorNotAllowedInGraphError(TypeError, RuntimeError):
    """A Python operation that needs a tensor's value (``bool``: an ``if`` or ``while`` on it) used on a
    symbolic tensor inside ``webtensor.function`` (TensorFlow's error of that name is a TypeError;
    also a RuntimeError, as webtensor's other errors for symbolic values)."""


class Tensor:
    """An n-dimensional array on a device; immutable. Shapes are tuples, dtypes ``webtensor.float32``
    and friends. Inside ``webtensor.function`` tensors are symbolic (no data until the graph runs).
    Operators follow numpy (``+ - * / ** @``, comparisons elementwise, ``&``, ``|``, ``~`` logical;
    indexing as :func:`webtensor.slice`/:func:`webtensor.gather`). Made by :func:`webtensor.tensor`
    and the ops, not by calling the class.

    Args:
        data: the device's buffer handle (None when symbolic).
        aval: the shape and dtype (``webtensor.core.op.Aval``).
        device: the Device holding ``data``.
        sym: the graph value while tracing (None when eager).
    """
    __slots__ = ("_data", "_aval", "_device", "_sym", "__weakref__")
    __array_priority__ = 100  # numpy defers to our operators: ndarray + Tensor -> Tensor

    def __init__(self, data, aval: Aval, device: Device, sym=None):
        self._data, self._aval, self._device, self._sym = data, aval, device, sym

    # ---- facts ----
    @property
    def shape(self) -> tuple[int, ...]:
        return self._aval.shape

    @property
    def dtype(self) -> DType:
        return self._aval.dtype

    @property
    def device(self) -> Device:
        return self._device

    @property
    def ndim(self) -> int:
        return len(self._aval.shape)

    @property
    def size(self) -> int:
        return prod(self._aval.shape)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ---- to the host ----
    # Readback is synchronous except from a GPU in the browser (Pyodide), where the ``*_async``
    # methods must be awaited instead: ``await t.numpy_async()``, ``await t.tolist_async()``.
    def _concrete(self):
        if self._data is None:
            raise RuntimeError("a symbolic tensor (inside webtensor.function tracing) has no value yet; "
                               "return it from the function to get its value")
        return self._data

    def numpy(self):
        """The value as a numpy array of the tensor's shape and dtype: a copy the caller may modify
        (tensors are immutable; as TensorFlow's ``numpy()``). ``np.asarray(t)`` avoids the copy
        where the device allows (see :meth:`__array__`). Raises RuntimeError inside ``function``
        tracing, ImportError without numpy (use :meth:`tolist`), RuntimeError for a browser GPU
        (use ``await t.numpy_async()``)."""
        return self._device.to_host(self._concrete(), self._aval)

    def __array__(self, dtype=None, copy=None):
        """numpy's conversion protocol. ``np.asarray(t)`` (``copy=None``) is a read-only view of
        the tensor's memory where the device can share it, no copy: float32/int32 on "wasm"
        (a view on linear memory, which keeps the buffer allocated while it lives) and on
        "reference"; otherwise, and for ``np.array(t)`` (``copy=True``), a copy.

        Raises:
            ValueError: ``copy=False`` where the value cannot be shared.
        """
        if not copy:
            view = self._device.to_host_view(self._concrete(), self._aval)
            if view is not None and (dtype is None or view.dtype == dtype):
                return view
            if copy is False:
                raise ValueError(f"a {self.dtype.name} tensor on {self._device.name!r} cannot be viewed "
                                 "by numpy without a copy; use np.asarray(t) or t.numpy()")
        a = self.numpy()
        return a.astype(dtype, copy=False) if dtype is not None else a

    def tolist(self):
        """The value as nested Python lists (a number for a 0-d tensor), as ``numpy.ndarray.tolist``;
        without numpy it is read as host bytes (:meth:`Device.to_host_bytes`). Raises as :meth:`numpy`
        does for symbolic tensors and browser GPUs."""
        if _numpy() is not None:   # the device's numpy value (float64 inside float64_reference())
            return self.numpy().tolist()
        return hostdata.to_list(self._host_bytes(), self.shape, self.dtype)

    def item(self):
        """The value of a one-element tensor as a Python number. Raises ValueError for other sizes."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        if _numpy() is not None:
            return self.numpy().reshape(()).item()
        return hostdata.to_list(self._host_bytes(), (), self.dtype)

    def _host_bytes(self):
        return self._device.to_host_bytes(self._concrete(), self._aval)

    async def _host_bytes_async(self):
        return await self._device.to_host_bytes_async(self._concrete(), self._aval)

    async def numpy_async(self):
        """``await t.numpy_async()``: :meth:`numpy` for every device, including WebGPU in the browser,
        whose readback (``GPUBuffer.mapAsync``) is asynchronous."""
        return hostdata.to_numpy(await self._host_bytes_async(), self.shape, self.dtype)

    async def tolist_async(self):
        """``await t.tolist_async()``: :meth:`tolist` for every device (no numpy needed)."""
        return hostdata.to_list(await self._host_bytes_async(), self.shape, self.dtype)

    async def item_async(self):
        """``await t.item_async()``: :meth:`item` for every device."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return hostdata.to_list(await self._host_bytes_async(), (), self.dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype != int32:
            raise TypeError("only int32 scalar tensors can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self._data is None:
            raise OperatorNotAllowedInGraphError(
                "using a symbolic tensor as a Python bool is not allowed inside webtensor.function: an `if` "
                "or `while` on a tensor's value runs once, at trace time, when the value is not known. Use "
                "webtensor.cond(pred, true_fn, false_fn) for `if` and webtensor.while_loop(cond, body, "
                "loop_vars) for `while` (or compute both sides and pick with webtensor.where)")
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor with {self.size} elements is ambiguous; "
                             "use webtensor.reduce_any/all or .numpy()")
        return bool(self.item())

    def __repr__(self):
        if self._data is None:
            return f"<Tensor symbolic shape={self.shape} dtype={self.dtype.name}>"
        try:
            value = repr(self.numpy())
        except ImportError:
            value = repr(self.tolist())
        except RuntimeError as e:   # a browser GPU: readback must be awaited
            value = f"(value not read: {e})"
        return f"<Tensor shape={self.shape} dtype={self.dtype.name} device={self.device.name}\n{value}>"

    def to(self, device) -> "Tensor":
        """A copy on ``device`` (a name or Device)."""
        dev = get_device(device)
        if dev is self._device:
            return self
        return Tensor(dev.from_host(self._host_bytes(), self._aval), self._aval, dev)

    # ---- operators (numpy semantics; == is elementwise, hashing is by identity) ----
    __hash__ = object.__hash__

    def __add__(self, o): return F.add(self, o)
    def __radd__(self, o): return F.add(o, self)
    def __sub__(self, o): return F.sub(self, o)
    def __rsub__(self, o): return F.sub(o, self)
    def __mul__(self, o): return F.mul(self, o)
    def __rmul__(self, o): return F.mul(o, self)
    def __truediv__(self, o): return F.div(self, o)
    def __rtruediv__(self, o): return F.div(o, self)
    def __pow__(self, o): return F.pow(self, o)
    def __rpow__(self, o): return F.pow(o, self)
    def __matmul__(self, o): return F.matmul(self, o)
    def __rmatmul__(self, o): return F.matmul(o, self)
    def __neg__(self): return F.neg(self)
    def __pos__(self): return self
    def __abs__(self): return F.abs(self)
    def __eq__(self, o): return F.equal(self, o)
    def __ne__(self, o): return F.not_equal(self, o)
    def __lt__(self, o): return F.less(self, o)
    def __le__(self, o): return F.less_equal(self, o)
    def __gt__(self, o): return F.greater(self, o)
    def __ge__(self, o): return F.greater_equal(self, o)
    def __and__(self, o): return F.logical_and(self, o)
    def __or__(self, o): return F.logical_or(self, o)
    def __invert__(self): return F.logical_not(self)
    def __xor__(self, o): return F.logical_xor(self, o)
    def __mod__(self, o): return F.floormod(self, o)          # numpy's and TF's %: the sign of o
    def __rmod__(self, o): return F.floormod(o, self)

    def __floordiv__(self, o): return F.floor(F.div(self, o)) if self.dtype.is_floating else F.cast(F.floor(F.div(self, o)), self.dtype)

    # ---- methods mirroring the functional API ----
    def reshape(self, *shape):
        """:func:`webtensor.reshape`; the shape as one sequence or as separate ints (numpy)."""
        return F.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    def transpose(self, *perm):
        """:func:`webtensor.transpose`; ``perm`` as one sequence or as separate ints (numpy)."""
        return F.transpose(self, (perm[0] if len(perm) == 1 and not isinstance(perm[0], int) else perm) or None)

    @property
    def T(self):
        return F.transpose(self)

    def astype(self, dtype):
        """:func:`webtensor.cast` (float -> int32 truncates toward zero, saturates, NaN -> 0)."""
        return F.cast(self, dtype)

    def cast(self, dtype):
        """:func:`webtensor.cast`."""
        return F.cast(self, dtype)

    def sum(self, axis=None, keepdims=False):
        """:func:`webtensor.sum`."""
        return F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        """:func:`webtensor.mean`."""
        return F.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        """:func:`webtensor.max`."""
        return F.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        """:func:`webtensor.min`."""
        return F.min(self, axis, keepdims)

    def prod(self, axis=None, keepdims=False):
        """:func:`webtensor.prod`."""
        return F.prod(self, axis, keepdims)

    def argmax(self, axis=None):
        """:func:`webtensor.argmax`."""
        return F.argmax(self, axis)

    def argmin(self, axis=None):
        """:func:`webtensor.argmin`."""
        return F.argmin(self, axis)

    def exp(self):
        """:func:`webtensor.exp`."""
        return F.exp(self)

    def log(self):
        """:func:`webtensor.log`."""
        return F.log(self)

    def sqrt(self):
        """:func:`webtensor.sqrt`."""
        return F.sqrt(self)

    def abs(self):
        """:func:`webtensor.abs`."""
        return F.abs(self)

    def flatten(self):
        """All elements as one axis, row-major (numpy's ``ndarray.flatten``; shape ``(size,)``)."""
        return F.reshape(self, (-1,))

    def squeeze(self, axis=None):
        """:func:`webtensor.squeeze`."""
        return F.squeeze(self, axis)

    def expand_dims(self, axis):
        """:func:`webtensor.expand_dims`."""
        return F.expand_dims(self, axis)

    def __getitem__(self, key):
        return _getitem(self, key)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class Variable(Tensor):
    """Mutable trainable state (``tf.Variable``): ``assign``, ``assign_add``, ``assign_sub``.

    Variables are watched by ``GradientTape`` automatically when ``trainable``. Inside a
    traced function they are read by reference, and assignments become in-place updates.

    Args:
        initial_value: a Tensor or anything :func:`webtensor.tensor` accepts; must be concrete.
        name: a name (used in messages and when saving); default ``'Variable'``.
        trainable: whether tapes watch it automatically and optimizers update it.
        dtype: cast the initial value to this dtype.
        device: move the initial value to this device.
        synchronization: ``"auto"`` (= ``"on_write"``) or ``"on_read"`` (``tf.VariableSynchronization``):
            in a ``MirroredStrategy``'s scope an ``"on_write"`` Variable is mirrored on every replica;
            an ``"on_read"`` one (metric state, updated by the coordinator) stays one plain Variable.
    Raises:
        ValueError: a symbolic initial value (a Variable created while tracing), or an unknown
            ``synchronization``.
        TypeError: data :func:`webtensor.tensor` refuses.
    """
    __slots__ = ("name", "trainable")

    def __new__(cls, initial_value, name: str | None = None, trainable: bool = True, dtype=None, device=None,
                synchronization: str = "auto"):
        # In a MirroredStrategy's scope a Variable is a MirroredVariable (TF's variable creator scope).
        strategy = _state.current_strategy() if cls is Variable and synchronization != "on_read" else None
        return super().__new__(getattr(strategy, "_variable_class", None) or cls)

    def __init__(self, initial_value, name: str | None = None, trainable: bool = True, dtype=None, device=None,
                 synchronization: str = "auto"):
        if synchronization not in ("auto", "on_write", "on_read"):
            raise ValueError(f"Variable: synchronization must be 'auto', 'on_write' or 'on_read', got {synchronization!r}")
        with init_scope():
            t = tensor(initial_value, dtype=dtype, device=device) if not isinstance(initial_value, Tensor) \
                else initial_value
            if dtype is not None and t.dtype != as_dtype(dtype):
                t = F.cast(t, dtype)
            if device is not None:
                t = t.to(device)
        if t._data is None:
            raise ValueError("Variable: the initial value must be concrete (create variables outside "
                             "webtensor.function, or lazily on the first call)")
        super().__init__(t._data, t._aval, t._device)
        self.name, self.trainable = name or "Variable", trainable

    def assign(self, value) -> "Variable":
        """Replace the value (same shape and dtype; inside a mixed-precision layer's ``call`` a float
        value of another float dtype is cast, as Keras' ``assign``). Raises ValueError/TypeError
        otherwise."""
        value = _convert(value, like=self)
        if value.dtype != self.dtype and _state.local.autocast is not None and value.dtype.is_floating \
                and self.dtype.is_floating:
            value = F.cast(value, self.dtype)   # as Keras: a mixed-precision layer's float updates cast back
        if tuple(value.shape) != tuple(self.shape):
            raise ValueError(f"Variable {self.name!r}: cannot assign shape {value.shape} to shape {self.shape}")
        if value.dtype != self.dtype:
            raise TypeError(f"Variable {self.name!r}: cannot assign {value.dtype} to {self.dtype}")
        tr = _state.current_trace()
        if tr is not None:
            tr.assign(self, value)
        else:
            if value.device is not self._device:
                value = value.to(self._device)
            self._data = value._data
        return self

    def assign_add(self, delta) -> "Variable":
        """``assign(value + delta)`` (same shape and dtype); returns the variable."""
        return self.assign(self.read_value() + delta)

    def assign_sub(self, delta) -> "Variable":
        """``assign(value - delta)`` (same shape and dtype); returns the variable."""
        return self.assign(self.read_value() - delta)

    def read_value(self) -> Tensor:
        """The current value as a plain tensor (symbolic inside a trace)."""
        if _state.local.tapes:  # a recorded read, so tapes see the variable (TF's ReadVariableOp)
            return F.identity(self)
        tr = _state.current_trace()
        if tr is not None:
            return tr.read(self)
        return Tensor(self._data, self._aval, self._device)

    def numpy(self):
        """The current value as a numpy array. Raises RuntimeError inside ``webtensor.function``
        tracing (the value is not known there)."""
        tr = _state.current_trace()
        if tr is not None:
            raise RuntimeError(f"Variable {self.name!r}: .numpy() inside webtensor.function tracing")
        return super().numpy()

    def __repr__(self):
        return f"<Variable {self.name!r} shape={self.shape} dtype={self.dtype.name} device={self.device.name}>"


# ---- construction --------------------------------------------------------------------------

def _infer_host_dtype(a, np):
    if a.dtype == np.bool_:
        return bool_
    if a.dtype.kind in "iu":
        return int32
    if a.dtype.kind == "f":
        return float32 if a.dtype != np.float16 else as_dtype("float16")
    raise TypeError(f"cannot make a tensor from data of dtype {a.dtype}")


_NUMPY: list = []   # [numpy or None], looked up once: a failed import searches sys.path every time


def _numpy():
    if not _NUMPY:
        try:
            import numpy
        except ImportError:
            numpy = None
        _NUMPY.append(numpy)
    return _NUMPY[0]


def tensor(data, dtype=None, device=None) -> Tensor:
    """A tensor from a Python scalar, (nested) list or tuple, a buffer (``array.array``,
    ``memoryview``, ctypes arrays, ...: its format and shape are used, as numpy reads it), numpy
    array or tensor.

    Python floats become float32, ints int32, bools bool, unless ``dtype`` says otherwise (numpy
    data and buffers: floats float32 (float16 stays), ints int32, big-endian ones converted). Raw
    bytes (``bytes``, ``bytearray``, a memoryview of them: format ``'B'``) have no element type and
    need ``dtype`` (each byte one value) or a cast (``memoryview(b).cast('f')``). Floats converted to
    int32 follow :func:`webtensor.cast`'s rule (truncate toward zero, saturate to int32's range,
    NaN -> 0). numpy is optional: without it the data is packed with the standard library
    (:func:`webtensor.hostdata.from_python`), as in Pyodide.

    Args:
        data: a Python scalar, (nested) list or tuple, buffer, numpy array or Tensor.
        dtype: the dtype wanted (a DType or its name); None infers it as above.
        device: the device (a name or Device); None: the current device.
    Returns:
        A new Tensor (a Tensor argument is converted or moved, or returned as is when nothing changes).
    Raises:
        OverflowError: an integer outside int32's range [-2**31, 2**31 - 1] becomes int32 (the message
            names it; webtensor has no int64, and wrapping would change the value silently).
        TypeError: unsupported data, dtypes or buffer formats (the message names the format),
            raw bytes without ``dtype``.
        ValueError: ragged lists.
    """
    if isinstance(data, Tensor):
        t = data if dtype is None else F.cast(data, dtype)
        return t.to(device) if device is not None else t
    np = _numpy()
    if np is None or hostdata.is_buffer(data):
        buf, shape, dt = hostdata.from_python(data, dtype)
        dev = get_device(device)
        aval = Aval(shape, dt)
        return Tensor(dev.from_host(buf, aval), aval, dev)
    try:
        a = np.asarray(data)
    except ValueError as e:
        raise ValueError(f"tensor: data is ragged or malformed ({e})") from None
    if a.dtype == object:       # e.g. ints beyond int64: the standard library path names what is wrong
        buf, shape, dt = hostdata.from_python(data, dtype)
        dev = get_device(device)
        aval = Aval(shape, dt)
        return Tensor(dev.from_host(buf, aval), aval, dev)
    dt = as_dtype(dtype) if dtype is not None else _infer_host_dtype(a, np)
    from .core.numpy_util import float_to_int32, np_dtype
    if dt == int32 and a.dtype.kind == "f":
        a = float_to_int32(a)                       # the cast rule: truncate, saturate, NaN -> 0
    elif dt == int32 and a.dtype.kind in "iu":
        _check_int32_range(a, np)
    a = a.astype(np_dtype(dt), order="C", copy=False)
    dev = get_device(device)
    aval = Aval(tuple(int(d) for d in a.shape), dt)
    return Tensor(dev.from_host(a, aval), aval, dev)


def _check_int32_range(a, np, what: str = "tensor") -> None:
    """Raise OverflowError naming the first element of integer array ``a`` outside int32's range."""
    if a.dtype.itemsize < 4 or a.dtype == np.int32 or not a.size or INT32_MIN <= a.min() and a.max() <= INT32_MAX:
        return
    bad = a > INT32_MAX if a.dtype.kind == "u" else (a < INT32_MIN) | (a > INT32_MAX)
    raise hostdata.int32_overflow(int(a.reshape(-1)[np.argmax(bad.reshape(-1))]), what)


def _convert(x, like: Tensor | None = None, dtype: DType | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return tensor(x, dtype=dtype, device=like.device if like is not None else None)


def _weak_dtype(x, tensor_dtypes) -> DType:
    own = dtype_of_scalar(x if isinstance(x, (bool, int, float)) else float(x))
    if not tensor_dtypes:
        return own
    t = result_type(*tensor_dtypes)
    # weak, as numpy's NEP 50 and TF: a Python float keeps a float16 tensor float16
    return t if own.rank <= t.rank or (own.is_floating and t.is_floating) else own


def _convert_inputs(inputs) -> list[Tensor]:
    tds = [t.dtype for t in inputs if isinstance(t, Tensor)]
    like = next((t for t in inputs if isinstance(t, Tensor)), None)
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(x)
        elif isinstance(x, (bool, int, float)) or (isinstance(x, numbers.Number) and not hasattr(x, "shape")):
            out.append(_scalar(x, _weak_dtype(x, tds), like))
        else:
            out.append(_convert(x, like))
    return out


_SCALARS: dict = {}  # (device, dtype, repr(value)) -> Tensor: Python scalars are uploaded once


def _scalar(x, dtype, like):
    dev = like.device if like is not None else get_device()
    tr = _state.current_trace()
    if tr is not None:
        return tr.scalar(x, dtype)
    key = (dev, dtype.name, repr(x))   # the device itself: a recreated device has the same name
    if dev.name == "reference":  # float64_reference() changes how float32 is stored there
        from .core.numpy_util import np_dtype
        key += (np_dtype(dtype),)
    t = _SCALARS.get(key)
    if t is None:
        if len(_SCALARS) > 4096:
            _SCALARS.clear()
        t = _SCALARS[key] = tensor(x, dtype=dtype, device=dev)
    return t


class init_scope:
    """``with webtensor.init_scope():`` runs the block eagerly even inside ``webtensor.function``
    tracing, and unrecorded by tapes (tf.init_scope): how layers create their variables."""

    def __enter__(self):
        _state.local.traces.append(None)
        self._tapes, _state.local.tapes[:] = list(_state.local.tapes), []

    def __exit__(self, *exc):
        _state.local.traces.pop()
        _state.local.tapes[:] = self._tapes


def _dispatch(op, inputs, attrs):
    ts = _convert_inputs(inputs)
    state = _state.local      # this thread's traces, tapes and autocast dtype
    if state.autocast is not None:
        ts = _autocast(ts, state)
    out_aval = op.infer(*(t._aval for t in ts), **attrs)
    tr = state.traces[-1] if state.traces else None
    if tr is not None:
        out = tr.apply(op, ts, attrs, out_aval)
    else:
        dev = ts[0].device if ts else get_device()
        for t in ts:
            if t._data is None:
                raise RuntimeError(f"{op.name}: a symbolic tensor escaped its webtensor.function trace")
            if t.device is not dev:
                raise ValueError(f"{op.name}: tensors are on different devices ({dev.name} and {t.device.name}); "
                                 f"move one with .to('{dev.name}')")
        out = Tensor(dev.execute(op, [t._data for t in ts], attrs, [t._aval for t in ts], out_aval), out_aval, dev)
    for tape in state.tapes:
        tape._record(Record(op, tuple(ts), attrs, out))
    return out


def _autocast(ts: list, state) -> list:
    """Inside a mixed-precision layer's ``call`` (Keras' ``AutocastScope``): float Variables are read
    as the layer's compute dtype (a recorded cast, so gradients reach the float32 Variable)."""
    dt = state.autocast
    if not any(isinstance(t, Variable) and t.dtype.is_floating and t.dtype != dt for t in ts):
        return ts
    state.autocast = None       # the casts themselves are not autocast
    try:
        return [F.cast(t, dt) if isinstance(t, Variable) and t.dtype.is_floating and t.dtype != dt else t
                for t in ts]
    finally:
        state.autocast = dt


def _known_values(t: Tensor):
    """``t``'s elements, flat (a numpy array, or a list without numpy), when they can be read now;
    None for a symbolic tensor or a browser GPU (whose readback must be awaited)."""
    if t._data is None:
        return None
    try:
        np = _numpy() if t.size > 256 else None       # small ones (index lists, label batches): lists are faster
        if np is not None:
            return np.asarray(t).reshape(-1)
        return hostdata.to_list(t._host_bytes(), (t.size,), t.dtype)
    except RuntimeError:
        return None


set_dispatcher(_dispatch, _convert, _known_values)


# ---- indexing ---------------------------------------------------------------------------------

def _getitem(x: Tensor, key) -> Tensor:
    """Basic indexing (ints, slices, None, Ellipsis) lowers to slice + reshape; one integer
    tensor/list index lowers to gather. Boolean masks are not supported (data-dependent shapes)."""
    if not isinstance(key, tuple):
        key = (key,)
    adv = [i for i, k in enumerate(key) if isinstance(k, (Tensor, list)) or hasattr(k, "__array__")]
    if adv:
        if len(adv) > 1 or len(key) > 1:
            raise IndexError("only one integer-array index, alone, is supported (x[idx]); use gather")
        idx = key[0] if isinstance(key[0], Tensor) else tensor(key[0])
        if idx.dtype == bool_:
            raise IndexError("boolean mask indexing is not supported (data-dependent shape); use where")
        n = x.shape[0] if x.ndim else 0
        host = None if isinstance(key[0], Tensor) or not idx.size else \
            hostdata.from_python(key[0].tolist() if hasattr(key[0], "tolist") else key[0])[0]
        if host is not None and (min(host) < -n or max(host) >= n):  # known now: checked as numpy does
            raise IndexError(f"index {key[0]} is out of bounds for axis 0 with size {n}")
        return F.gather(x, idx, axis=0)   # negative indices count from the end (gather's index rule)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise IndexError(f"too many indices ({n_real}) for a tensor of rank {x.ndim}")
    if Ellipsis in key:
        e = key.index(Ellipsis)
        key = key[:e] + (slice(None),) * (x.ndim - n_real) + key[e + 1:]
    key = key + (slice(None),) * (x.ndim - sum(1 for k in key if k is not None))
    spec, out_shape, d = [], [], 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        n = x.shape[d]
        if isinstance(k, slice) and isinstance(n, Dim) and k == slice(None):
            spec.append((0, n, 1))      # a whole symbolic axis (input_signature); other slices need its value
            out_shape.append(n)
        elif isinstance(k, slice):
            s = k.indices(n)
            spec.append(s)
            out_shape.append(len(range(*s)))
        else:
            i = int(k)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {d} with size {n}")
            i %= n
            spec.append((i, i + 1, 1))
        d += 1
    y = x
    if any(s != (0, n, 1) for s, n in zip(spec, x.shape)):
        y = F.movement.slice_op(x, spec=tuple(spec))
    return F.reshape(y, tuple(out_shape))

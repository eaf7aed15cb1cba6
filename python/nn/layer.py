"""``Layer``: the Keras base class. State (Variables), lazy building, tracking, input checks.

A layer builds on its first call: ``build(input_shape)`` runs inside
:class:`webtensor.init_scope`, so the Variables it creates are concrete even when the first
call happens inside ``webtensor.function`` tracing. Layers and Variables assigned to
attributes (also inside lists and tuples) are tracked, in assignment order, as in Keras
(a list of Variables assigned to ``ws`` gives weights ``ws/0``, ``ws/1``, ...);
``variables``/``trainable_variables`` collect them recursively.

Seeds: every layer draws a seed from the global generator when it is constructed
(:func:`webtensor.set_seed` makes a model's weights reproducible), and each weight gets a
seed derived from the layer's seed and the weight's name.
"""
from __future__ import annotations

import inspect
import weakref
import zlib

from .. import _state, creation
from .._registry import snake_case
from ..core import ops as F
from ..core.dtypes import as_dtype
from ..tensor import Tensor, Variable, init_scope, tensor
from . import functional, mixed_precision
from .saving import auto_config, charge_weight, record_init_args
from . import initializers as initializers_mod

_NAME_COUNTS: dict[str, int] = {}


def unique_name(base: str) -> str:
    """Keras-style process-wide names: ``dense``, ``dense_1``, ``dense_2``, ..."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


# Keras masks (``x._keras_mask`` in Keras 3): a bool ``(N, T)`` tensor riding on a layer's output,
# kept beside the tensor (Tensor has __slots__) and dropped when the tensor dies.
_MASKS: dict[int, tuple] = {}


def get_keras_mask(x):
    """The mask a layer attached to ``x`` (``keras.src.backend.get_keras_mask``), or None."""
    entry = _MASKS.get(id(x)) if isinstance(x, Tensor) else None
    return entry[1] if entry is not None and entry[0]() is x else None


def set_keras_mask(x, mask) -> None:
    """Attach ``mask`` (a tensor, or None to remove it) to the tensor ``x``."""
    key = id(x)
    if mask is None:
        _MASKS.pop(key, None)
        return
    _MASKS[key] = (weakref.ref(x, lambda _, key=key: _MASKS.pop(key, None)), mask)


def _masks_of(x):
    """``get_keras_mask`` over a tensor or a list/tuple/dict of them (None where there is none)."""
    if isinstance(x, (list, tuple)):
        return [_masks_of(v) for v in x]
    if isinstance(x, dict):
        return {k: _masks_of(v) for k, v in x.items()}
    return get_keras_mask(x)


def reset_names() -> None:
    """Restart automatic layer names (``dense``, ``dense_1``, ...) from the beginning."""
    _NAME_COUNTS.clear()


class InputSpec:
    """What a built layer accepts (``keras.InputSpec``): rank (``ndim`` exactly or at least
    ``min_ndim``) and fixed sizes of some axes (``axes={-1: 64}``). A layer's ``__call__`` raises
    ValueError for an input that does not fit.

    Args:
        ndim: the exact rank, or None.
        min_ndim: the least rank, or None.
        axes: ``{axis: size}`` (negative axes count from the end).
    """

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: dict | None = None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})

    def problem(self, shape) -> str | None:
        """A description of why ``shape`` does not fit, or None.

        Args:
            shape: an input shape (a tuple, batch dimension included).
        """
        if self.ndim is not None and len(shape) != self.ndim:
            return f"expected ndim={self.ndim}, found ndim={len(shape)}"
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            return f"expected min_ndim={self.min_ndim}, found ndim={len(shape)}"
        for axis, size in self.axes.items():
            if not -len(shape) <= axis < len(shape) or shape[axis] != size:
                return f"expected axis {axis} of the input shape to have value {size}"
        return None


def _constructor_signature(cls) -> inspect.Signature:
    """``cls(...)``'s signature: its ``__init__``'s without ``self``."""
    sig = inspect.signature(cls.__init__)
    return sig.replace(parameters=list(sig.parameters.values())[1:])


class Layer:
    """Base class of layers and models.

    Subclasses override ``build(input_shape)`` (create weights with :meth:`add_weight`) and
    ``call(inputs, training=False)``. Call a layer as ``layer(x, training=False)``; ``x`` may
    be a Tensor or anything :func:`webtensor.tensor` accepts (numpy arrays, lists), or a
    KerasTensor of the functional API (:mod:`webtensor.nn.functional`), which records the call.

    Args:
        name: the layer's name (default: the class name in snake_case, made unique in the process:
            ``dense``, ``dense_1``, ...); also the prefix of its weights' names.
        trainable: whether its weights are trained (``trainable_variables``).
        dtype: its dtype policy (Keras 3): a :class:`~webtensor.nn.mixed_precision.Policy`, a policy
            name (``"mixed_float16"``: float32 weights, float16 compute) or a dtype (weights and
            compute in it); default the global policy
            (:func:`~webtensor.nn.mixed_precision.set_global_policy`, float32 unless set). A layer
            whose compute dtype is a float casts its floating inputs to it, and reads its float
            weights in it inside ``call`` (``layer.dtype`` is the weights' dtype).
        **kwargs: refused (TypeError naming them), so a misspelt argument is not ignored.
    Raises:
        TypeError: unknown keyword arguments; a ``dtype`` that is no policy or dtype.
        ValueError: an unknown policy name.

    Raises (on call):
        ValueError: the input does not match the shape the layer was built for (the message
            names the layer).
    """
    _functional_training = True     # the functional API passes ``training=`` on to layers (functional._Node)
    supports_masking = False        # Keras: pass the input's mask on to the output (see compute_mask)
    autocast = True                 # Keras: cast floating inputs to the compute dtype (False: keep them)

    def __new__(cls, *args, **kwargs):
        # Keras 3's auto-config: the constructor's arguments are the default get_config().
        self = super().__new__(cls)
        record_init_args(self, args, kwargs)
        return self

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # show __init__'s arguments, not Layer.__new__'s (*args, **kwargs); a class with its own
        # __new__ (Model: the functional form) shows that one
        cls.__signature__ = _constructor_signature(cls) if "__new__" not in cls.__dict__ else None

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {sorted(kwargs)}")
        d = self.__dict__
        d["_children"] = {}      # attribute name -> Layer or list/tuple of layers
        d["_weights"] = {}       # weight key -> Variable, in creation order
        d["_given_name"] = name
        d["name"] = name or unique_name(snake_case(type(self).__name__))
        d["trainable"] = trainable
        policy = mixed_precision.get(dtype)
        d["_dtype_policy"] = policy
        d["dtype"] = as_dtype(policy.variable_dtype)     # the weights' dtype
        d["built"] = False
        d["input_spec"] = None
        d["_seed"] = creation._global.getrandbits(31)
        d["_build_shape"] = None
        d["_output_shape"] = None

    # ---- tracking ----
    def __setattr__(self, name, value):
        if "_children" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Variable):
            if all(v is not value for v in self._weights.values()):
                self._weights[name] = value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Variable) for v in value):
            for i, var in enumerate(value):
                if all(v is not var for v in self._weights.values()):
                    self._weights[f"{name}/{i}"] = var
        elif isinstance(value, Layer) or (isinstance(value, (list, tuple)) and any(isinstance(v, Layer)
                                                                                   for v in value)):
            self._children[name] = value
        else:
            self._children.pop(name, None)
        object.__setattr__(self, name, value)

    def _sublayers(self) -> list["Layer"]:
        out, seen = [], set()
        for v in self._children.values():
            for layer in (v if isinstance(v, (list, tuple)) else (v,)):
                if isinstance(layer, Layer) and id(layer) not in seen:
                    seen.add(id(layer))
                    out.append(layer)
        return out

    @property
    def dtype_policy(self) -> "mixed_precision.Policy":
        """The layer's :class:`~webtensor.nn.mixed_precision.Policy` (Keras 3's ``dtype_policy``)."""
        return self._dtype_policy

    @property
    def compute_dtype(self) -> str:
        """The dtype ``call`` computes in, by name (the policy's ``compute_dtype``)."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights, by name (the policy's ``variable_dtype``)."""
        return self._dtype_policy.variable_dtype

    @property
    def layers(self) -> list["Layer"]:
        """The directly tracked sublayers, in assignment order."""
        return self._sublayers()

    # ---- weights ----
    def add_weight(self, name: str, shape, initializer="glorot_uniform", dtype=None, trainable: bool = True) \
            -> Variable:
        """Create, track and return a Variable named ``'{layer}/{name}'`` (Keras' ``add_weight``).

        Args:
            name: the weight's name in the layer (``'kernel'``).
            shape: its shape (a sequence of ints).
            initializer: a name or callable (see :mod:`webtensor.nn.initializers`); a random one
                gets a seed derived from the layer's seed and ``name`` unless it has its own.
            dtype: its dtype (default: the layer's).
            trainable: whether it is trained.
        Returns:
            The Variable.
        Raises:
            ValueError: the layer already has a weight called ``name``, or the initializer returned
                another shape.
        """
        if name in self._weights:
            raise ValueError(f"layer {self.name!r} already has a weight named {name!r}")
        init = initializers_mod.get(initializer)
        dtype = as_dtype(dtype) if dtype is not None else self.dtype
        charge_weight(self.name, name, shape, dtype)      # a model being loaded stays within its file's size
        seed = (self._seed * 1000003 + zlib.crc32(name.encode())) % (1 << 31)
        with init_scope():
            value = init(tuple(shape), dtype=dtype, seed=seed) if isinstance(init, initializers_mod.Initializer) \
                else init(tuple(shape), dtype=dtype)
            var = Variable(value, name=f"{self.name}/{name}", trainable=trainable, dtype=dtype)
        if tuple(var.shape) != tuple(shape):
            raise ValueError(f"layer {self.name!r}: initializer for {name!r} returned shape {var.shape}, "
                             f"expected {tuple(shape)}")
        self._weights[name] = var
        return var

    @property
    def variables(self) -> list[Variable]:
        """All Variables: this layer's own (creation order), then its sublayers' (recursively)."""
        out, seen = [], set()
        for _, v in self._weight_items():
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    weights = variables

    @property
    def trainable_variables(self) -> list[Variable]:
        if not self.trainable:
            return []
        out, seen = [v for v in self._weights.values() if v.trainable], set()
        seen.update(id(v) for v in out)
        for layer in self._sublayers():
            for v in layer.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    trainable_weights = trainable_variables

    @property
    def non_trainable_variables(self) -> list[Variable]:
        train = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in train]

    non_trainable_weights = non_trainable_variables

    def _weight_items(self, prefix: str = ""):
        """``(path, Variable)`` pairs naming every weight by its place in the layer tree:
        ``kernel``, ``dense/kernel``, ``dense_1/bias``. A sublayer's path part is its
        user-given name, else its class name in snake case made unique among its siblings
        (Keras' ``saving_lib`` scheme), so paths do not depend on how many layers the process
        created before."""
        for key, v in self._weights.items():
            yield prefix + key, v
        used: set[str] = set(self._weights)
        for layer in self._sublayers():
            base = layer._given_name or snake_case(type(layer).__name__)
            key, k = base, 0
            while key in used:
                k += 1
                key = f"{base}_{k}"
            used.add(key)
            yield from layer._weight_items(f"{prefix}{key}/")

    def get_weights(self) -> list:
        """The values of :attr:`variables` as numpy arrays."""
        return [v.numpy() for v in self.variables]

    def set_weights(self, weights) -> None:
        """Assign values (arrays or tensors) to :attr:`variables`, in order; checks all shapes first.

        Args:
            weights: a sequence of arrays or tensors, one per variable, as :meth:`get_weights` gives.
        Raises:
            ValueError: a wrong count or shape (nothing is assigned then).
        """
        variables, weights = self.variables, list(weights)
        if len(weights) != len(variables):
            raise ValueError(f"layer {self.name!r}: set_weights got {len(weights)} arrays for "
                             f"{len(variables)} variables")
        values = [w if isinstance(w, Tensor) else tensor(w, dtype=v.dtype) for w, v in zip(weights, variables)]
        for var, val in zip(variables, values):
            if tuple(val.shape) != tuple(var.shape):
                raise ValueError(f"layer {self.name!r}: set_weights: {var.name} has shape {var.shape}, "
                                 f"got {tuple(val.shape)}")
        for var, val in zip(variables, values):
            var.assign(val if val.dtype == var.dtype else val.astype(var.dtype))

    def count_params(self) -> int:
        """The number of scalars in all :attr:`variables` (trainable or not)."""
        return sum(v.size for v in self.variables)

    # ---- calling ----
    def build(self, input_shape) -> None:
        """Create weights for inputs of ``input_shape``; runs once, on the first call, inside
        :class:`webtensor.init_scope`.

        Args:
            input_shape: the first input's shape (a tuple, batch dimension included; None for
                several inputs).
        """

    def _build_for_call(self, input_shape) -> None:
        with init_scope():
            self.build(input_shape)

    def call(self, inputs, training=False):
        """The layer's computation (subclasses implement it). ``layer(x, training=...)`` builds the
        layer on its first call, checks ``x`` against ``input_spec`` and calls this; ``training``
        is passed only when ``call`` takes it.

        Args:
            inputs: a tensor (or a list/dict of them for several inputs).
            training: True in ``fit``'s steps (dropout and batch statistics on), False otherwise.
        Returns:
            The output tensor(s).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def __call__(self, inputs, *args, training=None, **kwargs):
        if not isinstance(inputs, Tensor):
            if functional.is_symbolic(inputs):      # Keras' functional API: record the call
                if training is not None:
                    kwargs["training"] = training
                return functional.apply(self, inputs, *args, **kwargs)
            if not _is_structure(inputs):
                inputs = tensor(inputs)
        training = bool(training)
        shape = tuple(inputs.shape) if isinstance(inputs, Tensor) else None
        if not self.built:
            self._build_for_call(shape)
            self.built = True
            self._build_shape = shape
        elif self.input_spec is not None and shape is not None:
            problem = self.input_spec.problem(shape)
            if problem:
                raise ValueError(f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible with "
                                 f"the layer: {problem}, but received input with shape {shape}")
        if len(args) <= _training_position(type(self)):
            kwargs["training"] = training
        # Keras 3's masking: the mask attached to the inputs (an Embedding(mask_zero=True)'s output)
        # reaches ``call(..., mask=)`` when call takes one and none was given (read before the casts
        # below: a cast tensor carries no mask)
        previous_mask = kwargs.get("mask")
        if previous_mask is None:
            previous_mask = _masks_of(inputs)
            if _takes_mask(type(self)) and _any_mask(previous_mask):
                kwargs["mask"] = previous_mask
        policy = self._dtype_policy
        compute = policy._compute
        if compute.is_floating and self.autocast:    # Keras: floating inputs are cast to the compute dtype
            inputs = _cast_floats(inputs, compute)
            args = tuple(_cast_floats(a, compute) for a in args)
        state = _state.local
        outer, state.autocast = state.autocast, (compute if policy._variable != compute else None)
        try:
            out = self.call(inputs, *args, **kwargs)
        finally:
            state.autocast = outer
        if isinstance(out, Tensor):
            self._output_shape = tuple(out.shape)
        if self.supports_masking or type(self).compute_mask is not Layer.compute_mask:
            self._attach_masks(inputs, out, previous_mask)
        return out

    def compute_mask(self, inputs, previous_mask):
        """The mask of this layer's output (Keras' ``compute_mask``): ``previous_mask`` (the input's)
        when :attr:`supports_masking`, else None. Layers that make masks (``Embedding(mask_zero=True)``,
        ``Masking``) or change them (an RNN without ``return_sequences``) override it; ``__call__``
        attaches the result to the outputs, and a later layer whose ``call`` takes ``mask`` receives it.

        Args:
            inputs: the layer's inputs.
            previous_mask: the inputs' mask (bool ``(N, T)``), a list of them for several inputs, or None.
        Returns:
            A bool tensor, a list matching the outputs, or None.
        """
        return previous_mask if self.supports_masking else None

    def _attach_masks(self, inputs, out, previous_mask) -> None:
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        if all(get_keras_mask(o) is not None for o in outs):     # the layer set them itself (Keras)
            return
        masks = self.compute_mask(inputs, previous_mask)
        masks = list(masks) if isinstance(masks, (list, tuple)) and isinstance(out, (list, tuple)) else [masks]
        for o, m in zip(outs, masks):
            if isinstance(o, Tensor) and m is not None and not isinstance(m, (list, tuple)) \
                    and get_keras_mask(o) is None:
                set_keras_mask(o, m)

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (Keras' ``get_config``): the base
        ``name``, ``trainable`` and ``dtype`` (the policy's name: ``"float32"``, ``"mixed_float16"``); subclasses with arguments of their own
        override it and add them. A class that does not override it gets, as in Keras 3, the
        arguments its constructor was called with (auto-config; ``Layer.__new__`` records them).

        Raises:
            NotImplementedError: the layer's ``__init__`` takes other arguments, its class does not
                override ``get_config`` and the arguments were not recorded (positional ``*args``),
                as Keras, rather than a config that cannot rebuild it.
        """
        config = {"name": self.name, "trainable": self.trainable, "dtype": self._dtype_policy.name}
        if type(self).get_config is Layer.get_config:
            config = auto_config(self, config)
        return config

    @classmethod
    def from_config(cls, config: dict):
        """A new layer from :meth:`get_config`'s dict (new weights): ``cls(**config)``.

        Args:
            config: the constructor's keyword arguments, as :meth:`get_config` returns them.
        Returns:
            A new, unbuilt instance of ``cls``.
        Raises:
            TypeError: a key the constructor does not take.
        """
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


Layer.__signature__ = _constructor_signature(Layer)


_TRAINING_ARG: dict[type, float] = {}
_MASK_ARG: dict[type, bool] = {}


def _takes_mask(cls) -> bool:
    if cls not in _MASK_ARG:
        _MASK_ARG[cls] = "mask" in inspect.signature(cls.call).parameters
    return _MASK_ARG[cls]


def _any_mask(m) -> bool:
    return any(_any_mask(v) for v in m) if isinstance(m, list) else \
        any(_any_mask(v) for v in m.values()) if isinstance(m, dict) else m is not None


def _cast_floats(x, dtype):
    """``x`` (a tensor, or a list/tuple/dict of them) with its floating tensors cast to ``dtype``."""
    if isinstance(x, Tensor):
        return F.cast(x, dtype) if x.dtype.is_floating and x.dtype != dtype else x
    if isinstance(x, (list, tuple)):
        return type(x)(_cast_floats(v, dtype) for v in x)
    if isinstance(x, dict):
        return {k: _cast_floats(v, dtype) for k, v in x.items()}
    return x


def _is_structure(x) -> bool:
    """Several inputs (a dict, or a list/tuple holding tensors or arrays) rather than one array-like."""
    if isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(v, Tensor) or hasattr(v, "__array__") for v in x)


def _training_position(cls) -> float:
    """The index of ``training`` among ``call``'s parameters after ``inputs``: a call given at most
    that many more positional arguments gets ``training`` by keyword. ``call(self, x,
    training=False)`` -> 0; keyword-only (``call(self, q, v, *, training=False)``) or ``**kwargs``
    -> inf; -1 when ``call`` takes no ``training``."""
    if cls not in _TRAINING_ARG:
        params = list(inspect.signature(cls.call).parameters.values())[2:]   # after self, inputs
        pos = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        if "training" in pos:
            _TRAINING_ARG[cls] = pos.index("training")
        elif any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params):
            _TRAINING_ARG[cls] = float("inf")
        else:
            _TRAINING_ARG[cls] = -1
    return _TRAINING_ARG[cls]

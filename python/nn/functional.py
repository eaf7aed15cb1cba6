"""Keras' functional API: ``Input`` gives a symbolic :class:`KerasTensor`, calling layers (and
arithmetic operators) on KerasTensors records a graph of layer calls, and
``Model(inputs, outputs)`` runs that graph::

    x = nn.Input((64,))
    h = nn.Dense(128, activation="relu")(x)
    y = nn.Dense(10)(h + nn.Dense(128)(x))         # a residual connection
    model = nn.Model(x, y)                           # compile / fit / evaluate / predict / export

Each KerasTensor carries an *example*: the concrete value of its computation on a batch of
zeros (batch size 1 unless ``Input(batch_size=...)`` fixed it). Computing the examples builds
every layer when it is first called, as Keras builds layers on KerasTensors, and gives each
KerasTensor its shape and dtype without a separate shape-inference path.

Operations other than layers and the operators (``+ - * / @ **``, unary ``-``, indexing) take
concrete tensors: wrap them in :class:`webtensor.nn.Lambda`.
"""
from __future__ import annotations

import operator

from ..creation import zeros
from ..tensor import Tensor, init_scope
from ..tree import flatten, unflatten


class KerasTensor:
    """A symbolic tensor: an ``Input``, or the output of a layer or operator applied to KerasTensors.

    ``shape`` has ``None`` for the batch dimension (unless ``Input`` fixed ``batch_size``);
    ``dtype`` is a webtensor dtype. It holds no data: ``numpy()`` and conversions raise TypeError.
    Made by :func:`~webtensor.nn.Input` and by calling layers on KerasTensors.

    Args:
        example: a tensor of the shape and dtype it stands for (batch dimension 1).
        node: the recorded call that computes it; None for an ``Input``.
        batch_size: a fixed batch size (``Input(batch_size=...)``), or None.
        name: its name (an Input's name keys dict inputs).
        input_layer: an Input's InputLayer (a ``Sequential`` that starts with it uses it).
    """

    def __init__(self, example: Tensor, node: "_Node | None" = None, *, batch_size=None, name=None,
                 input_layer=None):
        self.example, self.name = example, name
        self._node = node                          # the call that computes it; None: an Input
        self._batch_size = batch_size
        self._input_layer = input_layer            # an Input's InputLayer (a Sequential starts with it)

    @property
    def shape(self) -> tuple:
        s = tuple(self.example.shape)
        return ((self._batch_size,) + s[1:]) if s else s

    @property
    def dtype(self):
        return self.example.dtype

    @property
    def ndim(self) -> int:
        return len(self.example.shape)

    def __repr__(self):
        fn = self._node.fn if self._node else None
        what = "Input" if fn is None else getattr(fn, "name", None) or getattr(fn, "__name__", "op")
        return f"<KerasTensor shape={self.shape} dtype={self.dtype.name} from {what}>"

    def __array__(self, *args, **kwargs):
        """Raises TypeError: a KerasTensor has no value (so does ``numpy()``)."""
        raise TypeError(f"{self!r} is symbolic (Keras' functional API): it has no value. Use it as the input "
                        "of layers or of webtensor.nn.Lambda(fn), and build a Model(inputs, outputs)")

    numpy = __array__

    # operators record nodes too (Keras allows x + y on KerasTensors)
    def __add__(self, o): return apply(operator.add, self, o)
    def __radd__(self, o): return apply(operator.add, o, self)
    def __sub__(self, o): return apply(operator.sub, self, o)
    def __rsub__(self, o): return apply(operator.sub, o, self)
    def __mul__(self, o): return apply(operator.mul, self, o)
    def __rmul__(self, o): return apply(operator.mul, o, self)
    def __truediv__(self, o): return apply(operator.truediv, self, o)
    def __rtruediv__(self, o): return apply(operator.truediv, o, self)
    def __matmul__(self, o): return apply(operator.matmul, self, o)
    def __rmatmul__(self, o): return apply(operator.matmul, o, self)
    def __pow__(self, o): return apply(operator.pow, self, o)
    def __neg__(self): return apply(operator.neg, self)
    def __getitem__(self, key): return apply(operator.getitem, self, key)


def symbolic_input(shape, batch_size=None, dtype=None, name=None, input_layer=None) -> KerasTensor:
    """The KerasTensor of ``Input(shape)`` (see :func:`webtensor.nn.Input`)."""
    example = zeros((batch_size or 1,) + tuple(shape), dtype=dtype or "float32")
    return KerasTensor(example, batch_size=batch_size, name=name, input_layer=input_layer)


def is_symbolic(x) -> bool:
    """Does ``x`` (a value or a nest of lists/tuples/dicts) hold a KerasTensor?"""
    leaves: list = []
    flatten(x, leaves)
    return any(isinstance(v, KerasTensor) for v in leaves)


def apply(fn, *args, **kwargs) -> KerasTensor:
    """Record ``fn(*args, **kwargs)`` with KerasTensor leaves; the result is a KerasTensor (or a nest).

    ``fn`` is a layer or an operator; its example output comes from running it on the examples.
    """
    leaves: list = []
    struct = flatten((args, kwargs), leaves)
    batch = [v._batch_size for v in leaves if isinstance(v, KerasTensor)]
    eargs, ekwargs = unflatten(struct, iter([v.example if isinstance(v, KerasTensor) else v for v in leaves]))
    with init_scope():
        out = fn(*eargs, **ekwargs)
    outs: list = []
    out_struct = flatten(out, outs)
    if not all(isinstance(o, Tensor) for o in outs):
        raise TypeError(f"{getattr(fn, 'name', fn)}: a functional-API call must return tensors, got {out!r}")
    b = batch[0] if batch and all(x == batch[0] for x in batch) else None
    node = _Node(fn, struct, leaves)
    node.outputs = [KerasTensor(o, node, batch_size=b) for o in outs]
    return unflatten(out_struct, iter(node.outputs))


class _Node:
    """One recorded call: ``fn`` applied to the nest ``struct`` of ``leaves`` (KerasTensors or
    constants), giving the KerasTensors ``outputs``."""

    def __init__(self, fn, struct, leaves):
        self.fn, self.struct, self.leaves = fn, struct, leaves
        self.outputs: list[KerasTensor] = []

    def run(self, values: dict, training) -> None:
        """Compute this call from ``values`` (``id(KerasTensor) -> Tensor``) and add its outputs there."""
        args, kwargs = unflatten(self.struct, iter([values[id(v)] if isinstance(v, KerasTensor) else v
                                                    for v in self.leaves]))
        if getattr(self.fn, "_functional_training", False) and "training" not in kwargs:
            kwargs["training"] = training   # a Layer: its __call__ passes it on where call() takes it
        outs: list = []
        flatten(self.fn(*args, **kwargs), outs)
        for kt, o in zip(self.outputs, outs):
            values[id(kt)] = o

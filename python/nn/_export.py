"""``webtensor.export`` for Keras-style models: the signatures a model exports (``predict``,
``train_step``) and their example inputs (:class:`webtensor.export.ExportableModel`'s
``_export_signatures``, which :class:`~webtensor.nn.Model` implements with :func:`model_specs`)."""
from __future__ import annotations

from ..creation import zeros
from ..export import _check_names
from ..function import function
from ..tape import GradientTape
from ..tensor import Tensor, tensor
from ..tree import flatten, map_structure, unflatten
from .layers import InputLayer


def holds_arrays(x) -> bool:
    """Is the list/tuple ``x`` several arrays (a structure) rather than one array written as lists (of
    numbers, or of 0-d arrays such as numpy scalars)?"""
    return any(isinstance(v, dict) or ((isinstance(v, Tensor) or hasattr(v, "__array__")) and getattr(v, "ndim", 1))
               or (isinstance(v, (list, tuple)) and holds_arrays(v)) for v in x)


def _train_step_function(model, custom: bool):
    """The model's own ``train_step`` when a subclass overrides it; else forward, ``compute_loss``,
    ``GradientTape`` backward and ``optimizer.apply_gradients`` (Model.train_step without metrics)."""
    if custom:
        return model.train_step

    def train_step(x, y):
        with GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x, y, y_pred)
            scaled = model.optimizer.scale_loss(loss)       # a LossScaleOptimizer's loss scale
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss
    return train_step


def _split_example(model, example_inputs, n: int):
    """A several-input model's ``example_inputs`` as ``(x, y)``: ``x`` is a list of ``n`` arrays in input
    order or a dict keyed by input name, or ``(x,)`` / ``(x, y)`` with such an ``x``."""
    ex = example_inputs
    if isinstance(ex, dict):
        return ex, None
    if isinstance(ex, (tuple, list)):
        if len(ex) == n and not any(isinstance(v, dict) or (isinstance(v, (list, tuple)) and holds_arrays(v))
                                    for v in ex):
            return list(ex), None
        if 1 <= len(ex) <= 2 and isinstance(ex[0], (tuple, list, dict)):
            return ex[0], (ex[1] if len(ex) > 1 else None)
    raise ValueError(f"export: model {model.name!r} takes {n} inputs {tuple(model.input_names)}: its example_inputs "
                     f"are x (a list of {n} arrays in that order, or a dict keyed by those names) or (x, y)")


def _input_dtype(model, ins):
    """The dtype a one-input model declares (its ``Input``: int32 token ids for an Embedding), else
    float32."""
    if ins:
        return ins[0].dtype
    stack = model.__dict__.get("_stack") or []
    return stack[0].dtype if stack and isinstance(stack[0], InputLayer) else "float32"


def model_specs(model, example_inputs, signatures, batch_size, *, custom_train_step: bool = False):
    """``{name: (fn, args, input names, output names)}`` for a Keras-style model.

    A model with one input takes ``x`` (signature inputs ``x``, and ``y`` for ``train_step``); a
    functional model with several takes one signature input per Input, named by
    ``model.input_names`` and ordered as ``model.inputs``."""
    dev = model.variables[0].device if model.built and model.variables else None
    put = (lambda t: (t if dev is None else t.to(dev)) if isinstance(t, Tensor) else tensor(t, device=dev))
    ins = model.__dict__.get("_inputs")          # a functional model's Inputs
    multi = ins is not None and len(ins) > 1
    if example_inputs is None:
        if multi:
            x = [zeros((int(batch_size or kt._batch_size or 1),) + tuple(kt.shape[1:]), kt.dtype, device=dev)
                 for kt in ins]
            y = None
        else:
            shape = model._build_shape
            if shape is None:
                raise ValueError(f"export: model {model.name!r} is not built; build it (call it on a batch or start "
                                 "a Sequential with Input(shape)) or pass example_inputs")
            x, y = zeros((int(batch_size or shape[0] or 1),) + tuple(shape[1:]), _input_dtype(model, ins), device=dev), None
    elif multi:
        x, y = _split_example(model, example_inputs, len(ins))
    elif isinstance(example_inputs, (tuple, list)):
        if not 1 <= len(example_inputs) <= 2:
            raise ValueError("export: a model's example_inputs are x or (x, y)")
        x, y = example_inputs[0], (example_inputs[1] if len(example_inputs) > 1 else None)
    else:
        x, y = example_inputs, None
    if multi:
        leaves = [put(v if isinstance(v, Tensor) else tensor(v, dtype=kt.dtype))
                  for v, kt in zip(model._flat_inputs(x), ins)]
        x, in_names = unflatten(model._in_struct, iter(leaves)), list(model.input_names)
        x0 = leaves[0]
    elif model._n_inputs() is None and (isinstance(x, dict) or (isinstance(x, (list, tuple)) and holds_arrays(x))):
        # a subclassed model called on several tensors (Keras: a tuple or a dict): one input per leaf
        x = map_structure(put, x if isinstance(x, dict) else tuple(x))
        leaves: list = []
        struct = flatten(x, leaves)
        keys = struct[1] if struct[0] == "dict" and all(c is None for c in struct[2]) else None
        in_names = [str(k) for k in keys] if keys else [f"x_{i}" for i in range(len(leaves))]
        x0 = leaves[0]
    else:
        x, in_names = put(x), ["x"]
        x0 = x
    model._ensure_built(x)
    compiled = model.optimizer is not None and model.loss is not None
    names = list(signatures) if signatures is not None else ["predict"] + (["train_step"] if compiled else [])
    specs = {}
    for name in names:
        if name == "predict":
            _check_names(in_names, f"model {model.name!r} input")
            specs[name] = (function(model.predict_step, name=f"{model.name}_predict"), (x,), in_names, None)
        elif name == "train_step":
            if not compiled:
                raise ValueError("export: train_step needs a compiled model (model.compile(optimizer, loss))")
            model.optimizer.build(model.trainable_variables)
            if y is None:
                out = function(model.predict_step).get_concrete(x).graph.outputs[0].aval
                sparse = "sparse" in (getattr(model.loss, "name", "") or type(model.loss).__name__).lower()
                y = zeros((x0.shape[0],), "int32", device=dev) if sparse else zeros(out.shape, out.dtype, device=dev)
            y = map_structure(put, y)
            y_leaves: list = []
            flatten(y, y_leaves)
            y_names = ["y"] if len(y_leaves) == 1 else [f"y_{i}" for i in range(len(y_leaves))]
            _check_names(in_names + y_names, f"model {model.name!r} train_step input")
            specs[name] = (function(_train_step_function(model, custom_train_step), name=f"{model.name}_train_step"), (x, y),
                           in_names + y_names, ["loss"])
        else:
            raise ValueError(f"export: unknown model signature {name!r}; models export 'predict' and 'train_step' "
                             "(pass signatures={'name': (fn, example_inputs)} for others)")
    return specs



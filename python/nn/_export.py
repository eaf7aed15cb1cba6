"""``webtensor.export`` for Keras-style models: the signatures a model exports (``predict``,
``train_step``) and their example inputs (:class:`webtensor.export.ExportableModel`'s
``_export_signatures``, which :class:`~webtensor.nn.Model` implements with :func:`model_specs`)."""
from __future__ import annotations

from ..core import ops as F
from ..core.dtypes import float16, float32, int32
from ..creation import arange, zeros
from ..export import _check_names
from ..function import function
from ..tape import GradientTape
from ..tensor import Tensor, tensor
from ..tree import flatten, map_structure, unflatten
from .layers import InputLayer
from .losses import Loss


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


ROW_COUNT = "row_count"     # the hidden input of a train step that takes any batch up to its chunk


def first_rows_loss(loss: Loss, y, y_pred, rows):
    """``loss(y, y_pred)`` over the first ``rows`` rows of a padded batch (int32 0-d ``rows``): the
    other rows' per-example losses are replaced by zeros (``where``: their gradients are exactly 0)
    and 'sum_over_batch_size' divides by ``rows`` times the losses per row, as ``Loss.__call__`` on
    those rows alone (its symbolic-batch form). Keras' ``sample_weight`` with weights 1 and 0,
    divided by the real count (docs/artifact.md, "Symbolic batch: train steps")."""
    if isinstance(y_pred, Tensor) and y_pred.dtype == float16:
        y_pred = F.cast(y_pred, float32)
    per = loss.call(y, y_pred)
    b = int(per.shape[0])
    real = F.reshape(F.less(arange(b, dtype=int32, device=rows.device), rows), (b,) + (1,) * (per.ndim - 1))
    total = F.sum(F.where(real, per, 0.0))
    if loss.reduction == "sum":
        return total
    count = F.cast(rows, float32) * float(per.size // b)
    return total * F.reciprocal(F.maximum(count, 1.0))


def _rows_train_step(model, custom: bool, custom_loss: bool, y) -> tuple:
    """The train step of a padded chunk, ``(x, y, row_count) -> loss`` (:func:`first_rows_loss`), and
    the per-row losses ``(x, y) -> (batch, ...)`` whose graph the exporter checks for rows that mix.
    Raises ValueError where the loss is not the compiled per-example loss reduced over rows."""
    why = ("the model overrides train_step" if custom else
           "the model overrides compute_loss" if custom_loss else
           "its loss is not a webtensor.nn.losses.Loss" if not isinstance(model.loss, Loss) else
           f"its loss reduction is {model.loss.reduction!r}" if model.loss.reduction not in
           ("sum_over_batch_size", "mean", "sum") else
           "it has several targets" if not isinstance(y, Tensor) else None)
    if why is not None:
        raise ValueError(f"export: train_step cannot take any batch size: {why} (it needs the compiled loss, a mean "
                         "or sum of per-example losses, to leave padding rows out); export with symbolic_batch=None")

    def train_step(x, y, row_count):
        with GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = first_rows_loss(model.loss, y, y_pred, row_count)
            scaled = model.optimizer.scale_loss(loss)
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return loss

    def row_losses(x, y):
        y_pred = model(x, training=True)
        return model.loss.call(y, F.cast(y_pred, float32) if y_pred.dtype == float16 else y_pred)
    return train_step, row_losses


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


def model_specs(model, example_inputs, signatures, batch_size, *, custom_train_step: bool = False,
                custom_loss: bool = False, rows_train_step: bool = False):
    """``{name: (fn, args, input names, output names)}`` for a Keras-style model.

    A model with one input takes ``x`` (signature inputs ``x``, and ``y`` for ``train_step``); a
    functional model with several takes one signature input per Input, named by
    ``model.input_names`` and ordered as ``model.inputs``. With ``rows_train_step`` the train step
    also takes ``row_count`` (:func:`_rows_train_step`; its function carries ``row_losses``)."""
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
            if rows_train_step:
                step, row_losses = _rows_train_step(model, custom_train_step, custom_loss, y)
                _check_names(in_names + y_names + [ROW_COUNT], f"model {model.name!r} train_step input")
                fn = function(step, name=f"{model.name}_train_step")
                fn.row_losses = row_losses
                specs[name] = (fn, (x, y, tensor(int(x0.shape[0]), dtype="int32", device=dev)),
                               in_names + y_names + [ROW_COUNT], ["loss"])
                continue
            specs[name] = (function(_train_step_function(model, custom_train_step), name=f"{model.name}_train_step"), (x, y),
                           in_names + y_names, ["loss"])
        else:
            raise ValueError(f"export: unknown model signature {name!r}; models export 'predict' and 'train_step' "
                             "(pass signatures={'name': (fn, example_inputs)} for others)")
    return specs



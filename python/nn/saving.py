"""Saving models: weights (``save_weights`` / ``load_weights``, safetensors), configs
(``serialize_keras_object`` / ``deserialize_keras_object``, ``register_keras_serializable``) and whole
models in Keras 3's ``.keras`` zip (``save_model`` / ``load_model``; ``Model.save``).

Each weight is stored under its path in the layer tree (``Layer._weight_items``): ``dense/kernel``,
``dense_1/bias``, ``conv2d/kernel``, ``batch_normalization/moving_mean``. Paths come from the
model's structure, not from process-wide layer names, so a file saved by one process loads into
the same architecture built by another. The file is plain safetensors
(https://github.com/huggingface/safetensors), written by :mod:`webtensor.safetensors_io`
without the ``safetensors`` package, and readable by it.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from .. import __version__, safetensors_io
from .._registry import snake_case
from ..core.dtypes import DType
from ..device import get_device
from ..safetensors_io import _stored_tensor
from ..tensor import Tensor, Variable, tensor
from .losses import Loss
from .metrics import Metric

FORMAT = "webtensor.weights"
VERSION = "1"
# Entries that are not layer weights: optimizer and other state that exported artifacts carry
# (``webtensor.export``); weights saved by the JS runtime hold them, and ``load_weights`` skips them.
STATE_PREFIXES = ("optimizer/", "state/")


def weight_paths(layer) -> dict[str, Variable]:
    """``{path: Variable}`` for every distinct Variable of ``layer`` (a shared one keeps its first path)."""
    out, seen = {}, set()
    for path, v in layer._weight_items():
        if id(v) not in seen:
            seen.add(id(v))
            out[path] = v
    return out


def save_weights(layer, path) -> None:
    """Write ``layer``'s weights to ``path`` (safetensors; float32 little-endian, C order).

    Raises:
        ValueError: the layer has no weights (not built yet).
    """
    weights = weight_paths(layer)
    if not weights:
        raise ValueError(f"save_weights: {layer.name!r} has no weights yet; build it first "
                         "(call it on a batch, or model.build(input_shape))")
    tensors = {}
    for name, v in weights.items():
        data = bytes(v._host_bytes())   # the host layout is the file layout
        tensors[name] = (v.dtype.name, tuple(v.shape), data)
    safetensors_io.save_file(path, tensors, {"format": FORMAT, "version": VERSION})


def _kind(dtype: str) -> str:
    return "bool" if dtype == "bool" else "float" if "float" in dtype else "int"


def _targets(name: str, name_map):
    """``(weight path or None, transform or None)`` for the stored tensor ``name`` under ``name_map``."""
    if name_map is None:
        return name, None
    got = name_map.get(name, name) if isinstance(name_map, Mapping) else name_map(name)
    if got is None:
        return None, None
    if isinstance(got, str):
        return got, None
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], str) and callable(got[1]):
        return got
    raise TypeError(f"load_weights: name_map gave {got!r} for {name!r}; expected a weight path (str), "
                    "(path, transform) or None (skip it)")


def load_weights(layer, path, *, by_name: bool = False, name_map=None, skip_mismatch: bool = False) -> None:
    """Assign the weights stored in ``path`` (a safetensors file, or its bytes) to ``layer``'s
    Variables, matched by path (``dense/kernel``; :func:`weight_paths`).

    ``name_map`` renames the file's tensors first, for weights saved by other frameworks: a dict
    ``{file name: weight path}`` (names it lacks keep their own) or a callable ``file name -> weight
    path``; either may give ``None`` to skip a tensor, or ``(weight path, transform)`` where
    ``transform(tensor) -> tensor`` rearranges the value first. PyTorch's ``nn.Linear`` stores
    ``weight`` as ``[out, in]``, the transpose of a Dense ``kernel``::

        def torch_names(name):                     # fc1.weight -> dense/kernel (transposed)
            layer, kind = name.split(".")
            ours = {"fc1": "dense", "fc2": "dense_1"}[layer]
            return (f"{ours}/kernel", lambda t: t.T) if kind == "weight" else f"{ours}/bias"
        model.load_weights("model.safetensors", name_map=torch_names)

    Values convert as :func:`webtensor.load_safetensors` reads them, then to the weight's dtype of
    the same kind (float64/float16/bfloat16 -> float32; any integer type -> int32); a float file for
    an int weight (or the reverse) is a mismatch. Entries under ``optimizer/`` and ``state/``
    (artifact state, see :data:`STATE_PREFIXES`) are skipped.

    Keras semantics: ``by_name=True`` loads the weights whose (mapped) names the layer has and leaves
    the others as they are, ignoring the file's other tensors (a ``UserWarning`` lists both; a
    file where nothing matches is a ValueError); ``skip_mismatch=True`` skips, with a
    ``UserWarning``, weights whose shape or dtype differs instead of failing.

    Everything is checked (and converted) before anything is assigned, so on error the layer is
    unchanged.

    Raises:
        ValueError: the layer is not built; or (all listed, naming file and weight names) the file
            lacks weights the layer has or holds weights the layer lacks (unless ``by_name``), two
            file tensors map to one weight, or a shape or dtype differs (unless ``skip_mismatch``);
            or the file is not valid safetensors.
        TypeError: ``name_map`` is not a dict, a callable or None, or gave something else than a
            path, ``(path, transform)`` or None.
    """
    import warnings
    if name_map is not None and not isinstance(name_map, Mapping) and not callable(name_map):
        raise TypeError(f"load_weights: name_map must be a dict, a callable or None, got {type(name_map).__name__}")
    weights = weight_paths(layer)
    if not weights:
        raise ValueError(f"load_weights: {layer.name!r} has no weights yet; build it first "
                         "(call it on a batch, or model.build(input_shape)) so its weights can be matched")
    if isinstance(path, (bytes, bytearray, memoryview)):
        where = "the safetensors bytes"
        stored, _ = safetensors_io.load(path)
    else:
        where = os.fspath(path)
        stored, _ = safetensors_io.load_file(path)
    problems: list[str] = []
    chosen: dict[str, tuple] = {}               # weight path -> (file name, transform)
    for fname in stored:
        target, fn = _targets(fname, name_map)
        if target is None or (target not in weights and target.startswith(STATE_PREFIXES)):
            continue
        if target in chosen:
            problems.append(f"{chosen[target][0]!r} and {fname!r} both map to {target!r}")
            continue
        chosen[target] = (fname, fn)

    def label(target):
        fname = chosen[target][0]
        return repr(fname) if fname == target else f"{fname!r} (as {target!r})"
    missing = [k for k in weights if k not in chosen]
    extra = [label(t) for t in chosen if t not in weights]
    if by_name:
        if not any(t in weights for t in chosen):
            raise ValueError(f"load_weights: no weight of the file matches {layer.name!r} ({where}; its weights: "
                             f"{list(weights)}; the file's tensors: {list(stored)[:20]})")
    else:
        if missing:
            problems.append(f"missing from the file: {missing}")
        if extra:
            problems.append(f"in the file but not in the model: [{', '.join(extra)}]")
    mismatched: list[str] = []
    values: dict[str, Tensor] = {}
    for target, (fname, fn) in chosen.items():
        v = weights.get(target)
        if v is None:
            continue
        dtype, shape, view = stored[fname]
        if fn is None and _kind(dtype) != _kind(v.dtype.name):
            mismatched.append(f"{label(target)}: file has dtype {dtype}, model has {v.dtype.name}")
            continue
        if fn is None and tuple(shape) != tuple(v.shape):
            mismatched.append(f"{label(target)}: file has shape {tuple(shape)}, model has {tuple(v.shape)}")
            continue
        if fn is None and dtype == v.dtype.name:
            values[target] = Tensor(v.device.from_host(view, v._aval), v._aval, v.device)
            continue
        t = _stored_tensor(dtype, shape, view, device=v.device)
        if fn is not None:
            t = fn(t)
            t = t if isinstance(t, Tensor) else tensor(t, device=v.device)
            if tuple(t.shape) != tuple(v.shape):
                mismatched.append(f"{label(target)}: file has shape {tuple(shape)}, {tuple(t.shape)} after the "
                                  f"transform, model has {tuple(v.shape)}")
                continue
            if _kind(t.dtype.name) != _kind(v.dtype.name):
                mismatched.append(f"{label(target)}: the transform gave dtype {t.dtype.name}, model has {v.dtype.name}")
                continue
        values[target] = t if t.dtype == v.dtype else t.astype(v.dtype)
    if mismatched:
        if skip_mismatch:
            warnings.warn(f"load_weights: skipped {len(mismatched)} weight(s) of {where} that do not match "
                          f"{layer.name!r}: " + "; ".join(mismatched), stacklevel=3)
        else:
            problems.extend(mismatched)
    if problems:
        raise ValueError(f"load_weights: {where} does not match {layer.name!r}: " + "; ".join(problems))
    if by_name and (missing or extra):
        warnings.warn(f"load_weights(by_name=True): {where}: weights of {layer.name!r} not in the file (left as they "
                      f"are): {missing}; tensors in the file not in the model (ignored): [{', '.join(extra)}]",
                      stacklevel=3)
    for target, t in values.items():
        weights[target].assign(t)


# ---- configs: Keras 3's serialize_keras_object / deserialize_keras_object ---------------------------
#
# An object is stored as ``{"module", "class_name", "config", "registered_name"}``. Loading never
# imports ``module``: a class is found only in webtensor's own modules (by module and class name), in
# the classes registered with :func:`register_keras_serializable`, or in ``custom_objects``.

_CUSTOM_OBJECTS: dict[str, object] = {}
_MAX_DEPTH = 64            # nesting of a config (JSON or objects) that deserialization accepts
# Elements of an input that a loaded config may declare (the model is built on zeros of that shape).
MAX_INPUT_ELEMENTS = 1 << 26


class _Loading(threading.local):
    """While :func:`load_model` rebuilds a model: the bytes of weights it may still create. Every weight
    must be in the file, so a config asking for more than the file holds is refused before allocating."""
    weight_bytes: int | None = None


_loading = _Loading()


def charge_weight(layer_name: str, name: str, shape, dtype) -> None:
    """Called by ``Layer.add_weight`` before creating a weight; outside :func:`load_model` it does nothing.

    Raises:
        ValueError: the weight would take the model being loaded past its weights file's size.
    """
    if _loading.weight_bytes is None:
        return
    n = dtype.itemsize
    for d in shape:
        n *= int(d)
    if n > _loading.weight_bytes:
        raise ValueError(f"load_model: the config asks for a weight {layer_name}/{name} of shape {tuple(shape)}, "
                         f"more than the weights file holds")
    _loading.weight_bytes -= n


def check_input_shape(shape, what: str) -> tuple:
    """A shape from a loaded config: ints >= 0 or None, at most :data:`MAX_INPUT_ELEMENTS` elements with
    None counted as 1. Raises ValueError otherwise."""
    if not isinstance(shape, (list, tuple)) or len(shape) > 32 or \
            not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape):
        raise ValueError(f"{what}: malformed shape {str(shape)[:100]}")
    n = 1
    for d in shape:
        n *= 1 if d is None else d
    if n > MAX_INPUT_ELEMENTS:
        raise ValueError(f"{what}: shape {tuple(shape)} has more than {MAX_INPUT_ELEMENTS} elements")
    return tuple(shape)


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Class or function decorator (``keras.saving.register_keras_serializable``): records ``obj`` as
    ``'{package}>{name or obj.__name__}'`` so :func:`load_model` finds it without ``custom_objects``.

    Args:
        package: a str without ``'>'``, the first part of the registered name.
        name: the second part (a str); None: the object's ``__name__``.
    Returns:
        The decorator: it registers its argument (sets its ``_registered_name``) and returns it
        unchanged.
    Raises:
        ValueError: ``package`` contains ``'>'``, or the name is taken by another object.
    """
    if ">" in package:
        raise ValueError(f"register_keras_serializable: package must not contain '>', got {package!r}")

    def decorate(obj):
        key = f"{package}>{name or obj.__name__}"
        if _CUSTOM_OBJECTS.get(key, obj) is not obj:
            raise ValueError(f"register_keras_serializable: {key!r} is already registered to "
                             f"{_CUSTOM_OBJECTS[key]!r}")
        _CUSTOM_OBJECTS[key] = obj
        obj._registered_name = key
        return obj
    return decorate


def get_registered_name(obj) -> str:
    """The name ``obj`` (a class or function) is stored under: its registered name, else its own."""
    own = obj.__dict__.get("_registered_name") if isinstance(obj, type) else getattr(obj, "_registered_name", None)
    return own or obj.__name__


def record_init_args(instance, args, kwargs) -> None:
    """Keep the arguments ``type(instance).__init__`` is about to get, by parameter name, as the default
    config (``Layer.__new__`` calls this). Arguments that ``__init__`` would refuse are not kept (it
    raises its own error); positional ``*args`` cannot be named, so they leave no config."""
    import inspect
    try:
        sig = inspect.signature(type(instance).__init__)
        bound = sig.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return
    config: dict | None = {}
    for pname, value in list(bound.arguments.items())[1:]:
        kind = sig.parameters[pname].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                config = None
                break
        else:
            config[pname] = value
    instance.__dict__["_init_config"] = config


def auto_config(layer, base: dict) -> dict:
    """``Layer.get_config`` for a class that does not override it (Keras 3's auto-config): the recorded
    constructor arguments, with the ``base`` entries (``name``, ``trainable``, ``dtype``, current
    values) that the constructor takes; a ``seed`` argument left None becomes the seed the layer
    draws with (Dropout), so that the rebuilt layer draws the same numbers.

    Raises:
        NotImplementedError: the constructor takes arguments of its own that were not recorded.
    """
    import inspect
    params = inspect.signature(type(layer).__init__).parameters
    recorded = layer.__dict__.get("_init_config")
    if recorded is None:
        own = [p for p in params.values() if p.name not in ("self", "name", "trainable", "dtype")
               and p.kind is not p.VAR_KEYWORD]
        if own:
            raise NotImplementedError(f"layer {type(layer).__name__} has arguments in __init__ "
                                      f"({', '.join(p.name for p in own)}) that were not recorded (positional *args) "
                                      "and must override get_config()")
        recorded = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    config = {**recorded, **{k: v for k, v in base.items() if k in params or takes_any}}
    if "seed" in params and config.get("seed") is None:
        config["seed"] = layer._seed
    return config


def attribute_config(obj) -> dict:
    """A config for a loss, metric or optimizer without ``get_config``: each constructor parameter's
    value read back from the attribute (or the ``options``) of that name; parameters that left none keep
    their defaults. Raises NotImplementedError for a required parameter that cannot be read back."""
    import inspect
    options = {**getattr(obj, "options", {}), **getattr(obj, "_options", {})}
    config = {}
    for pname, p in list(inspect.signature(type(obj).__init__).parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if pname in options:
            config[pname] = options[pname]
        elif pname in vars(obj) or pname in ("name",):
            config[pname] = getattr(obj, pname)
        elif p.default is p.empty:
            raise NotImplementedError(f"{type(obj).__name__}: cannot read back the argument {pname!r}; define "
                                      "get_config() (and from_config()) to save it")
    return config


# What a config may name, filled by ``webtensor.nn``'s ``__init__`` (which imports every module) through
# register_builtins: this module sits below the layers (they import it), so it cannot import them.
_BUILTIN_MODULES: dict = {}      # module name -> module whose public classes and functions a config may name
_FUNCTION_TABLES: list = []      # the name -> function tables of activations, losses, metrics


def register_builtins(modules, function_tables) -> None:
    """Make ``modules``' public classes and functions loadable, and ``function_tables``' (``Registry``
    objects) functions savable by name."""
    _BUILTIN_MODULES.update({m.__name__: m for m in modules})
    _FUNCTION_TABLES.extend(function_tables)


def _builtin_modules() -> dict:
    return _BUILTIN_MODULES


def _function_name(fn):
    """A function's stored form: its name in webtensor's activation/loss/metric tables, or a registered
    custom function. Raises TypeError for any other function (a lambda, a closure)."""
    for reg in _FUNCTION_TABLES:
        for key, entry in reg.table.items():
            if entry is fn:
                return key
    if getattr(fn, "_registered_name", None) in _CUSTOM_OBJECTS:
        return {"module": None, "class_name": "function", "config": fn._registered_name,
                "registered_name": fn._registered_name}
    raise TypeError(f"cannot save the function {getattr(fn, '__qualname__', fn)!r}: only webtensor's named "
                    "functions and functions decorated with @register_keras_serializable() can be saved "
                    "(a lambda cannot)")


def serialize_keras_object(obj):
    """``obj`` as JSON-ready values (``keras.saving.serialize_keras_object``): numbers, strings,
    lists and str-keyed dicts as they are (tuples become lists), dtypes by name, functions by name,
    objects with ``get_config`` (layers, initializers, schedules, optimizers; losses and metrics read
    back from their attributes) as ``{"module", "class_name", "config", "registered_name"}``.

    Raises:
        TypeError: something else (a lambda, an object without a config), naming it.
    """
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot save a dict with the non-string key {bad[0]!r}")
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, DType):
        return obj.name
    if hasattr(obj, "__array__") and getattr(obj, "ndim", None) == 0:      # numpy scalars
        return obj.item()
    if isinstance(obj, type):
        raise TypeError(f"cannot save the class {obj.__name__} as a value; pass an instance")
    cls = type(obj)
    if hasattr(obj, "get_config"):
        config = obj.get_config()
    elif isinstance(obj, _serializable_bases()):
        config = attribute_config(obj)
    elif callable(obj):
        return _function_name(obj)
    else:
        raise TypeError(f"cannot save a {cls.__name__} ({str(obj)[:80]}): only JSON values, dtypes, named functions "
                        "and objects with get_config() can be saved")
    out = {"module": cls.__module__, "class_name": cls.__name__, "config": serialize_keras_object(config),
           "registered_name": get_registered_name(cls)}
    build_shape = obj._build_shape if _is_model(obj) else None
    if build_shape is not None:
        out["build_config"] = {"input_shape": list(build_shape)}
    return out


def _serializable_bases() -> tuple:
    return Loss, Metric


def _is_object(value) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


def _lookup(spec: dict, custom_objects) -> object:
    """The class (or function) a stored object names; never imports anything."""
    name, registered, module = spec.get("class_name"), spec.get("registered_name"), spec.get("module")
    if not isinstance(name, str) or not isinstance(registered, (str, type(None))) or \
            not isinstance(module, (str, type(None))):
        raise ValueError(f"load_model: malformed object entry {str(spec)[:200]}")
    if name == "function":
        name = registered = spec["config"] if isinstance(spec["config"], str) else None
    for key in (registered, name):
        if key is not None and custom_objects and key in custom_objects:
            return custom_objects[key]
    if registered in _CUSTOM_OBJECTS:
        return _CUSTOM_OBJECTS[registered]
    mod = _builtin_modules().get(module)
    if mod is not None and not name.startswith("_"):
        found = vars(mod).get(name)
        if found is not None and (isinstance(found, type) or callable(found)) and \
                getattr(found, "__module__", None) == module:
            return found
    raise TypeError(f"Could not locate class {name!r} (module {module!r}, registered name {registered!r}). "
                    "Make sure custom classes are decorated with "
                    "`@webtensor.nn.saving.register_keras_serializable()` or passed in `custom_objects`")


def deserialize_keras_object(config, custom_objects=None, _depth: int = 0):
    """The inverse of :func:`serialize_keras_object`: stored objects are rebuilt with their class's
    ``from_config`` (else ``cls(**config)``); classes come only from webtensor, the registry or
    ``custom_objects`` (``{name: class or function}``), and nothing is imported.

    Raises:
        TypeError: an unknown class. ValueError: a malformed or too deeply nested config, or a class
        that refuses its config.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError(f"load_model: the config nests deeper than {_MAX_DEPTH} levels")
    if isinstance(config, list):
        return [deserialize_keras_object(v, custom_objects, _depth + 1) for v in config]
    if not isinstance(config, dict):
        return config
    if not _is_object(config):
        return {k: deserialize_keras_object(v, custom_objects, _depth + 1) for k, v in config.items()}
    target = _lookup(config, custom_objects)
    if config["class_name"] == "function":
        return target
    if not isinstance(target, type):
        raise TypeError(f"load_model: {config['class_name']!r} names a function where a class was expected")
    inner = config["config"]
    if not isinstance(inner, dict):
        raise ValueError(f"load_model: the config of {config['class_name']!r} must be a dict, got "
                         f"{type(inner).__name__}")
    # Nested objects are rebuilt first (deserializing an object again returns it as it is, so a
    # from_config that calls deserialize_keras_object itself, as Keras' guides do, still works).
    inner = {k: deserialize_keras_object(v, custom_objects, _depth + 1) for k, v in inner.items()}
    if target.__name__ == "InputLayer" and target.__module__ == __package__ + ".layers":
        shape = inner.get("shape")
        check_input_shape([inner.get("batch_size")] + shape if isinstance(shape, list) else shape,
                          "load_model: InputLayer")
    try:
        obj = target.from_config(inner) if hasattr(target, "from_config") else target(**inner)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"load_model: {config['class_name']!r} could not be rebuilt from its config "
                         f"({type(e).__name__}: {e})") from e
    build = config.get("build_config")
    if build is not None and _is_model(obj) and not obj.built:
        shape = build.get("input_shape") if isinstance(build, dict) else None
        obj.build(check_input_shape(shape, "load_model: build_config"))
    return obj


def _model_class():
    return _BUILTIN_MODULES["webtensor.nn.model"].Model    # registered by webtensor.nn (above this module)


def _is_model(obj) -> bool:
    return isinstance(obj, _model_class())


# ---- state beyond the weights: layer state, optimizer state -----------------------------------------

def state_paths(layer) -> dict[str, Variable]:
    """``{path: Variable}`` for layer state that is not a weight (a Dropout layer's step counter),
    under the weight paths' scheme (``Layer._weight_items``): ``dropout/counter``."""
    return _walk(layer, by_class=False)[1]


def optimizer_paths(optimizer, variables: dict[str, Variable], wanted=None) -> dict[str, Variable]:
    """``{path: Variable}`` of an optimizer's state, named as artifacts name it (``webtensor.export``):
    ``iterations``, ``learning_rate`` (when a number), ``<slot>/<weight path>`` for the variables of
    ``variables`` (``{weight path: Variable}``) that have slots.

    ``wanted`` (names, e.g. those of a file being restored) creates the state those names need first,
    so that an optimizer that has not run yet can be restored. A ``LossScaleOptimizer`` gives its
    inner optimizer's state and its own ``dynamic_scale`` and ``step_counter``."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        out = optimizer_paths(inner, variables, wanted)
        if wanted is not None and {"dynamic_scale", "step_counter"} & set(wanted):
            first = next(iter(variables.values()), None)
            optimizer._ensure_scale(first.device if first is not None else get_device())
        out.update({k: v for k, v in (("dynamic_scale", optimizer._scale), ("step_counter", optimizer._counter))
                    if v is not None})
        return out
    if wanted is not None:
        wanted = set(wanted)
        if {"iterations", "learning_rate"} & wanted:
            first = next(iter(variables.values()), None)
            optimizer._ensure_state(first.device if first is not None else get_device())
        for path, v in variables.items():
            if any(f"{slot}/{path}" in wanted for slot in optimizer._slot_names()):
                optimizer._slots_for(v)
    out: dict[str, Variable] = {}
    if optimizer._iterations is not None:
        out["iterations"] = optimizer._iterations
    if optimizer._lr_var is not None:
        out["learning_rate"] = optimizer._lr_var
    for path, v in variables.items():
        for slot, sv in optimizer._slots.get(id(v), {}).items():
            out[f"{slot}/{path}"] = sv
    return out


def check_and_assign(targets: dict[str, Variable], stored: dict, where: str, strict: bool = True) -> list[str]:
    """Assign ``stored`` (``{name: (dtype, shape, view)}`` from :func:`webtensor.safetensors_io.load`)
    to ``targets`` (``{name: Variable}``), all checked first (dtype exactly, shape) so that on error
    nothing changes. Returns the stored names no target took.

    Raises:
        ValueError: a dtype or shape differs, or (``strict``) a target is missing from ``stored``
            (all listed, with ``where``).
    """
    problems = []
    missing = [k for k in targets if k not in stored]
    if strict and missing:
        problems.append(f"missing: {missing[:20]}")
    for k, v in targets.items():
        if k in stored:
            dtype, shape, _ = stored[k]
            if dtype != v.dtype.name or tuple(shape) != tuple(v.shape):
                problems.append(f"{k!r}: stored {dtype}{list(shape)}, expected {v.dtype.name}{list(v.shape)}")
    if problems:
        raise ValueError(f"{where}: does not match: " + "; ".join(problems))
    for k, v in targets.items():
        if k in stored:
            v.assign(Tensor(v.device.from_host(stored[k][2], v._aval), v._aval, v.device))
    return [k for k in stored if k not in targets]


def _tensor_entries(variables: dict[str, Variable]) -> dict:
    return {name: (v.dtype.name, tuple(v.shape), bytes(v._host_bytes())) for name, v in variables.items()}


def _walk(layer, by_class: bool, prefix: str = "") -> tuple[dict[str, Variable], dict[str, Variable]]:
    """``({path: weight}, {path: other state})``. Each sublayer's path part is its class name in snake
    case made unique among its siblings (``dense``, ``dense_1``); without ``by_class`` a user-given
    name takes its place (``Layer._weight_items``' scheme, of ``save_weights`` and checkpoints). With
    ``by_class`` it is Keras 3's ``saving_lib`` scheme, used in ``.keras`` files: never by name, so the
    paths of a model rebuilt from its config (which restores every name) match the saved model's."""
    weights: dict[str, Variable] = {}
    state: dict[str, Variable] = {}
    for key, v in layer._weights.items():
        weights[prefix + key] = v
    known = {id(v) for v in layer._weights.values()}
    for attr, v in vars(layer).items():
        if isinstance(v, Variable) and id(v) not in known:
            state[prefix + attr.lstrip("_")] = v
    used: set[str] = set(layer._weights)
    for sub in layer._sublayers():
        base = snake_case(type(sub).__name__) if by_class else sub._given_name or snake_case(type(sub).__name__)
        key, k = base, 0
        while key in used:
            k += 1
            key = f"{base}_{k}"
        used.add(key)
        w, s = _walk(sub, by_class, f"{prefix}{key}/")
        weights.update(w)
        state.update(s)
    return weights, state


def _model_state(model, stored=None) -> dict[str, Variable]:
    """Everything a ``.keras`` file stores as tensors: the weights (by :func:`_walk`'s class paths),
    ``state/<path>`` and, when compiled, ``optimizer/<path>``. ``stored`` (a file's names): create the
    optimizer state it holds."""
    weights, state = _walk(model, by_class=True)
    seen: set[int] = set()
    weights = {k: v for k, v in weights.items() if id(v) not in seen and not seen.add(id(v))}   # shared: first path
    out = dict(weights)
    out.update({f"state/{k}": v for k, v in state.items()})
    if model.optimizer is not None:
        wanted = None if stored is None else [k[len("optimizer/"):] for k in stored if k.startswith("optimizer/")]
        out.update({f"optimizer/{k}": v for k, v in optimizer_paths(model.optimizer, weights, wanted).items()})
    return out


# ---- whole models: Keras 3's .keras zip --------------------------------------------------------------
#
# Keras 3 (keras/src/saving/saving_lib.py) writes a zip holding ``metadata.json``, ``config.json`` (the
# serialized model with its ``build_config`` and ``compile_config``) and ``model.weights.h5``; webtensor
# writes the weights (and the optimizer state) as ``model.weights.safetensors`` instead of HDF5.

CONFIG_FILENAME, METADATA_FILENAME, WEIGHTS_FILENAME = "config.json", "metadata.json", "model.weights.safetensors"
# Upper bounds on what load_model reads of each member (the zip's own sizes are not trusted).
LIMITS = {METADATA_FILENAME: 1 << 20, CONFIG_FILENAME: 64 << 20, WEIGHTS_FILENAME: 16 << 30}


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Write ``model`` to ``filepath`` (which must end in ``.keras``): a zip of ``config.json`` (Keras
    3's serialized model: class, config, ``build_config``, ``compile_config``), ``metadata.json``
    and ``model.weights.safetensors`` (weights under Keras 3's class-name paths, ``dense_1/kernel``,
    which :func:`save_weights` also uses for layers without a given name; layer state under ``state/``;
    optimizer state under ``optimizer/<slot>/<path>`` as in artifacts). Written to a temporary file,
    then renamed.

    Raises:
        ValueError: another extension, or the model is not built. FileExistsError: ``overwrite=False``
        and the file exists. TypeError/NotImplementedError: something in the model has no config
        (a ``Lambda`` of a lambda, a subclass whose arguments cannot be read back).
    """
    import datetime
    import json
    import zipfile
    path = os.fspath(filepath)
    if not path.endswith(".keras"):
        raise ValueError(f"save: the filename must end in '.keras' (a whole model), got {path!r}; use "
                         "save_weights() for weights only")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"save: {path!r} exists and overwrite=False")
    if not model.built:
        raise ValueError(f"save: {model.name!r} is not built yet: call it on a batch or model.build(input_shape)")
    config = serialize_keras_object(model)
    compile_config = model.get_compile_config()
    if compile_config is not None:
        config["compile_config"] = compile_config
    metadata = {"format": "webtensor.keras", "format_version": "1", "webtensor_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    weights = safetensors_io.save(_tensor_entries(_model_state(model)), {"format": FORMAT, "version": VERSION})
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(METADATA_FILENAME, json.dumps(metadata, indent=2), zipfile.ZIP_DEFLATED)
            zf.writestr(CONFIG_FILENAME, json.dumps(config, indent=2), zipfile.ZIP_DEFLATED)
            zf.writestr(WEIGHTS_FILENAME, weights, zipfile.ZIP_STORED)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_members(path: str) -> dict[str, bytes]:
    """The members of a ``.keras`` zip, checked: only the expected names, each once, unencrypted, each
    read no further than its limit (a zip's declared sizes may lie)."""
    import zipfile
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"load_model: {path!r} is not a .keras (zip) file: {e}") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        unexpected = [n for n in names if n not in LIMITS and not n.startswith("assets/")]
        if unexpected or len(set(names)) != len(names):
            raise ValueError(f"load_model: {path!r}: unexpected or repeated members "
                             f"{(unexpected or sorted(n for n in names if names.count(n) > 1))[:10]}; a .keras file "
                             f"holds only {sorted(LIMITS)}")
        if any(n.startswith("assets/") and not n.endswith("/") for n in names):
            raise ValueError(f"load_model: {path!r}: assets are not supported")
        for required in (CONFIG_FILENAME, WEIGHTS_FILENAME):
            if required not in names:
                raise ValueError(f"load_model: {path!r} lacks {required!r}")
        out = {}
        for info in infos:
            if info.filename not in LIMITS:
                continue
            if info.flag_bits & 0x1:
                raise ValueError(f"load_model: {path!r}: {info.filename!r} is encrypted")
            limit = LIMITS[info.filename]
            if info.file_size > limit:
                raise ValueError(f"load_model: {path!r}: {info.filename!r} is {info.file_size} bytes, over the "
                                 f"limit of {limit}")
            try:
                with zf.open(info) as f:
                    data = f.read(limit + 1)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as e:
                raise ValueError(f"load_model: {path!r}: cannot read {info.filename!r}: {e}") from None
            if len(data) > limit:
                raise ValueError(f"load_model: {path!r}: {info.filename!r} is over the limit of {limit} bytes")
            out[info.filename] = data
        return out


def _json(data: bytes, what: str) -> dict:
    import json
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"load_model: {what} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise ValueError(f"load_model: {what} must be a JSON object, got {type(value).__name__}")
    return value


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True):
    """A model saved by ``Model.save`` (Keras 3's ``keras.saving.load_model``): rebuilt from its
    config, its weights and layer state assigned, and (``compile=True``) compiled as it was, with the
    optimizer state (slots, ``iterations``, learning rate) restored, so training continues as if it
    had not stopped.

    The file is hostile input: only ``config.json``, ``metadata.json`` and ``model.weights.safetensors``
    may be in it, each read up to :data:`LIMITS`; classes come only from webtensor, from
    :func:`register_keras_serializable` or from ``custom_objects`` (``{name: class or function}``);
    no module named in the file is imported.

    Args:
        filepath: the ``.keras`` file's path (a str or path-like).
        custom_objects: None or a dict ``{name: class or function}`` of the objects the config
            names that are neither webtensor's nor registered.
        compile: a bool; True (and a file saved from a compiled model) compiles the model and
            restores its optimizer's state; False leaves it uncompiled.
    Returns:
        The ``Model``, built, with its weights.
    Raises:
        ValueError: a file that cannot be read or is not a zip, unexpected members, sizes over the
            limits, malformed JSON or config, a config that is not a model, weights that do not
            match the model (all listed).
        TypeError: ``custom_objects`` not a dict; a class that is not known (pass it in
            ``custom_objects`` or register it).
    """
    Model = _model_class()
    path = os.fspath(filepath)
    members = _read_members(path)
    if METADATA_FILENAME in members:
        _json(members[METADATA_FILENAME], f"{path!r}: {METADATA_FILENAME}")
    config = _json(members[CONFIG_FILENAME], f"{path!r}: {CONFIG_FILENAME}")
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise TypeError(f"load_model: custom_objects must be a dict, got {type(custom_objects).__name__}")
    compile_config = config.pop("compile_config", None)
    try:
        stored, _ = safetensors_io.load(members[WEIGHTS_FILENAME])
    except ValueError as e:
        raise ValueError(f"load_model: {path!r}: {WEIGHTS_FILENAME}: {e}") from None
    _loading.weight_bytes = len(members[WEIGHTS_FILENAME])
    try:
        model = deserialize_keras_object(config, custom_objects)
    finally:
        _loading.weight_bytes = None
    if not isinstance(model, Model):
        raise ValueError(f"load_model: {path!r} holds a {type(model).__name__}, not a model")
    if compile and compile_config is not None:
        if not isinstance(compile_config, dict) or not _is_object(compile_config.get("optimizer")):
            raise ValueError(f"load_model: {path!r}: malformed compile_config")
        model.compile_from_config(deserialize_keras_object(compile_config, custom_objects))
    if not model.built:
        raise ValueError(f"load_model: {path!r}: the model could not be built (no build_config)")
    if model.optimizer is None:
        stored = {k: v for k, v in stored.items() if not k.startswith("optimizer/")}
    targets = _model_state(model, stored)
    left = check_and_assign(targets, stored, f"load_model: {path!r}")
    if left:
        raise ValueError(f"load_model: {path!r}: tensors the model does not have: {left[:20]}")
    return model

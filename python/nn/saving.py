"""``save_weights`` / ``load_weights``: a model's Variables in the safetensors layout.

Each weight is stored under its path in the layer tree (``Layer._weight_items``): ``dense/kernel``,
``dense_1/bias``, ``conv2d/kernel``, ``batch_normalization/moving_mean``. Paths come from the
model's structure, not from process-wide layer names, so a file saved by one process loads into
the same architecture built by another. The file is plain safetensors
(https://github.com/huggingface/safetensors), written by :mod:`webtensor.safetensors_io`
without the ``safetensors`` package, and readable by it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .. import safetensors_io
from ..safetensors_io import _stored_tensor
from ..tensor import Tensor, Variable, tensor

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

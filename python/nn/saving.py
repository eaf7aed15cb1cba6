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

from .. import safetensors_io
from ..tensor import Tensor, Variable

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


def load_weights(layer, path) -> None:
    """Assign the weights stored in ``path`` to ``layer``'s Variables, matched by path.

    Everything is checked before anything is assigned, so on error the layer is unchanged.
    Entries under ``optimizer/`` and ``state/`` (artifact state, see :data:`STATE_PREFIXES`) are skipped.

    Raises:
        ValueError: the layer is not built; or the file lacks weights the layer has, holds
            weights the layer lacks, or has a shape or dtype that differs (all listed); or the
            file is not valid safetensors.
    """
    weights = weight_paths(layer)
    if not weights:
        raise ValueError(f"load_weights: {layer.name!r} has no weights yet; build it first "
                         "(call it on a batch, or model.build(input_shape)) so its weights can be matched")
    stored, _ = safetensors_io.load_file(path)
    problems = []
    missing = [k for k in weights if k not in stored]
    extra = [k for k in stored if k not in weights and not k.startswith(STATE_PREFIXES)]
    if missing:
        problems.append(f"missing from the file: {missing}")
    if extra:
        problems.append(f"in the file but not in the model: {extra}")
    for k, v in weights.items():
        if k in stored:
            dtype, shape, _ = stored[k]
            if tuple(shape) != tuple(v.shape):
                problems.append(f"{k!r}: file has shape {tuple(shape)}, model has {tuple(v.shape)}")
            elif dtype != v.dtype.name:
                problems.append(f"{k!r}: file has dtype {dtype}, model has {v.dtype.name}")
    if problems:
        raise ValueError(f"load_weights: {os.fspath(path)} does not match {layer.name!r}: " + "; ".join(problems))
    values = []
    for k, v in weights.items():
        _, shape, view = stored[k]
        values.append(Tensor(v.device.from_host(view, v._aval), v._aval, v.device))
    for v, t in zip(weights.values(), values):
        v.assign(t)

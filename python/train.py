"""Training checkpoints (``webtensor.train``), as ``tf.train``: :class:`Checkpoint`,
:class:`CheckpointManager` and :func:`latest_checkpoint`.

A checkpoint holds the Variables of the objects it is given by keyword (``Checkpoint(model=m,
optimizer=opt, step=step)``): a Variable as itself, a layer or model by its weight paths
(``model/dense/kernel``) and its other state (``model/state/dropout/counter``, the step counter
Dropout draws masks from), an optimizer by ``iterations``, ``learning_rate`` and one entry per slot
named after the variable it belongs to (``optimizer/momentum/model/dense/kernel``), a nested
Checkpoint under its keyword. Restoring all of them restores training exactly: the steps that
follow give bit-identical results to never having stopped.

Files: ``save("dir/ckpt")`` writes ``dir/ckpt-1.safetensors`` (one safetensors file; tensors by the
names above, plus ``save_counter``) and records it in ``dir/checkpoint``, a text file in
TensorFlow's ``CheckpointState`` format (``model_checkpoint_path: "ckpt-1"``), which
:func:`latest_checkpoint` reads. Paths returned and accepted are prefixes (``dir/ckpt-1``), as in
TensorFlow.
"""
from __future__ import annotations

import json
import os
import re

from . import safetensors_io
from .core.dtypes import int32
from .nn.layer import Layer
from .nn.saving import check_and_assign, optimizer_paths, state_paths, weight_paths
from .optimizers import Optimizer
from .tensor import Variable, init_scope

SUFFIX = ".safetensors"
STATE_FILENAME = "checkpoint"
FORMAT, VERSION = "webtensor.checkpoint", "1"
_STATE_LIMIT = 1 << 20      # bytes of the ``checkpoint`` state file read at most


def _file(path) -> str:
    path = os.fspath(path)
    return path if path.endswith(SUFFIX) else path + SUFFIX


class CheckpointLoadStatus:
    """What :meth:`Checkpoint.restore` matched (``tf.train.Checkpoint.restore``'s status):
    ``unused`` (names in the file that no object took) and ``missing`` (object state the file
    lacked, left as it was)."""

    def __init__(self, unused: list[str], missing: list[str]):
        self.unused, self.missing = unused, missing

    def assert_consumed(self) -> "CheckpointLoadStatus":
        """Raises AssertionError unless every value in the file was restored and every object's state
        was found in it."""
        if self.unused or self.missing:
            raise AssertionError(f"checkpoint not consumed: unused values {self.unused[:20]}; object state missing "
                                 f"from the file {self.missing[:20]}")
        return self

    def assert_existing_objects_matched(self) -> "CheckpointLoadStatus":
        """Raises AssertionError when some object state was missing from the file."""
        if self.missing:
            raise AssertionError(f"object state missing from the checkpoint: {self.missing[:20]}")
        return self

    def expect_partial(self) -> "CheckpointLoadStatus":
        """Accept a partial match (silences nothing: restoring never warns)."""
        return self


class Checkpoint:
    """Groups trackable objects for saving and restoring (``tf.train.Checkpoint``).

    Args:
        **kwargs: name -> a :class:`~webtensor.Variable`, a layer or model, an optimizer, or another
            Checkpoint. Names must not contain ``/``.

    Attributes:
        save_counter: an int32 Variable, the number of :meth:`save` calls (saved with the rest).

    Raises:
        TypeError: an object of another kind. ValueError: a bad name.
    """

    def __init__(self, **kwargs):
        for name, obj in kwargs.items():
            if not name or "/" in name or name == "save_counter":
                raise ValueError(f"Checkpoint: bad name {name!r} (no '/', not 'save_counter')")
            if not isinstance(obj, (Variable, Layer, Optimizer, Checkpoint)):
                raise TypeError(f"Checkpoint: {name}={type(obj).__name__} is not trackable (a Variable, a layer or "
                                "model, an optimizer or a Checkpoint)")
        self._objects = dict(kwargs)
        with init_scope():
            self.save_counter = Variable(0, name="save_counter", trainable=False, dtype=int32)

    def __getattr__(self, name):
        objects = self.__dict__.get("_objects", {})
        if name in objects:
            return objects[name]
        raise AttributeError(name)

    # ---- the names ----
    def _variables(self, wanted=None, prefix: str = "") -> dict[str, Variable]:
        """``{name: Variable}`` of everything saved; ``wanted`` (a file's names) creates optimizer state
        the file holds but the optimizer has not made yet."""
        out = {prefix + "save_counter": self.save_counter}
        optimizers = []
        for name, obj in self._objects.items():
            p = f"{prefix}{name}"
            if isinstance(obj, Variable):
                out[p] = obj
            elif isinstance(obj, Layer):
                out.update({f"{p}/{k}": v for k, v in weight_paths(obj).items()})
                out.update({f"{p}/state/{k}": v for k, v in state_paths(obj).items()})
            elif isinstance(obj, Checkpoint):
                out.update(obj._variables(wanted, f"{p}/"))
            else:
                optimizers.append((p, obj))
        # slots are named after their variable's name here, so optimizers come last
        by_path = {k: v for k, v in out.items() if v.trainable}
        for p, opt in optimizers:
            own = None if wanted is None else [k[len(p) + 1:] for k in wanted if k.startswith(p + "/")]
            out.update({f"{p}/{k}": v for k, v in optimizer_paths(opt, by_path, own).items()})
        return out

    # ---- writing ----
    def write(self, file_prefix) -> str:
        """Write the state to ``file_prefix + '.safetensors'`` (through a temporary file, then renamed);
        returns ``file_prefix``. Does not count as a save (see :meth:`save`)."""
        prefix = os.fspath(file_prefix)
        tensors = {k: (v.dtype.name, tuple(v.shape), bytes(v._host_bytes())) for k, v in self._variables().items()}
        path = _file(prefix)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            safetensors_io.save_file(tmp, tensors, {"format": FORMAT, "version": VERSION})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return prefix

    def save(self, file_prefix) -> str:
        """Add 1 to :attr:`save_counter`, write to ``f"{file_prefix}-{save_counter}"`` and record it as the
        latest checkpoint of its directory (the ``checkpoint`` file); returns that path."""
        self.save_counter.assign_add(1)
        path = self.write(f"{os.fspath(file_prefix)}-{int(self.save_counter)}")
        directory = os.path.dirname(path) or "."
        state = _read_state(directory) or []
        name = os.path.basename(path)
        _write_state(directory, [p for p in state if p != name] + [name])
        return path

    # ---- reading ----
    def read(self, save_path) -> CheckpointLoadStatus:
        """Restore from ``save_path`` (a prefix written by :meth:`write` or :meth:`save`); see :meth:`restore`."""
        return self.restore(save_path)

    def restore(self, save_path) -> CheckpointLoadStatus:
        """Assign the values saved at ``save_path`` (a prefix; ``None`` does nothing, as TensorFlow's,
        so ``restore(manager.latest_checkpoint)`` works on a first run). Layers and models must be built
        (their weights exist); optimizer state is created as needed. All values are checked (dtype and
        shape) before any is assigned.

        Returns:
            a :class:`CheckpointLoadStatus` (``assert_consumed()`` checks that everything matched).

        Raises:
            FileNotFoundError: no such checkpoint. ValueError: not a valid safetensors file, a dtype
            or shape differs, or a layer that the file has values for is not built.
        """
        if save_path is None:
            return CheckpointLoadStatus([], [])
        path = _file(save_path)
        stored, _ = safetensors_io.load_file(path)
        self._check_built(stored)
        targets = self._variables(wanted=list(stored))
        unused = check_and_assign(targets, stored, f"Checkpoint.restore: {path}", strict=False)
        return CheckpointLoadStatus(unused, [k for k in targets if k not in stored])

    def _check_built(self, stored, prefix: str = "") -> None:
        for name, obj in self._objects.items():
            p = f"{prefix}{name}/"
            if isinstance(obj, Layer) and not obj.built and any(k.startswith(p) for k in stored):
                raise ValueError(f"Checkpoint.restore: {name!r} ({obj.name!r}) is not built: build it first (call it on "
                                 "a batch or model.build(input_shape)) so its weights exist to restore")
            if isinstance(obj, Checkpoint):
                obj._check_built(stored, p)


# ---- the directory's ``checkpoint`` state file (TensorFlow's CheckpointState text format) ----------

_LINE = re.compile(r'^(model_checkpoint_path|all_model_checkpoint_paths): "((?:[^"\\]|\\.)*)"$')


def _safe_name(name: str) -> bool:
    """A checkpoint named in a state file must be a plain file name in that directory."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _read_state(directory) -> list[str] | None:
    """The checkpoints the state file lists, oldest first, the latest last; None without a file.
    Lines that are not ``key: "name"`` with a plain file name are ignored (the file is not trusted)."""
    path = os.path.join(os.fspath(directory), STATE_FILENAME)
    try:
        with open(path, "rb") as f:
            data = f.read(_STATE_LIMIT + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(data) > _STATE_LIMIT:
        raise ValueError(f"{path}: the checkpoint state file is over {_STATE_LIMIT} bytes")
    latest, all_paths = None, []
    for line in data.decode("utf-8", "replace").splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        try:
            name = json.loads(f'"{m.group(2)}"')
        except ValueError:
            continue
        if not _safe_name(name):
            continue
        if m.group(1) == "model_checkpoint_path":
            latest = name
        elif name not in all_paths:
            all_paths.append(name)
    if latest is not None:
        all_paths = [p for p in all_paths if p != latest] + [latest]
    return all_paths


def _write_state(directory, names: list[str]) -> None:
    lines = [f"model_checkpoint_path: {json.dumps(names[-1])}"] if names else []
    lines += [f"all_model_checkpoint_paths: {json.dumps(n)}" for n in names]
    path = os.path.join(os.fspath(directory), STATE_FILENAME)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def latest_checkpoint(checkpoint_dir) -> str | None:
    """The prefix of the latest checkpoint recorded in ``checkpoint_dir`` (``tf.train.latest_checkpoint``),
    or None when there is none (no state file, or its latest file is gone)."""
    names = _read_state(checkpoint_dir)
    if not names:
        return None
    path = os.path.join(os.fspath(checkpoint_dir), names[-1])
    return path if os.path.exists(_file(path)) else None


class CheckpointManager:
    """Keeps the last ``max_to_keep`` checkpoints of ``checkpoint`` in ``directory``
    (``tf.train.CheckpointManager``): ``save()`` writes ``directory/ckpt-N`` and deletes the oldest
    beyond ``max_to_keep`` (``None`` keeps all). A new manager on an existing directory takes over
    its state file's list.

    Raises:
        TypeError: ``checkpoint`` is not a Checkpoint. ValueError: ``max_to_keep`` < 1.
    """

    def __init__(self, checkpoint: Checkpoint, directory, max_to_keep: int | None = 5, checkpoint_name: str = "ckpt"):
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"CheckpointManager: expected a Checkpoint, got {type(checkpoint).__name__}")
        if max_to_keep is not None and int(max_to_keep) < 1:
            raise ValueError(f"CheckpointManager: max_to_keep must be >= 1 or None, got {max_to_keep!r}")
        if not _safe_name(checkpoint_name):
            raise ValueError(f"CheckpointManager: checkpoint_name must be a plain file name, got {checkpoint_name!r}")
        self.checkpoint, self.directory = checkpoint, os.fspath(directory)
        self.max_to_keep, self.checkpoint_name = max_to_keep, checkpoint_name
        self._names = [n for n in (_read_state(self.directory) or [])
                       if os.path.exists(_file(os.path.join(self.directory, n)))]

    @property
    def checkpoints(self) -> list[str]:
        """The kept checkpoints' prefixes, oldest first."""
        return [os.path.join(self.directory, n) for n in self._names]

    @property
    def latest_checkpoint(self) -> str | None:
        """The newest kept checkpoint's prefix, or None."""
        return self.checkpoints[-1] if self._names else None

    def save(self, checkpoint_number: int | None = None) -> str:
        """Write a checkpoint (numbered ``checkpoint_number``, else by the checkpoint's ``save_counter``,
        which this adds 1 to), delete those beyond ``max_to_keep``, update the state file; returns
        its prefix."""
        os.makedirs(self.directory, exist_ok=True)
        self.checkpoint.save_counter.assign_add(1)
        number = int(self.checkpoint.save_counter) if checkpoint_number is None else int(checkpoint_number)
        prefix = os.path.join(self.directory, f"{self.checkpoint_name}-{number}")
        self.checkpoint.write(prefix)
        name = os.path.basename(prefix)
        self._names = [n for n in self._names if n != name] + [name]
        if self.max_to_keep is not None:
            while len(self._names) > self.max_to_keep:
                old = _file(os.path.join(self.directory, self._names.pop(0)))
                if os.path.exists(old):
                    os.remove(old)
        _write_state(self.directory, self._names)
        return prefix


__all__ = ["Checkpoint", "CheckpointManager", "CheckpointLoadStatus", "latest_checkpoint"]


def __dir__():
    return list(__all__)

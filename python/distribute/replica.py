"""What every replica runs: the model's training step compiled ONCE, by the coordinator, into an
artifact (``docs/artifact.md``, the format the npm runtime runs) with two signatures, and a runner
that executes it with :func:`webtensor.load` (its own engine per replica: WebAssembly instances run
in parallel threads, as ``wasmtime`` calls release the GIL; Ray actors run the same runner in other
processes or machines, which never re-trace).

- ``compute_gradients(x..., y, sample_weight) -> (loss, y_pred, *gradients)``: forward, ``compute_loss``
  with per-example weights (0 for padding rows) and the gradients of the loss with respect to the
  trainable variables (in ``model.trainable_variables`` order); updates non-trainable state (a
  Dropout counter, BatchNormalization's moving statistics) in place.
- ``apply_gradients(*gradients) -> iterations``: ``model.optimizer.apply_gradients`` (updates the
  weights and the optimizer's state in place).

Combining replicas exactly (synchronous strategies): a replica's loss is the mean over its ``b`` rows
of ``w_i * l_i`` (Keras' ``sum_over_batch_size``), so the global batch's mean over its ``N`` real rows
is ``sum_r (b / N) * loss_r``, and the same weights combine the gradients.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

import numpy as np

from .. import __version__
from ..artifact import load
from ..core import ops as F
from ..creation import zeros, zeros_like
from ..export import _variable_names, export
from ..nn.saving import weight_paths
from ..tape import GradientTape
from ..tensor import tensor

__all__ = ["ReplicaProgram", "ReplicaRunner", "export_program", "weighted_sum"]


class ReplicaProgram:
    """An exported replica step: ``files`` ({name: bytes}, the artifact), the per-replica batch size,
    the trainable variables' artifact names (gradient order) and every variable's artifact name
    mapped to the model's Variable (to copy weights back)."""

    def __init__(self, files: dict, batch: int, trainable: list, variables: dict, n_inputs: int):
        self.files, self.batch, self.trainable, self.variables, self.n_inputs = files, batch, trainable, variables, n_inputs
        self.webtensor_version = __version__

    def __getstate__(self):          # shipped to workers without the coordinator's Variables
        return {**self.__dict__, "variables": {}}


def weighted_sum(scales, per_replica: list) -> list:
    """``sum_r scales[r] * per_replica[r][k]`` for every gradient ``k`` (float32, summed in replica
    order; replicas with scale 0 are skipped): the all-reduce of the synchronous strategies. Every
    replica that computes it from the same inputs gets the same bits, so replicas stay equal
    without a broadcast."""
    out = None
    for s, grads in zip(scales, per_replica):
        if not s:
            continue
        if out is None:
            out = [(np.float32(s) * g).astype(g.dtype, copy=False) for g in grads]
        else:
            for acc, g in zip(out, grads):
                acc += np.float32(s) * g
    return out if out is not None else [np.zeros_like(g) for g in per_replica[0]]


def _pack(grads: list) -> list:
    """Gradients as one flat buffer (one message, one sum per step) when they share a dtype (a flat
    program's one output already is)."""
    if len(grads) == 1:
        return [grads[0].reshape(-1)]
    if len({g.dtype for g in grads}) != 1:
        return grads
    return [np.concatenate([g.reshape(-1) for g in grads])]


def _unpack(packed: list, like: list) -> list:
    """:func:`_pack`'s inverse: views of the flat buffer shaped as ``like``."""
    if len(packed) == len(like) and len(like) != 1:
        return packed
    flat, out, at = packed[0], [], 0
    for g in like:
        out.append(flat[at:at + g.size].reshape(g.shape))
        at += g.size
    return out


def _pad(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` with zero rows appended up to ``rows``."""
    if a.shape[0] == rows:
        return a
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])


def _example(a, rows: int):
    a = np.asarray(a)
    return np.zeros((rows, *a.shape[1:]), a.dtype)


def export_program(model, x, y, batch: int, shards: list | None = None, backends=("wasm",),
                   flat: bool = False) -> ReplicaProgram:
    """Trace ``model``'s step for ``batch`` rows per replica (``x``, ``y``: one batch of the data, for
    shapes and dtypes) and export it (module docstring). The model must be compiled and built.
    ``shards``: for parameter servers, lists of trainable-variable indices; each adds a signature
    ``apply_gradients_<k>(*its gradients)`` that updates only those variables. ``backends``: the code
    the artifact carries (the replicas' device kinds). ``flat`` (the synchronous strategies): when the
    trainable variables share a dtype, the gradients leave ``compute_gradients`` as one flat tensor
    (concatenated in the graph) and ``apply_gradients`` takes one and splits it: one array to copy
    out, sum and copy in per step instead of one per variable (the same values)."""
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    ex_x = [tensor(_example(a, batch)) for a in xs]
    ex_y = tensor(_example(y, batch))
    ex_w = tensor(np.ones((batch,), np.float32))
    n = len(ex_x)
    trainable = list(model.trainable_variables)
    model.optimizer.build(trainable)
    flat = flat and len({v.dtype for v in trainable}) == 1 and len(trainable) > 1
    sizes = [int(np.prod(v.shape)) for v in trainable]

    def compute_gradients(*args):
        inputs, target, weight = list(args[:n]), args[n], args[n + 1]
        inputs = inputs[0] if n == 1 else inputs
        with GradientTape() as tape:
            y_pred = model(inputs, training=True)
            loss = model.compute_loss(inputs, target, y_pred, weight)
            scaled = model.optimizer.scale_loss(loss)       # a LossScaleOptimizer's loss scale
        grads = tape.gradient(scaled, trainable)
        grads = [g if g is not None else zeros_like(v) for g, v in zip(grads, trainable)]
        if flat:
            grads = [F.concat([F.reshape(g, (-1,)) for g in grads], axis=0)]
        return (loss, y_pred, *grads)

    def apply_gradients(*grads):
        if flat:
            grads = [F.reshape(g, v.shape) for g, v in zip(F.split(grads[0], sizes), trainable)]
        model.optimizer.apply_gradients(zip(grads, trainable))
        return model.optimizer.iterations.read_value() + 0

    grads_example = [zeros(v.shape, dtype=v.dtype) for v in trainable]
    signatures = {"compute_gradients": (compute_gradients, (*ex_x, ex_y, ex_w)),
                  "apply_gradients": (apply_gradients, (zeros((sum(sizes),), dtype=trainable[0].dtype),) if flat
                                      else tuple(grads_example))}
    for k, shard in enumerate(shards or []):
        def apply_shard(*grads, shard=shard):
            model.optimizer.apply_gradients(zip(grads, [trainable[i] for i in shard]))
            return model.optimizer.iterations.read_value() + 0
        signatures[f"apply_gradients_{k}"] = (apply_shard, tuple(grads_example[i] for i in shard))
    out = tempfile.mkdtemp(prefix="webtensor-replica-")
    try:
        # replicas run in wasmtime (this process or Ray workers): its relaxed-SIMD module (multiply-adds
        # fused, as the in-process "wasm" device does) tuned for Cranelift; the digits CNN's
        # compute_gradients 4.2 -> 3.2 ms (bench/bench_distribute.py's model, batch 128)
        manifest = export(model, path=out, backends=tuple(backends), signatures=signatures,
                          wasm_fma="wasm" in backends, wasm_engine="wasmtime")
        files = {}
        for name in [*manifest["files"], "manifest.json"]:
            with open(os.path.join(out, *name.split("/")), "rb") as f:
                files[name] = f.read()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    names = _variable_names(model, model.optimizer)
    by_name = {}
    paths = weight_paths(model)
    for path, v in paths.items():
        names[id(v)] = path
    all_vars = {id(v): v for v in [*paths.values(), *_optimizer_variables(model.optimizer)]}
    for spec in manifest["variables"]:
        for vid, name in names.items():
            if name == spec["name"] and vid in all_vars:
                by_name[spec["name"]] = all_vars[vid]
    trainable_names = [next(k for k, v in by_name.items() if v is t) for t in trainable]
    return ReplicaProgram(files, batch, trainable_names, by_name, n)


def _optimizer_variables(opt) -> list:
    return list(opt.variables)      # a LossScaleOptimizer's include its inner optimizer's


class ReplicaRunner:
    """Runs a :class:`ReplicaProgram` on one engine (``backend``: ``'wasm'`` or ``'webgpu'``).

    Raises:
        RuntimeError: the program was exported by another webtensor version (workers and the
        coordinator must run the same one).
    """

    def __init__(self, program: ReplicaProgram, backend: str = "wasm"):
        if program.webtensor_version != __version__:
            raise RuntimeError(f"webtensor.distribute: the coordinator runs webtensor {program.webtensor_version}, "
                               f"this worker {__version__}; install the same version everywhere")
        self.program = program
        self.source = None      # fit's in-memory data [*xs, y, w or None], for steps given as row indices
        self._dir = tempfile.mkdtemp(prefix="webtensor-replica-")
        try:
            for name, data in program.files.items():
                path = os.path.join(self._dir, *name.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            self.model = load(self._dir, backend)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def version(self) -> str:
        return __version__

    def compute_gradients(self, xs: list, y, w) -> tuple:
        """``(loss, y_pred, [gradients])`` (numpy) for one replica batch."""
        out = list(self.model.run("compute_gradients", *xs, y, w).values())
        return out[0], out[1], out[2:]

    def apply_gradients(self, grads: list) -> None:
        self.model.run("apply_gradients", *grads)

    def run_steps(self, steps: list, exchange, want_pred: bool, out: list, times: dict, reduce=None) -> None:
        """Synchronous steps (``steps``: ``(xs, y, w, scales)`` each, or ``(rows, scales)``: indices into
        ``source``, gathered and padded here): this replica's gradients, packed
        into one flat buffer; ``exchange(j, (flat, loss, y_pred))`` returns every replica's item for
        step ``j`` in replica order; their ``weighted_sum`` by ``scales`` (the same bits on every
        replica) is applied (``reduce(j, scales, flats)``, when given, returns it: threads of one
        process compute it once for all). Appends each step's ``[(loss, y_pred or None)]`` (every
        replica's) to ``out`` and adds seconds to ``times["compute"]`` (gathering rows and both signatures),
        ``times["exchange"]`` (waiting for the others included) and ``times["sum"]``; ``out`` keeps
        the finished steps when ``exchange`` raises."""
        clock = time.perf_counter
        for j, step in enumerate(steps):
            t0 = clock()
            xs, y, w = self._gather(step[0]) if len(step) == 2 else step[:3]
            scales = step[-1]
            loss, y_pred, grads = self.compute_gradients(xs, y, w)
            t1 = clock()
            every = exchange(j, (_pack(grads), loss, y_pred if want_pred else None))
            t2 = clock()
            flats = [item[0] for item in every]
            reduced = reduce(j, scales, flats) if reduce is not None else weighted_sum(scales, flats)
            t3 = clock()
            self.apply_gradients(_unpack(reduced, grads))
            times["compute"] = times.get("compute", 0.0) + (t1 - t0) + (clock() - t3)
            times["exchange"] = times.get("exchange", 0.0) + (t2 - t1)
            times["sum"] = times.get("sum", 0.0) + (t3 - t2)
            out.append([(item[1], item[2]) for item in every])

    def _gather(self, rows) -> tuple:
        """``(xs, y, w)`` of ``source``'s ``rows``, padded to the program's batch (weight 0)."""
        *xs, y, w = self.source
        b = self.program.batch
        w = np.ones((rows.shape[0],), np.float32) if w is None else w[rows]
        return [_pad(a[rows], b) for a in xs], _pad(y[rows], b), _pad(w, b)

    def apply_shard(self, k: int, grads: list) -> None:
        """A parameter server's update of shard ``k`` (``apply_gradients_<k>``)."""
        self.model.run(f"apply_gradients_{k}", *grads)

    def get_weights(self) -> dict:
        return self.model.get_weights()

    def set_weights(self, weights: dict) -> None:
        self.model.set_weights(weights)

"""In-place variable updates in exported artifacts (``core/runtime/artifacts.py`` ``plan_signature``,
``core/compile.py`` ``writes_in_place``, ``kernel_ir.Kernel.inplace``): a variable read only by the
kernel that computes its update, elementwise at the index it writes (an optimizer's update: a map
with its moments as siblings, or the epilogue of the gradient's reduction), is written in place
instead of through a temporary and a copy (a ``memory.copy`` in wasm, a copy dispatch in WebGPU).

Held to: bitwise equality with the plans from before (``artifacts.INPLACE = False``) for each
optimizer, on both loaders, on the WebGPU lowerings an update can ride in (map, direct and tiled
matmul, split K, one- and two-pass reductions) and on wasm threads; agreement with the model trained
on the numpy ("reference") device; and the plan itself: no copy left for an optimizer, and none
taken where it would be wrong (a variable read at another index by its own update).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import compile as C
from webtensor.core import kernel_ir as K
from webtensor.core.runtime import artifacts as A
from webtensor.wasm import threads as wasm_threads
from webtensor.webgpu import group as wgsl_group
from webtensor.webgpu import matmul as wgsl_matmul
from webtensor.webgpu import reduce as wgsl_reduce

pytest.importorskip("wasmtime")

OPTIMIZERS = {
    "sgd": lambda: wt.optimizers.SGD(0.1),
    "sgd_momentum": lambda: wt.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: wt.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: wt.optimizers.Adam(0.01),
    "adamw_amsgrad": lambda: wt.optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True),
    "rmsprop": lambda: wt.optimizers.RMSprop(0.01, momentum=0.5),
}
R = np.random.default_rng(26)
X = R.normal(size=(48, 30)).astype(np.float32)
Y = R.integers(0, 5, 48).astype(np.int32)
BATCH, STEPS = 16, 3


def _model(make_opt, width=17, inputs=30):
    wt.set_seed(0)
    m = wt.nn.Sequential([wt.nn.Input((inputs,)), wt.nn.Dense(width, activation="relu"), wt.nn.Dense(5)])
    m.compile(make_opt(), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def _export(path, make_opt, inplace, monkeypatch, **kw):
    monkeypatch.setattr(A, "INPLACE", inplace)
    monkeypatch.setattr(wgsl_group, "HORIZONTAL", False)   # dispatch counts here: one kernel per update
    m = _model(make_opt, **kw.pop("model", {}))
    man = m.export(str(path), batch_size=BATCH, **kw)
    return m, man


def _train(path, backend, x=X, y=Y):
    art = wt.load(str(path), backend=backend)
    losses = [float(art.train_step(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH])) for i in range(STEPS)]
    return losses, art.get_weights()


def _copies(path, man) -> int:
    """The train_step's WebGPU copy dispatches (``wgsl.copy_pass``: ``dst[...] = src[gid]``)."""
    def is_copy(k):
        with open(os.path.join(path, k["wgsl"])) as f:
            return "dst[" in f.read()
    return sum(map(is_copy, man["signatures"]["train_step"]["webgpu"]["kernels"]))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_in_place_train_steps_equal_copies_bitwise(name, tmp_path, monkeypatch):
    m, before = _export(tmp_path / "copies", OPTIMIZERS[name], False, monkeypatch)
    _, after = _export(tmp_path / "inplace", OPTIMIZERS[name], True, monkeypatch)
    writes = len(after["signatures"]["train_step"]["writes"])
    assert writes == len(before["signatures"]["train_step"]["writes"]) >= 5
    # every update was a copy; now none is, and each copy's dispatch is gone
    assert _copies(tmp_path / "copies", before) == writes
    assert _copies(tmp_path / "inplace", after) == 0
    n = lambda man: len(man["signatures"]["train_step"]["webgpu"]["kernels"])
    assert n(before) - n(after) == writes
    got = {}
    for backend in ("wasm", "webgpu"):
        plain, fused = _train(tmp_path / "copies", backend), _train(tmp_path / "inplace", backend)
        assert plain[0] == fused[0], backend
        assert plain[1].keys() == fused[1].keys()
        for k in plain[1]:
            np.testing.assert_array_equal(fused[1][k], plain[1][k], err_msg=f"{backend} {k}")
        got[backend] = fused[1]
    with wt.device("reference"):      # the same steps on the numpy device
        m.fit(X, Y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        want = [v.numpy() for v in m.weights]
    for backend, weights in got.items():     # the artifact lists the model's weights first, in order
        for (k, a), v in zip(weights.items(), want):
            assert a.shape == v.shape, k
            np.testing.assert_allclose(a, v, rtol=2e-4, atol=2e-5, err_msg=f"{backend} {k}")


@pytest.mark.parametrize("plan", ["tiled", "split_k", "two_pass_reduction"])
def test_in_place_epilogues_on_each_webgpu_plan(plan, tmp_path, monkeypatch, force_tiled_matmul):
    """SGD's updates ride in their gradients' kernels: the tiled matmul, split K (the update in the
    summing pass) and the two-pass reduction (the bias gradients) write them in place too."""
    if plan == "tiled":
        force_tiled_matmul()
    elif plan == "split_k":
        monkeypatch.setattr(wgsl_matmul, "MATMUL_SPLIT_K_MIN", 4)
    else:
        monkeypatch.setattr(wgsl_reduce, "SPLIT_MIN_LENGTH", 8)
        monkeypatch.setattr(wgsl_reduce, "SPLIT_CHUNK", 4)
    kw = dict(backends=("webgpu",), model=dict(width=64, inputs=64))    # dW1: 64 x 64, K = the batch
    _, before = _export(tmp_path / "copies", OPTIMIZERS["sgd"], False, monkeypatch, **dict(kw))
    _, after = _export(tmp_path / "inplace", OPTIMIZERS["sgd"], True, monkeypatch, **dict(kw))
    sources = "".join(open(os.path.join(tmp_path / "inplace", k["wgsl"])).read()
                      for k in after["signatures"]["train_step"]["webgpu"]["kernels"])
    assert {"tiled": "tile_a", "split_k": "partials", "two_pass_reduction": "partials"}[plan] in sources
    assert _copies(tmp_path / "inplace", after) == 0
    x = R.normal(size=(48, 64)).astype(np.float32)
    plain, fused = _train(tmp_path / "copies", "webgpu", x), _train(tmp_path / "inplace", "webgpu", x)
    assert plain[0] == fused[0]
    for k in plain[1]:
        np.testing.assert_array_equal(fused[1][k], plain[1][k], err_msg=k)


def test_in_place_on_wasm_threads(tmp_path, monkeypatch):
    """Split over two threads (every kernel cut into tiles), each tile updates its own rows in place;
    a reduction's epilogue keeps its reduced values in the tile's own scratch."""
    monkeypatch.setattr(wasm_threads, "MIN_WORK", 1)
    monkeypatch.setattr(wasm_threads, "TILE_WORK", 1)
    kw = dict(wasm_threads=True, backends=("wasm",), model=dict(width=64, inputs=64))
    x = R.normal(size=(48, 64)).astype(np.float32)
    for name in ("sgd", "adam"):
        _export(tmp_path / name / "copies", OPTIMIZERS[name], False, monkeypatch, **dict(kw))
        _, man = _export(tmp_path / name / "inplace", OPTIMIZERS[name], True, monkeypatch, **dict(kw))
        assert "threads" in man["signatures"]["train_step"]["wasm"]
        wt.config.threading.set_intra_op_parallelism_threads(2)
        try:
            plain, fused = _train(tmp_path / name / "copies", "wasm", x), _train(tmp_path / name / "inplace", "wasm", x)
        finally:
            wt.config.threading.set_intra_op_parallelism_threads(0)
        assert plain[0] == fused[0], name
        for k in plain[1]:
            np.testing.assert_array_equal(fused[1][k], plain[1][k], err_msg=f"{name} {k}")


def test_plan_updates_in_place_only_where_safe(tmp_path, monkeypatch):
    """A variable its update reads at another index (a transpose) keeps its temporary and copy, and the
    artifact computes the right values; one read elementwise is updated in place."""
    monkeypatch.setattr(A, "INPLACE", True)
    w0 = R.normal(size=(8, 8)).astype(np.float32)
    w, s = wt.Variable(w0, name="w"), wt.Variable(w0, name="s")

    def step(x):
        w.assign(wt.transpose(w) * 0.5 + x)
        s.assign(s * 0.5 + x)
        return wt.reduce_sum(x)
    man = wt.export(None, path=str(tmp_path / "t"), signatures={"step": (step, (wt.zeros((8, 8)),))})
    assert _copies(tmp_path / "t", {"signatures": {"train_step": man["signatures"]["step"]}}) == 1
    x = R.normal(size=(8, 8)).astype(np.float32)
    for backend in ("wasm", "webgpu"):
        art = wt.load(str(tmp_path / "t"), backend=backend)
        art.run("step", x)
        art.run("step", x)
        got = art.get_weights()
        np.testing.assert_array_equal(got["state/w"], ((w0.T * np.float32(0.5) + x).T * np.float32(0.5) + x), err_msg=backend)
        np.testing.assert_array_equal(got["state/s"], ((w0 * np.float32(0.5) + x) * np.float32(0.5) + x), err_msg=backend)


def _map(exprs, inputs=2, shape=(4, 3)):
    """A map kernel over ``shape`` whose parts (its own map, then siblings) compute ``exprs``."""
    buf = K.Buffer(shape, wt.float32)
    ins = (buf,) * inputs
    ks = [K.Kernel("map", ins, buf, shape, e) for e in exprs]
    return K.Kernel("map", ins, buf, shape, ks[0].expr, siblings=tuple(ks[1:]))


def test_writes_in_place_rules():
    own = (K.idx(0), K.idx(1))
    a, b = K.load(0, own, wt.float32), K.load(1, own, wt.float32)
    k = _map([a * b, b * 2.0, b + a])            # parts: 0 reads a, b; 1 reads b; 2 reads a, b
    assert C.writes_in_place(k, 0, 2)            # a stored last: nothing reads it afterwards
    assert not C.writes_in_place(k, 0, 0)        # part 2 reads a after part 0 would have overwritten it
    assert not C.writes_in_place(k, 1, 1)        # likewise b
    assert C.writes_in_place(_map([a * b]), 1, 0)
    swapped = K.load(0, (K.idx(1), K.idx(0)), wt.float32)
    assert not C.writes_in_place(_map([swapped + b], shape=(3, 3)), 0, 0)   # another element's value
    shifted = K.load(0, (K.idx(0), K.idx(1) + 1), wt.float32)
    wide = K.Kernel("map", (K.Buffer((4, 4), wt.float32), K.Buffer((4, 3), wt.float32)), K.Buffer((4, 3), wt.float32),
                    (4, 3), shifted + b)
    assert not C.writes_in_place(wide, 0, 0)


def _plan(opt_name):
    """The buffer plan of a two-parameter train step (``python/export.py``'s ``plan_signature`` call)."""
    x = wt.tensor(R.normal(size=(8, 6)).astype(np.float32))
    with wt.device("reference"):
        w = wt.Variable(R.normal(size=(6, 3)).astype(np.float32), name="w")
        b = wt.Variable(R.normal(size=(3,)).astype(np.float32), name="b")
        opt = OPTIMIZERS[opt_name]()

        def step(x):
            with wt.GradientTape() as tape:
                loss = wt.reduce_sum(wt.tanh(x @ w + b))
            opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
            return loss
        g = wt.function(step).get_concrete(x).graph
    prog = C.compile_graph(g)
    index = {id(var): i for i, (_, var) in enumerate(g.captures)}
    var_of = {buf: i for i, buf in enumerate(prog.captures)}
    return prog, A.plan_signature(prog, var_of, [index[id(var)] for var, _ in g.updates])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw_amsgrad"])
def test_program_optimizer_updates_need_no_copies(name, monkeypatch):
    """With in-place updates the plan copies nothing after the kernels: each update's kernel (SGD: the
    gradient's, its epilogue; Adam: the new weights', with the moments as siblings; the step counter's)
    writes its variables, and the kernels are the same ones."""
    monkeypatch.setattr(A, "INPLACE", False)
    prog0, before = _plan(name)
    monkeypatch.setattr(A, "INPLACE", True)
    prog, after = _plan(name)
    assert len(prog.steps) == len(prog0.steps)
    assert len(before.post) == len(before.writes) >= 3 and not before.inplace
    assert after.post == [] and after.pre == [] and after.writes == before.writes
    pairs = [p for ps in after.inplace.values() for p in ps]
    assert len(pairs) == len(after.writes)
    for i, ps in after.inplace.items():     # each pair: the step's input is the variable it writes
        s = prog.steps[i]
        for slot, out in ps:
            written = s.output if out == 0 else s.extra[out - 1]
            assert after.locs[written] == after.locs[s.inputs[slot]]
    if name == "sgd":                        # the weights' and biases' updates ride in their gradients' kernels
        assert sum(prog.steps[i].kernel.epilogue is not None for i in after.inplace) == 2

"""Horizontal fusion on WebGPU (``webgpu/group.py``): independent one-pass map kernels of a program
(an optimizer's per-parameter updates) run as one dispatch, each kernel a segment of its workgroups.

Held to: bitwise equality with the ungrouped program (``group.HORIZONTAL = False``) for MLP train
steps on the native runtime (Adam, RMSprop, SGD with momentum; also on a grid folded past
``maxComputeWorkgroupsPerDimension``, where the segments' workgroup ranges cross the fold) and on
exported artifacts run by Python's loader; the exact dispatch counts; how the binding limit
(``maxStorageBuffersPerShaderStage``) bounds a group; and what must never be grouped (a map reading
or overwriting what another writes).
"""
from __future__ import annotations

import numpy as np
import pytest

import webtensor as wt
from webtensor.core import compile as C
from webtensor.webgpu import group as G
from webtensor.webgpu import wgsl
from webtensor.webgpu.runtime import WebGPUDevice

OPTIMIZERS = {
    "adam": lambda: wt.optimizers.Adam(0.01),
    "rmsprop": lambda: wt.optimizers.RMSprop(0.01, momentum=0.5),
    "sgd_momentum": lambda: wt.optimizers.SGD(0.1, momentum=0.9),
}
R = np.random.default_rng(30)
X = R.normal(size=(32, 30)).astype(np.float32)
Y = R.integers(0, 5, 32).astype(np.int32)
STEPS = 3


def _device(name: str, **limits) -> str:
    """lavapipe is a "cpu" adapter, which groups nothing (group.py): compile as for an unknown one."""
    limits = {"adapter_class": "unknown", **limits}
    wt.register_device(name, lambda: WebGPUDevice(limits=limits))
    return name


def _train(device: str, make_opt, grouped: bool, monkeypatch, sizes=(30, 17, 5)):
    """An MLP's loss, weights and optimizer state after STEPS traced train steps, and the dispatches
    of one step."""
    monkeypatch.setattr(G, "HORIZONTAL", grouped)
    with wt.device(device):
        wt.set_seed(0)
        r = np.random.default_rng(1)
        params = []
        for a, b in zip(sizes, sizes[1:]):
            params += [wt.Variable((r.normal(size=(a, b)) / a ** 0.5).astype(np.float32)),
                       wt.Variable(r.normal(size=(b,)).astype(np.float32) * 0.1)]
        opt = make_opt()
        loss_fn = wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True)

        @wt.function
        def step(x, y):
            with wt.GradientTape() as tape:
                h = x
                for i in range(0, len(params), 2):
                    h = h @ params[i] + params[i + 1]
                    h = wt.relu(h) if i + 2 < len(params) else h
                loss = loss_fn(y, h)
            opt.apply_gradients(zip(tape.gradient(loss, params), params))
            return loss
        x, y = wt.tensor(X), wt.tensor(Y)
        losses = [float(step(x, y).numpy()) for _ in range(STEPS)]
        exe = step.get_concrete(x, y).exe
        dispatches = sum(len(c.lowered.passes) for c, _ in exe.units)
        state = [v.numpy() for v in params + list(opt.variables)]
    return losses, state, dispatches, [m for _, m in exe.units if len(m) > 1], \
        [c.lowered.passes[0] for c, m in exe.units if len(m) > 1]


def _assert_equal(a, b):
    assert a[0] == b[0]
    assert len(a[1]) == len(b[1]) > 6
    for u, v in zip(a[1], b[1]):
        np.testing.assert_array_equal(u, v)


# dispatches of one train step on a device with 32 storage buffers per stage: ungrouped, grouped
COUNTS = {"adam": (22, 17), "rmsprop": (21, 17), "sgd_momentum": (21, 16)}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_train_step_grouped_equals_ungrouped_bitwise(name, monkeypatch):
    dev = _device("webgpu_hfuse32", max_storage_buffers_per_shader_stage=32)
    plain = _train(dev, OPTIMIZERS[name], False, monkeypatch)
    fused = _train(dev, OPTIMIZERS[name], True, monkeypatch)
    _assert_equal(fused, plain)
    assert (plain[2], fused[2]) == COUNTS[name]
    assert plain[3] == []
    assert any(len(g) >= 3 for g in fused[3]), fused[3]      # the parameters' updates


def test_grouped_on_a_folded_grid(monkeypatch):
    """At most 3 workgroups per dimension: a group's workgroups fold into a 2-D/3-D grid, and its
    segments' ranges start inside a row of the fold (``wg`` is the linear index)."""
    dev = _device("webgpu_hfuse_fold", max_storage_buffers_per_shader_stage=32, max_compute_workgroups_per_dimension=3)
    plain = _train(dev, OPTIMIZERS["adam"], False, monkeypatch, sizes=(30, 40, 5))
    fused = _train(dev, OPTIMIZERS["adam"], True, monkeypatch, sizes=(30, 40, 5))
    _assert_equal(fused, plain)
    assert fused[2] < plain[2]
    assert any(p.workgroups[1] > 1 for p in fused[4])                 # a group folded past 3


def test_binding_limit_bounds_the_groups(monkeypatch):
    """An Adam update binds 11 buffers here (weight, gradient, moments and three outputs of its own;
    the step's learning rate and three scalar constants, shared): 7 k + 4 for k updates, so 32 per
    stage group all four, 24 two by two, 16 none."""
    groups = {}
    for n in (16, 24, 32):
        dev = _device(f"webgpu_hfuse{n}", max_storage_buffers_per_shader_stage=n)
        _, _, _, groups[n], passes = _train(dev, OPTIMIZERS["adam"], True, monkeypatch)
        if n == 32:         # the shared ones bound once
            assert max(len(p.bindings) for p in passes) == 32
    updates = lambda gs: [g for g in gs if len(g) > 1 and min(g) >= 12]    # the steps after the gradients'
    assert [len(g) for g in updates(groups[32])] == [4]
    assert [len(g) for g in updates(groups[24])] == [2, 2]
    assert updates(groups[16]) == []


# ---- the schedule on hand-made programs: one map kernel's lowering, bound to various buffers ------

def _map_lowered(limits=wgsl.Limits()):
    g = wt.function(wt.exp).get_concrete(wt.tensor(np.zeros(64, np.float32), device="reference")).graph
    (s,) = C.compile_graph(g).steps
    assert len(s.kernel.inputs) == 1
    return s.kernel, wgsl.lower(s.kernel, limits)


def _schedule(io, limits=wgsl.Limits(), blocked=()):
    """``io``: (input buffer, output buffer) per step; steps in ``blocked`` are not maps (never grouped)."""
    kernel, low = _map_lowered(limits)
    steps = [C.Step(kernel, [i], o) for i, o in io]
    lows = [wgsl.Lowered(()) if k in blocked else low for k in range(len(io))]
    return G.schedule(steps, lows, limits)


def test_schedule_groups_only_independent_maps():
    assert _schedule([(0, 1), (2, 3)]) == [(0, 1)]
    assert _schedule([(0, 1), (0, 2)]) == [(0, 1)]          # a buffer both only read: fine (bound once)
    assert _schedule([(0, 1), (1, 2)]) == [(0,), (1,)]      # read after write
    assert _schedule([(0, 1), (2, 0)]) == [(0,), (1,)]      # write after read
    assert _schedule([(0, 1), (2, 1)]) == [(0,), (1,)]      # write after write
    # a step in between that is no map: the group runs at its last member, past it when independent ...
    assert _schedule([(0, 1), (4, 5), (2, 3)], blocked={1}) == [(1,), (0, 2)]
    # ... and never past one that reads what a member writes, or writes what it reads
    assert _schedule([(0, 1), (1, 5), (2, 3)], blocked={1}) == [(0,), (1,), (2,)]
    assert _schedule([(0, 1), (4, 0), (2, 3)], blocked={1}) == [(0,), (1,), (2,)]


def test_schedule_binding_limit():
    io = [(2 * k, 2 * k + 1) for k in range(6)]        # 2 bindings each
    assert _schedule(io) == [(0, 1, 2, 3), (4, 5)]
    assert _schedule(io, wgsl.Limits(max_storage_buffers_per_shader_stage=4)) == [(0, 1), (2, 3), (4, 5)]
    shared = [(0, k + 1) for k in range(9)]             # one input shared: 1 + 7 outputs in 8
    assert [len(g) for g in _schedule(shared)] == [7, 2]


def test_schedule_switch_and_cpu_adapters(monkeypatch):
    assert _schedule([(0, 1), (2, 3)], wgsl.Limits(adapter_class="cpu")) == [(0,), (1,)]
    monkeypatch.setattr(G, "HORIZONTAL", False)
    assert _schedule([(0, 1), (2, 3)]) == [(0,), (1,)]


def test_cpu_adapter_runtime_groups_nothing(monkeypatch):
    dev = _device("webgpu_hfuse_cpu", max_storage_buffers_per_shader_stage=32, adapter_class="cpu")
    assert _train(dev, OPTIMIZERS["adam"], True, monkeypatch)[3] == []


# ---- exported artifacts: the same groups, in Python's WebGPU loader ------------------------------

def _export(path, make_opt, grouped, monkeypatch):
    monkeypatch.setattr(G, "HORIZONTAL", grouped)
    wt.set_seed(0)
    m = wt.nn.Sequential([wt.nn.Input((30,)), wt.nn.Dense(17, activation="relu"), wt.nn.Dense(5)])
    m.compile(make_opt(), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    man = m.export(str(path), batch_size=16, signatures=["train_step"], backends=("webgpu",))
    return len(man["signatures"]["train_step"]["webgpu"]["kernels"])


# kernels (dispatches) of the exported train step, for the spec's default 8 storage buffers per stage:
# Adam's and RMSprop's updates bind 5 buffers each in place (their learning rate is a computed
# scalar, shared), too many for two in 8; SGD's momentum updates bind 2 each: all four in one
EXPORT_COUNTS = {"adam": (23, 21), "rmsprop": (22, 20), "sgd_momentum": (22, 18)}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_exported_grouped_equals_ungrouped_bitwise(name, tmp_path, monkeypatch):
    n_plain = _export(tmp_path / "plain", OPTIMIZERS[name], False, monkeypatch)
    n_fused = _export(tmp_path / "fused", OPTIMIZERS[name], True, monkeypatch)
    assert (n_plain, n_fused) == EXPORT_COUNTS[name]
    runs = []
    for variant in ("plain", "fused"):
        art = wt.load(str(tmp_path / variant), backend="webgpu")
        losses = [float(art.train_step(X[i * 16:(i + 1) * 16], Y[i * 16:(i + 1) * 16])) for i in range(2)]
        runs.append((losses, art.get_weights()))
    assert runs[0][0] == runs[1][0]
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[1][1][k], runs[0][1][k], err_msg=k)

"""Adapter classes (``webgpu/limits.py`` ``adapter_class``, ``Limits.adapter_class``) and the matmul
tuning of each (``webgpu/matmul.py`` ``MATMUL_TUNING``): how an adapter's info is classified; which
plan each class picks per shape; and every class's plans run on this machine's adapter (lavapipe
where no GPU exists: a device told it is another class compiles with that class's plans) against
numpy for matmuls, and against the reference device for MLP and CNN train steps, within the
tolerances the single-class tests use. Exported artifacts: the class named at export picks the
plans; the default is the portable ``"unknown"``."""
from __future__ import annotations

import json

import numpy as np
import pytest

import webtensor as wt
from webtensor.core.runtime.device import forget_device
from webtensor.webgpu import wgsl
from webtensor.webgpu.limits import ADAPTER_CLASSES, Limits, adapter_class
from webtensor.webgpu.matmul import MATMUL_TUNING, choose_plan

from parity import CASES, run_case, tolerance

GPU_CLASSES = ("integrated-gpu", "discrete-gpu")


@pytest.mark.parametrize("info,cls", [
    ({"adapter_type": "CPU", "device": "llvmpipe (LLVM 15.0.6, 256 bits)", "backend_type": "Vulkan"}, "cpu"),
    ({"adapter_type": "Unknown", "vendor": "google", "architecture": "swiftshader",
      "device": "swiftshader-device-subzero-", "description": "SwiftShader driver 5.0.0"}, "cpu"),
    ({"adapter_type": "CPU", "device": "Microsoft Basic Render Driver", "backend_type": "D3D12"}, "cpu"),
    ({"adapter_type": "DiscreteGPU", "device": "NVIDIA GeForce RTX 3080", "backend_type": "Vulkan"}, "discrete-gpu"),
    ({"adapter_type": "IntegratedGPU", "device": "Apple M2", "backend_type": "Metal"}, "integrated-gpu"),
    ({"adapter_type": "VirtualGPU", "device": "virtio-gpu"}, "unknown"),
    ({"adapter_type": "Unknown", "device": "?"}, "unknown"),
    ({}, "unknown"),
    (None, "unknown"),
    # Pyodide's wrapper of a browser's adapter (webgpu/browser.py): no type; the fallback flag or the name
    ({"adapter_type": "browser", "device": "nvidia ampere", "is_fallback_adapter": False}, "unknown"),
    ({"adapter_type": "browser", "device": "google", "is_fallback_adapter": True}, "cpu"),
    ({"adapter_type": "browser", "device": "google swiftshader", "is_fallback_adapter": False}, "cpu"),
])
def test_adapter_class_from_info(info, cls):
    assert adapter_class(info) == cls


def test_limits_name_a_known_class():
    assert Limits().adapter_class == "unknown"
    assert set(MATMUL_TUNING) == set(ADAPTER_CLASSES)
    with pytest.raises(ValueError, match="adapter_class 'gpu' is not one of"):
        Limits(adapter_class="gpu")
    # from a device's limits: the class is an override, never read from the limits mapping
    assert Limits.from_mapping({"maxBufferSize": 1 << 30}, (), adapter_class="cpu").adapter_class == "cpu"


# (batch, M, N, K) -> kind per class: "tiled" / "direct" / None (the generic reduction)
SHAPES = {
    (1, 2048, 2048, 2048): {"cpu": "direct", "unknown": "tiled", "integrated-gpu": "tiled", "discrete-gpu": "tiled"},
    (1, 1024, 1024, 1024): {"cpu": "direct", "unknown": "direct", "integrated-gpu": "tiled", "discrete-gpu": "tiled"},
    (1, 128, 256, 784): {"cpu": "direct", "unknown": "direct", "integrated-gpu": "tiled", "discrete-gpu": "tiled"},
    # 12 tiles of 32 x 32: more than discrete's 8, not integrated's 16 (TF.js's thresholds)
    (1, 96, 128, 256): {"cpu": "direct", "unknown": "direct", "integrated-gpu": "direct", "discrete-gpu": "tiled"},
    (1, 25088, 16, 9): {c: "direct" for c in ADAPTER_CLASSES},     # im2col 3x3x1 -> 16: tiles mostly padding
    (1, 10, 10, 64): {"cpu": "direct", "unknown": "direct", "integrated-gpu": None, "discrete-gpu": None},
    (1, 1, 1000, 512): {c: None for c in ADAPTER_CLASSES},         # matrix-vector
}


@pytest.mark.parametrize("cls", ADAPTER_CLASSES)
@pytest.mark.parametrize("shape", list(SHAPES), ids=lambda s: "x".join(map(str, s)))
def test_choose_plan_per_class(cls, shape):
    limits = Limits(adapter_class=cls)
    plan = choose_plan(*shape, limits)
    assert (plan and plan.kind) == SHAPES[shape][cls]
    if plan is not None and plan.kind == "tiled":
        tune = MATMUL_TUNING[cls]
        assert (plan.tm, plan.tk) == (tune.ts * tune.rr, tune.tk)
        assert 2 * plan.tk * plan.tm * 4 <= limits.max_compute_workgroup_storage_size
        assert plan.ts * plan.ts <= limits.max_compute_invocations_per_workgroup
    assert choose_plan(*shape, limits, direct_only=True) is None or \
        choose_plan(*shape, limits, direct_only=True).kind == "direct"


@pytest.mark.parametrize("cls", ADAPTER_CLASSES)
def test_conv2d_template_keeps_its_direct_plan(cls):
    """A convolution whose im2col product a class would tile still takes the conv2d template (its
    only form: the direct kernel reading A through each pixel's window), not the generic reduction."""
    from webtensor.core.ops import nn as N
    from webtensor.webgpu.conv import lower_conv
    x, w = wt.zeros((8, 32, 32, 32), device="reference"), wt.zeros((3, 3, 32, 64), device="reference")
    y = N.conv2d_direct(x, w, strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)))
    k = N.conv2d_direct.kernel([x, w], y, strides=(1, 1), dilations=(1, 1), pads=((0, 0), (0, 0)))
    limits = Limits(adapter_class=cls)
    assert (choose_plan(1, 8 * 30 * 30, 64, 288, limits).kind == "tiled") == (cls in GPU_CLASSES)
    low = lower_conv(k, limits)
    assert low is not None and "acc00" in low.passes[0].source and "tile_a" not in low.passes[0].source


@pytest.fixture(scope="module")
def devices():
    """A "webgpu_<class>" device per class on this machine's adapter."""
    from webtensor.webgpu.runtime import WebGPUDevice
    names = {}
    for cls in ADAPTER_CLASSES:
        names[cls] = f"webgpu_{cls}"
        wt.register_device(names[cls], lambda cls=cls: WebGPUDevice(limits={"adapter_class": cls}))
        assert wt.get_device(names[cls]).limits.adapter_class == cls
    yield names
    for name in names.values():
        forget_device(name)


def test_device_takes_its_adapters_class():
    dev = wt.get_device("webgpu")
    assert dev.limits.adapter_class == adapter_class(dev.adapter.info)


def _sources(dev) -> list[str]:
    return [p.source for c in list(dev._compiled.values()) for p in c.lowered.passes]


@pytest.mark.parametrize("cls", ADAPTER_CLASSES)
def test_matmuls_on_each_class_against_numpy(devices, cls):
    """Shapes each class lowers with the direct kernel, tiles, split K or the generic reduction."""
    dev_name = devices[cls]
    rng = np.random.default_rng(7)
    for shapes, ta, tb in [(((3137, 9), (9, 16)), False, False), (((130, 33), (33, 10)), False, False),
                           (((2, 1, 37, 19), (3, 23, 37)), True, True), (((12, 3000), (3000, 48)), False, False),
                           (((256, 300), (300, 256)), False, False), (((3, 96, 64), (3, 160, 64)), False, True),
                           (((10, 64), (64, 10)), False, False), (((1, 64), (64, 100)), False, False)]:
        a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
        got = wt.matmul(wt.tensor(a, device=dev_name), wt.tensor(b, device=dev_name),
                        transpose_a=ta, transpose_b=tb).numpy()
        want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
        # float32 sums of K products in another order: measured max error 1.5e-4 at K = 3000
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3, err_msg=f"{cls} {shapes}")
    tiled = any("tile_a" in s for s in _sources(wt.get_device(dev_name)))
    assert tiled == (cls in GPU_CLASSES)      # 256 x 300 x 256 takes tiles on the GPU classes only


@pytest.mark.parametrize("cls", ADAPTER_CLASSES)
@pytest.mark.parametrize("name", ["matmul", "matmul/odd", "matmul/batched", "matmul/ta_tb", "conv2d/same"])
def test_parity_cases_on_each_class(devices, cls, name):
    case = next(c for c in CASES if c.name == name)
    for mode in ("function", "grad"):
        got, want = run_case(case, devices[cls], mode)
        rtol, atol = tolerance(case, "webgpu", mode)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{name} {mode} on {cls}")


def _train(device, model):
    """Weights and optimizer state after 2 traced Adam train steps."""
    r = np.random.default_rng(5)
    shape = (128, 64) if model == "mlp" else (16, 12, 12, 3)
    x, y = r.normal(size=shape).astype(np.float32), r.integers(0, 5, shape[0]).astype(np.int32)
    with wt.device(device):
        wt.set_seed(0)
        if model == "mlp":     # wide enough that the GPU classes take tiles (>16 tiles of 32 x 32)
            layers = [wt.nn.Input((64,)), wt.nn.Dense(512, activation="relu"), wt.nn.Dense(5)]
        else:
            layers = [wt.nn.Input((12, 12, 3)), wt.nn.Conv2D(16, 3, activation="relu"), wt.nn.Flatten(),
                      wt.nn.Dense(5)]
        m = wt.nn.Sequential(layers)
        m.compile(wt.optimizers.Adam(0.01), wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x, y, batch_size=shape[0] // 2, epochs=1, verbose=0, shuffle=False)
        return [np.asarray(v.numpy()) for v in m.weights + list(m.optimizer.variables)]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_train_steps_on_each_class_against_reference(devices, model):
    ref = _train("reference", model)
    for cls in ADAPTER_CLASSES:
        got = _train(devices[cls], model)
        assert len(got) == len(ref) > 4
        for a, b in zip(got, ref):
            # the tolerance of test_epilogue_fusion.py's Adam train steps
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=f"{model} on {cls}")
    if model == "mlp":
        for cls in ADAPTER_CLASSES:
            assert any("tile_a" in s for s in _sources(wt.get_device(devices[cls]))) == (cls in GPU_CLASSES), cls


def _export_sources(tmp_path, **kw) -> dict[str, str]:
    x = np.random.default_rng(1).normal(size=(128, 300)).astype(np.float32)
    w = np.random.default_rng(2).normal(size=(300, 256)).astype(np.float32)
    wt.export(None, path=tmp_path, backends=("webgpu",), signatures={"f": (lambda a, b: a @ b, (x, w))}, **kw)
    return {p.name: p.read_text() for p in tmp_path.rglob("*.wgsl")}


def test_export_tunes_for_the_named_class(tmp_path):
    """The portable class by default; ``webgpu_adapter`` names another, whose WGSL the manifest's
    limits still cover; a name that is no class is a ValueError."""
    default = _export_sources(tmp_path / "default")
    assert default == _export_sources(tmp_path / "unknown", webgpu_adapter="unknown")
    assert not any("tile_a" in s for s in default.values())       # 128 x 256 x 300: direct there
    gpu = _export_sources(tmp_path / "gpu", webgpu_adapter="discrete-gpu")
    assert any("tile_a" in s for s in gpu.values())
    manifest = json.loads((tmp_path / "gpu" / "manifest.json").read_text())
    assert manifest["signatures"]["f"]["webgpu"]["required_limits"]["maxComputeWorkgroupStorageSize"] <= \
        Limits().max_compute_workgroup_storage_size
    loaded = wt.load(tmp_path / "gpu", backend="webgpu")
    x = np.random.default_rng(1).normal(size=(128, 300)).astype(np.float32)
    w = np.random.default_rng(2).normal(size=(300, 256)).astype(np.float32)
    np.testing.assert_allclose(loaded.run("f", x, w)["output_0"], x @ w, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="adapter_class 'gpu'"):
        _export_sources(tmp_path / "bad", webgpu_adapter="gpu")
    assert wgsl.Limits is Limits

"""``webtensor.export`` and ``webtensor.load``: artifacts written from models and functions and run
back in Python on both backends, compared with the same computation run by the Python devices.

WebAssembly round trips are bitwise: the model lives on a wasm device without relaxed-SIMD FMA
(what export emits by default), so the exported module holds the very kernels that device runs.
WebGPU round trips (wgpu; lavapipe without a GPU) are compared within float32 tolerances.
Damaged artifacts must fail with errors that name the file or variable.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402
from artifact_helpers import resign  # noqa: E402
from webtensor.artifact import ArtifactError  # noqa: E402
from webtensor.webgpu.artifact import legacy_wgsl_bindings  # noqa: E402
from webtensor.tape import GradientTape  # noqa: E402

pytest.importorskip("wasmtime")
BATCH = 16


@pytest.fixture(scope="module")
def exact():
    """A wasm device without FMA, under its own name (Function caches key devices by name)."""
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact", lambda: WasmDevice(fma=False))
    dev = wt.get_device("wasm_exact")
    dev.name = "wasm_exact"
    return dev


def webgpu_or_skip():
    try:
        return wt.get_device("webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no WebGPU device: {e}")


def digits_model(kind: str, seed: int = 0):
    """The digits MLP (64 -> 32 -> 10) or CNN (conv 8 -> pool -> dropout -> dense 10), Adam."""
    nn = wt.nn
    wt.set_seed(seed)
    if kind == "mlp":
        layers = [nn.Flatten(), nn.Dense(32, activation="relu"), nn.Dense(10)]
    else:
        layers = [nn.Conv2D(8, 3, padding="same", activation="relu"), nn.MaxPool2D(), nn.Flatten(),
                  nn.Dropout(0.25), nn.Dense(10)]
    model = nn.Sequential([nn.Input((8, 8, 1))] + layers, name=kind)
    model.compile(wt.optimizers.Adam(1e-2), nn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def python_step(model):
    """One training step written with the public API (what the exported train_step computes)."""
    @wt.function
    def step(x, y):
        with GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True))
        vs = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(loss, vs), vs))
        return loss
    return step


@pytest.fixture(scope="module")
def data():
    (x, y), _ = wt.datasets.digits(device="reference")
    return x.numpy()[:BATCH * 4], y.numpy()[:BATCH * 4]


def batches(data, n):
    x, y = data
    for i in range(n):
        j = (i % 4) * BATCH
        yield x[j:j + BATCH], y[j:j + BATCH]


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def exported(request, exact, data, tmp_path_factory):
    """(kind, artifact dir, the Python model on the exact wasm device, its initial weights)."""
    with wt.device(exact.name):
        model = digits_model(request.param)
        path = tmp_path_factory.mktemp(request.param)
        model.export(path, batch_size=BATCH)
    return request.param, path, model


def test_manifest_describes_model(exported):
    kind, path, model = exported
    man = json.loads((path / "manifest.json").read_text())
    assert man["format"] == "webtensor-artifact" and man["format_version"] == 2     # predict: any batch
    assert set(man["signatures"]) == {"predict", "train_step"}
    assert man["signatures"]["predict"]["batch"] == {"chunk": BATCH} and "batch" not in man["signatures"]["train_step"]
    names = [v["name"] for v in man["variables"]]
    first = "dense/kernel" if kind == "mlp" else "conv2d/kernel"
    assert names[0] == first and "optimizer/iterations" in names and "optimizer/learning_rate" in names
    assert f"optimizer/momentum/{first}" in names and f"optimizer/velocity/{first}" in names
    assert names[:len(model.weights)] == list(wt.nn.saving.weight_paths(model))
    if kind == "cnn":   # the Dropout step counter is state, not a weight
        assert any(n.startswith("state/") and n.endswith("/counter") for n in names)
    pred, train = man["signatures"]["predict"], man["signatures"]["train_step"]
    assert pred["inputs"] == [{"name": "x", "dtype": "float32", "shape": [BATCH, 8, 8, 1]}]
    assert pred["outputs"] == [{"name": "output_0", "dtype": "float32", "shape": [BATCH, 10]}]
    assert train["inputs"][1] == {"name": "y", "dtype": "int32", "shape": [BATCH]}
    assert train["outputs"] == [{"name": "loss", "dtype": "float32", "shape": []}]
    assert pred["writes"] == [] and set(train["writes"]) >= set(range(len(model.weights)))
    # variables share one address across signatures; WGSL files all listed and hashed
    for i in pred["reads"]:
        assert pred["wasm"]["variables"][str(i)] == train["wasm"]["variables"][str(i)]
    for name, info in man["files"].items():
        data = (path / name).read_bytes()
        assert len(data) == info["bytes"] and hashlib.sha256(data).hexdigest() == info["sha256"]
    # WebGPU code compiled for the spec's default limits (any adapter), no writable aliasing
    for sig in man["signatures"].values():
        lim = sig["webgpu"]["required_limits"]
        assert lim["maxStorageBuffersPerShaderStage"] <= 8 and lim["maxComputeInvocationsPerWorkgroup"] <= 256
        assert lim["maxComputeWorkgroupStorageSize"] <= 16384
        for k in sig["webgpu"]["kernels"]:
            src = (path / k["wgsl"]).read_text()
            for b, i in enumerate(k["bindings"]):
                if f"@binding({b}) var<storage, read_write>" in src:
                    assert k["bindings"].count(i) == 1
            # "access" states what the shader declares, binding by binding (the loaders' layouts)
            declared, n = legacy_wgsl_bindings(src), len(k["bindings"])
            assert sorted(declared) == list(range(n + ("rows" in k))), k
            assert k["access"] == [declared[b][2] for b in range(n)], k
            if "rows" in k:     # run-time rows (symbolic-batch predict): the uniform after the storage bindings
                assert "batch" in sig and declared[n][1] == "uniform", k


def test_artifacts_without_access_still_load(exported, exact, tmp_path):
    """Artifacts exported before kernels carried "access" (nor "rows": a fixed batch) load through the
    loaders' legacy path."""
    copy = tmp_path / "art"
    with wt.device(exact.name):
        exported[2].export(copy, batch_size=BATCH, symbolic_batch=False)
    before = wt.load(copy, backend="webgpu").run("predict", np.ones((BATCH, 8, 8, 1), np.float32))
    resign(copy, lambda m: [k.pop("access") for s in m["signatures"].values() for k in s["webgpu"]["kernels"]])
    assert "access" not in (copy / "manifest.json").read_text()
    after = wt.load(copy, backend="webgpu").run("predict", np.ones((BATCH, 8, 8, 1), np.float32))
    np.testing.assert_array_equal(after["output_0"], before["output_0"])


def test_access_is_checked_against_the_shader(copy):
    """A manifest whose "access" disagrees with the shader fails when the pipeline is created."""
    def read_only(m):
        for k in m["signatures"]["predict"]["webgpu"]["kernels"]:
            k["access"] = ["read"] * len(k["access"])
    resign(copy, read_only)
    with pytest.raises(ArtifactError, match=r"cannot create the pipeline"):
        wt.load(copy, backend="webgpu")


def test_wasm_round_trip_is_bitwise(exported, exact, data):
    kind, path, model = exported
    with wt.device(exact.name):
        fresh = digits_model(kind)        # same seed: the weights the artifact was exported with
        step = python_step(fresh)
        loaded = wt.load(path, backend="wasm")
        assert loaded.backend == "wasm"
        x0 = data[0][:BATCH]
        np.testing.assert_array_equal(loaded.predict(x0), fresh.predict_on_batch(x0).numpy())
        losses = []
        for x, y in batches(data, 6):
            want = float(step(wt.tensor(x), wt.tensor(y)))
            got = loaded.train_step(x, y)
            assert got.shape == () and got.dtype == np.float32
            assert float(got) == want
            losses.append(want)
        got = loaded.get_weights()
        for name, v in wt.nn.saving.weight_paths(fresh).items():
            np.testing.assert_array_equal(got[name], v.numpy(), err_msg=name)
        assert int(got["optimizer/iterations"]) == 6
        np.testing.assert_array_equal(loaded.predict(x0), fresh.predict_on_batch(x0).numpy())


def test_webgpu_round_trip_within_tolerance(exported, exact, data):
    webgpu_or_skip()
    kind, path, _ = exported
    with wt.device(exact.name):
        fresh = digits_model(kind)
        step = python_step(fresh)
        x0 = data[0][:BATCH]
        want = fresh.predict_on_batch(x0).numpy()
        loaded = wt.load(path, backend="webgpu")
        assert loaded.backend == "webgpu"
        np.testing.assert_allclose(loaded.predict(x0), want, rtol=1e-4, atol=1e-5)
        for x, y in batches(data, 3):
            np.testing.assert_allclose(loaded.train_step(x, y), float(step(wt.tensor(x), wt.tensor(y))), rtol=1e-4)
        got = loaded.get_weights()
        for name, v in wt.nn.saving.weight_paths(fresh).items():
            np.testing.assert_allclose(got[name], v.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)


def test_saved_weights_load_into_the_model(exported, exact, data, tmp_path):
    kind, path, _ = exported
    with wt.device(exact.name):
        loaded = wt.load(path, backend="wasm")
        for x, y in batches(data, 2):
            loaded.train_step(x, y)
        loaded.save_weights(tmp_path / "w.safetensors")
        model = digits_model(kind, seed=5)   # other initial weights
        model.load_weights(tmp_path / "w.safetensors")   # skips the optimizer/ and state/ entries
        x0 = data[0][:BATCH]
        np.testing.assert_array_equal(model.predict_on_batch(x0).numpy(), loaded.predict(x0))


def test_function_signatures_with_copies_and_aliases(tmp_path, exact):
    """Updates that cannot happen in place (the old value is read later, a swap of two variables,
    a value from an input), outputs that are inputs, old variable values or the same tensor twice,
    int and bool outputs: each backend against the function run by the Python device."""
    with wt.device(exact.name):
        a = wt.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="a")
        b = wt.Variable(np.ones((2, 3), np.float32), name="b")
        n = wt.Variable(np.int32(3), name="n")
        keep = wt.Variable(np.zeros(3, np.float32), name="keep")

        def fn(x, k):
            old_a = a.read_value()
            s = wt.sum(a * x)                      # reads the old a
            a.assign(b.read_value())               # swap a and b (staged copies)
            b.assign(old_a)
            n.assign_add(k)
            keep.assign(x[0])                      # from an input
            y = old_a * 2.0 + s
            return y, y, x, old_a, n.read_value(), wt.greater(y, 5.0), wt.argmax(y, axis=1)

        args = (np.array([[1, 2, 3], [4, 5, 6]], np.float32), np.int32(2))
        man = wt.export(None, path=tmp_path, signatures={"step": (fn, args)})
        assert [s["name"] for s in man["signatures"]["step"]["inputs"]] == ["x", "k"]
        assert [v["name"] for v in man["variables"]] == ["state/a", "state/b", "state/n", "state/keep"]
        runs = {be: wt.load(tmp_path, backend=be) for be in ("wasm", "webgpu") if be == "wasm" or _has_gpu()}
        ref = wt.function(fn)
        for _ in range(2):
            want = [np.asarray(t.numpy()) for t in ref(wt.tensor(args[0]), wt.tensor(args[1]))]
            state = {f"state/{v.name}": v.numpy() for v in (a, b, n, keep)}
            for be, m in runs.items():
                got = list(m.run("step", *args).values())
                assert len(got) == len(want)
                for g, w in zip(got, want):
                    assert g.dtype == w.dtype and g.shape == w.shape, be
                    np.testing.assert_array_equal(g, w, err_msg=be)
                for name, value in m.get_weights().items():
                    np.testing.assert_array_equal(value, state[name], err_msg=f"{be} {name}")


def _has_gpu():
    try:
        wt.get_device("webgpu")
        return True
    except (ImportError, RuntimeError):
        return False


def test_webgpu_packed_inputs(tmp_path, exact):
    """A kernel with more inputs than the default 8 storage bindings: packed by copy dispatches."""
    webgpu_or_skip()
    with wt.device(exact.name):
        vs = [wt.Variable(np.full((5,), i + 1, np.float32), name=f"v{i}") for i in range(10)]

        def fn(x):
            y = x
            for v in vs:
                y = y * v + 1.0
            return y
        x = np.linspace(-1, 1, 5).astype(np.float32)
        man = wt.export(None, path=tmp_path, signatures={"predict": (fn, (x,))})
        kernels = man["signatures"]["predict"]["webgpu"]["kernels"]
        assert len(kernels) > 1      # copies into the packed binding, then the kernel
        want = wt.function(fn)(wt.tensor(x)).numpy()
        np.testing.assert_allclose(wt.load(tmp_path, backend="webgpu").predict(x), want, rtol=1e-6)
        np.testing.assert_array_equal(wt.load(tmp_path, backend="wasm").predict(x), want)


def test_in_place_updates_need_no_copies(tmp_path, exact):
    """An update whose old value nobody reads later is written in place (no copy in the driver)."""
    with wt.device(exact.name):
        v = wt.Variable(np.zeros(4, np.float32), name="v")

        def fn(x):
            v.assign(x * 2.0)
            return wt.sum(x)
        man = wt.export(None, path=tmp_path, signatures={"f": (fn, (np.ones(4, np.float32),))})
        assert len(man["signatures"]["f"]["webgpu"]["kernels"]) == 2      # no copy dispatch
        m = wt.load(tmp_path, backend="wasm")
        assert float(m.run("f", np.arange(4, dtype=np.float32))["output_0"]) == 6.0
        np.testing.assert_array_equal(m.get_weights()["state/v"], [0, 2, 4, 6])


def test_inputs_are_checked(exported):
    _, path, _ = exported
    m = wt.load(path, backend="wasm")
    assert m.predict(np.zeros((3, 8, 8, 1), np.float32)).shape == (3, 10)     # any batch (format version 2)
    with pytest.raises(ValueError, match=r"input 'x': expected shape \['batch', 8, 8, 1\]"):
        m.predict(np.zeros((3, 8, 8, 2), np.float32))
    with pytest.raises(ValueError, match=r"input 'x': expected shape \[16, 8, 8, 1\]"):
        m.train_step(np.zeros((3, 8, 8, 1), np.float32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="input 'y': expected int32 data, got float32"):
        m.train_step(np.zeros((BATCH, 8, 8, 1), np.float32), np.zeros(BATCH, np.float32))
    with pytest.raises(ValueError, match="takes 2 input"):
        m.run("train_step", np.zeros((BATCH, 8, 8, 1), np.float32))
    with pytest.raises(KeyError, match="no signature 'nope'"):
        m.run("nope")
    with pytest.raises(ValueError, match="no variable 'nope'"):
        m.set_weights({"nope": np.zeros(1)})


# ---- damaged artifacts ----------------------------------------------------------------------------

@pytest.fixture()
def copy(exported, tmp_path):
    _, path, _ = exported
    dst = tmp_path / "art"
    shutil.copytree(path, dst)
    return dst


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "module.wasm").unlink(), r"module\.wasm is missing"),
    (lambda p: (p / "manifest.json").unlink(), r"manifest\.json is missing"),
    (lambda p: (p / "manifest.json").write_text("{"), r"manifest\.json is not valid JSON"),
    (lambda p: (p / "weights.safetensors").write_bytes((p / "weights.safetensors").read_bytes()[:-8]),
     r"weights\.safetensors: its size is not the \d+ bytes the manifest lists"),
    (lambda p: (p / "module.wasm").write_bytes((p / "module.wasm").read_bytes()[:-1] + b"?"),
     r"module\.wasm: its SHA-256 is not the one the manifest lists"),
    (lambda p: resign(p, lambda m: m.update(format_version=3)), r"format_version 3 is not supported"),
    (lambda p: resign(p, lambda m: m.update(format_version=1)), r"'batch' section, which needs format_version 2"),
    (lambda p: resign(p, lambda m: m.update(format="other")), r'format: must be "webtensor-artifact", got "other"'),
    (lambda p: (p / "weights.safetensors").write_bytes(b"\xff" * 8) or resign(p, lambda m: None),
     r"weights\.safetensors: "),
    (lambda p: resign(p, lambda m: m["variables"][0].update(shape=[1, 2])),
     r"variable '[\w/]+' is float32 \[\d+, \d+(, \d+, \d+)?\], the manifest lists float32 \[1, 2\]"),
    (lambda p: resign(p, lambda m: m["variables"][0].update(name="ghost")),
     r"weights\.safetensors: variable 'ghost' is missing"),
    (lambda p: resign(p, lambda m: m["signatures"]["predict"].update(reads=[999])),
     r"\"reads\" must be indices into \"variables\""),
    (lambda p: resign(p, lambda m: [s["wasm"].update(memory_bytes=64) for s in m["signatures"].values()]),
     r"lies outside the 64-byte memory"),
])
def test_damaged_artifact_fails_clearly(copy, damage, message):
    damage(copy)
    with pytest.raises(ArtifactError, match=message) as info:
        wt.load(copy, backend="wasm")
    assert str(copy) in str(info.value)


def _counter_artifact(path, exact):
    """An artifact with one signature 'f' that adds its input to a variable and returns twice it."""
    with wt.device(exact.name):
        v = wt.Variable(np.zeros(4, np.float32), name="v")

        def fn(x):
            v.assign_add(x)
            return v.read_value() * 2.0
        wt.export(None, path=path, signatures={"f": (fn, (np.ones(4, np.float32),))})


def _as_hardware(monkeypatch):
    """Make load('auto') see the WebGPU adapter as a hardware one."""
    monkeypatch.setattr(sys.modules["webtensor.webgpu.artifact"], "is_software_adapter", lambda info: False)


def test_auto_picks_wasm_on_a_software_adapter(tmp_path, exact, monkeypatch):
    from webtensor.webgpu.runtime import is_software_adapter
    _counter_artifact(tmp_path, exact)
    info = wt.get_device("webgpu").adapter.info            # no adapter here is a failure, not a skip
    auto = wt.load(tmp_path)
    assert auto.backend == ("wasm" if is_software_adapter(info) else "webgpu"), dict(info)   # llvmpipe here: wasm
    explicit = wt.load(tmp_path, backend="webgpu")           # named explicitly, a software adapter still runs
    assert explicit.backend == "webgpu"
    for m in (auto, explicit):
        np.testing.assert_array_equal(m.run("f", np.arange(4, dtype=np.float32))["output_0"], [0, 2, 4, 6])
    _as_hardware(monkeypatch)
    assert wt.load(tmp_path).backend == "webgpu"


@pytest.mark.parametrize("info,software", [
    ({"adapter_type": "CPU", "device": "llvmpipe (LLVM 15.0.6, 256 bits)", "backend_type": "Vulkan"}, True),
    ({"adapter_type": "CPU", "device": "SwiftShader Device (Subzero)", "backend_type": "Vulkan"}, True),
    ({"adapter_type": "CPU", "device": "Microsoft Basic Render Driver", "backend_type": "D3D12"}, True),
    ({"adapter_type": "Unknown", "device": "?"}, True),
    ({}, True),
    ({"adapter_type": "DiscreteGPU", "device": "NVIDIA GeForce RTX 3080", "backend_type": "Vulkan"}, False),
    ({"adapter_type": "IntegratedGPU", "device": "Apple M2", "backend_type": "Metal"}, False),
    ({"adapter_type": "VirtualGPU", "device": "virtio-gpu", "backend_type": "Vulkan"}, False),
    ({"adapter_type": "browser", "device": "google swiftshader"}, False),   # Pyodide: the browser decides
])
def test_is_software_adapter(info, software):
    from webtensor.webgpu.runtime import is_software_adapter
    assert is_software_adapter(info) is software


def test_loaded_model_on_a_lost_device_raises_what_eager_code_raises(tmp_path, exact, monkeypatch):
    from webtensor.webgpu.runtime import WebGPUDevice
    _counter_artifact(tmp_path, exact)
    dev = WebGPUDevice()
    monkeypatch.setitem(sys.modules["webtensor.core.runtime.device"]._INSTANCES, "webgpu", dev)   # as if it were the default
    m = wt.load(tmp_path, backend="webgpu")
    np.testing.assert_array_equal(m.run("f", np.ones(4, np.float32))["output_0"], [2, 2, 2, 2])
    dev.gpu.destroy()
    lost = r"^the WebGPU device was lost \(.+\); its tensors are gone\. Call webtensor\.webgpu\.reset_device\(\)"
    with pytest.raises(RuntimeError, match=lost):
        m.run("f", np.ones(4, np.float32))
    with pytest.raises(RuntimeError, match=lost):
        m.get_weights()
    with pytest.raises(RuntimeError, match=lost):
        m.set_weights({"state/v": np.zeros(4, np.float32)})
    with pytest.raises(RuntimeError, match=lost):   # eager code on the device says the same
        (wt.tensor(np.ones(4, np.float32), device=dev) + 1.0).numpy()


def test_missing_backend_section(copy, monkeypatch):
    _as_hardware(monkeypatch)       # 'auto' falls back for the missing sections, not for llvmpipe
    resign(copy, lambda m: [s.pop("webgpu") for s in m["signatures"].values()])
    if _has_gpu():
        with pytest.raises(ArtifactError, match="signature 'predict' has no WebGPU code"):
            wt.load(copy, backend="webgpu")
    assert wt.load(copy).backend == "wasm"       # 'auto' falls back to WebAssembly
    resign(copy, lambda m: [s.pop("wasm") for s in m["signatures"].values()])
    with pytest.raises(ArtifactError, match=r"signature '\w+' wasm: section is missing"):
        wt.load(copy, backend="wasm")


def test_export_errors(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        wt.export(lambda x: x * 2, (np.ones(2, np.float16),), tmp_path)
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'; known backends: \['wasm', 'webgpu'\]"):
        wt.export(lambda x: x * 2, (np.ones(2, np.float32),), tmp_path, backends=("wasm", "cuda"))
    model = digits_model("mlp")
    with pytest.raises(ValueError, match="unknown model signature 'nope'"):
        model.export(tmp_path, signatures=["nope"])
    model.compile(loss=None)
    with pytest.raises(ValueError, match="train_step needs a compiled model"):
        model.export(tmp_path, signatures=["train_step"])


def test_artifacts_are_byte_reproducible_across_processes(tmp_path):
    """The same model exported by two processes with different string hash seeds gives the same
    files (kernel index expressions are ordered by structure, not by ``hash``)."""
    import subprocess
    import sys
    script = (
        "import sys, webtensor as wt\n"
        "nn = wt.nn\n"
        "wt.set_seed(0)\n"
        "m = nn.Sequential([nn.Input((4,)), nn.Dense(8, activation='relu'), nn.Dense(3)])\n"
        "m.compile(wt.optimizers.Adam(0.01), nn.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "m.export(sys.argv[1], batch_size=4)\n")
    digests = []
    for seed in ("0", "1", "2"):
        out = tmp_path / f"seed{seed}"
        env = dict(os.environ, PYTHONHASHSEED=seed, WEBTENSOR_DEVICE="reference")
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=300)
        digests.append(hashlib.sha256((out / "module.wasm").read_bytes()).hexdigest())
    assert len(set(digests)) == 1, digests


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_export_without_example_inputs_keeps_an_int32_input(tmp_path, kind):
    """A model whose Input is int32 (token ids for an Embedding) exports an int32 signature input
    (it was float32: the example batch was made as float32 zeros), and the artifact predicts as the
    model does."""
    nn = wt.nn
    ids = np.array([[1, 2, 3, 4, 19], [0, 5, 5, 7, 8], [9, 9, 1, 0, 2]], np.int32)
    with wt.device("wasm"):
        if kind == "sequential":
            m = nn.Sequential([nn.Input((5,), dtype="int32"), nn.Embedding(20, 4), nn.Flatten(), nn.Dense(2)])
        else:
            i = nn.Input((5,), dtype="int32")
            m = nn.Model(i, nn.Dense(2)(nn.Flatten()(nn.Embedding(20, 4)(i))))
        manifest = m.export(str(tmp_path / "a"), batch_size=3, backends=("wasm",))
        got = wt.load(str(tmp_path / "a"), backend="wasm").predict(ids)
        want = m(ids).numpy()
    assert manifest["signatures"]["predict"]["inputs"] == [{"name": "x", "dtype": "int32", "shape": [3, 5]}]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)

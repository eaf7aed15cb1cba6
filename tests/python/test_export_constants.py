"""Large constants are stored once (issue 12): a traced function that captures plain tensors wrote
them twice (as WebAssembly data segments in ``module.wasm`` and as ``const/...`` tensors in
``weights.safetensors`` for WebGPU). Constants of at least ``webtensor.export.LARGE_CONSTANT_BYTES`` now live
only in the weights; each wasm section's optional ``"constants"`` map tells the loader where to copy
them. Both Python backends must compute what the Python function does; the manifest's new field
is checked as strictly as the rest (the JS loader's side: ``js/test/exported_more.test.js`` and the
hostile corpus)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import webtensor as wt
from webtensor.wasm.export import ALIGN
from artifact_helpers import resign
from webtensor.artifact import ArtifactError

pytest.importorskip("wasmtime")
MIB = 1 << 20
K = np.random.default_rng(3).standard_normal((512, 512)).astype(np.float32) / 16     # 1 MiB


@pytest.fixture(scope="module")
def exact():
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_exact_c", lambda: WasmDevice(fma=False))
    wt.get_device("wasm_exact_c").name = "wasm_exact_c"
    return "wasm_exact_c"


def sizes(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = os.path.getsize(p)
    return out


def test_a_captured_1mib_tensor_is_stored_once_and_both_backends_compute_it(tmp_path, exact):
    with wt.device(exact):
        k = wt.tensor(K)

        def f(x):
            return wt.matmul(x, k) + 1.0
        x = np.random.default_rng(4).standard_normal((2, 512)).astype(np.float32)
        want = f(wt.tensor(x)).numpy()
        man = wt.export(f, (x,), str(tmp_path / "a"))
    s = sizes(tmp_path / "a")
    total = sum(s.values())
    assert MIB <= total < 1.1 * MIB, s                    # once (it was 2.0 MiB: module.wasm and weights)
    assert s["module.wasm"] < 64 << 10, s
    wasm = man["signatures"]["predict"]["wasm"]
    (addr, name), = wasm["constants"].items()
    gpu = man["signatures"]["predict"]["webgpu"]["buffers"]
    assert name in [b["data"] for b in gpu if b["role"] == "const"]     # WebGPU reads the same tensor
    stored = wt.load_safetensors(tmp_path / "a" / "weights.safetensors")
    np.testing.assert_array_equal(stored[name].numpy().reshape(K.shape), K)
    assert int(addr) % ALIGN == 0 and K.tobytes() not in (tmp_path / "a" / "module.wasm").read_bytes()
    np.testing.assert_array_equal(wt.load(str(tmp_path / "a"), backend="wasm").predict(x), want)
    try:
        wt.get_device("webgpu")
    except (ImportError, RuntimeError):
        return
    got = wt.load(str(tmp_path / "a"), backend="webgpu").predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_two_signatures_share_one_stored_constant(tmp_path, exact):
    with wt.device(exact):
        k = wt.tensor(K)
        x = np.ones((1, 512), np.float32)
        left, right = (lambda x: wt.matmul(x, k)), (lambda x: wt.matmul(k, wt.transpose(x)))
        man = wt.export(None, path=str(tmp_path / "two"), signatures={"left": (left, (x,)), "right": (right, (x,))})
        want = (left(wt.tensor(x)).numpy(), right(wt.tensor(x)).numpy())
    assert sum(sizes(tmp_path / "two").values()) < 1.1 * MIB
    names = {s["wasm"]["constants"][a] for s in man["signatures"].values() for a in s["wasm"]["constants"]}
    assert len(names) == 1
    art = wt.load(str(tmp_path / "two"), backend="wasm")
    np.testing.assert_array_equal(art.run("left", x)["output_0"], want[0])
    np.testing.assert_array_equal(art.run("right", x)["output_0"], want[1])


def test_small_constants_stay_data_segments(tmp_path, exact):
    with wt.device(exact):
        c = wt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))     # 48 bytes
        man = wt.export(lambda x: x * c + 1.0, (np.ones((3, 4), np.float32),), str(tmp_path / "s"), backends=("wasm",))
    assert "constants" not in man["signatures"]["predict"]["wasm"]
    assert not any(k.startswith("const/") for k in wt.load_safetensors(tmp_path / "s" / "weights.safetensors"))
    assert np.arange(12, dtype=np.float32).tobytes() in (tmp_path / "s" / "module.wasm").read_bytes()
    got = wt.load(str(tmp_path / "s"), backend="wasm").predict(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(got, np.arange(12, dtype=np.float32).reshape(3, 4) + 1)


# ---- the manifest field is hostile input too ----------------------------------------------------

@pytest.fixture(scope="module")
def art(tmp_path_factory, exact):
    """An artifact with one large constant, a variable and an input, to damage."""
    path = tmp_path_factory.mktemp("c") / "art"
    with wt.device(exact):
        k, v = wt.tensor(K[:2]), wt.Variable(np.ones((1, 512), np.float32))
        wt.export(lambda x: x * k + v, (np.ones((2, 512), np.float32),), str(path), backends=("wasm",))
    return path


def damaged(art, tmp_path, edit):
    import shutil
    dst = tmp_path / "damaged"
    shutil.copytree(art, dst)
    resign(dst, lambda man: edit(man, dst))
    return str(dst)


def _consts(man):
    return man["signatures"]["predict"]["wasm"]["constants"]


def _move(man, to):
    c = _consts(man)
    (addr, name), = c.items()
    man["signatures"]["predict"]["wasm"]["constants"] = {str(to(man, int(addr))): name}


def _add_tensor(dst, name, dtype, shape, data):
    from webtensor import safetensors_io as S
    stored, meta = S.load((dst / "weights.safetensors").read_bytes())
    tensors = {k: (d, s, bytes(v)) for k, (d, s, v) in stored.items()}
    tensors[name] = (dtype, shape, data)
    (dst / "weights.safetensors").write_bytes(S.save(tensors, meta))


@pytest.mark.parametrize("edit, message", [
    (lambda m, d: _consts(m).update({k: "nothing/here" for k in _consts(m)}),
     r"weights.safetensors: constant 'nothing/here' \(signature 'predict' wasm constants\) is missing"),
    (lambda m, d: _move(m, lambda m, a: m["signatures"]["predict"]["wasm"]["memory_bytes"] - 64),
     r"wasm: constant 'const/predict/0' \[\d+, \d+\) lies outside the \d+-byte memory"),
    (lambda m, d: _move(m, lambda m, a: m["signatures"]["predict"]["wasm"]["variables"]["0"] + 64),
     r"wasm: (constant 'const/predict/0'|variable 'state/\S+') \[\d+, \d+\) overlaps (variable|constant)"),
    (lambda m, d: (_add_tensor(d, "f64", "float64", (2,), bytes(16)), _consts(m).update({"1000000": "f64"})),
     r"weights.safetensors: constant 'f64' is float64; constants are float32, int32 or bool"),
    (lambda m, d: _consts(m).update({"01": "const/predict/0"}), r"manifest.json: .*constants"),
    (lambda m, d: m["signatures"]["predict"]["wasm"].__setitem__("constants", ["const/predict/0"]),
     r"manifest.json: .*constants"),
], ids=["missing-tensor", "outside-memory", "overlaps-variable", "float64", "key-leading-zero", "array"])
def test_hostile_constants_are_artifact_errors(art, tmp_path, edit, message):
    with pytest.raises(ArtifactError, match=message):
        wt.load(damaged(art, tmp_path, edit), backend="wasm")


def test_each_address_names_one_constant(tmp_path, exact):
    with wt.device(exact):
        k = wt.tensor(K[:4])
        x = np.ones((4, 512), np.float32)
        wt.export(None, path=str(tmp_path / "two"), backends=("wasm",),
                  signatures={"p": (lambda x: x * k, (x,)), "q": (lambda x: x + k, (x,))})

    def edit(m, d):
        _add_tensor(d, "other", "float32", (4, 512), bytes(4 * 4 * 512))
        (addr, _), = m["signatures"]["q"]["wasm"]["constants"].items()
        m["signatures"]["q"]["wasm"]["constants"][addr] = "other"
    with pytest.raises(ArtifactError, match=r"signature 'q' wasm: constants at \d+ names 'other', another signature "
                                            r"has 'const/p/0' there"):
        wt.load(damaged(tmp_path / "two", tmp_path, edit), backend="wasm")

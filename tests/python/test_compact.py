"""Compact artifacts: ``export(..., weights_dtype='float16' | 'int8')`` (python/compact.py,
docs/artifact.md "Compact weights").

Oracles: numpy's per-channel quantization (the same formula, written independently); the float32
artifact of the same model with its weights replaced by the dequantized (or float16-rounded) values,
which the compact artifact must equal bit for bit on wasm (the int8 matmul template packs exactly
those values; everything else is the same code); and, against the float32 model, the error bound of
one quantized layer: ``|y_q - y| <= sum_k |x_k| * scale_j / 2`` (each weight moves by at most half a
quantization step).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import webtensor as wt
from webtensor import compact, nn, safetensors_io

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compact_fixtures import BATCH, build, inputs, np_quantize  # noqa: E402


def stored(path):
    tensors, _ = safetensors_io.load((path / "weights.safetensors").read_bytes())
    return {k: np.frombuffer(bytes(v), {"int8": np.int8, "float16": "<f2", "float32": "<f4", "int32": "<i4"}[d])
            .reshape(s) for k, (d, s, v) in tensors.items()}


def manifest(path):
    return json.loads((path / "manifest.json").read_text())


def with_weights(model, values: dict):
    """Set the model's weights (by path) to ``values`` (numpy)."""
    for path, v in model._export_weight_paths().items():
        if path in values:
            v.assign(values[path].astype(np.float32))


def int8_variables(man) -> list:
    """The manifest entries of int8-stored variables (their scales may be float16-stored)."""
    return [v for v in man["variables"] if v.get("storage", {}).get("dtype") == "int8"]


def effective_weights(path) -> dict:
    """The weights an artifact computes with: float16 widened, int8 times its scales."""
    st, out = stored(path), {}
    for v in manifest(path)["variables"]:
        s = v.get("storage")
        if s is None or s["dtype"] == "float16":
            out[v["name"]] = st[v["name"]].astype(np.float32)
        else:
            out[v["name"]] = (st[v["name"]].astype(np.float32).reshape(-1, st[s["scales"]].size)
                              * st[s["scales"]]).reshape(s["shape"])
    return out


def test_quantize_int8_matches_numpy():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    w[..., 2] = 0.0                               # an all-zero channel: scale 1, q 0
    w[0, 0, 0, 4] = 1e-30                         # a tiny channel peak
    qbytes, scales, dtype = compact.quantize_int8(w.ravel().tolist(), 7)
    q_np, s_np = np_quantize(w, 7)
    assert dtype == "float16"
    np.testing.assert_array_equal(np.frombuffer(qbytes, np.int8).reshape(w.shape), q_np)
    np.testing.assert_array_equal(np.array(scales, np.float32), s_np)
    assert np.abs(np.frombuffer(qbytes, np.int8)).max() == 127
    with pytest.raises(ValueError, match="not finite"):
        compact.quantize_int8([1.0, float("nan")], 2)


@pytest.mark.parametrize("numpy", [True, False])
@pytest.mark.parametrize("peak,dtype", [(1.0, "float16"), (127 * 2.0 ** -14, "float16"),
                                        (127 * 2.0 ** -14 * 0.999, "float32"), (65504 * 127, "float16"),
                                        (65504 * 127 * 1.001, "float32")])
def test_int8_scales_are_float16_only_within_its_normal_range(monkeypatch, numpy, peak, dtype):
    """A weight keeps float32 scales when one channel's max|w| / 127 is outside float16's normal
    range; float16 scales are rounded up (no weight clips: |q| <= 127 without clipping)."""
    if not numpy:
        monkeypatch.setattr(compact, "_numpy", lambda: None)
    w = np.random.default_rng(4).uniform(-1, 1, (6, 3)) * np.array([1e-3, 0.3, 0.01])
    w[0, 0] = peak          # channel 0's peak
    w[1, 1], w[2, 2] = -0.3, 0.01   # the others' scales (0.3 / 127, 0.01 / 127) are normal float16 values
    w = w.astype(np.float32)
    qbytes, scales, got = compact.quantize_int8(w.ravel().tolist(), 3)
    assert got == dtype
    ref_q, ref_s = np_quantize(w, 3)
    np.testing.assert_array_equal(np.array(scales, np.float32), ref_s)
    np.testing.assert_array_equal(np.frombuffer(qbytes, np.int8).reshape(w.shape), ref_q)
    exact = np.abs(w).max(axis=0).astype(np.float64) / 127
    assert (np.array(scales) >= exact).all() if dtype == "float16" else True
    assert (np.array(scales) < exact * (1 + 2.0 ** -10)).all()
    if dtype == "float16":
        np.testing.assert_array_equal(np.array(scales, np.float16).astype(np.float64), scales)


@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_int8_artifact_equals_float32_artifact_of_dequantized_weights(kind, tmp_path):
    x = inputs()
    with wt.device("wasm"):
        model = build(kind)
        model(x)
        model.export(tmp_path / "int8", batch_size=BATCH, backends=("wasm",), weights_dtype="int8")
        m = manifest(tmp_path / "int8")
        q = int8_variables(m)
        # every Dense / Conv2D / attention kernel is int8, nothing else
        assert sorted(v["name"] for v in q) == sorted(p for p in model._export_weight_paths() if p.endswith("kernel"))
        st, weights = stored(tmp_path / "int8"), {p: v.numpy() for p, v in model._export_weight_paths().items()}
        by_name = {v["name"]: v for v in m["variables"]}
        for v in q:
            s = v["storage"]
            assert by_name[s["scales"]]["storage"] == {"dtype": "float16"}    # every scale a normal float16
            ref_q, ref_s = np_quantize(weights[v["name"]], st[s["scales"]].size)
            np.testing.assert_array_equal(st[v["name"]], ref_q)
            np.testing.assert_array_equal(st[s["scales"]], ref_s)
        y_int8 = wt.load(tmp_path / "int8", backend="wasm").predict(x)
        with_weights(model, effective_weights(tmp_path / "int8"))
        model.export(tmp_path / "deq", batch_size=BATCH, backends=("wasm",))
        y_deq = wt.load(tmp_path / "deq", backend="wasm").predict(x)
    np.testing.assert_array_equal(y_int8, y_deq)
    with wt.device("reference"):                  # numpy, on the dequantized weights
        ref = build(kind)
        ref(x)
        with_weights(ref, effective_weights(tmp_path / "int8"))
        y_np = ref.predict(x)
    np.testing.assert_allclose(y_int8, y_np, rtol=1e-5, atol=2e-6)   # float32 summation order only


@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_float16_artifact_equals_float32_artifact_of_rounded_weights(kind, tmp_path):
    x = inputs()
    with wt.device("wasm"):
        model = build(kind)
        model(x)
        weights = {p: v.numpy() for p, v in model._export_weight_paths().items()}
        model.export(tmp_path / "f16", batch_size=BATCH, backends=("wasm",), weights_dtype="float16")
        assert all(v.get("storage") == {"dtype": "float16"} for v in manifest(tmp_path / "f16")["variables"]
                   if v["name"] in weights)
        st = stored(tmp_path / "f16")
        for p, w in weights.items():
            np.testing.assert_array_equal(st[p], w.astype(np.float16))
        y16 = wt.load(tmp_path / "f16", backend="wasm").predict(x)
        with_weights(model, {p: w.astype(np.float16) for p, w in weights.items()})
        model.export(tmp_path / "rounded", batch_size=BATCH, backends=("wasm",))
        y_r = wt.load(tmp_path / "rounded", backend="wasm").predict(x)
    np.testing.assert_array_equal(y16, y_r)


def test_int8_scales_beyond_float16_stay_float32(tmp_path):
    """A kernel with a channel whose max|w| / 127 is below float16's normal range keeps float32
    scales (no storage); the artifact computes with them (Python and, in compact.test.js, Node)."""
    x = np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32)
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input((6,)), nn.Dense(3)])
        model(x)
        k = model.layers[0].kernel.numpy()
        k[:, 1] *= 1e-4
        model.layers[0].kernel.assign(k)
        man = model.export(tmp_path / "q", batch_size=4, backends=("wasm",), weights_dtype="int8")
        y = wt.load(tmp_path / "q", backend="wasm").predict(x)
    (v,) = int8_variables(man)
    (sv,) = [s for s in man["variables"] if s["name"] == v["storage"]["scales"]]
    assert "storage" not in sv
    ref_q, ref_s = np_quantize(k, 3)
    st = stored(tmp_path / "q")
    np.testing.assert_array_equal(st[v["name"]], ref_q)
    np.testing.assert_array_equal(st[sv["name"]], ref_s)
    assert st[sv["name"]].dtype == np.float32 and not np.array_equal(ref_s.astype(np.float16), ref_s)
    np.testing.assert_allclose(y, x @ (ref_q.astype(np.float32) * ref_s) + model.layers[0].bias.numpy(),
                               rtol=1e-5, atol=1e-6)


def _dense_and_conv_bound(tmp_path, layer, x, window):
    """Export a one-layer model as float32 and int8; the int8 output may differ from the float32
    one by at most sum over the layer's inputs of |x| * scale / 2 (plus float32 rounding)."""
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input(x.shape[1:]), layer])
        model(x)
        y = model.predict(x)
        model.export(tmp_path / "q", batch_size=x.shape[0], backends=("wasm",), weights_dtype="int8")
        yq = wt.load(tmp_path / "q", backend="wasm").predict(x)
    (q,) = int8_variables(manifest(tmp_path / "q"))
    scales = stored(tmp_path / "q")[q["storage"]["scales"]]
    bound = window(np.abs(x)) * scales / 2
    err = np.abs(yq - y)
    assert (err <= bound * (1 + 1e-4) + 1e-6).all(), (err / bound).max()
    assert (err > 0).any()                        # the test can fail: quantization does change outputs
    assert (err / bound).max() > 0.05             # and the bound is not loose by orders of magnitude


def test_int8_dense_error_within_half_a_step(tmp_path):
    x = np.random.default_rng(2).standard_normal((8, 20)).astype(np.float32)
    _dense_and_conv_bound(tmp_path, nn.Dense(6), x, lambda a: a.sum(axis=1, keepdims=True))


def test_int8_conv2d_error_within_half_a_step(tmp_path):
    x = np.random.default_rng(3).random((2, 6, 6, 3)).astype(np.float32)

    def window(a):                                # sum of |x| over each 3x3x3 receptive field
        return np.lib.stride_tricks.sliding_window_view(a, (3, 3), axis=(1, 2)).sum(axis=(3, 4, 5))[..., None]
    _dense_and_conv_bound(tmp_path, nn.Conv2D(5, 3), x, window)


def test_file_sizes(tmp_path):
    with wt.device("wasm"):
        model = build("cnn")
        sizes = {}
        for dt in ("float32", "float16", "int8"):
            model.export(tmp_path / dt, batch_size=BATCH, backends=("wasm",), weights_dtype=dt)
            sizes[dt] = (tmp_path / dt / "weights.safetensors").stat().st_size
    assert sizes["float32"] / sizes["int8"] >= 3.5, sizes      # issue 18's target, on the digits CNN
    assert 1.9 <= sizes["float32"] / sizes["float16"] <= 2.0, sizes


def test_training_signatures_keep_float32(tmp_path):
    with wt.device("wasm"):
        model = build("cnn")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for dt in ("float16", "int8"):
            with pytest.raises(ValueError, match=r"'train_step'.*update variables"):
                model.export(tmp_path / f"t_{dt}", signatures=["predict", "train_step"], weights_dtype=dt)
            m = model.export(tmp_path / dt, weights_dtype=dt)           # default: predict only
            assert list(m["signatures"]) == ["predict"]
        assert "train_step" in model.export(tmp_path / "f32")["signatures"]
        with pytest.raises(ValueError, match="weights_dtype must be one of"):
            model.export(tmp_path / "bad", weights_dtype="int4")


class _SumAlso(nn.Layer):
    """x @ kernel + sum(kernel): its kernel is read by something other than a matmul."""

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], 4))

    def call(self, x):
        return wt.matmul(x, self.kernel) + wt.reduce_sum(self.kernel)


def test_int8_weight_read_elsewhere_stays_float32(tmp_path):
    x = np.ones((2, 3), np.float32)
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input((3,)), _SumAlso(), nn.Dense(2)])
        model(x)
        man = model.export(tmp_path / "q", batch_size=2, backends=("wasm",), weights_dtype="int8")
        y = model.predict(x)
    kinds = {v["name"]: v.get("storage", {}).get("dtype") for v in man["variables"]}
    assert [n for n, k in kinds.items() if k == "int8"] == ["dense/kernel"], kinds
    assert [k for n, k in kinds.items() if n.endswith("/kernel") and n != "dense/kernel"] == [None], kinds
    np.testing.assert_allclose(wt.load(tmp_path / "q", backend="wasm").predict(x), y, rtol=0.05, atol=0.05)


def test_int8_on_webgpu_matches_wasm(tmp_path):
    """The WGSL exporter lowers quantized_matmul's generic form (integer division and modulo)."""
    x = np.random.default_rng(4).standard_normal((4, 12)).astype(np.float32)
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input((12,)), nn.Dense(9, activation="relu"), nn.Dense(5)])
        model(x)
        model.export(tmp_path / "q", batch_size=4, weights_dtype="int8")
    y_wasm = wt.load(tmp_path / "q", backend="wasm").predict(x)
    try:
        gpu = wt.load(tmp_path / "q", backend="webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no WebGPU adapter: {e}")
    np.testing.assert_allclose(gpu.predict(x), y_wasm, rtol=1e-5, atol=1e-5)


def test_int8_export_without_numpy_writes_the_same_bytes(tmp_path):
    """Pyodide pages may have no numpy: the quantizer is pure Python, and its bytes are numpy's."""
    code = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "numpy" or name.startswith("numpy."):
                    raise ImportError("numpy is blocked in this test")
        sys.meta_path.insert(0, _Block())
        import webtensor as wt
        wt.random.set_seed(5)
        with wt.device("wasm"):
            m = wt.nn.Sequential([wt.nn.Input((6,)), wt.nn.Dense(5, activation="relu"), wt.nn.Dense(3)])
        m.export({str(tmp_path / "nonp")!r}, batch_size=2, weights_dtype="int8")
        m.export({str(tmp_path / "nonp16")!r}, batch_size=2, weights_dtype="float16")
        assert "numpy" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    wt.random.set_seed(5)
    with wt.device("wasm"):
        m = nn.Sequential([nn.Input((6,)), nn.Dense(5, activation="relu"), nn.Dense(3)])
    m.export(tmp_path / "np", batch_size=2, weights_dtype="int8")
    m.export(tmp_path / "np16", batch_size=2, weights_dtype="float16")
    for a, b in (("nonp", "np"), ("nonp16", "np16")):
        for name in ("module.wasm", "weights.safetensors"):
            assert (tmp_path / a / name).read_bytes() == (tmp_path / b / name).read_bytes(), (a, name)


@pytest.mark.parametrize("shape,n,ta", [((5, 7), 3, False), ((2, 3, 5, 7), 9, False), ((4, 7, 6), 16, True),
                                        ((2, 33, 70), 17, False), ((64, 288), 32, False)])
def test_quantized_matmul_wasm_template_is_the_float32_template_on_dequantized_weights(shape, n, ta):
    """The wasm ``matmul_q8`` template packs int8 * scale into the float32 template's panels: equal
    bit for bit to the float32 template on the dequantized matrix (any N, K, batch, transposed A)."""
    from webtensor.core.op import Aval
    from webtensor.core.ops.linalg import quantized_matmul_op
    from webtensor.wasm import matmul as wasm_matmul
    rng = np.random.default_rng(len(shape) * 100 + n)
    k = shape[-2] if ta else shape[-1]
    a = rng.standard_normal(shape).astype(np.float32)
    w8 = rng.integers(-127, 128, (k, n)).astype(np.int8)
    q = np.concatenate([w8.ravel(), np.zeros(-w8.size % 4, np.int8)]).view("<i4")
    scales = rng.uniform(0.001, 0.1, n).astype(np.float32)
    ins = [Aval(tuple(x.shape), wt.as_dtype(x.dtype)) for x in (a, q, scales)]
    out = quantized_matmul_op.infer(*ins, transpose_a=ta, n=n)
    assert wasm_matmul.supports(quantized_matmul_op.kernel(ins, out, transpose_a=ta, n=n))
    with wt.device("wasm"):
        y = quantized_matmul_op(wt.tensor(a), wt.tensor(q), wt.tensor(scales), transpose_a=ta, n=n).numpy()
        y32 = wt.matmul(wt.tensor(a), wt.tensor(w8.astype(np.float32) * scales), transpose_a=ta).numpy()
    np.testing.assert_array_equal(y, y32)


@pytest.mark.parametrize("shape,n,ta", [((64, 288), 32, False), ((2, 64, 40), 48, False), ((96, 64), 64, True)])
def test_quantized_matmul_webgpu_template(shape, n, ta):
    """The WGSL ``matmul_q8`` template (int8 bytes times scales as the B tile loads) against numpy."""
    from webtensor.core.op import Aval
    from webtensor.core.ops.linalg import quantized_matmul_op
    from webtensor.webgpu.limits import Limits
    from webtensor.webgpu.matmul import lower_matmul
    rng = np.random.default_rng(len(shape) * 100 + n)
    k = shape[-2] if ta else shape[-1]
    a = rng.standard_normal(shape).astype(np.float32)
    w8 = rng.integers(-128, 128, (k, n)).astype(np.int8)       # -128 too: extractBits sign-extends
    q = np.concatenate([w8.ravel(), np.zeros(-w8.size % 4, np.int8)]).view("<i4")
    scales = rng.uniform(0.001, 0.1, n).astype(np.float32)
    ins = [Aval(tuple(x.shape), wt.as_dtype(x.dtype)) for x in (a, q, scales)]
    kernel = quantized_matmul_op.kernel(ins, quantized_matmul_op.infer(*ins, transpose_a=ta, n=n), transpose_a=ta, n=n)
    assert lower_matmul(kernel, Limits()) is not None
    ref = (np.swapaxes(a, -1, -2) if ta else a).astype(np.float64) @ (w8.astype(np.float32) * scales).astype(np.float64)
    try:
        with wt.device("webgpu"):
            y = quantized_matmul_op(wt.tensor(a), wt.tensor(q), wt.tensor(scales), transpose_a=ta, n=n).numpy()
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no WebGPU device: {e}")
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6 * np.abs(ref).max())


@pytest.mark.parametrize("shape,path,n", [
    ((7, 5), (("transpose", (1, 0)),), 7),                                   # Gemm transB
    ((6, 3, 2, 2), (("transpose", (2, 3, 1, 0)), ("reshape", (12, 6))), 6),   # ONNX Conv via im2col
    ((4, 2, 3), (("reshape", (4, 6)),), 6)])                                 # reshapes only
def test_weight_matrix_and_quantizer_without_numpy_match_numpy(monkeypatch, shape, path, n):
    """The pure-Python paths (Pyodide without numpy) give numpy's matrix and the same bytes."""
    w = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    want = w
    for kind, arg in path:
        want = want.reshape(arg) if kind == "reshape" else want.transpose(arg)
    values, matrix = compact.weight_matrix(w.ravel().tolist(), shape, path)
    q_np, s_np, d_np = compact.quantize_int8(values, n)
    monkeypatch.setattr(compact, "_numpy", lambda: None)
    values_py, matrix_py = compact.weight_matrix(w.ravel().tolist(), shape, path)
    assert matrix == matrix_py == want.shape
    np.testing.assert_array_equal(np.array(values_py, np.float32), want.ravel())
    np.testing.assert_array_equal(np.asarray(values, np.float32), want.ravel())
    q_py, s_py, d_py = compact.quantize_int8(values_py, n)
    assert q_py == q_np and s_py == s_np and d_py == d_np == "float16"
    ref_q, ref_s = np_quantize(want, n)
    np.testing.assert_array_equal(np.frombuffer(q_py, np.int8).reshape(want.shape), ref_q)


class _TransposedDense(nn.Layer):
    """``x @ kernel.T`` with a ``(units, inputs)`` kernel (PyTorch's Linear layout)."""

    def __init__(self, units, **kw):
        super().__init__(**kw)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (self.units, input_shape[-1]))

    def call(self, x):
        return wt.matmul(x, self.kernel, transpose_b=True)


def test_int8_embedding_table_per_row(tmp_path):
    """An Embedding's table (rows, depth) is stored as the (depth, rows) matrix with one scale per
    row and read by quantized_gather (TFLite's quantized embedding lookup): the artifact equals the
    float32 one on the dequantized table, on wasm bit for bit and on WebGPU within rounding."""
    ids = np.array([[0, 5, 19, 3], [7, 7, 1, 12]], np.int32)
    with wt.device("wasm"):
        wt.random.set_seed(2)
        model = nn.Sequential([nn.Input((4,), dtype="int32"), nn.Embedding(20, 12), nn.Flatten(), nn.Dense(3)])
        model(ids)
        man = model.export(tmp_path / "q", batch_size=2, weights_dtype="int8")
        weights = {p: v.numpy() for p, v in model._export_weight_paths().items()}
        st = {v["name"]: v["storage"] for v in int8_variables(man)}
        (emb,) = [p for p in weights if "embedding" in p]
        assert st[emb]["shape"] == [12, 20]
        q = stored(tmp_path / "q")
        ref_q, ref_s = np_quantize(weights[emb].T, 20)
        np.testing.assert_array_equal(q[emb], ref_q)
        np.testing.assert_array_equal(q[st[emb]["scales"]], ref_s)
        y8 = wt.load(tmp_path / "q", backend="wasm").predict(ids)
        with_weights(model, {p: ((q[p].astype(np.float32) * q[s["scales"]]).T if p == emb else
                                 (q[p].astype(np.float32).reshape(-1, q[s["scales"]].size) * q[s["scales"]])
                                 .reshape(weights[p].shape)) for p, s in st.items()})
        model.export(tmp_path / "deq", batch_size=2, backends=("wasm",))
    np.testing.assert_array_equal(y8, wt.load(tmp_path / "deq", backend="wasm").predict(ids))
    try:
        gpu = wt.load(tmp_path / "q", backend="webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no WebGPU adapter: {e}")
    np.testing.assert_allclose(gpu.predict(ids), y8, rtol=1e-5, atol=1e-6)


def test_load_without_numpy_takes_and_returns_lists(tmp_path):
    """``webtensor.load`` where numpy is missing (Pyodide): inputs as nested lists or Tensors,
    outputs as nested lists, equal to the numpy run of the same artifact; the same input checks."""
    x = np.random.default_rng(8).standard_normal((2, 6)).astype(np.float32)
    wt.random.set_seed(5)
    with wt.device("wasm"):
        m = nn.Sequential([nn.Input((6,)), nn.Dense(5, activation="relu"), nn.Dense(3)])
    m.export(tmp_path / "q", batch_size=2, backends=("wasm",), weights_dtype="int8")
    want = wt.load(tmp_path / "q", backend="wasm").predict(x)
    code = textwrap.dedent(f"""
        import json, sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "numpy" or name.startswith("numpy."):
                    raise ImportError("numpy is blocked in this test")
        sys.meta_path.insert(0, _Block())
        import webtensor as wt
        a = wt.load({str(tmp_path / "q")!r}, backend="wasm")
        x = {x.tolist()!r}
        out = {{"lists": a.predict(x), "tensor": a.predict(wt.tensor(x, device="wasm"))}}
        for bad in ([[1.0, 2.0]], [["a"] * 6] * 2):
            try:
                a.predict(bad)
            except ValueError as e:
                out.setdefault("errors", []).append(str(e))
        assert "numpy" not in sys.modules
        print(json.dumps(out))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("lists", "tensor"):
        np.testing.assert_array_equal(np.array(out[key], np.float32), want)
    assert "expected shape [1, 6] float32, got [1, 2]" in out["errors"][0]     # predict takes any batch: 1 row here
    assert "cannot convert data of type str" in out["errors"][1]


class _LeftDense(_TransposedDense):
    """``(kernel @ x^T)^T`` with a ``(units, inputs)`` kernel: the weight as a matmul's left operand."""

    def call(self, x):
        return wt.transpose(wt.matmul(self.kernel, x, transpose_b=True))


@pytest.mark.parametrize("layer", ["transposed", "left"])
def test_int8_weight_is_stored_as_the_matrix_the_matmul_reads(tmp_path, layer):
    """A ``(units, inputs)`` kernel W read transposed (``x @ W^T``) or as a left operand (``W @ b``
    becomes ``transpose(quantized_matmul(b^T, W^T))``): W^T stored, a scale per row of W."""
    x = np.random.default_rng(6).standard_normal((4, 5)).astype(np.float32)
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input((5,)), {"transposed": _TransposedDense, "left": _LeftDense}[layer](3)])
        model(x)
        man = model.export(tmp_path / "q", batch_size=4, backends=("wasm",), weights_dtype="int8")
        (w,) = [v.numpy() for p, v in model._export_weight_paths().items() if p.endswith("kernel")]
    (v,) = int8_variables(man)
    assert v["storage"]["shape"] == [5, 3]
    st = stored(tmp_path / "q")
    ref_q, ref_s = np_quantize(w.T, 3)
    np.testing.assert_array_equal(st[v["name"]], ref_q)
    np.testing.assert_array_equal(st[v["storage"]["scales"]], ref_s)
    y = wt.load(tmp_path / "q", backend="wasm").predict(x)
    np.testing.assert_allclose(y, x @ (ref_q.astype(np.float32) * ref_s), rtol=1e-5, atol=1e-6)


class _Gram(nn.Layer):
    """``x @ (kernel @ kernel^T)``: the weight on both sides of one matmul."""

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], 2))

    def call(self, x):
        return wt.matmul(x, wt.matmul(self.kernel, wt.transpose(self.kernel)))


def test_int8_weight_on_both_sides_of_a_matmul_stays_float32(tmp_path):
    x = np.random.default_rng(10).standard_normal((2, 4)).astype(np.float32)
    with wt.device("wasm"):
        model = nn.Sequential([nn.Input((4,)), _Gram()])
        model(x)
        man = model.export(tmp_path / "q", batch_size=2, backends=("wasm",), weights_dtype="int8")
        want = model.predict(x)
    assert not any("storage" in v for v in man["variables"])
    np.testing.assert_allclose(wt.load(tmp_path / "q", backend="wasm").predict(x), want, rtol=1e-6, atol=1e-6)

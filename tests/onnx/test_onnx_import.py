"""webtensor.onnx.load: graphs built with onnx.helper, checked against onnxruntime (the peer), on
"reference" and "wasm"; training through the imported Variables; hostile files."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import onnx.reference  # noqa: E402

import webtensor as wt  # noqa: E402
import webtensor.onnx as wo  # noqa: E402
from onnx import TensorProto as T, helper, numpy_helper  # noqa: E402
from webtensor.onnx.ops import DataDependentError  # noqa: E402

DEVICES = ["reference", "wasm"]
rng = np.random.default_rng(0)


def make(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, et, shape):
    return helper.make_tensor_value_info(name, et, shape)


def run_ort(m, feeds):
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def mlp(batch="N"):
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32) * 0.3
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    return make(nodes, [vi("x", T.FLOAT, [batch, 4])], [vi("y", T.FLOAT, [batch, 3])],
                [("w1", w1), ("b1", b1), ("w2", w2)])


@pytest.mark.parametrize("device", DEVICES)
def test_mlp_matches_onnxruntime_eager_and_traced(device):
    m = mlp()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    want = run_ort(m, {"x": x})[0]
    with wt.device(device):
        model = wo.load(m.SerializeToString())
        eager = model(x).numpy()
        traced = wt.function(lambda a: model(a))(wt.tensor(x)).numpy()
        by_name = model({"x": x}).numpy()
    for got in (eager, traced, by_name):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [v.name for v in model.trainable_variables] == ["w1", "b1", "w2"]


def shape_subgraph_model():
    """y = reshape(x, (N, -1)) @ w with the target shape computed from Shape/Gather/Unsqueeze/Concat,
    plus a ConstantOfShape/Range output: the shape subgraph a PyTorch export writes."""
    w = rng.standard_normal((12, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["y"]),
        helper.make_node("ConstantOfShape", ["n1"], ["ones"], value=helper.make_tensor("v", T.INT64, [1], [1])),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=T.FLOAT),
        helper.make_node("ReduceSum", ["y", "last"], ["y0"], keepdims=0),
        helper.make_node("Add", ["rf", "y0"], ["z"]),
    ]
    inits = [("zero", np.array(0, np.int64)), ("zero1", np.array([0], np.int64)),
             ("minus1", np.array([-1], np.int64)), ("one", np.array(1, np.int64)), ("w", w),
             ("last", np.array([1], np.int64))]
    return make(nodes, [vi("x", T.FLOAT, ["N", 3, 4])],
                [vi("y", T.FLOAT, ["N", 2]), vi("ones", T.INT64, [None]), vi("z", T.FLOAT, ["N"])], inits)


@pytest.mark.parametrize("device", DEVICES)
def test_shape_subgraph_folds_and_matches_onnxruntime(device):
    m = shape_subgraph_model()
    with wt.device(device):
        model = wo.load(m, input_shapes={"x": [2, 3, 4]})
        assert model.input_shapes == [(2, 3, 4)]
        for n in (2, 5):          # the declared dim N is free: each call folds for its own shape
            x = rng.standard_normal((n, 3, 4)).astype(np.float32)
            want = run_ort(m, {"x": x})
            got = wt.function(lambda a: model(a))(wt.tensor(x))
            assert len(got) == 3
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)
    assert got[1].dtype == wt.int32            # int64 outputs come back as int32
    assert [v.name for v in model.trainable_variables] == ["w"]   # shape initializers stay constants


def test_two_inputs_positional_dict_export_and_int64_overflow(tmp_path):
    m = make([helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
              helper.make_node("Add", ["e", "bias"], ["y"])],
             [vi("ids", T.INT64, ["B"]), vi("bias", T.FLOAT, [1, 3])], [vi("y", T.FLOAT, ["B", 3])],
             [("table", rng.standard_normal((10, 3)).astype(np.float32))])
    ids, bias = np.array([3, -1, 0], np.int64), np.ones((1, 3), np.float32)
    want = run_ort(m, {"ids": ids, "bias": bias})[0]
    model = wo.load(m)
    assert model.input_names == ["ids", "bias"]
    np.testing.assert_allclose(model([ids, bias]).numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(model({"bias": bias, "ids": ids}).numpy(), want, rtol=1e-6)
    art_dir = str(tmp_path / "two")
    manifest = model.export(art_dir, example_inputs={"ids": ids.astype(np.int32), "bias": bias}, backends=("wasm",))
    assert [i["name"] for i in manifest["signatures"]["predict"]["inputs"]] == ["bias", "ids"]
    np.testing.assert_allclose(np.asarray(wt.load(art_dir).predict(bias, ids.astype(np.int32))), want, rtol=1e-6)
    with pytest.raises(OverflowError, match="2147483648"):
        model([np.array([2 ** 31], np.int64), bias])
    with pytest.raises(ValueError, match="takes 2 inputs"):
        model([ids])
    with pytest.raises(ValueError, match="missing"):
        model({"ids": ids})


def test_conv_pool_bn_matches_onnxruntime_and_grouped_conv():
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32) * 0.3        # group=2 over 4 channels
    dw = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)            # depthwise
    c = lambda k: rng.standard_normal(6).astype(np.float32) * 0.1 + k    # noqa: E731
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c1"], group=2, pads=[1, 1, 1, 1], strides=[2, 1]),
             helper.make_node("BatchNormalization", ["c1", "s", "b", "mean", "var"], ["bn"]),
             helper.make_node("Conv", ["bn", "dw"], ["c2"], group=6, auto_pad="SAME_UPPER"),
             helper.make_node("MaxPool", ["c2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["a"], ["y"])]
    m = make(nodes, [vi("x", T.FLOAT, [2, 4, 9, 7])], [vi("y", T.FLOAT, [2, 6, 1, 1])],
             [("w", w), ("b", c(0)), ("s", c(1)), ("mean", c(0)), ("var", np.abs(c(1))), ("dw", dw)])
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    want = run_ort(m, {"x": x})[0]
    for device in DEVICES:
        with wt.device(device):
            model = wo.load(m)
            got = wt.function(lambda a: model(a))(wt.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    names = {v.name for v in model.trainable_variables}
    assert {"mean", "var"}.isdisjoint(names) and {"w", "dw", "s", "b"} <= names


@pytest.mark.parametrize("attrs", [dict(strides=[2, 2], pads=[1, 0, 0, 1]), dict(strides=[2, 1], output_padding=[1, 0]),
                                   dict(strides=[2, 2], output_shape=[12, 10]), dict(group=2, auto_pad="SAME_UPPER",
                                                                                     strides=[2, 2])])
def test_conv_transpose_and_lp_pool_match_onnxruntime(attrs):
    g = attrs.get("group", 1)
    w = rng.standard_normal((4, 6 // g, 3, 3)).astype(np.float32)
    m = make([helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], **attrs),
              helper.make_node("LpPool", ["c"], ["y"], kernel_shape=[2, 2], p=2, strides=[1, 1])],
             [vi("x", T.FLOAT, [2, 4, 5, 4])], [vi("y", T.FLOAT, [None] * 4)],
             [("w", w), ("b", rng.standard_normal(6).astype(np.float32))])
    x = rng.standard_normal((2, 4, 5, 4)).astype(np.float32)
    want = run_ort(m, {"x": x})[0]
    for device in DEVICES:
        with wt.device(device):
            got = wt.function(lambda a: wo.load(m)(a))(wt.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,attrs", [("LSTM", dict(direction="bidirectional")), ("LSTM", dict(layout=1)),
                                        ("GRU", dict(direction="reverse")), ("GRU", dict(linear_before_reset=1)),
                                        ("RNN", dict(direction="bidirectional", activations=["Relu", "Tanh"]))])
def test_recurrent_layers_match_onnxruntime(kind, attrs):
    seq, batch, n_in, hid = 5, 3, 4, 6
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    ng = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    lay = attrs.get("layout", 0)
    w = rng.standard_normal((dirs, ng * hid, n_in)).astype(np.float32) * 0.4
    r = rng.standard_normal((dirs, ng * hid, hid)).astype(np.float32) * 0.4
    b = rng.standard_normal((dirs, 2 * ng * hid)).astype(np.float32) * 0.2
    h0 = rng.standard_normal((batch, dirs, hid) if lay else (dirs, batch, hid)).astype(np.float32)
    inputs = ["x", "w", "r", "b", "", "h0"]
    inits = [("w", w), ("r", r), ("b", b), ("h0", h0)]
    outs = ["y", "yh"]
    if kind == "LSTM":
        inputs += ["c0", "p"]
        inits += [("c0", h0 * 0.5), ("p", rng.standard_normal((dirs, 3 * hid)).astype(np.float32) * 0.3)]
        outs.append("yc")
    m = make([helper.make_node(kind, inputs, outs, hidden_size=hid, **attrs)],
             [vi("x", T.FLOAT, [batch, seq, n_in] if lay else [seq, batch, n_in])],
             [vi(o, T.FLOAT, [None] * (4 if o == "y" else 3)) for o in outs], inits, opset=14)
    x = rng.standard_normal((batch, seq, n_in) if lay else (seq, batch, n_in)).astype(np.float32)
    # onnxruntime has no batch-major (layout=1) recurrent kernels: ONNX's reference is the peer there
    want = onnx.reference.ReferenceEvaluator(m).run(None, {"x": x}) if lay else run_ort(m, {"x": x})
    for device in DEVICES:
        with wt.device(device):
            got = wt.function(lambda a: wo.load(m)(a))(wt.tensor(x))
        for g_, w_ in zip(got, want):
            np.testing.assert_allclose(g_.numpy(), w_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_matches_onnxruntime(mode, padding_mode, align_corners):
    m = make([helper.make_node("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding_mode,
                               align_corners=align_corners)],
             [vi("x", T.FLOAT, [2, 3, 5, 4]), vi("g", T.FLOAT, [2, 6, 7, 2])], [vi("y", T.FLOAT, [2, 3, 6, 7])],
             opset=16)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    g = rng.uniform(-1.6, 1.6, (2, 6, 7, 2)).astype(np.float32)     # some positions outside [-1, 1]
    want = run_ort(m, {"x": x, "g": g})[0]
    for device in DEVICES:
        with wt.device(device):
            got = wt.function(lambda a, b: wo.load(m)([a, b]))(wt.tensor(x), wt.tensor(g)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_gradients_through_imported_weights_match_finite_differences():
    m = mlp(batch=3)
    model = wo.load(m)
    x = wt.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    w2 = next(v for v in model.trainable_variables if v.name == "w2")
    with wt.GradientTape() as tape:
        loss = wt.sum(wt.square(model(x)))
    g = tape.gradient(loss, w2).numpy()
    base, eps = w2.numpy().copy(), 1e-2
    for idx in [(0, 0), (3, 1), (7, 2)]:
        vals = []
        for s in (1, -1):
            w = base.copy()
            w[idx] += s * eps
            w2.assign(w)
            vals.append(float(wt.sum(wt.square(model(x))).numpy()))
        w2.assign(base)
        assert abs((vals[0] - vals[1]) / (2 * eps) - g[idx]) < 2e-2 * max(1.0, abs(g[idx]))


@pytest.mark.parametrize("device", DEVICES)
def test_fit_lowers_the_loss_and_export_runs(device, tmp_path):
    m = mlp()
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    with wt.device(device):
        model = wo.load(m)
        model.compile(optimizer=wt.optimizers.Adam(0.05),
                      loss=wt.nn.losses.SparseCategoricalCrossentropy(from_logits=True))
        hist = model.fit(x, y, batch_size=32, epochs=20, verbose=0).history["loss"]
        assert hist[-1] < 0.7 * hist[0]
        model.export(str(tmp_path / "art"), batch_size=4, backends=("wasm",))
        want = model.predict(x[:4], verbose=0).numpy()
    art = wt.load(str(tmp_path / "art"))
    np.testing.assert_allclose(np.asarray(art.predict(x[:4])), want, rtol=1e-5, atol=1e-6)


# ---- errors --------------------------------------------------------------------------------------

def test_public_api():
    assert sorted(dir(wo)) == ["ONNXImportError", "ONNXModel", "load"]
    for name in wo.__all__:
        assert (getattr(wo, name).__doc__ or "").strip(), name
    assert issubclass(wo.ONNXImportError, ValueError) and issubclass(wo.ONNXModel, wt.nn.Model)
    assert "onnx" in wt.__all__ and wt.onnx is wo


def test_unsupported_node_names_op_node_and_opset():
    m = make([helper.make_node("Relu", ["x"], ["r"], name="ok"),
              helper.make_node("Det", ["r"], ["y"], name="the_det")],
             [vi("x", T.FLOAT, [2, 2])], [vi("y", T.FLOAT, [])])
    with pytest.raises(NotImplementedError, match=r"Det \(node 'the_det', opset 17\)"):
        wo.load(m)


def test_op_from_another_branch_is_looked_up_at_conversion(monkeypatch):
    m = make([helper.make_node("CumSum", ["x", "ax"], ["y"], name="cs")], [vi("x", T.FLOAT, [3])],
             [vi("y", T.FLOAT, [3])], [("ax", np.array(0, np.int64))])
    monkeypatch.delattr(wt, "cumsum", raising=False)
    with pytest.raises(NotImplementedError, match=r"CumSum \(node 'cs', opset 17\).*webtensor.cumsum"):
        wo.load(m)
    calls = []
    monkeypatch.setattr(wt, "cumsum", lambda x, axis, exclusive, reverse: calls.append(axis) or x, raising=False)
    wo.load(m)
    assert calls == [0]


def test_data_dependent_shape_raises_and_constants_bind_it():
    m = make([helper.make_node("Reshape", ["x", "shape"], ["y"])],
             [vi("x", T.FLOAT, [2, 3]), vi("shape", T.INT64, [2])], [vi("y", T.FLOAT, [3, 2])])
    with pytest.raises(DataDependentError, match="must be known at import") as e:
        wo.load(m)
    assert e.value.input_name == "shape"
    model = wo.load(m, constants={"shape": np.array([3, 2], np.int64)})
    assert model.input_names == ["x"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(model(x).numpy(), x.reshape(3, 2))


@pytest.mark.parametrize("n", [1, 3])
def test_if_on_a_shape_runs_the_branch_known_at_import(n):
    """PyTorch exports test shapes with If: the condition folds, the chosen branch runs inline and
    reads outer values (here the weight w)."""
    w = rng.standard_normal((4, 4)).astype(np.float32)
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "then", [],
                               [vi("t", T.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [vi("e", T.FLOAT, None)])
    m = make([helper.make_node("Shape", ["x"], ["s"]),
              helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
              helper.make_node("Greater", ["b", "one"], ["c"]),
              helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
             [vi("x", T.FLOAT, ["N", 4])], [vi("y", T.FLOAT, ["N", 4])],
             [("w", w), ("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64))])
    x = rng.standard_normal((n, 4)).astype(np.float32)
    want = run_ort(m, {"x": x})[0]
    model = wo.load(m)
    np.testing.assert_allclose(wt.function(lambda a: model(a))(wt.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    assert [v.name for v in model.trainable_variables] == ["w"]


def test_if_on_input_values_is_data_dependent():
    g1 = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "a", [], [vi("t", T.FLOAT, None)])
    g2 = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "b", [], [vi("e", T.FLOAT, None)])
    m = make([helper.make_node("If", ["c"], ["y"], then_branch=g1, else_branch=g2, name="branch")],
             [vi("x", T.FLOAT, [2]), vi("c", T.BOOL, [])], [vi("y", T.FLOAT, [2])])
    with pytest.raises(DataDependentError, match=r"If \(node 'branch'.*condition must be known at import"):
        wo.load(m)


def test_hostile_files(tmp_path):
    with pytest.raises(wo.ONNXImportError, match="not an ONNX model"):
        wo.load(b"\xff\xff\xff\xffgarbage")
    good = mlp().SerializeToString()
    with pytest.raises(wo.ONNXImportError):
        wo.load(good[: len(good) // 2])
    bad = make([helper.make_node("Relu", ["nope"], ["y"])], [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])])
    with pytest.raises(wo.ONNXImportError, match="onnx.checker"):
        wo.load(bad)
    with pytest.raises(wo.ONNXImportError, match="opset 22"):
        wo.load(make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])],
                     opset=22))
    dom = make([helper.make_node("Foo", ["x"], ["y"], domain="com.evil")], [vi("x", T.FLOAT, [2])],
               [vi("y", T.FLOAT, [2])])
    dom.opset_import.append(helper.make_opsetid("com.evil", 1))
    with pytest.raises(wo.ONNXImportError, match="com.evil"):
        wo.load(dom)
    f64 = make([helper.make_node("Add", ["x", "c"], ["y"])], [vi("x", T.DOUBLE, [2])], [vi("y", T.DOUBLE, [2])],
               [("c", np.ones(2))])
    with pytest.raises(wo.ONNXImportError, match="element type"):
        wo.load(f64)
    huge = make([helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
                [vi("x", T.FLOAT, [1])], [vi("y", T.FLOAT, [None, None])],
                [("s", np.array([1 << 20, 1 << 20], np.int64))])
    with pytest.raises(wo.ONNXImportError, match="elements"):
        wo.load(huge)
    for dims, nbytes in (([4], 8), ([1 << 40], 4)):       # raw data shorter than its declared shape
        t = T()
        t.name, t.data_type, t.raw_data = "c", T.FLOAT, b"\0" * nbytes
        t.dims.extend(dims)
        g = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g", [vi("x", T.FLOAT, [4])],
                              [vi("y", T.FLOAT, [4])], [t])
        with pytest.raises(wo.ONNXImportError, match="too small"):
            wo.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(TypeError, match="path, bytes"):
        wo.load(12)
    with pytest.raises(ValueError, match="does not fit"):
        wo.load(mlp(), input_shapes={"x": [2, 5]})


def _external(tmp_path, location):
    """An MLP whose first initializer lives in tmp_path/w.bin, saved as tmp_path/sub/m.onnx, and the
    same MLP with every weight embedded."""
    m = mlp()
    embedded = m.SerializeToString()
    t = m.graph.initializer[0]
    data = numpy_helper.to_array(t).tobytes()
    (tmp_path / "w.bin").write_bytes(data)
    t.ClearField("float_data")
    t.ClearField("raw_data")
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    path = tmp_path / "sub" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(m.SerializeToString())
    return path, embedded


def test_external_data_is_confined_to_the_model_folder(tmp_path):
    path, embedded = _external(tmp_path, "../w.bin")          # escapes sub/
    with pytest.raises(wo.ONNXImportError, match="outside"):
        wo.load(str(path))
    with pytest.raises(wo.ONNXImportError, match="external files"):
        wo.load(path.read_bytes())
    with pytest.raises(wo.ONNXImportError, match="outside"):
        wo.load(path.read_bytes(), base_dir=str(tmp_path / "sub"))
    with pytest.raises(wo.ONNXImportError, match="outside"):
        wo.load(_external(tmp_path, "/etc/passwd")[0].read_bytes(), base_dir=str(tmp_path))
    # inside base_dir it loads, and gives what the embedded weights give
    path, embedded = _external(tmp_path, "w.bin")
    model = wo.load(path.read_bytes(), base_dir=str(tmp_path))
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x).numpy(), wo.load(embedded)(x).numpy())
    os.remove(tmp_path / "w.bin")
    with pytest.raises(wo.ONNXImportError, match="missing"):
        wo.load(path.read_bytes(), base_dir=str(tmp_path))


def test_weights_round_trip_by_onnx_name(tmp_path):
    a, b = wo.load(mlp()), wo.load(mlp())            # two files with different random weights
    x = rng.standard_normal((2, 4)).astype(np.float32)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    a.save_weights(str(tmp_path / "w.safetensors"))
    assert set(wt.load_safetensors(str(tmp_path / "w.safetensors"))) == {"w1", "b1", "w2"}
    b.load_weights(str(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())

"""A symbolic batch and a symbolic length together (docs/artifact.md, "Symbolic batch and length"):
one artifact exported with ``input_signature=[TensorSpec((None, None))]`` serves every batch up to
``max_batch`` and every length up to ``max_length``, bit for bit what artifacts exported at each fixed
``(batch, length)`` give (``tests/export_fixtures_batch_length.py``: the text job's LSTM model,
LSTM + GRU, Bidirectional GRUs); the exporter refuses a function whose rows mix (naming the op), and
loaders refuse sizes past the maxima and a length in the batch's axis."""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor.core.runtime.artifacts import ArtifactError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import export_fixtures_batch_length as fx  # noqa: E402


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_length")
    fx.main(str(d))
    with open(d / "expected.json") as fh:
        return d, json.load(fh)


@pytest.mark.parametrize("kind", ["lm", "seq", "bi"])
def test_one_artifact_equals_fixed_shape_artifacts_bitwise(out, kind):
    d, expected = out
    man = json.loads((d / kind / "manifest.json").read_text())
    sig = man["signatures"]["predict"]
    assert man["format_version"] == 2
    assert sig["batch"] == {"chunk": fx.CHUNK, "maximum": fx.MAX_BATCH}
    assert sig["length"]["maximum"] == fx.MAXIMUM and sig["length"]["inputs"] == [1]
    assert sig["inputs"][0]["shape"] == [fx.CHUNK, fx.MAXIMUM]
    model = wt.load(d / kind, backend="wasm")
    for n, L in fx.PAIRS:
        got = model.run("predict", fx.ids(n, L))
        for name, want in expected[kind][f"{n},{L}"].items():
            assert got[name].shape[0] == n
            assert got[name].reshape(-1).tolist() == want, (kind, n, L, name)
    assert model.run("predict", fx.ids(5, 7))["output_0"].shape == {"lm": (5, 7, fx.VOCAB), "seq": (5, 7, 5),
                                                                      "bi": (5, 3)}[kind]


def test_matches_the_reference_device(out):
    """The text job's model against numpy's reference device (the oracle) at sizes the fixtures did
    not export; the tolerance is 10x the largest difference measured (9.3e-9)."""
    d, _ = out
    fn = fx.functions()["lm"]       # the same seed: the same weights as the artifact's
    model = wt.load(d / "lm", backend="wasm")
    for n, L in ((4, 2), (8, 11)):
        got = model.run("predict", fx.ids(n, L))["output_0"]
        with wt.device("reference"):
            ref = fn(wt.tensor(fx.ids(n, L))).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)


def test_webgpu_runs_the_same_artifact(out):
    """WebGPU (lavapipe here) runs the same artifact's WGSL pieces in chunks; equal to the fixed-shape
    wasm outputs within 10x the largest difference measured (4.7e-9 on lavapipe)."""
    pytest.importorskip("wgpu")
    try:
        wt.get_device("webgpu")
    except Exception as e:      # no adapter here
        pytest.skip(f"no WebGPU device: {e}")
    d, expected = out
    model = wt.load(d / "lm", backend="webgpu")
    for n, L in ((2, 5), (5, 7)):
        got = model.run("predict", fx.ids(n, L))
        for name, want in expected["lm"][f"{n},{L}"].items():
            np.testing.assert_allclose(got[name].reshape(-1), np.float32(want), rtol=0, atol=5e-8)


def test_sizes_outside_the_maxima_are_refused(out):
    d, _ = out
    model = wt.load(d / "seq", backend="wasm")
    with pytest.raises(ValueError, match=r"batch size 10 is outside \[1, 9\] \(the artifact's declared maximum\)"):
        model.run("predict", np.zeros((10, 4), np.int32))
    with pytest.raises(ValueError, match=r"length 13 is outside \[1, 12\] \(the artifact's declared maximum length\)"):
        model.run("predict", np.zeros((4, 13), np.int32))
    with pytest.raises(ValueError, match=r"batch size 0 is outside"):
        model.run("predict", np.zeros((0, 4), np.int32))
    with pytest.raises(ValueError, match=r"expected shape \['batch', 'length'\] int32, got \[2, 3, 1\]"):
        model.run("predict", np.zeros((2, 3, 1), np.int32))
    got = model.run("predict", fx.ids(5, 7).tolist())       # nested lists take any batch and length
    assert got["output_0"].shape == (5, 7, 5)


# ---- the exporter's proof ----------------------------------------------------------------------------

def _export(fn, tmp_path, **kw):
    return wt.export(fn, path=tmp_path / "a", input_signature=[wt.TensorSpec((None, None), "int32")],
                     backends=("wasm",), **{"max_length": 8, "batch_size": 2, **kw})


def _lstm():
    emb, lstm = wt.nn.Embedding(10, 4), wt.nn.LSTM(3, return_sequences=True)
    return lambda x: lstm(emb(x))


@pytest.mark.parametrize("fn, op", [
    ((lambda f: lambda x: f(x) - wt.reduce_sum(f(x), axis=0, keepdims=True))(_lstm()), "reduce_sum"),  # over the rows
    ((lambda f: lambda x: f(x) + f(x)[:1])(_lstm()), "slice"),                                 # the first row's
    ((lambda f: lambda x: wt.transpose(f(x), (1, 0, 2)))(_lstm()), "output 0 .* not one row per input row"),
    (lambda x: wt.scan(lambda a, r: a + r, wt.cast(x[:, :1], "float32"), wt.zeros((1,))),
     "iterations change with the batch size"),                                          # a scan over the rows
])
def test_rows_that_are_not_independent_are_refused(tmp_path, fn, op):
    with pytest.raises(ValueError, match=f"export: signature 'predict' cannot take any batch size: .*{op}"):
        _export(fn, tmp_path)


def test_a_loop_carrying_rows_keeps_them_apart(tmp_path):
    """A scan over the steps whose state holds one row per batch row (as an RNN's), checked against numpy."""
    fn = lambda x: wt.transpose(wt.scan(lambda a, r: a * 0.5 + r, wt.transpose(wt.cast(x, "float32")),  # noqa: E731
                                        wt.zeros_like(wt.cast(x[:, 0], "float32"))))
    man = _export(fn, tmp_path, max_batch=None)
    assert man["signatures"]["predict"]["batch"] == {"chunk": 2}
    model = wt.load(tmp_path / "a", backend="wasm")
    for n, L in ((1, 3), (5, 8)):
        x = np.random.default_rng(n).integers(0, 9, (n, L)).astype(np.int32)
        want, a = np.zeros((n, L), np.float32), np.zeros(n, np.float32)
        for t in range(L):
            a = a * np.float32(0.5) + x[:, t]
            want[:, t] = a
        np.testing.assert_array_equal(model.run("predict", x)["output_0"], want)


# ---- hostile sections ----------------------------------------------------------------------------------

def test_a_length_in_the_batch_axis_is_refused(out, tmp_path):
    d, _ = out
    dst = tmp_path / "bad"
    shutil.copytree(d / "seq", dst)
    m = json.loads((dst / "manifest.json").read_text())
    sig = m["signatures"]["predict"]
    sig["batch"]["chunk"] = fx.MAXIMUM                  # so that axis 0 could hold the length
    for spec in sig["inputs"] + sig["outputs"]:
        spec["shape"][0] = fx.MAXIMUM
    sig["length"]["inputs"] = [0]
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="has the length in axis 0, which its 'batch' section makes the batch"):
        wt.load(dst, backend="wasm")


def test_a_function_with_its_own_input_signature_traces_once(out, tmp_path):
    """``webtensor.function(fn, input_signature=...)`` (its scan loops traced once with symbolic sizes
    and specialised per size: core/symbolic.py) exports the same artifact's results."""
    d, expected = out
    spec = [wt.TensorSpec((None, None), "int32")]
    f = wt.function(fx.functions()["seq"], input_signature=spec)        # the same seed: the same weights
    wt.export(f, path=tmp_path / "a", input_signature=spec, batch_size=fx.CHUNK, max_batch=fx.MAX_BATCH,
              max_length=fx.MAXIMUM, backends=("wasm",))
    assert f.trace_count == 1
    model = wt.load(tmp_path / "a", backend="wasm")
    for n, L in ((2, 5), (7, 3)):
        got = model.run("predict", fx.ids(n, L))
        for name, want in expected["seq"][f"{n},{L}"].items():
            assert got[name].reshape(-1).tolist() == want, (n, L, name)


def test_a_recurrent_model_exports_predict_with_a_symbolic_batch(tmp_path):
    """``Model.export`` of an Embedding + LSTM + Dense classifier: its predict (a loop carrying one
    state row per batch row) gets a batch section by default, proved on two traces, and runs any
    batch bit for bit as artifacts exported at that fixed batch."""
    nn = wt.nn
    wt.set_seed(0)
    m = nn.Sequential([nn.Input((6,), dtype="int32"), nn.Embedding(20, 4, mask_zero=True), nn.LSTM(5), nn.Dense(2)])
    m(wt.zeros((4, 6), "int32"))
    man = m.export(tmp_path / "sym", batch_size=4)
    assert man["format_version"] == 2 and man["signatures"]["predict"]["batch"] == {"chunk": 4}
    model = wt.load(tmp_path / "sym", backend="wasm")
    for n in (1, 4, 7):
        x = np.random.default_rng(n).integers(0, 20, (n, 6)).astype(np.int32)
        m.export(tmp_path / f"fixed{n}", batch_size=n, symbolic_batch=False)
        want = wt.load(tmp_path / f"fixed{n}", backend="wasm").predict(x)
        np.testing.assert_array_equal(model.predict(x), want)

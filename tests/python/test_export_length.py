"""A symbolic length (docs/artifact.md, "Symbolic length"): one artifact of an Embedding + LSTM/GRU +
Dense model (and a reverse ``scan``) serves every length up to its declared maximum, bit for bit what
artifacts exported at each fixed length give (``tests/export_fixtures_length.py``); the exporter
refuses functions whose steps are not independent, naming the op; loaders refuse a length beyond
the maximum and malformed ``length`` sections."""
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
import export_fixtures_length as fx  # noqa: E402


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("length")
    fx.main(str(d))
    with open(d / "expected.json") as fh:
        return d, json.load(fh)


@pytest.mark.parametrize("kind", ["seq", "rev", "bi"])
def test_one_artifact_equals_fixed_length_artifacts_bitwise(out, kind):
    d, expected = out
    model = wt.load(d / kind, backend="wasm")
    man = json.loads((d / kind / "manifest.json").read_text())["signatures"]["predict"]
    outs = {"seq": [1, -1], "rev": [0, -1], "bi": [-1, -1, 1]}[kind]
    assert man["length"] == {"maximum": 12, "inputs": [1], "outputs": outs}
    assert any(s["while"].get("length") for s in man["control"]["programs"][0]["steps"] if "while" in s)
    for n in fx.LENGTHS:
        got = model.run("predict", fx.ids(n))
        for name, want in expected[kind][str(n)].items():
            assert got[name].reshape(-1).tolist() == want, (kind, n, name)
        assert got["output_0"].shape == {"seq": (2, n, 5), "rev": (n, 2, 8), "bi": (2, 3)}[kind]


def test_matches_the_reference_device(out):
    """Against numpy's reference device (the oracle) at lengths the fixtures did not export; the
    tolerance is 10x the largest difference measured (1.5e-8)."""
    d, _ = out
    fn = fx.functions()["seq"]      # the same seed: the same weights as the artifact's
    model = wt.load(d / "seq", backend="wasm")
    for n in (2, 7, 11):
        got = model.run("predict", fx.ids(n))
        with wt.device("reference"):
            ref = fn(wt.tensor(fx.ids(n)))
        for g, r in zip(got.values(), ref):
            np.testing.assert_allclose(g, r.numpy(), rtol=0, atol=1.5e-7)


def test_lengths_outside_the_maximum_are_refused(out):
    d, _ = out
    model = wt.load(d / "seq", backend="wasm")
    with pytest.raises(ValueError, match=r"length 13 is outside \[1, 12\] \(the artifact's declared maximum length\)"):
        model.run("predict", np.zeros((2, 13), np.int32))
    with pytest.raises(ValueError, match=r"length 0 is outside \[1, 12\]"):
        model.run("predict", np.zeros((2, 0), np.int32))
    with pytest.raises(ValueError, match=r"expected shape \[2, 'length'\] int32, got \[2, 3, 1\]"):
        model.run("predict", np.zeros((2, 3, 1), np.int32))
    with pytest.raises(ValueError, match=r"expected shape \[2, 3\]"):
        model.run("predict", np.zeros((3, 3), np.int32))


def test_nested_lists_and_wrapped_arrays_take_any_length(out):
    d, expected = out
    model = wt.load(d / "seq", backend="wasm")
    got = model.run("predict", fx.ids(5).tolist())
    assert got["output_1"].reshape(-1).tolist() == expected["seq"]["5"]["output_1"]
    assert model.predict([fx.ids(5)])[1].reshape(-1).tolist() == expected["seq"]["5"]["output_1"]   # [x]: one input
    assert model.signatures["predict"]["length"]["maximum"] == 12


def test_webgpu_runs_the_same_artifact(out):
    """WebGPU (lavapipe here) runs the same artifact's WGSL pieces; equal to the fixed-length wasm
    outputs within 10x the largest difference measured (1.5e-8 on lavapipe; 3.0e-8 with earlier ids: WGSL's transcendentals
    differ from wasm's)."""
    pytest.importorskip("wgpu")
    try:
        wt.get_device("webgpu")
    except Exception as e:      # no adapter here
        pytest.skip(f"no WebGPU device: {e}")
    d, expected = out
    for kind in ("seq", "rev", "bi"):
        model = wt.load(d / kind, backend="webgpu")
        for n in fx.LENGTHS:
            got = model.run("predict", fx.ids(n))
            for name, want in expected[kind][str(n)].items():
                np.testing.assert_allclose(got[name].reshape(-1), np.float32(want), rtol=0, atol=3e-7)


# ---- the exporter's proof ----------------------------------------------------------------------------

def _export(fn, tmp_path, spec=((2, None), "int32"), **kw):
    return wt.export(fn, path=tmp_path / "a", input_signature=[wt.TensorSpec(*spec)], backends=("wasm",),
                     **{"max_length": 8, **kw})


@pytest.mark.parametrize("fn, op", [
    (lambda x: wt.reduce_sum(wt.cast(x, "float32"), axis=1), "reduce_sum"),          # a sum over the steps
    (lambda x: wt.reduce_mean(wt.cast(x, "float32"), axis=1), "depends on the length"),  # its 1 / length
    (lambda x: wt.cast(x, "float32")[:, -1], "slice"),                                 # the last step's
    (lambda x: wt.cast(x, "float32") * x.shape[1], "depends on the length"),           # a size read in Python
    (lambda x: wt.reverse(wt.cast(x, "float32"), 1), "output 0 .* holds the steps reversed"),  # padding first
    ((lambda g: lambda x: g(wt.one_hot(x, 3)))(wt.nn.GRU(4, go_backwards=True, return_sequences=True)),
     "holds the steps reversed"),                                                       # processing order
    (lambda x: wt.reverse(wt.cast(x, "float32"), 1)[:, :1], "reads reversed steps by position"),   # the last step
    (lambda x: wt.reverse(wt.cast(x, "float32"), 1) + wt.cast(x, "float32"), "mixes steps in time order and reversed"),
    (lambda x: wt.matmul(wt.expand_dims(wt.cast(x, "float32"), 2), wt.expand_dims(wt.cast(x, "float32"), 1)),
     "grow in one axis"),                                                               # steps x steps
    (lambda x: wt.matmul(wt.transpose(wt.cast(x, "float32")), wt.transpose(wt.cast(x, "float32")), transpose_a=True),
     "matmul"),                                                                         # contracts the steps
])
def test_steps_that_are_not_independent_are_refused(tmp_path, fn, op):
    with pytest.raises(ValueError, match=f"export: signature 'predict': its values are not independent along the "
                                         f"length .*({op})"):
        _export(fn, tmp_path)


def test_a_reversal_reversed_back_takes_any_length(tmp_path):
    """Two reversals of the steps (as Bidirectional's backward sequence) with row-wise work between."""
    fn = lambda x: wt.reverse(wt.reverse(wt.cast(x, "float32"), 1) * 2.0 + 1.0, 1)    # noqa: E731
    man = _export(fn, tmp_path)
    assert man["signatures"]["predict"]["length"]["outputs"] == [1]
    x = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    np.testing.assert_array_equal(wt.load(tmp_path / "a", backend="wasm").run("predict", x)["output_0"], x * 2.0 + 1.0)


def test_elementwise_and_rowwise_work_takes_any_length(tmp_path):
    """No loop at all: one-hot, a Dense per step and a softmax over the features."""
    dense = wt.nn.Dense(3)
    fn = lambda x: wt.softmax(dense(wt.one_hot(x, 4)))       # noqa: E731
    man = _export(fn, tmp_path)
    assert man["signatures"]["predict"]["length"] == {"maximum": 8, "inputs": [1], "outputs": [1]}
    model = wt.load(tmp_path / "a", backend="wasm")
    x = np.array([[0, 3, 1], [2, 2, 0]], np.int32)
    with wt.device("reference"):
        want = fn(wt.tensor(x)).numpy()
    np.testing.assert_allclose(model.run("predict", x)["output_0"], want, rtol=0, atol=1e-6)


def test_a_model_signature_with_a_length_keeps_a_fixed_batch(tmp_path):
    """A model's predict would get a symbolic batch by default; with a length it keeps its batch."""
    nn = wt.nn
    m = nn.Sequential([nn.Embedding(10, 4), nn.Dense(3)])
    m(wt.zeros((2, 3), "int32"))        # built
    man = wt.export(m, path=tmp_path / "m", backends=("wasm",), max_length=6,
                    signatures={"predict": (lambda ids: m(ids), [wt.TensorSpec((2, None), "int32")])})
    sig = man["signatures"]["predict"]
    assert "batch" not in sig and sig["length"] == {"maximum": 6, "inputs": [1], "outputs": [1]}
    x = np.array([[1, 2, 3], [4, 5, 9]], np.int32)
    with wt.device("reference"):
        want = m(wt.tensor(x)).numpy()
    np.testing.assert_allclose(wt.load(tmp_path / "m", backend="wasm").run("predict", x)["output_0"], want,
                               rtol=0, atol=1e-6)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="needs max_length="):
        _export(lambda x: x, tmp_path, max_length=None)
    with pytest.raises(ValueError, match="max_length needs a None past axis 0"):
        _export(lambda x: x, tmp_path, spec=((2, 3), "int32"))
    with pytest.raises(ValueError, match="at most one None past axis 0"):
        _export(lambda x: x, tmp_path, spec=((2, None, None), "int32"))
    for bad in (0, 2 ** 20 + 1, True, 2.0):
        with pytest.raises(ValueError, match="max_length must be an int"):
            _export(lambda x: x, tmp_path, max_length=bad)


# ---- hostile length sections -------------------------------------------------------------------------

def _damaged(src, dst, edit):
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    edit(m["signatures"]["predict"])
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _loop_step(sig):
    return next(s["while"] for s in sig["control"]["programs"][0]["steps"] if "while" in s)


HOSTILE = {
    "maximum off the shapes": (lambda s: s["length"].__setitem__("maximum", 11), "axis 1 is not the maximum length 11"),
    "axis past the rank": (lambda s: s["length"]["outputs"].__setitem__(1, 3), "axis 3 is not the maximum length"),
    "too few entries": (lambda s: s["length"]["outputs"].pop(), "'outputs' has 1 entries for 2 outputs"),
    "no input has it": (lambda s: s["length"]["inputs"].__setitem__(0, -1), "no input has the length"),
    "with a batch": (lambda s: s.__setitem__("batch", {"chunk": 2}), "no 'batch' section|format_version 2"),
    "loop without a section": (lambda s: s.pop("length"), "a loop over the length needs a \"length\" section"),
    "loop past the maximum": (lambda s: _loop_step(s).__setitem__("maximum_iterations", 11),
                              "needs a \"length\" section whose maximum is its maximum_iterations|sequences need"),
    "schema: maximum 0": (lambda s: s["length"].__setitem__("maximum", 0), "length.maximum"),
    "schema: maximum huge": (lambda s: s["length"].__setitem__("maximum", 2 ** 21), "length.maximum"),
    "schema: axis -2": (lambda s: s["length"]["inputs"].__setitem__(0, -2), "length.inputs"),
    "schema: extra key": (lambda s: s["length"].__setitem__("axes", []), "length"),
    "schema: loop length false": (lambda s: _loop_step(s).__setitem__("length", False), "length"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_length_sections_are_refused(out, tmp_path, case):
    d, _ = out
    edit, msg = HOSTILE[case]
    with pytest.raises(ArtifactError, match=msg):
        wt.load(_damaged(d / "seq", tmp_path / "x", edit), backend="wasm")

"""Exported control flow (``cond``, ``while_loop``, ``scan``, nested; docs/artifact.md "Control flow"):
the artifact run by Python's loaders against the traced and eager functions, the loop artifact
against the unrolled one, variables assigned in loops, and hostile control sections.

Oracles: on a wasm device without relaxed-SIMD FMA the traced function runs the same kernels as the
artifact, so ``tests/export_fixtures_control.py`` asserts equality bit for bit (for every input, and
the JS test repeats it in Node); eager (op by op, unfused) measured equal bit for bit too on these
cases, so it is compared exactly; WebGPU (lavapipe) measured at most 1.8e-7 from wasm (tolerance
2e-6).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

import webtensor as wt
from webtensor import artifact_control, safetensors_io
from webtensor.artifact import ArtifactError

pytest.importorskip("wasmtime")
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("export_fixtures_control",
                                               os.path.join(HERE, "..", "export_fixtures_control.py"))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("control"))
    return out, F.main(out, backends=("wasm", "webgpu"))


def _flat(outs):
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [np.asarray(o) for o in outs]


@pytest.mark.parametrize("name", ["loop", "unbounded", "branch", "scan", "nested"])
def test_artifact_matches_the_eager_function(exported, name):
    out, _ = exported
    with wt.device(F.exact_device(wt)):
        fn, runs = F.cases(wt)[name]
        art = wt.load(os.path.join(out, name), backend="wasm")
        for args in runs:
            want = _flat(fn(*[wt.tensor(a) for a in args]))
            got = _flat(art.predict(*args))
            for g, e in zip(got, want):
                assert g.shape == e.shape and g.dtype == e.dtype
                np.testing.assert_array_equal(g, e)


def test_a_loop_artifact_equals_the_unrolled_one_bit_for_bit(tmp_path):
    w = np.array([[0.5, -0.2], [0.1, 0.3]], np.float32)
    x = np.array([[0.3, -0.7], [1.0, 0.2]], np.float32)
    with wt.device(F.exact_device(wt)):
        v = wt.Variable(w)

        def looped(x):
            return wt.scan(lambda h, r: wt.tanh(wt.matmul(h, v) + r), wt.stack([x] * 5), initializer=x)[-1]

        def unrolled(x):
            h = x
            for _ in range(5):
                h = wt.tanh(wt.matmul(h, v) + x)
            return h
        m = wt.export(looped, (x,), tmp_path / "loop", backends=("wasm",))
        wt.export(unrolled, (x,), tmp_path / "flat", backends=("wasm",))
        a = wt.load(tmp_path / "loop", backend="wasm").predict(x)
        b = wt.load(tmp_path / "flat", backend="wasm").predict(x)
    assert "control" in m["signatures"]["predict"]
    assert a.tobytes() == b.tobytes()


def test_variables_read_in_loops_are_not_copied_and_assigned_ones_are_updated(tmp_path):
    x = np.array([1.0, 2.0], np.float32)
    with wt.device(F.exact_device(wt)):
        w = wt.Variable(np.array([0.5, 0.25], np.float32), name="w")
        count = wt.Variable(np.float32(0), name="count")

        def f(x):
            def body(i, h):
                count.assign_add(1.0)
                return i + 1, h * w + 1.0
            return wt.while_loop(lambda i, h: i < 3, body, (wt.tensor(0), x), maximum_iterations=3)[1]
        m = wt.export(f, (x,), tmp_path / "a", backends=("wasm",))
        want = [np.asarray(f(wt.tensor(x))) for _ in range(2)]
        c = m["signatures"]["predict"]["control"]
        w_index = [v["name"] for v in m["variables"]].index("state/w")
        # w is read in place by the body's piece (not a loop operand), count is carried and written back
        assert any(w_index in p.get("reads", []) for p in c["pieces"])
        assert [u[0] for u in c["updates"]] == [[v["name"] for v in m["variables"]].index("state/count")]
        art = wt.load(tmp_path / "a", backend="wasm")
        got = [art.predict(x) for _ in range(2)]
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert art.get_weights()["state/count"] == 6.0


@pytest.mark.parametrize("name", ["scan", "nested"])
def test_webgpu_loader_runs_control_flow(exported, name):
    pytest.importorskip("wgpu")
    try:
        wt.get_device("webgpu")
    except (ImportError, RuntimeError) as e:
        pytest.skip(f"no webgpu device: {e}")
    out, expected = exported
    art = wt.load(os.path.join(out, name), backend="webgpu")
    _, runs = F.cases(wt)[name]
    for args, want in zip(runs, expected[name]["outputs"]):
        for g, e in zip(_flat(art.predict(*args)), want):
            np.testing.assert_allclose(g.ravel(), np.asarray(e, g.dtype), rtol=0, atol=2e-6)


def test_int8_weights_with_control_flow_are_refused(tmp_path):
    f = wt.function(lambda x: wt.while_loop(lambda y: wt.reduce_sum(y) < 10.0, lambda y: y * 2.0, [x])[0])
    with pytest.raises(NotImplementedError, match="int8"):
        wt.export(f, (wt.tensor([1.0]),), path=tmp_path / "a", weights_dtype="int8")


# ---- hostile control sections ------------------------------------------------------------------------

def _damaged(src, dst, edit):
    """A copy of artifact ``src`` whose manifest's control section ``edit`` changed (re-signed: the
    files are intact, so only the control checks can refuse it)."""
    shutil.copytree(src, dst)
    with open(os.path.join(dst, "manifest.json")) as fh:
        m = json.load(fh)
    edit(m["signatures"]["predict"]["control"])
    with open(os.path.join(dst, "manifest.json"), "w") as fh:
        json.dump(m, fh)
    return dst


def _while(c):
    return next(s["while"] for s in c["programs"][0]["steps"] if "while" in s)


def _set(d, key, value):
    d[key] = value


HOSTILE = {
    "cycle": ("loop", lambda c: c["pieces"][0]["inputs"].append(c["pieces"][0]["outputs"][0]), "used before it is defined"),
    "unknown value": ("loop", lambda c: c["programs"][0]["outputs"].__setitem__(0, 99999), "used before it is defined"),
    "program runs itself": ("loop", lambda c: _set(_while(c), "body", _while(c)["cond"]), "is used twice"),
    "unknown program": ("loop", lambda c: _set(_while(c), "body", 9999), "program 9999 does not exist"),
    "piece twice": ("branch", lambda c: c["programs"][2]["steps"].append({"piece": c["programs"][1]["steps"][0]["piece"]}),
                    "is run twice"),
    "unknown piece": ("branch", lambda c: c["programs"][0]["steps"].insert(0, {"piece": 500}), "piece 500 does not exist"),
    "absurd bound": ("loop", lambda c: _set(_while(c), "maximum_iterations", 2 ** 31 - 1), "over this loader's cap"),
    "unbounded stack": ("scan", lambda c: _while(c).pop("maximum_iterations"), "maximum_iterations"),
    "bound past the sequence": ("scan", lambda c: _set(_while(c), "maximum_iterations", 50), "first dimension"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_control_sections_raise_artifact_errors(exported, tmp_path, case):
    name, edit, message = HOSTILE[case]
    path = _damaged(os.path.join(exported[0], name), tmp_path / "a", edit)
    with pytest.raises(ArtifactError, match=message):
        wt.load(path, backend="wasm")


def test_a_loop_that_never_stops_hits_the_loader_cap(exported, monkeypatch):
    art = wt.load(os.path.join(exported[0], "unbounded"), backend="wasm")
    monkeypatch.setattr(artifact_control, "MAX_ITERATIONS", 1000)     # the default takes seconds to reach
    with pytest.raises(ArtifactError, match="more than 1000 iterations"):
        art.predict(np.full((2, 3), -np.inf, np.float32))       # y = 2y + 0.5 while max(y) < 10
    np.testing.assert_array_equal(art.predict(np.ones((2, 3), np.float32)), np.full((2, 3), 11.5, np.float32))


def test_a_large_uniform_constant_is_stored_as_one_element(tmp_path):
    """A loop's zero initial value (16 x 16 here) is written by a fill piece, not stored in the weights."""
    x = np.arange(3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16) / 100
    with wt.device(F.exact_device(wt)):
        f = wt.function(lambda x: wt.scan(lambda a, r: a * 0.5 + r, x, initializer=wt.ones([16, 16]) * 2.0)[-1])
        want = np.asarray(f(wt.tensor(x)))
        wt.export(f, (x,), tmp_path / "a", backends=("wasm", "webgpu"))
        got = wt.load(tmp_path / "a", backend="wasm").predict(x)
    np.testing.assert_array_equal(got, want)
    with open(tmp_path / "a" / "weights.safetensors", "rb") as fh:
        stored, _ = safetensors_io.load(fh.read())
    assert all(len(data) < 16 * 16 * 4 for _, _, data in stored.values()), {k: s for k, (_, s, _) in stored.items()}

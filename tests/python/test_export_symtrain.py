"""Train steps that take any batch up to their chunk (docs/artifact.md "Symbolic batch: train steps"):
a model exported with ``symbolic_batch=True`` has a ``train_step`` compiled for a chunk whose loss
counts only the first ``row_count`` rows; Python's wasm loader pads ``n`` rows and gives the weights
that ``fit`` on those ``n`` rows gives (``tests/export_fixtures_symtrain.py``); a forward that mixes
rows is refused at export; hostile manifests are refused (also ``tests/artifact_corpus``)."""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor.artifact import ArtifactError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import export_fixtures_symtrain as fx  # noqa: E402

# WebAssembly: the padded chunk gives fit's bits on n rows (measured: equal in every bit, both models,
# every step; padding adds exact zeros). WebGPU (lavapipe) sums in another order than the reference:
# measured at most 2.4e-6 (loss) and 1.5e-6 (weights) over these steps; a wrong row count or a
# padding row that counts is 1e-3 off.
TOL = {"wasm": 0.0, "webgpu": 1e-5}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("symtrain")
    fx.main(str(d))
    return d, json.loads((d / "expected.json").read_text())


def _steps(model, kind, e):
    for (x, y), want, n in zip(fx.batches(kind), e[kind]["after"], fx.STEPS):
        loss = float(np.asarray(model.train_step(x, y)))
        got = model.get_weights()
        yield n, loss, want, max(float(np.abs(got[p] - np.asarray(w, np.float32).reshape(got[p].shape)).max())
                                 for p, w in want["weights"].items())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_train_step_at_5_32_1_rows_equals_fit_bitwise(out, kind):
    d, e = out
    man = json.loads((d / kind / "manifest.json").read_text())
    sig = man["signatures"]["train_step"]
    assert man["format_version"] == 2
    assert sig["batch"] == {"chunk": fx.CHUNK, "maximum": fx.CHUNK, "rows_input": 2}
    assert sig["inputs"][2] == {"name": "row_count", "dtype": "int32", "shape": []}
    assert sig["wasm"]["rows_driver"] == "__rows_train_step"      # steps under the chunk run their own rows
    m = wt.load(str(d / kind), backend="wasm")
    assert m._backend.takes_rows("train_step")
    assert [s["name"] for s in m.signatures["train_step"]["inputs"]] == ["x", "y"]     # the row count is hidden
    w0 = m.get_weights()
    for n, loss, want, diff in _steps(m, kind, e):
        assert loss == want["loss"] and diff == 0.0, (n, loss, want["loss"], diff)
    moved = max(float(np.abs(m.get_weights()[p] - w0[p]).max()) for p in w0)
    assert moved > 1e-3        # the steps did train


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_webgpu_train_step_at_5_32_1_rows_equals_fit(out, kind):
    pytest.importorskip("wgpu")
    d, e = out
    try:
        m = wt.load(str(d / kind), backend="webgpu")
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"no webgpu device: {err}")
    assert m._backend.takes_rows("train_step")       # kernels with "rows", zeroing passes before the sums
    for n, loss, want, diff in _steps(m, kind, e):
        assert abs(loss - want["loss"]) <= TOL["webgpu"] * max(1.0, abs(want["loss"])), (n, loss, want["loss"])
        assert diff <= TOL["webgpu"], (n, diff)


def test_padding_rows_do_not_count(out):
    """The same 5 rows with the chunk's padding rows filled by other data give the same step: run the
    signature directly with 32 rows and a row count of 5 (what the loader does, other padding)."""
    d, e = out
    (x, y), want = fx.batches("mlp")[0], e["mlp"]["after"][0]
    rng = np.random.default_rng(1)
    xs = np.concatenate([x, 100 * rng.standard_normal((fx.CHUNK - 5, 6)).astype(np.float32)])
    ys = np.concatenate([y, np.full(fx.CHUNK - 5, 2, np.int32)])
    m = wt.load(str(d / "mlp"), backend="wasm")
    sig = m._manifest["signatures"]["train_step"]
    data = [m._value(v, s, "test") for v, s in zip((xs, ys, 5), sig["inputs"])]
    loss = np.frombuffer(bytes(m._backend.run("train_step", data)[0]), np.float32)[0]
    assert loss == want["loss"]     # bit for bit, whatever the padding rows hold
    got = m.get_weights()
    assert all(np.array_equal(got[p], np.asarray(w, np.float32).reshape(got[p].shape)) for p, w in want["weights"].items())


def _state(m) -> bytes:
    return b"".join(m._backend.read_variables(list(range(len(m._manifest["variables"])))))


@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_run_time_rows_equal_the_padded_chunk_bitwise(out, kind, backend):
    """Run-time rows (docs/artifact.md "Run-time rows: train steps": row-wise kernels over the first
    n rows, gradient sums over them or over zeroed rows; WebGPU: kernels with "rows" and zeroing
    passes) against the padded chunk on the same backend, two copies of the artifact: the same loss
    and every variable (optimizer slots included) in every byte, step after step, at 1, 5, 31, 32
    and 3 rows."""
    d, _ = out
    if backend == "webgpu":
        pytest.importorskip("wgpu")
    try:
        rows, padded = wt.load(str(d / kind), backend=backend), wt.load(str(d / kind), backend=backend)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"no webgpu device: {err}")
    assert rows._backend.takes_rows("train_step")
    sig = padded._manifest["signatures"]["train_step"]
    rng = np.random.default_rng(5)
    row, target = fx.SHAPES[kind]
    for n in (1, 5, 31, 32, 3):
        x = rng.standard_normal((n,) + row).astype(np.float32)
        y = rng.integers(0, 3, n).astype(np.int32) if kind == "mlp" else \
            rng.standard_normal((n,) + target).astype(np.float32)
        got = np.float32(np.asarray(rows.train_step(x, y)))
        pad = [np.concatenate([v, np.repeat(v[:1], fx.CHUNK - n, 0)]) for v in (x, y)]
        data = [padded._value(v, s, "test") for v, s in zip((*pad, n), sig["inputs"])]
        want = np.frombuffer(bytes(padded._backend.run("train_step", data)[0]), np.float32)[0]
        assert got.tobytes() == want.tobytes(), (n, got, want)
        assert _state(rows) == _state(padded), n


def test_run_time_rows_with_threads_equal_fit_bitwise(out, tmp_path):
    """module_threads.wasm's rows driver (tiles past the run-time end not run, the zeroing between
    rounds) on 2 threads: fit's bits, as one thread."""
    _, e = out
    with wt.device(fx.device()):
        fx.model("mlp").export(str(tmp_path / "t"), batch_size=fx.CHUNK, backends=("wasm",), symbolic_batch=True,
                               wasm_threads=True)
    wt.config.threading.set_intra_op_parallelism_threads(2)
    try:
        m = wt.load(str(tmp_path / "t"), backend="wasm")
    finally:
        wt.config.threading.set_intra_op_parallelism_threads(0)
    assert m._backend.threads == 2 and m._backend.takes_rows("train_step")
    for n, loss, want, diff in _steps(m, "mlp", e):
        assert loss == want["loss"] and diff == 0.0, (n, loss, want["loss"], diff)


def test_row_sum_proof():
    """``core.runtime.artifacts.row_sum``: what a train step's gradient sums are (products and sums of
    zeroed loads) passes; a term that is not 0 at zeroed rows, a product with a value not proved
    finite, a constant's rows, another combiner or an epilogue reading rows fail."""
    from webtensor.core import kernel_ir as K
    from webtensor.core.dtypes import float32
    from webtensor.core.runtime.artifacts import row_sum
    a, b, w = (K.Buffer((8, 4), float32), K.Buffer((8, 3), float32), K.Buffer((4, 3), float32))
    i = K.idx

    def ld(k, *ix):
        return K.load(k, ix, float32)
    dw = K.reduce_kernel((a, b), K.Buffer((4, 3), float32), (8,), K.binary("mul", ld(0, i(2), i(0)), ld(1, i(2), i(1))), "sum")
    assert row_sum(dw, [True, True], [True, True])
    assert not row_sum(dw, [True, False], [True, True])          # a constant's rows (not zeroed) are read
    bias = K.reduce_kernel((b,), K.Buffer((3,), float32), (8,), K.unary("neg", ld(0, i(1), i(0))), "sum")
    assert row_sum(bias, [True], [True])
    scaled = K.reduce_kernel((b,), K.Buffer((3,), float32), (8,), K.binary("mul", ld(0, i(1), i(0)), K.const(0.5, float32)), "sum")
    assert row_sum(scaled, [True], [True])
    for expr in (K.exp(ld(0, i(1), i(0))),                                          # exp(0) = 1
                 K.binary("mul", ld(0, i(1), i(0)), ld(1, i(1), i(1))),            # 0 * w: w may be inf
                 K.binary("add", ld(0, i(1), i(0)), K.const(1.0, float32)),
                 K.where(K.binary("gt", ld(0, i(1), i(0)), K.const(0.0, float32)), ld(0, i(1), i(0)), K.const(1.0, float32))):
        k = K.reduce_kernel((b, w), K.Buffer((3,), float32), (8,), expr, "sum")
        assert not row_sum(k, [True, False], [True, False]), expr
    assert row_sum(K.reduce_kernel((b, w), K.Buffer((3,), float32), (8,),
                                   K.where(K.binary("gt", ld(1, i(0), i(0)), K.const(0.0, float32)), ld(0, i(1), i(0)),
                                           K.const(0.0, float32)), "sum"), [True, False], [True, False])
    assert not row_sum(K.reduce_kernel((b,), K.Buffer((3,), float32), (8,), ld(0, i(1), i(0)), "max"), [True], [True])


def test_rows_beyond_the_chunk_or_none_are_refused(out):
    d, _ = out
    m = wt.load(str(d / "mlp"), backend="wasm")
    x = np.zeros((fx.CHUNK + 1, 6), np.float32)
    with pytest.raises(ValueError, match=r"batch size 33 is outside \[1, 32\] \(the artifact's declared maximum\)"):
        m.train_step(x, np.zeros(fx.CHUNK + 1, np.int32))
    with pytest.raises(ValueError, match="batch size 0 is outside"):
        m.train_step(x[:0], np.zeros(0, np.int32))
    with pytest.raises(ValueError, match="different batch sizes"):
        m.train_step(x[:4], np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"takes 2 input\(s\) \(x, y\), got 3"):
        m.run("train_step", x[:4], np.zeros(4, np.int32), 4)


def test_predict_keeps_its_batch_section(out):
    d, _ = out
    m = wt.load(str(d / "cnn"), backend="wasm")
    assert m.predict(np.zeros((40, 6, 6, 1), np.float32)).shape == (40, 4)


def _compiled(layers, loss="sparse_categorical_crossentropy"):
    nn = wt.nn
    m = nn.Sequential([nn.Input((6,))] + layers)
    m.compile("adam", loss)
    return m


@pytest.mark.parametrize("layers,op", [
    (lambda nn: [nn.Dense(4), nn.BatchNormalization(), nn.Dense(3)], "reduces over batch"),
    (lambda nn: [nn.Dense(4), nn.Lambda(lambda x: x - wt.mean(x, axis=0)), nn.Dense(3)], "reduces over batch"),
    (lambda nn: [nn.Dense(4), nn.Lambda(lambda x: wt.cumsum(x, axis=0)), nn.Dense(3)], "mixes rows"),
])
def test_forward_that_mixes_rows_is_refused(tmp_path, layers, op):
    m = _compiled(layers(wt.nn))
    with pytest.raises(ValueError, match=f"train_step' cannot take any batch size: its forward pass and per-example "
                                         f"loss mix rows .*{op}"):
        m.export(str(tmp_path / "a"), batch_size=8, backends=("wasm",), symbolic_batch=True, signatures=["train_step"])
    man = m.export(str(tmp_path / "b"), batch_size=8, backends=("wasm",), signatures=["train_step"])   # the default: fixed
    assert "batch" not in man["signatures"]["train_step"]


def test_custom_loss_is_refused(tmp_path):
    class Custom(wt.nn.Sequential):
        def compute_loss(self, x, y, y_pred, sample_weight=None):
            return super().compute_loss(x, y, y_pred, sample_weight) * 2.0
    m = Custom([wt.nn.Input((6,)), wt.nn.Dense(3)])
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="overrides compute_loss"):
        m.export(str(tmp_path / "a"), batch_size=8, backends=("wasm",), symbolic_batch=True)


@pytest.mark.parametrize("edit,msg", [
    (lambda b, s: b.pop("maximum"), "needs a 'maximum' of at most its chunk"),
    (lambda b, s: b.update(maximum=b["chunk"] + 1), "needs a 'maximum' of at most its chunk"),
    (lambda b, s: b.update(rows_input=0), "must be the index of an int32 input of shape"),
    (lambda b, s: b.update(rows_input=3), "must be the index of an int32 input of shape"),
    (lambda b, s: s["inputs"][2].update(dtype="float32"), "must be the index of an int32 input of shape"),
])
def test_hostile_rows_input_is_refused(out, tmp_path, edit, msg):
    d, _ = out
    art = tmp_path / "a"
    shutil.copytree(d / "mlp", art)
    man = json.loads((art / "manifest.json").read_text())
    sig = man["signatures"]["train_step"]
    edit(sig["batch"], sig)
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match=msg):
        wt.load(str(art), backend="wasm")

"""Artifacts with a symbolic batch (format version 2, docs/artifact.md "Symbolic batch"): ``predict``
of a model takes any batch, run as chunks of the compiled rows (padded, then sliced), bitwise equal
to the model's row-by-row outputs on the same WebAssembly code; signatures whose rows are not
independent keep their size; hostile ``batch`` sections are refused."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import webtensor as wt
from webtensor.artifact import ArtifactError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import export_fixtures_symbolic as fx  # noqa: E402
from webgpu_rows_cases import CASES as ROWS_CASES  # noqa: E402  (shared with js/test/exported_symbolic.test.js)

from webtensor.webgpu.emit import rows_workgroups  # noqa: E402


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("symbolic")
    fx.main(str(d))
    return d, json.loads((d / "expected.json").read_text())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_any_batch_equals_row_by_row_bitwise(out, kind):
    d, e = out
    man = json.loads((d / kind / "manifest.json").read_text())
    pred = man["signatures"]["predict"]
    assert man["format_version"] == 2 and pred["inputs"][0]["shape"] == [fx.CHUNK, 6, 6, 1]
    assert pred["batch"] == ({"chunk": fx.CHUNK, "maximum": fx.MAXIMUM} if kind == "cnn" else {"chunk": fx.CHUNK})
    assert "batch" not in man["signatures"]["train_step"]       # its loss is a mean over the batch
    x = np.asarray(e["x"], np.float32).reshape(fx.ROWS, 6, 6, 1)
    want = np.asarray(e[kind], np.float32).reshape(fx.ROWS, 5)
    art = wt.load(d / kind, backend="wasm")
    for b in (1, 5, 8, 13):
        got = art.predict(x[:b])
        assert got.shape == (b, 5) and got.dtype == np.float32
        np.testing.assert_array_equal(got, want[:b])
    np.testing.assert_array_equal(art.predict([x[:5]]), want[:5])     # [x]: a list of the one input
    runs = art.runs
    art.predict(x[:9])
    assert art.runs - runs == 3         # ceil(9 / 4) chunks
    with pytest.raises(ValueError, match=r"input 'x': expected shape \['batch', 6, 6, 1\]"):
        art.predict(x[:3, :5])
    with pytest.raises(ValueError, match=r"batch size 0 is outside"):
        art.predict(x[:0])
    with pytest.raises(ValueError, match=r"takes 2 input|expected shape \[4, 6, 6, 1\]"):
        art.train_step(x[:5], np.zeros(5, np.int32))   # train_step keeps its traced batch


def test_declared_maximum(out):
    d, e = out
    x = np.zeros((14, 6, 6, 1), np.float32)
    art = wt.load(d / "cnn", backend="wasm")
    with pytest.raises(ValueError, match=r"batch size 14 is outside \[1, 13\] \(the artifact's declared maximum\)"):
        art.predict(x)
    assert wt.load(d / "mlp", backend="wasm").predict(np.zeros((40, 6, 6, 1), np.float32)).shape == (40, 5)


def test_webgpu_runs_chunks(tmp_path):
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((3, 2)).astype(np.float32)
    wt.export(lambda x: wt.softmax(wt.matmul(x, wt.tensor(w)), axis=-1), (x,), tmp_path / "f", backends=("webgpu",),
              symbolic_batch=True)
    art = wt.load(tmp_path / "f", backend="webgpu")
    y = np.random.default_rng(4).standard_normal((6, 3)).astype(np.float32)
    z = y @ w
    want = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(art.predict(y), want / want.sum(1, keepdims=True), rtol=2e-6, atol=1e-7)


def test_functions_and_refusals(tmp_path):
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    man = wt.export(lambda x: wt.tanh(x) * 2.0, (x,), tmp_path / "f", backends=("wasm",), symbolic_batch=True)
    assert man["signatures"]["predict"]["batch"] == {"chunk": 4}
    art = wt.load(tmp_path / "f", backend="wasm")
    y = np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)
    np.testing.assert_allclose(art.predict(y), np.tanh(y) * 2, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"cannot take any batch size: reduce_sum .* reduces over batch"):
        wt.export(lambda x: x - wt.mean(x, axis=0), (x,), tmp_path / "g", backends=("wasm",), symbolic_batch=True)
    man = wt.export(lambda x: x * 2.0, (x,), tmp_path / "h", backends=("wasm",))
    assert man["format_version"] == 1 and "batch" not in man["signatures"]["predict"]   # functions: fixed by default
    with pytest.raises(ValueError, match="max_batch"):
        wt.export(lambda x: x, (x,), tmp_path / "i", backends=("wasm",), symbolic_batch=True, max_batch=0)


def _resign(path, edit):
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(format_version=1), "needs format_version 2"),
    (lambda m: m["signatures"]["predict"].update(batch={"chunk": 3}), "its batch chunk is 3 rows"),
    (lambda m: m["signatures"]["predict"].update(batch={"chunk": -4}), "chunk: must be at least 1"),
    (lambda m: m["signatures"]["predict"].update(batch={"chunk": 2 ** 40}), "chunk: must be at most"),
    (lambda m: m["signatures"]["predict"].update(batch={"chunk": 4, "relations": []}), "relations"),
    (lambda m: m["signatures"]["train_step"].update(batch={"chunk": 4}), "'loss' has shape \\[\\]"),
])
def test_hostile_batch_sections(out, tmp_path, edit, message):
    import shutil
    d, _ = out
    shutil.copytree(d / "mlp", tmp_path / "a")
    _resign(tmp_path / "a", edit)
    with pytest.raises(ArtifactError, match=message):
        wt.load(tmp_path / "a", backend="wasm")


def test_export_with_an_input_signature(tmp_path):
    w = np.random.default_rng(6).standard_normal((3, 2)).astype(np.float32)
    man = wt.export(lambda x: wt.matmul(x, wt.tensor(w)), path=tmp_path / "f", backends=("wasm",), batch_size=4,
                    input_signature=[wt.TensorSpec([None, 3], name="x")])
    assert man["signatures"]["predict"]["batch"] == {"chunk": 4}
    assert man["signatures"]["predict"]["inputs"][0]["shape"] == [4, 3]
    y = np.random.default_rng(7).standard_normal((10, 3)).astype(np.float32)
    np.testing.assert_allclose(wt.load(tmp_path / "f", backend="wasm").predict(y), y @ w, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"a None past axis 0 is a length, which needs max_length="):
        wt.export(lambda x: x, path=tmp_path / "g", input_signature=[wt.TensorSpec([2, None])])
    with pytest.raises(TypeError, match="list of webtensor.TensorSpec"):
        wt.export(lambda x: x, path=tmp_path / "h", input_signature=[(None, 3)])


# ---- run-time rows (docs/artifact.md "Run-time rows") ---------------------------------------------

@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    wt.config.threading.set_intra_op_parallelism_threads(request.param)
    yield request.param
    wt.config.threading.set_intra_op_parallelism_threads(0)        # back to the default ($WEBTENSOR_NUM_THREADS or 1)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "cnn28"])
def test_run_time_rows_equal_fixed_and_padded_bitwise(out, kind, threads):
    """The last partial chunk runs only its rows (the rows driver) and gives the bits of a fixed-shape
    artifact for exactly that batch and of the padded path, on one thread and on two (cnn28's
    convolution is split into tiles, the last cut at the run-time end)."""
    d, e = out
    rows = e["rows"][kind]
    shape = (28, 28, 1) if kind == "cnn28" else (6, 6, 1)
    x = np.asarray(rows["x"], np.float32).reshape((-1,) + shape)
    art = wt.load(d / "rows" / kind, backend="wasm")
    padded = wt.load(d / "rows" / f"{kind}_padded", backend="wasm")
    assert art._backend.takes_rows("predict") and not padded._backend.takes_rows("predict")
    assert art.stats()["wasm_threads"] == threads
    for b in fx.RUN_TIME_BATCHES:
        want = np.asarray(rows[str(b)], np.float32).reshape(b, -1)
        got = art.predict(x[:b])
        np.testing.assert_array_equal(got, want, err_msg=f"batch {b}")
        np.testing.assert_array_equal(padded.predict(x[:b]), want, err_msg=f"batch {b}, padded")
    runs = art.runs
    art.predict(x[:33])
    assert art.runs - runs == 2         # a whole chunk, then one row


def test_rows_driver_refuses_rows_outside_the_chunk(out):
    d, _ = out
    art = wt.load(d / "rows" / "mlp", backend="wasm")
    b = art._backend
    row = 36 * 4                        # bytes of one 6x6x1 float32 row
    for rows in (0, 33, -1):
        with pytest.raises(ValueError, match=f"cannot run {rows} rows"):
            b.run("predict", [bytes(row)], rows)
    with pytest.raises(ArtifactError, match="trapped"):      # the driver itself checks 1 <= rows <= chunk
        b._call("predict", 33)


def test_run_time_rows_only_where_kernels_loop_over_rows(tmp_path):
    """A batched matmul's template loops over the rows of each matrix, not over the batch: no rows
    driver (chunks padded, still exact); a 3-D one by a constant matrix folds its batch into rows
    (wasm/matmul.py ``_fold_batch``), and it and a 2-D one get it; a 1-row chunk needs none."""
    w = np.random.default_rng(8).standard_normal((5, 3)).astype(np.float32)
    x3 = np.random.default_rng(9).standard_normal((4, 8, 5)).astype(np.float32)
    y = np.random.default_rng(10).standard_normal((6, 8, 5)).astype(np.float32)
    gram = lambda x: wt.matmul(x, wt.transpose(x, (0, 2, 1)))
    man = wt.export(gram, (x3,), tmp_path / "a", backends=("wasm",), symbolic_batch=True)
    assert "rows_driver" not in man["signatures"]["predict"]["wasm"]
    np.testing.assert_allclose(wt.load(tmp_path / "a", backend="wasm").predict(y), y @ y.transpose(0, 2, 1),
                               rtol=1e-5, atol=1e-5)
    man = wt.export(lambda x: wt.matmul(x, wt.tensor(w)), (x3,), tmp_path / "f", backends=("wasm",), symbolic_batch=True)
    assert man["signatures"]["predict"]["wasm"]["rows_driver"] == "__rows_predict"
    np.testing.assert_allclose(wt.load(tmp_path / "f", backend="wasm").predict(y), y @ w, rtol=1e-5, atol=1e-5)
    man = wt.export(lambda x: wt.matmul(x, wt.tensor(w)), (x3[:, 0],), tmp_path / "b", backends=("wasm",),
                    symbolic_batch=True)
    assert man["signatures"]["predict"]["wasm"]["rows_driver"] == "__rows_predict"
    man = wt.export(lambda x: wt.matmul(x, wt.tensor(w)), (x3[:1, 0],), tmp_path / "c", backends=("wasm",),
                    symbolic_batch=True)
    assert "rows_driver" not in man["signatures"]["predict"]["wasm"]


@pytest.mark.parametrize("kind", ["mlp", "cnn28"])
def test_webgpu_run_time_rows_equal_the_padded_chunk_bitwise(out, kind):
    """WebGPU kernels that take their rows at run time (docs/artifact.md "Run-time rows: WebGPU"): a
    last partial chunk (and a batch under the chunk) runs its own rows with fewer workgroups, bit
    for bit what the padded chunk gives those rows; close to the fixed-shape wasm artifacts
    (another backend's sums: float32 rounding, measured below 1e-6 on lavapipe). cnn28's dense
    layer is a split-K matmul whose batch is M."""
    pytest.importorskip("wgpu")
    d, e = out
    rows = e["rows"][kind]
    shape = (28, 28, 1) if kind == "cnn28" else (6, 6, 1)
    x = np.asarray(rows["x"], np.float32).reshape((-1,) + shape)
    try:
        art = wt.load(d / "rows" / kind, backend="webgpu")
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"no WebGPU adapter: {err}")
    b = art._backend
    assert b.takes_rows("predict")
    whole, one = b.dispatches("predict"), b.dispatches("predict", 1)
    count = lambda ds: sum(d[0] * d[1] * d[2] for d in ds)      # noqa: E731
    assert all(o[i] <= w[i] for o, w in zip(one, whole) for i in range(3))
    if kind == "cnn28":     # the mlp's 32-row chunk is one workgroup per kernel already
        assert whole[0] == (85, 1, 1) and one[0] == (3, 1, 1)      # 676 pixels x 4 channels / 4 lanes / 256
        assert count(one) < count(whole) / 10
    assert b.dispatches("predict", fx.ROWS_CHUNK) == whole
    row = x[0].nbytes
    for n in (1, 5, 33):
        got = art.predict(x[:n])
        last = n - (n - 1) // fx.ROWS_CHUNK * fx.ROWS_CHUNK
        tail = x[n - last:n]
        padded = b.run("predict", [tail.tobytes() + bytes((fx.ROWS_CHUNK - last) * row)])[0]
        padded = np.frombuffer(padded, np.float32).reshape(fx.ROWS_CHUNK, -1)[:last]
        np.testing.assert_array_equal(got[n - last:], padded, err_msg=f"batch {n}")
        np.testing.assert_allclose(got, np.asarray(rows[str(n)], np.float32).reshape(n, -1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="cannot run 33 rows"):
        b.run("predict", [x[:33].tobytes()], 33)


def _bmm(w):
    return lambda x: wt.matmul(x, wt.tensor(w))


@pytest.mark.parametrize("case", ["batched-matmul", "split-sum", "argmax", "int8-tiled"])
def test_webgpu_run_time_rows_in_each_lowering(tmp_path, case):
    """Each lowering's run-time rows (webgpu/wgsl.py ``lower(..., chunk)``) on lavapipe: a 3-D matmul
    (batch in the workgroups' leading dimension; the wasm rows driver has none for it), a sum over
    few long rows (two passes, partial sums), argmax, and int8 weights (the q8 template's
    shared-memory tiles, the batch in M): every batch gives the padded chunk's bits for its rows,
    and numpy's values."""
    pytest.importorskip("wgpu")
    rng = np.random.default_rng(11)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    if case == "int8-tiled":
        wt.set_seed(1)
        m = wt.nn.Sequential([wt.nn.Input((40,)), wt.nn.Dense(64, activation="relu"), wt.nn.Dense(64)])
        man = m.export(tmp_path / "a", batch_size=32, backends=("webgpu",), signatures=["predict"], weights_dtype="int8")
        x = rng.standard_normal((40, 40)).astype(np.float32)
        want, rtol, atol = m.predict_on_batch(x).numpy(), 0.05, 0.05     # int8 weights: a 1/127 quantization step
    else:
        fn, x = {"batched-matmul": (_bmm(w), rng.standard_normal((16, 8, 5))),
                 "split-sum": (lambda x: wt.reduce_sum(x, axis=-1), rng.standard_normal((4, 16384))),
                 "argmax": (lambda x: wt.argmax(x, axis=-1), rng.standard_normal((16, 33)))}[case]
        x = x.astype(np.float32)
        man = wt.export(fn, (x,), tmp_path / "a", backends=("webgpu",), symbolic_batch=True)
        x = np.concatenate([x, x[:3] * 2])
        want = {"batched-matmul": lambda: x @ w, "split-sum": lambda: x.sum(-1, dtype=np.float64),
                "argmax": lambda: x.argmax(-1)}[case]()
        rtol, atol = 1e-5, 1e-3 if case == "split-sum" else 1e-6       # a float32 sum of 16384 normals
    kernels = man["signatures"]["predict"]["webgpu"]["kernels"]
    assert kernels and all("rows" in k for k in kernels)
    chunk = man["signatures"]["predict"]["batch"]["chunk"]
    try:
        art = wt.load(tmp_path / "a", backend="webgpu")
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"no WebGPU adapter: {err}")
    b, row = art._backend, x[0].nbytes
    for n in (1, chunk - 1, chunk + 3):
        got = art.predict(x[:n])
        last = n - (n - 1) // chunk * chunk
        out = b.run("predict", [x[n - last:n].tobytes() + bytes((chunk - last) * row)])[0]
        padded = np.frombuffer(out, got.dtype).reshape((chunk,) + got.shape[1:])[:last]
        np.testing.assert_array_equal(got[n - last:], padded, err_msg=f"batch {n}")
        np.testing.assert_allclose(got, want[:n], rtol=rtol, atol=atol, err_msg=f"batch {n}")


def test_rows_workgroups_fold_as_the_chunk_grid():
    """Run-time dispatches (webgpu/emit.py; js/backends/webgpu.js rowsDispatch the same) keep the
    chunk's x (and y, once z is needed), so the shader's linear workgroup id is unchanged, and never
    exceed the chunk's grid in any dimension."""
    for rows, formula, grid, want in ROWS_CASES:
        assert rows_workgroups(rows, formula, grid) == tuple(want), (rows, formula, grid)

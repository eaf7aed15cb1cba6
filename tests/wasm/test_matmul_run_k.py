"""The matmul template with its K taken at run time (wasm/matmul.py ``lower(..., run_k=(cell, factor))``,
docs/artifact.md "Run-time rows: train steps"): a weight gradient ``X^T dY`` over the first ``n``
rows equals, bit for bit, the fixed-K kernel run on the chunk with the other rows zeroed, and reads
nothing past row ``n`` (those rows hold NaN here): one k block, columns past one cache block, and
several k blocks."""
import numpy as np
import pytest
import wasmtime

from webtensor.wasm import matmul
from webtensor.wasm.binary import Module
from webtensor.wasm.lower import lower, runtime_k

from test_matmul import mm_kernel

CELL = 48
rng = np.random.default_rng(7)


def _run(kernel, arrays, run_k=None, rows=None):
    m = Module()
    m.import_memory("env", "memory", 1)
    lw = lower(m, kernel, "kernel", export=True, run_k=run_k)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(256, None)))
    fn = wasmtime.Instance(store, wasmtime.Module(engine, m.emit()), [mem]).exports(store)["kernel"]
    view = np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),))
    view[CELL:CELL + 4] = np.array([rows or 0], np.int32).view(np.uint8)
    off, addrs = 64, []
    for a in arrays:
        b = np.ascontiguousarray(a).view(np.uint8).ravel()
        view[off:off + b.size] = b
        addrs.append(off)
        off += -(-b.size // 64) * 64 + 64
    n = int(np.prod(kernel.out.shape))
    fn(store, off, *addrs, 0, lw.rows, off + 4 * n + 128)
    return view[off:off + 4 * n].view(np.float32).reshape(kernel.out.shape).copy()


@pytest.mark.parametrize("m,n,chunk", [(17, 9, 32), (5, 300, 40), (9, 3, 600)])
@pytest.mark.parametrize("rows", [1, 5, "all"])
def test_run_time_k_equals_zeroed_rows_bitwise(m, n, chunk, rows):
    rows = chunk if rows == "all" else rows
    x, dy = rng.standard_normal((chunk, m)).astype(np.float32), rng.standard_normal((chunk, n)).astype(np.float32)
    k = mm_kernel(x.shape, dy.shape, ta=True)
    assert runtime_k(k) and matmul.plan(k).K == chunk
    zeroed = [np.where(np.arange(chunk)[:, None] < rows, v, 0).astype(np.float32) for v in (x, dy)]
    stale = [np.where(np.arange(chunk)[:, None] < rows, v, np.nan).astype(np.float32) for v in (x, dy)]
    want = _run(k, zeroed)
    got = _run(k, stale, run_k=(CELL, 1), rows=rows)
    assert got.tobytes() == want.tobytes()
    np.testing.assert_allclose(got, x[:rows].T @ dy[:rows], rtol=1e-5, atol=1e-5 * rows ** 0.5)


def test_batched_or_window_matmuls_keep_their_k():
    assert not runtime_k(mm_kernel((2, 8, 3), (2, 8, 4), ta=True))     # batch dims

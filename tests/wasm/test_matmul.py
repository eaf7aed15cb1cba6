"""The matmul template (wasm/matmul.py): odd sizes, transposes, batches, row-range splits."""
import itertools

import numpy as np
import pytest

from webtensor.core import kernel_ir as K
from webtensor.core import ops as F
from webtensor.core.dtypes import float32, int32
from webtensor.core.op import Aval
from webtensor.wasm import matmul

from test_lower import run_kernel

rng = np.random.default_rng(3)


def mm_kernel(a_shape, b_shape, ta=False, tb=False, dtype=float32):
    avals = [Aval(a_shape, dtype), Aval(b_shape, dtype)]
    out = F.linalg.matmul_op.infer(*avals, transpose_a=ta, transpose_b=tb)
    return F.linalg.matmul_op.kernel(avals, out, transpose_a=ta, transpose_b=tb)


def check(a, b, ta=False, tb=False, splits=None, fma=False):
    k = mm_kernel(a.shape, b.shape, ta, tb)
    assert matmul.supports(k)
    got, lw = run_kernel(k, [a, b], splits, fma)
    want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    tol = 1e-5 * max(1, a.shape[-1 if not ta else -2]) ** 0.5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert lw.scratch == matmul.plan(k).scratch()


SIZES = [1, 3, 17, 65, 129]


@pytest.mark.parametrize("m,n,k", [(m, n, k) for m, n, k in itertools.product(SIZES, SIZES, SIZES)
                                   if (m, n, k) != (129, 129, 129)][::3] + [(129, 129, 129), (4, 8, 300)])
def test_odd_sizes(m, n, k):
    check(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32))


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("m,n,k", [(17, 65, 3), (65, 17, 129), (5, 9, 260), (1, 3, 17)])
def test_transposed_operands(m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    check(a, b, ta, tb)


@pytest.mark.parametrize("a_shape,b_shape", [((3, 17, 9), (3, 9, 5)), ((2, 1, 5, 7), (3, 7, 4)),
                                             ((4, 6), (2, 6, 11)), ((2, 3, 10, 4), (4, 9))])
def test_batched_and_broadcast(a_shape, b_shape):
    check(rng.standard_normal(a_shape).astype(np.float32), rng.standard_normal(b_shape).astype(np.float32))


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("a_shape,b_shape,folded", [((3, 17, 9), (9, 5), 51), ((2, 3, 10, 300), (300, 9), 60),
                                                    ((2, 1, 5, 7), (3, 7, 4), 5), ((3, 17, 9), (3, 9, 5), 17)])
def test_batch_dims_fold_into_rows(a_shape, b_shape, folded, fma, monkeypatch):
    """Batch dims along which B is constant and A's rows continue fold into M (a Dense layer on
    (batch, tokens, d)): the function's rows are every output row, so row ranges (thread tiles) may
    cross batch boundaries, and the results are bitwise those of the batched loop."""
    a, b = rng.standard_normal(a_shape).astype(np.float32), rng.standard_normal(b_shape).astype(np.float32)
    k = mm_kernel(a_shape, b_shape)
    assert matmul.plan(k).M == folded
    splits = lambda rows: [0, 8, 9, 30, rows] if rows > 30 else [0, rows]
    got, lw = run_kernel(k, [a, b], splits, fma)
    assert lw.rows == folded
    monkeypatch.setattr(matmul, "_fold_batch", lambda p: p)
    assert matmul.plan(k).M == a_shape[-2]
    want, _ = run_kernel(k, [a, b], None, fma)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    tol = 1e-5 * a_shape[-1] ** 0.5
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=tol, atol=tol)


def test_row_ranges_compose():
    a, b = rng.standard_normal((37, 20)).astype(np.float32), rng.standard_normal((20, 13)).astype(np.float32)
    check(a, b, splits=lambda rows: [0, 8, 9, 30, rows])


def test_fused_multiply_add_micro_kernel():
    check(rng.standard_normal((67, 300)).astype(np.float32), rng.standard_normal((300, 45)).astype(np.float32),
          fma=True)


@pytest.mark.parametrize("fma", [False, True])
@pytest.mark.parametrize("m,n,k", [(37, 45, 300), (6, 3, 5), (129, 17, 65)])
def test_splat_and_shuffle_broadcasts_give_the_same_bits(m, n, k, fma):
    """The micro-kernel's two ways of broadcasting A (``splat``: an engine's speed choice) compute the
    same products and sums: bitwise equal results, edge tiles and k blocks included, and both
    within the template's tolerance of numpy."""
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    kern = mm_kernel(a.shape, b.shape)
    got = [run_kernel(kern, [a, b], lambda rows: [0, 5, rows], fma, splat)[0] for splat in (True, False)]
    np.testing.assert_array_equal(got[0].view(np.uint32), got[1].view(np.uint32))
    tol = 1e-5 * k ** 0.5
    np.testing.assert_allclose(got[0], a @ b, rtol=tol, atol=tol)


@pytest.mark.parametrize("m,n,k", [(13, 9, 20), (13, 9, 3 * matmul.KC + 5), (13, matmul.NC + 9, 20)])
def test_panel_at_a_time_and_blocked_paths(m, n, k):
    """K <= KC and N <= NC packs each 4-row panel of A just before its tiles (one panel of scratch);
    larger K or N packs all rows first and loops over cache blocks: both match numpy, over split
    row ranges too."""
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    p = matmul.plan(mm_kernel(a.shape, b.shape))
    assert p.one_block == (k <= matmul.KC and n <= matmul.NC)
    assert p.scratch(m) == matmul.TILE + 4 * k * ((4 if p.one_block else 16) + -(-n // 8) * 8)
    check(a, b, splits=lambda rows: [0, 6, rows])


def test_k_blocks_accumulate():
    m, n, k = 9, 19, 3 * matmul.KC + 5
    check(rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32))


def test_same_operand_and_fallbacks():
    x = rng.standard_normal((12, 12)).astype(np.float32)
    k = mm_kernel(x.shape, x.shape)
    k1 = K.Kernel(k.kind, (k.inputs[0],), k.out, k.space,
                  K.Expr("mul", float32, (k.expr.args[0], K.Expr("load", float32, k.expr.args[1].args, 0))),
                  k.combiner, k.template, k.params)
    assert matmul.supports(k1)                        # x @ x reads one input twice
    got, _ = run_kernel(k1, [x])
    np.testing.assert_allclose(got, x @ x, rtol=1e-5, atol=1e-5)
    assert not matmul.supports(mm_kernel((3, 4), (4, 5), dtype=int32))   # ints take the generic path
    assert not matmul.supports(mm_kernel((3, 0), (0, 5)))                # K = 0: generic fill with zeros

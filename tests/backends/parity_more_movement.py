"""Parity cases for issue 14's ops (sorting, scans, index tensors, rearranging, contractions,
image resizing); ``parity.py`` appends them to its ``CASES``.

``boolean_mask`` and ``segment_sum`` are not here: their result's shape depends on values, so
they run eagerly only (``tests/core/test_ops.py`` checks them, and that they raise when traced).
"""
from __future__ import annotations

import numpy as np

import webtensor as wt

from parity import Case, f32, i32, ins


def ties(*shape):
    """Floats with many equal values (a stable order must keep them in index order)."""
    return lambda rng: rng.integers(-2, 3, shape).astype(np.float32)


def with_zeros(*shape):
    """Floats with exact zeros (cumprod's gradient has a rule of its own there)."""
    return lambda rng: np.where(rng.random(shape) < 0.25, 0, rng.uniform(0.5, 1.5, shape)).astype(np.float32)


def tuples(n, dims):
    """``n`` index tuples into axes of sizes ``dims``, negative entries included."""
    return lambda rng: np.stack([rng.integers(-d, d, n) for d in dims], -1).astype(np.int32)


MORE_MOVEMENT = [
    Case("sort", lambda x: wt.sort(x, axis=1), ins(f32(3, 9))),
    Case("sort/ties_desc_axis0", lambda x: wt.sort(x, axis=0, direction="DESCENDING"), ins(ties(7, 4))),
    Case("argsort/ties", lambda x: wt.argsort(x), ins(ties(4, 9)), grad=False),
    Case("argsort/desc", lambda x: wt.argsort(x, axis=0, direction="DESCENDING"), ins(ties(6, 3)), grad=False),
    Case("top_k", lambda x: wt.top_k(x, 3).values, ins(ties(3, 8))),
    Case("top_k/indices", lambda x: tuple(wt.top_k(x, 4)), ins(f32(2, 3, 6)), grad=False),
    Case("cumsum", lambda x: wt.cumsum(x, axis=1), ins(f32(3, 17))),
    Case("cumsum/exclusive_reverse", lambda x: wt.cumsum(x, axis=0, exclusive=True, reverse=True), ins(f32(9, 4))),
    Case("cumsum/int", lambda x: wt.cumsum(x, axis=-1), ins(i32(3, 6, lo=-5, hi=5)), grad=False),
    Case("cumprod", lambda x: wt.cumprod(x, axis=1), ins(f32(3, 8, lo=0.5, hi=1.5))),
    Case("cumprod/exclusive_reverse", lambda x: wt.cumprod(x, axis=0, exclusive=True, reverse=True),
         ins(f32(6, 3, lo=0.5, hi=1.5))),
    Case("cumprod/zeros", lambda x: wt.cumprod(x, axis=1, reverse=True), ins(with_zeros(4, 6))),
    Case("gather_nd", lambda p, i: wt.gather_nd(p, i), ins(f32(4, 5, 3), tuples(6, (4, 5)))),
    Case("gather_nd/batch_dims", lambda p, i: wt.gather_nd(p, wt.reshape(i, (2, 3, 1)), batch_dims=1),
         ins(f32(2, 4, 3), tuples(6, (4,)))),
    Case("scatter_nd", lambda u, i: wt.scatter_nd(i, u, (6, 3)), ins(f32(5, 3), tuples(5, (6,)))),
    Case("scatter_nd/2d", lambda u, i: wt.scatter_nd(i, u, (3, 4)), ins(f32(7), tuples(7, (3, 4)))),
    Case("tensor_scatter_nd_update", lambda t, u, i: wt.tensor_scatter_nd_update(t, i, u),
         ins(f32(6, 3), f32(4, 3), tuples(4, (6,)))),
    Case("tensor_scatter_nd_update/updates", lambda u, t, i: wt.tensor_scatter_nd_update(t, i, u),
         ins(f32(5), f32(3, 4), tuples(5, (3, 4)))),
    Case("tensor_scatter_nd_add", lambda t, u, i: wt.tensor_scatter_nd_add(t, i, u),
         ins(f32(3, 4), f32(5), tuples(5, (3, 4)))),
    Case("unsorted_segment_sum", lambda d, i: wt.unsorted_segment_sum(d, i, 4), ins(f32(7, 3), i32(7, lo=-1, hi=4))),
    Case("tile", lambda x: wt.tile(x, [2, 1, 3]), ins(f32(2, 3, 2))),
    Case("split", lambda x: wt.concat(wt.split(x, [1, -1, 2], axis=1)[::-1], 1), ins(f32(2, 6))),
    Case("unstack", lambda x: wt.stack(wt.unstack(x, axis=1)[::-1], 0), ins(f32(2, 3, 2))),
    Case("reverse", lambda x: wt.reverse(x, [0, -1]), ins(f32(3, 2, 4))),
    Case("roll", lambda x: wt.roll(x, [2, -1, 1], [1, 0, 1]), ins(f32(3, 5))),
    Case("repeat", lambda x: wt.repeat(x, 3, axis=1), ins(f32(2, 3))),
    Case("repeat/counts", lambda x: wt.repeat(x, [2, 0, 1], axis=0), ins(f32(3, 2))),
    Case("space_to_depth", lambda x: wt.space_to_depth(x, 2), ins(f32(2, 4, 6, 3))),
    Case("depth_to_space", lambda x: wt.depth_to_space(x, 2), ins(f32(1, 2, 3, 8))),
    Case("tensordot", lambda a, b: wt.tensordot(a, b, [[1, 2], [1, 0]]), ins(f32(2, 3, 4), f32(4, 3, 5))),
    Case("einsum/batched", lambda a, b: wt.einsum("bhqd,bhkd->bhqk", a, b), ins(f32(2, 2, 3, 4), f32(2, 2, 5, 4))),
    Case("einsum/chain_diag", lambda a, b, c: wt.einsum("ii,ij,jk->ik", a, b, c),
         ins(f32(3, 3), f32(3, 4), f32(4, 2))),
    Case("einsum/ellipsis_sum", lambda a, b: wt.einsum("...ij,j->...", a, b), ins(f32(2, 3, 4), f32(4))),
    Case("resize/bilinear_up", lambda x: wt.image.resize(x, (7, 5)), ins(f32(2, 3, 4, 2))),
    Case("resize/bilinear_down", lambda x: wt.image.resize(x, (3, 2)), ins(f32(1, 7, 5, 3))),
    Case("resize/nearest", lambda x: wt.image.resize(x, (5, 3), method="nearest"), ins(f32(2, 3, 5, 2))),
    Case("resize/antialias", lambda x: wt.image.resize(x, (3, 4), antialias=True), ins(f32(1, 8, 6, 2))),
]

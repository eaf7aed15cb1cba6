"""Matrix multiplication: a ``reduce`` kernel over k with the ``matmul`` template hint.

``a`` is ``(*batch_a, M, K)`` (or ``(*batch_a, K, M)`` with ``transpose_a``), ``b`` is
``(*batch_b, K, N)`` (or ``(*batch_b, N, K)`` with ``transpose_b``); batch dims broadcast.
Transposed operands are read through their index expressions, never materialised.
"""
from __future__ import annotations

from .. import kernel_ir as K
from ..dtypes import bool_
from ..op import Aval, Op, as_tensor
from ..shapes import broadcast_shapes
from ..signature import BOOL, op_signature
from .namespace import ops as _ops


def _mk(shape, transpose):
    m, k = shape[-2], shape[-1]
    return (k, m) if transpose else (m, k)


def _matmul_infer(a: Aval, b: Aval, *, transpose_a, transpose_b) -> Aval:
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError(f"matmul: operands need rank >= 2, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype or a.dtype == bool_:
        raise TypeError(f"matmul: operand dtypes must match and be numeric, got {a.dtype} and {b.dtype}")
    m, k = _mk(a.shape, transpose_a)
    k2, n = _mk(b.shape, transpose_b)
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ: shapes {a.shape} and {b.shape} "
                         f"(transpose_a={transpose_a}, transpose_b={transpose_b}) give K={k} and K={k2}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], op=f"matmul (batch dims of {a.shape} and {b.shape})")
    return Aval(batch + (m, n), a.dtype)


def _matmul_ref(a, b, *, transpose_a, transpose_b):
    import numpy as np
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def _matmul_kernel(ins, out, *, transpose_a, transpose_b):
    a, b = ins
    nb = len(out.shape) - 2
    dims = [K.idx(d) for d in range(nb + 2)]
    kk = K.idx(nb + 2)
    m, n = dims[nb], dims[nb + 1]
    ia = K.broadcast_index(a.shape[:-2], dims[:nb], nb) + ((kk, m) if transpose_a else (m, kk))
    ib = K.broadcast_index(b.shape[:-2], dims[:nb], nb) + ((n, kk) if transpose_b else (kk, n))
    expr = K.load(0, ia, a.dtype) * K.load(1, ib, b.dtype)
    k = a.shape[-2] if transpose_a else a.shape[-1]
    return K.reduce_kernel([K.Buffer(a.shape, a.dtype), K.Buffer(b.shape, b.dtype)],
                           K.Buffer(out.shape, out.dtype), (k,), expr, "sum", template="matmul",
                           params={"transpose_a": transpose_a, "transpose_b": transpose_b})


def _matmul_grad(g, y, a, b, *, transpose_a, transpose_b):
    unbroadcast = _ops.unbroadcast
    # C = A B  =>  dA = dC B^T, dB = A^T dC (with the operands' own transposes folded in).
    if transpose_a:
        da = matmul_op(b, g, transpose_a=transpose_b, transpose_b=True)
    else:
        da = matmul_op(g, b, transpose_a=False, transpose_b=not transpose_b)
    if transpose_b:
        db = matmul_op(g, a, transpose_a=True, transpose_b=transpose_a)
    else:
        db = matmul_op(a, g, transpose_a=not transpose_a, transpose_b=False)
    return unbroadcast(da, a.shape), unbroadcast(db, b.shape)


matmul_op = Op("matmul", infer=_matmul_infer, reference=_matmul_ref, grad=_matmul_grad, kernel=_matmul_kernel)


@op_signature(transpose_a=BOOL, transpose_b=BOOL)
def matmul(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """Matrix product with numpy.matmul semantics (tf.linalg.matmul's transposes): 1-D operands are
    promoted to matrices and the added axis removed; batch dims broadcast.

    Args:
        a: ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``), or ``(K,)``; int32, float16 or float32.
        b: ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``), or ``(K,)``; ``a``'s dtype.
        transpose_a: use the transpose of ``a``'s last two axes (read in place, never copied).
        transpose_b: use the transpose of ``b``'s last two axes.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        ``(..., M, N)`` (batch dims broadcast), ``a``'s dtype.
    Raises:
        ValueError: scalar operands; inner dimensions differ or batch dims do not broadcast.
        TypeError: dtypes differ or are bool; ``transpose_a``/``transpose_b`` not bools.
    """
    reshape = _ops.reshape
    a, b = as_tensor(a), as_tensor(b)
    if len(a.shape) == 0 or len(b.shape) == 0:
        raise ValueError("matmul: scalar operands are not allowed; use multiply")
    va, vb = len(a.shape) == 1, len(b.shape) == 1
    if va:
        a = reshape(a, (1, a.shape[0]))
    if vb:
        b = reshape(b, (b.shape[0], 1))
    y = matmul_op(a, b, transpose_a=bool(transpose_a and not va), transpose_b=bool(transpose_b and not vb))
    if va or vb:
        shape = tuple(y.shape[:-2]) + (() if va else (y.shape[-2],)) + (() if vb else (y.shape[-1],))
        y = reshape(y, shape)
    return y


# ---- int8 weights (compact artifacts) ---------------------------------------------------------

def _qmm_infer(a: Aval, q: Aval, scales: Aval, *, transpose_a, n) -> Aval:
    if len(a.shape) < 2 or a.dtype.kind != "f":
        raise TypeError(f"quantized_matmul: a must be a float matrix (rank >= 2), got {a.dtype} {a.shape}")
    m, k = _mk(a.shape, transpose_a)
    if q.dtype.name != "int32" or len(q.shape) != 1 or q.shape[0] != -(-k * n // 4):
        raise ValueError(f"quantized_matmul: q must be int32 ({-(-k * n // 4)},) (the {k}x{n} int8 bytes packed "
                         f"four to a word), got {q.dtype} {q.shape}")
    if scales.dtype != a.dtype or scales.shape != (n,):
        raise ValueError(f"quantized_matmul: scales must be {a.dtype} ({n},), got {scales.dtype} {scales.shape}")
    return Aval(tuple(a.shape[:-2]) + (m, n), a.dtype)


def _qmm_ref(a, q, scales, *, transpose_a, n):
    import numpy as np
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    k = a.shape[-1]
    w = np.ascontiguousarray(q, dtype="<i4").view(np.int8)[:k * n].reshape(k, n)
    return np.matmul(a, w.astype(a.dtype) * scales)


def int8_of_word(word: K.Expr, byte: K.Expr) -> K.Expr:
    """Byte ``byte`` (0..3, little-endian) of the int32 ``word`` as a signed int8 value, with floor
    division and modulo only (every backend has them): ``((word // 256**byte + 128) % 256) - 128``."""
    div = K.where(K.binary("eq", byte, K.const(0)), K.const(1),
                  K.where(K.binary("eq", byte, K.const(1)), K.const(256),
                          K.where(K.binary("eq", byte, K.const(2)), K.const(65536), K.const(16777216))))
    return (word // div + 128) % 256 - 128


def _qmm_kernel(ins, out, *, transpose_a, n):
    a, q, scales = ins
    nb = len(out.shape) - 2
    dims = [K.idx(d) for d in range(nb + 2)]
    kk = K.idx(nb + 2)
    m, j = dims[nb], dims[nb + 1]
    ia = tuple(dims[:nb]) + ((kk, m) if transpose_a else (m, kk))
    flat = kk * n + j                                   # element (k, j) of the row-major K x N int8 matrix
    w = K.cast(int8_of_word(K.load(1, (flat // 4,), q.dtype), flat % 4), a.dtype) * K.load(2, (j,), a.dtype)
    k = a.shape[-2] if transpose_a else a.shape[-1]
    return K.reduce_kernel([K.Buffer(a.shape, a.dtype), K.Buffer(q.shape, q.dtype), K.Buffer(scales.shape, scales.dtype)],
                           K.Buffer(out.shape, out.dtype), (k,), K.load(0, ia, a.dtype) * w, "sum",
                           template="matmul_q8", params={"transpose_a": transpose_a, "n": n})


quantized_matmul_op = Op(
    "quantized_matmul", infer=_qmm_infer, reference=_qmm_ref, kernel=_qmm_kernel, inputs=("a", "q", "scales"),
    doc="""``a @ (int8(q) * scales)``: a matrix product whose right operand is stored as int8 with one
    float scale per output column (per-channel symmetric quantization, as TensorFlow Lite's int8
    weights: Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018, with zero point 0). The kernel reads the int8
    bytes and multiplies by the column's scale as it goes (no float32 copy of the weights is made);
    ``webtensor.export(..., weights_dtype='int8')`` puts it in place of a matmul with a weight.

    Args:
        a: ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``), float32 (no broadcasting of ``q``).
        q: int32 ``(ceil(K * N / 4),)``: the row-major ``K x N`` int8 matrix's bytes, four to a
            little-endian word (the last word zero-padded).
        scales: ``(N,)``, ``a``'s dtype: column ``j``'s weights are ``int8 * scales[j]``.
        transpose_a: read ``a`` transposed (in place).
        n: N, the number of output columns.

    Returns:
        ``(..., M, N)``, ``a``'s dtype.

    Raises:
        TypeError: ``a`` not a float matrix. ValueError: ``q`` or ``scales`` of the wrong shape or dtype.
    Not differentiable (inference only).""")


def _qgather_infer(q: Aval, scales: Aval, indices: Aval, *, depth) -> Aval:
    if indices.dtype.name != "int32":
        raise TypeError(f"quantized_gather: indices must be int32, got {indices.dtype}")
    if scales.dtype.kind != "f" or len(scales.shape) != 1:
        raise ValueError(f"quantized_gather: scales must be a float vector (one per row), got {scales.dtype} "
                         f"{scales.shape}")
    rows = scales.shape[0]
    if q.dtype.name != "int32" or q.shape != (-(-depth * rows // 4),):
        raise ValueError(f"quantized_gather: q must be int32 ({-(-depth * rows // 4)},) (the {depth}x{rows} int8 "
                         f"bytes packed four to a word), got {q.dtype} {q.shape}")
    return Aval(tuple(indices.shape) + (depth,), scales.dtype)


def _qgather_ref(q, scales, indices, *, depth):
    import numpy as np
    rows = scales.shape[0]
    table = (np.ascontiguousarray(q, dtype="<i4").view(np.int8)[:depth * rows].reshape(depth, rows)
             .T.astype(scales.dtype) * scales[:, None])
    j = np.where(indices < 0, indices + rows, indices)
    ok = (j >= 0) & (j < rows)
    return np.where(ok[..., None], table[np.where(ok, j, 0)], np.zeros((), scales.dtype)).astype(scales.dtype)


def _qgather_kernel(ins, out, *, depth):
    q, scales, indices = ins
    rows = scales.shape[0]
    nd = len(indices.shape)
    dims = [K.idx(d) for d in range(nd + 1)]
    sel = K.load(2, tuple(dims[:nd]), indices.dtype)
    j = K.where(sel < 0, sel + rows, sel)                    # negative indices count from the end
    ok = K.binary("and", j >= 0, j < rows)
    row = K.clamp(j, 0, rows - 1)                            # never out of bounds
    flat = dims[nd] * rows + row                             # element (column, row) of the depth x rows matrix
    w = K.cast(int8_of_word(K.load(0, (flat // 4,), q.dtype), flat % 4), scales.dtype) * K.load(1, (row,), scales.dtype)
    return K.map_kernel([K.Buffer(a.shape, a.dtype) for a in ins], K.Buffer(out.shape, out.dtype),
                        K.where(ok, w, K.const(0, scales.dtype)))


quantized_gather_op = Op(
    "quantized_gather", infer=_qgather_infer, reference=_qgather_ref, kernel=_qgather_kernel,
    inputs=("q", "scales", "indices"),
    doc="""Rows of an int8 table with one float scale per row: ``gather(int8(table) * scales[:, None],
    indices, axis=0)``, as TensorFlow Lite's quantized EMBEDDING_LOOKUP (int8 weights, a scale per
    row). The table is stored transposed, ``depth x rows`` (a ``(K, N)`` matrix quantized per column,
    as ``quantized_matmul``'s right operand, so a tied input/output embedding is one weight); the
    kernel reads the int8 bytes and multiplies by the row's scale, with ``gather``'s index rule.

    Args:
        q: int32 ``(ceil(depth * rows / 4),)``: the row-major ``depth x rows`` int8 matrix's bytes, four
            to a little-endian word (the last word zero-padded).
        scales: ``(rows,)`` float: row ``r``'s values are ``int8 * scales[r]``.
        indices: int32, any shape; negative count from the end; others outside ``[-rows, rows)`` read
            zeros (``gather``'s rule inside a traced function).
        depth: the table's row length.

    Returns:
        ``indices.shape + (depth,)``, ``scales``' dtype.

    Raises:
        TypeError: indices not int32. ValueError: ``q`` or ``scales`` of the wrong shape or dtype.
    Not differentiable (inference only).""")

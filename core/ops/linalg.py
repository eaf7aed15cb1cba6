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

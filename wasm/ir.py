"""What the WebAssembly lowering adds to the kernel IR, shared by ``analysis.py``, ``lower.py``
and ``matmul.py``: its own node kinds and the shape of a lowered kernel function.

Every kernel becomes one function with the signature

    (out, in_0, ..., in_{n-1}, start, end, scratch: i32) -> ()

``out``/``in_k`` are byte addresses of contiguous row-major buffers in the imported linear
memory; ``[start, end)`` is the range of the outermost loop (``Lowered.rows`` in total), so
a kernel can be split over rows (threads later; one call with ``(0, rows)`` today);
``scratch`` is workspace for templates that need it (``Lowered.scratch`` bytes).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import kernel_ir as K
from .binary import I32


class Node(K.Expr):
    """The lowering's own node kinds (never part of core's ``Expr`` vocabulary):

    - ``lda``: a load with its element offset as an affine form (``analysis.load_offset``):
      ``arg = (input, ((dim, coeff), ...), (atom coeffs...), const)``, ``args`` the opaque atoms;
    - ``base`` (``arg = (input or -1 for the output, const)``), ``addr`` (``args = (base or addr,
      atoms...)``, ``arg = (((dim, coeff), ...), (atom coeffs...))``): an offset's partial sums,
      one per loop level, and ``ld`` (``args = (addr, vector-dim atoms...)``, ``arg = (vector-dim
      coeff, (atom coeffs...))``): the load through them (``lower.py``).
    """
    KINDS = frozenset({"lda", "base", "addr", "ld"})


@dataclass
class Lowered:
    """A kernel's function in a module: ``name``, its number of inputs, ``rows`` (extent of the
    ``[start, end)`` loop), ``scratch`` bytes of workspace, ``copy`` (the output equals
    input 0 byte for byte, so a runtime may alias instead of calling) and ``reuses_b`` (a matmul
    template that packs B once per call into its scratch: a caller may pass ``scratch | 1`` when that
    scratch already holds this call's packed B, a thread's later tiles of one round, ``threads.py``)."""
    name: str
    n_inputs: int
    rows: int
    scratch: int = 0
    copy: bool = False
    reuses_b: bool = False


def params(n_inputs: int):
    """The function's parameter types (module docstring)."""
    return [I32] * (n_inputs + 4)

"""The ``matmul`` template: a register-tiled SIMD128 micro-kernel with packing and cache blocking.

Covers ``template == 'matmul'`` kernels whose generic form is ``sum_k A[.., m, k] * B[.., k, n]``
over float operands with affine offsets (any strides: transposed operands, broadcast batch
dims are just other coefficients, read in place by the packing loops; nothing is
transposed in memory beforehand). Anything else falls back to the generic lowering.

Method (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", ACM TOMS
34(3), 2008; the 4x8 f32x4 tile as in XNNPACK's wasmsimd GEMM micro-kernels):

1. pack A's rows ``[start, end)`` into panels of 4 rows, k-major (16 bytes per k), and B
   into panels of 8 columns, k-major (32 bytes per k), both zero-padded, in ``scratch``;
   the contiguous layouts (row-major A, either B) pack with 4x4 lane transposes; when K and N
   fit one cache block (``Plan.one_block``: convolutions after im2col), each A panel is packed
   just before its tiles instead, into one reused panel of scratch;
2. loop over k blocks of ``KC``, column blocks of ``NC`` (a B block stays in L2), row
   panels (the A panel stays in L1) and column panels: the micro-kernel keeps a 4x8 tile
   of C in eight f32x4 accumulators, broadcasting A values with ``v128.load32_splat`` (or
   ``i8x16.shuffle`` lanes of one load, for engines where that is faster: ``lower``'s ``splat``);
3. the first k block stores the tile into C, later ones add to it; partial tiles at the
   edges go through a small tile buffer.

``conv2d`` kernels (``_plan_conv``) pack each A panel straight from the image's windows (implicit
GEMM): four consecutive output pixels of one image row read each tap as one v128 (one channel) or
as 4 x 4 blocks of four channels transposed in registers (channels in fours: the CNN's 16-channel
layer 1628 -> 1483 us in V8, as fast as the same-shaped plain matmul's 1449 us); other panels
element by element.

Batch dims loop outside; B is packed once when it does not vary with the batch (and then once per
thread of a threaded round: bit 0 of ``scratch`` says it is already there, ``reuses_b``).

``template == 'matmul_q8'`` (``quantized_matmul``: B is an int8 matrix, packed four bytes to a
word, times one scale per column) runs the same micro-kernel: packing B reads its int8 bytes
(``v128.load8x8_s``, widened and converted to f32x4) and multiplies each column by its scale,
so the panels hold exactly the dequantized float32 weights and no float32 copy of B exists
outside the scratch panels (the float32 template's packing copies B there too).
Function signature as in ``ir.py``: ``(out, in..., start, end, scratch)``, rows = M.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from math import prod

from ..core import kernel_ir as K
from ..core.simplify import nodes
from .analysis import load_offset, simplifier
from .binary import F32, I32, V128, Function, Module
from .ir import Lowered, params
from .ops import emit_fused, emit_op, fused_multiplies

MR, NR = 4, 8          # register tile: 4 rows x 8 columns (two f32x4 per row)
UNROLL_WINDOW = 64     # conv2d windows of at most this many elements pack with taps and channels unrolled
UNROLL_CHANNELS = 576  # conv2d windows (C a multiple of 4) of at most this many elements pack 4 x 4 blocks, taps unrolled
KC, NC = 256, 256      # cache blocks: k depth, columns per B block
TILE = 128             # bytes of the edge-tile buffer at the start of scratch


@dataclass
class Operand:
    input: int         # kernel input read by this operand
    row: int           # element stride along m (A) or n (B)
    k: int             # element stride along k
    batch: tuple       # element stride per batch dim
    const: int


@dataclass
class Plan:
    batch: tuple       # extents of the batch dims
    M: int
    N: int
    K: int
    a: Operand
    b: Operand
    scales: int | None = None   # matmul_q8: the input holding B's per-column scales (B: int8 bytes)
    window: tuple | None = None  # conv2d: (H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw); A is the window

    @property
    def one_block(self) -> bool:
        """K and N fit one cache block: each 4-row panel of A is packed just before its tiles
        (``_Gen.compute_by_panel``) into one reused buffer, instead of all rows first."""
        return self.K <= KC and self.N <= NC

    def scratch(self, rows: int | None = None) -> int:
        rows = MR if self.one_block else self.M if rows is None else rows
        return TILE + 4 * self.K * (-(-rows // MR) * MR + -(-self.N // NR) * NR)


def plan(kernel: K.Kernel) -> Plan | None:
    """The template's view of a kernel, or None when it does not apply."""
    if kernel.template == "matmul_q8":
        return _fold_batch(_plan_q8(kernel))
    return _fold_batch(_plan(kernel))


def _fold_batch(p: Plan | None) -> Plan | None:
    """``p`` with its innermost batch dims folded into M where B does not vary along them and A's
    rows continue across them (a Dense layer on ``(batch, tokens, d)``: one ``(batch * tokens) x d``
    matmul). The function's rows are then every output row, so a thread tile or a fused epilogue
    (``lower._lower_epilogue``) spans all of them, not M rows within each batch. Each output element
    is the same sum in the same k order, so results are bitwise equal to the batched loop."""
    while p is not None and p.batch and p.window is None and \
            (p.batch[-1] == 1 or (p.b.batch[-1] == 0 and p.a.row and p.a.batch[-1] == p.M * p.a.row)):
        p = dataclasses.replace(p, batch=p.batch[:-1], M=p.M * p.batch[-1],
                                a=dataclasses.replace(p.a, batch=p.a.batch[:-1]),
                                b=dataclasses.replace(p.b, batch=p.b.batch[:-1]))
    return p


def _plan(kernel: K.Kernel) -> Plan | None:
    if kernel.template == "conv2d":
        return _plan_conv(kernel)
    if kernel.kind != "reduce" or kernel.combiner != "sum" or kernel.n_reduce != 1 or \
            kernel.out.dtype.kind != "f" or len(kernel.out.shape) < 2:
        return None
    nb = len(kernel.out.shape) - 2
    space = kernel.space
    M, N, Kd = space[nb], space[nb + 1], space[nb + 2]
    if M * N * Kd == 0:
        return None
    s = simplifier(space)
    e = s.simp(kernel.expr)
    if e.op != "mul" or any(x.op != "load" or x.dtype.kind != "f" for x in e.args):
        return None
    ops = []
    for x in e.args:
        lda = load_offset(s, x, kernel.inputs[x.arg].shape)
        if lda.args:            # non-affine index: not for this template
            return None
        c = dict(lda.arg[1])
        ops.append((lda.arg[0], c, lda.arg[3]))
    m, n, k = nb, nb + 1, nb + 2
    for (ia, ca, ka), (ib, cb, kb) in (ops, ops[::-1]):
        if n not in ca and m not in cb:
            bt = tuple(range(nb))
            return Plan(tuple(space[:nb]), M, N, Kd,
                        Operand(ia, ca.get(m, 0), ca.get(k, 0), tuple(ca.get(d, 0) for d in bt), ka),
                        Operand(ib, cb.get(n, 0), cb.get(k, 0), tuple(cb.get(d, 0) for d in bt), kb))
    return None


def _plan_q8(kernel: K.Kernel) -> Plan | None:
    """``quantized_matmul``'s kernel (``core/ops/linalg.py``): A is input 0 at affine offsets, B the
    row-major K x N int8 bytes of input 1 (byte offset ``k * N + n``), the scales input 2."""
    nb = len(kernel.out.shape) - 2
    space = kernel.space
    M, N, Kd = space[nb], space[nb + 1], space[nb + 2]
    if M * N * Kd == 0 or dict(kernel.params).get("n") != N:
        return None
    s = simplifier(space)
    a_load = kernel.expr.args[0]
    lda = load_offset(s, a_load, kernel.inputs[0].shape)
    if a_load.op != "load" or a_load.arg != 0 or lda.args:
        return None
    ca = dict(lda.arg[1])
    m, n, k = nb, nb + 1, nb + 2
    if n in ca:
        return None
    return Plan(tuple(space[:nb]), M, N, Kd,
                Operand(0, ca.get(m, 0), ca.get(k, 0), tuple(ca.get(d, 0) for d in range(nb)), lda.arg[3]),
                Operand(1, 1, N, (0,) * nb, 0), scales=2)


def _plan_conv(kernel: K.Kernel) -> Plan | None:
    """``conv2d_direct``'s kernel (``core/ops/nn.py``): the matmul of im2col's (N*OH*OW) x (KH*KW*C)
    rows by the (KH*KW*C) x O filters, with A's panels packed straight from the image's windows
    (``_Gen._pack_window``), so no im2col matrix exists outside the one panel in scratch."""
    # inputs past the first two are an epilogue's (core/compile.py), lowered by its own function
    if kernel.kind != "reduce" or kernel.combiner != "sum" or kernel.n_reduce != 3 or len(kernel.inputs) < 2 or \
            {e.arg for e in nodes(kernel.expr) if e.op == "load"} != {0, 1} or \
            any(b.dtype.name != "float32" for b in (*kernel.inputs[:2], kernel.out)):
        return None
    (n, h, w, c), (kh, kw, _, o) = kernel.inputs[0].shape, kernel.inputs[1].shape
    oh, ow = kernel.out.shape[1:3]
    if n * oh * ow * o * kh * kw * c == 0:
        return None
    (sh, sw), (dh, dw), ((ph, _), (pw, _)) = (kernel.param(k) for k in ("strides", "dilations", "pads"))
    return Plan((), n * oh * ow, o, kh * kw * c, Operand(0, 0, 0, (), 0), Operand(1, 1, o, (), 0),
                window=(h, w, c, kh, kw, oh, ow, sh, sw, dh, dw, ph, pw))


def supports(kernel: K.Kernel) -> bool:
    return plan(kernel) is not None


REGISTER_EPILOGUES = True   # tests and benches set it False to compare with the epilogue's own pass
# float32 ops whose generic lowering (lower._Gen) is one ops.emit_op on vectors (exp is not: it has
# folded forms there), so the micro-kernel computes them with the same instructions
_REGISTER_OPS = frozenset({"add", "sub", "mul", "div", "max", "min", "neg", "abs", "sqrt", "tanh", "erf", "log",
                           "sin", "cos"})


def register_epilogue(kernel: K.Kernel) -> K.Expr | None:
    """The epilogue of a ``matmul`` or ``conv2d`` kernel as the micro-kernel applies it to its
    accumulators before their one store (the simplified expression), or None to run it as its own
    pass over the stored rows (``lower._lower_epilogue``). It applies where each tile is stored once
    (K within one cache block, ``KC``; no batch dims; N a multiple of ``NR``; not in place) and the
    epilogue reads only the accumulator at its own index, per-column vectors (``in[i_last]`` of
    shape ``(N,)``: a bias) and constants through :data:`_REGISTER_OPS`: the float32 operations of
    the separate pass, in its order (with ``fma``, a multiply whose one use is an add is fused into
    it there as here), so the same bits without re-reading the output (the CNN's first convolution:
    bias + ReLU was a 67 us pass over its 1.6 MB output in V8)."""
    epi = kernel.epilogue
    if not REGISTER_EPILOGUES or epi is None or kernel.inplace or kernel.template not in ("matmul", "conv2d") or \
            kernel.out.dtype.name != "float32":
        return None
    p = plan(kernel)
    if p is None or prod(p.batch) != 1 or p.K > KC or p.N % NR:
        return None
    acc, last = len(kernel.inputs), len(epi.space) - 1
    ident = tuple(K.idx(d) for d in range(len(epi.space)))
    e = simplifier(epi.space).simp(epi.expr)
    varies = set()          # nodes that read a load (the generic lowering computes the others as scalars)
    for x in nodes(e):
        if x.op == "idx":                   # in a load's index, checked there
            continue
        if x.dtype.name != "float32":
            return None
        if x.op == "load":
            if not (x.arg == acc and x.args == ident or
                    x.arg < acc and epi.inputs[x.arg].shape == (p.N,) and x.args == (K.idx(last),)):
                return None
            varies.add(x)
        elif x.op != "const":
            if x.op not in _REGISTER_OPS or not any(y in varies for y in x.args):
                return None
            varies.add(x)
    return e


def lower(module: Module, kernel: K.Kernel, name: str, export: bool = False, fma: bool = False,
          splat: bool = True, run_k: tuple[int, int] | None = None, epi: K.Expr | None = None):
    """Add the template's function for ``kernel`` (``supports(kernel)`` must hold); ``fma`` uses
    relaxed-SIMD ``f32x4.relaxed_madd`` in the micro-kernel. ``splat``: the micro-kernel broadcasts
    each A value with ``v128.load32_splat`` from the packed panel (one load each; V8 emits
    ``vbroadcastss``: matmul 1024 in Node 46-48 -> 55-58 GFLOP/s) instead of one ``v128.load`` of
    four rows and four ``i8x16.shuffle`` broadcasts (faster in wasmtime's Cranelift: 49-50 vs
    41-43 GFLOP/s; 2-vCPU AMD EPYC). Same products and sums either way: results are bitwise equal.
    ``run_k`` = ``(cell, factor)`` (``runtime_k(kernel)`` must hold): K is ``factor`` times the i32
    at byte ``cell`` at run time, at most the kernel's (a train step's weight gradients over the
    first rows of a batch, docs/artifact.md "Run-time rows: train steps"). Each output element is
    then the sum of the first K products in the same order, with the same +0-initialised
    accumulators: the full K's sum when the products past it are zeros. ``epi``: the kernel's
    epilogue as :func:`register_epilogue` gives it, applied to each tile's accumulators before its
    store (None: the kernel has none, or ``lower`` runs it as its own pass)."""
    p = plan(kernel)
    n_in = len(kernel.inputs)
    f = module.function(name, params=params(n_in), export=export)
    _Gen(f, p, n_in, fma, splat, run_k, epi).run()
    f.finish()
    return Lowered(name, n_in, p.M, p.scratch(), False, reuses_b(p))


def reuses_b(p: Plan) -> bool:
    """Whether the function packs B once per call (B does not vary with the batch), so a caller may
    set bit 0 of ``scratch`` to say that the scratch already holds this call's packed B."""
    return not any(p.b.batch[d] and p.batch[d] > 1 for d in range(len(p.batch)))


def runtime_k(kernel: K.Kernel) -> bool:
    """Whether ``lower`` can take the kernel's K at run time (``run_k``): a float32 ``matmul`` plan
    without batch dims. (Its k blocks past the run-time K are not run: each would add a block sum
    that starts from +0 accumulators, +0 when its products are zeros, to a tile that is never -0.)"""
    p = plan(kernel) if kernel.template == "matmul" else None
    return p is not None and not p.batch and p.window is None and p.scales is None


def _bytes_of_lanes(idx):
    """i8x16.shuffle lane bytes for i32 lanes ``idx`` (0-3 first operand, 4-7 second)."""
    return [4 * i + b for i in idx for b in range(4)]


class _Gen:
    def __init__(self, f: Function, p: Plan, n_in: int, fma: bool = False, splat: bool = True,
                 run_k: tuple[int, int] | None = None, epi: K.Expr | None = None):
        self.f, self.p, self.fma, self.splat, self.epi, self.n_in = f, p, fma, splat, epi, n_in
        self.out, self.start, self.end, self.scratch = 0, n_in + 1, n_in + 2, n_in + 3
        self.loc = lambda t=I32: f.local(t)
        self.run_k = None
        if run_k is not None:                   # K = factor * the i32 at byte cell
            self.run_k = self.loc()
            f.i32_const(run_k[0]).i32_load(0)
            if run_k[1] != 1:
                f.i32_const(run_k[1]).i32_mul()
            f.local_set(self.run_k)

    def k(self, times: int = 1, minus: int = 0):
        """Push ``times * K - minus`` (K: the plan's, or the run-time one)."""
        f = self.f
        if self.run_k is None:
            f.i32_const(times * self.p.K - minus)
            return
        f.local_get(self.run_k)
        if times != 1:
            f.i32_const(times).i32_mul()
        if minus:
            f.i32_const(minus).i32_sub()

    # ---- small builders ----
    def loop(self, i, lo, hi, step, body):
        """for (i = lo; i < hi; i += step) body(); lo/hi are callables that push an i32."""
        f = self.f
        lo()
        f.local_set(i)
        with f.block():
            with f.loop():
                f.local_get(i)
                hi()
                f.i32_ge_s()
                f.br_if(1)
                body()
                f.local_get(i)
                f.i32_const(step)
                f.i32_add()
                f.local_set(i)
                f.br(0)

    def get(self, *xs):
        for x in xs:
            self.f.local_get(x)

    def addr(self, base, *terms, const=0):
        """push base + sum(local * c) + const (bytes)."""
        f = self.f
        f.local_get(base)
        for loc, c in terms:
            f.local_get(loc)
            if c != 1:
                f.i32_const(c)
                f.i32_mul()
            f.i32_add()
        if const:
            f.i32_const(const)
            f.i32_add()

    def set_(self, loc):
        self.f.local_set(loc)
        return loc

    # ---- the function ----
    def run(self):
        f, p = self.f, self.p
        nbt = len(p.batch)
        self.ap, self.bp = self.loc(), self.loc()          # packed A, packed B
        self.a_base, self.b_base, self.c_base = self.loc(), self.loc(), self.loc()
        b_varies = any(p.b.batch[d] and p.batch[d] > 1 for d in range(nbt))
        packed = None
        if not b_varies:
            # bit 0 of scratch (``Lowered.reuses_b``): this scratch already holds this call's packed B,
            # left by the same thread's previous tile of the round (threads.py): not packed again
            packed = self.loc()
            self.get(self.scratch)
            f.i32_const(1)
            f.i32_and()
            self.set_(packed)
            self.get(self.scratch)
            f.i32_const(-2)
            f.i32_and()
            self.set_(self.scratch)
        # scratch layout: [tile][B panels][A panels for rows start..end (one panel if one_block)]: B
        # at the same place whatever a tile's rows, so a thread's tiles can share it
        self.get(self.scratch)
        f.i32_const(TILE)
        f.i32_add()
        self.set_(self.bp)
        self.get(self.bp)
        f.i32_const(4 * p.K * -(-p.N // NR) * NR)
        f.i32_add()
        self.set_(self.ap)
        bi = [self.loc() for _ in range(nbt)]
        if not b_varies:
            self._set_bases(bi, only_b=True, zero=True)
            self.get(packed)
            f.i32_eqz()
            with f.if_():
                self.pack_b()

        def level(d):
            if d == nbt:
                self._set_bases(bi)
                if b_varies:
                    self.pack_b()
                if p.one_block:
                    self.compute_by_panel()
                else:
                    self.pack_a()
                    self.compute()
                return
            self.loop(bi[d], lambda: f.i32_const(0), lambda: f.i32_const(p.batch[d]), 1, lambda: level(d + 1))
        level(0)

    def _set_bases(self, bi, only_b=False, zero=False):
        """Byte addresses of this batch's A, B (at row/col 0, k 0) and C."""
        f, p = self.f, self.p
        nbt = len(p.batch)
        for op, loc in ((p.a, self.a_base), (p.b, self.b_base)):
            if only_b and op is p.a:
                continue
            f.local_get(1 + op.input)
            if op is p.b and p.scales is not None:       # int8 bytes at offset 0, no batch dims
                f.local_set(loc)
                continue
            f.i32_const(4 * op.const)
            f.i32_add()
            if not zero:
                for d in range(nbt):
                    if op.batch[d]:
                        f.local_get(bi[d])
                        f.i32_const(4 * op.batch[d])
                        f.i32_mul()
                        f.i32_add()
            f.local_set(loc)
        if only_b:
            return
        f.local_get(self.out)
        for d in range(nbt):
            f.local_get(bi[d])
            f.i32_const(4 * p.M * p.N * prod(p.batch[d + 1:]))
            f.i32_mul()
            f.i32_add()
        f.local_set(self.c_base)

    # ---- packing ----
    def pack_a(self):
        """Ap[panel][k][r] = A[start + 4 panel + r, k] (0 beyond ``end``)."""
        i, dst = self.loc(), self.loc()
        self.get(self.ap)
        self.set_(dst)
        self.loop(i, lambda: self.get(self.start), lambda: self.get(self.end), MR, lambda: self.pack_a_panel(i, dst))

    def pack_a_panel(self, i, dst):
        """Rows ``i .. i+3`` of A, k-major, at ``dst`` (advanced past them)."""
        f, p = self.f, self.p
        if p.window:
            return self._pack_window(i, dst)
        a = p.a
        src = self.loc()
        full = self.loc()
        self.get(i)
        f.i32_const(MR)
        f.i32_add()
        self.get(self.end)
        f.i32_le_s()
        self.set_(full)
        # src = A + 4 (am i)
        self.addr(self.a_base, (i, 4 * a.row))
        self.set_(src)
        kk = self.loc()
        if a.k == 1 and p.K >= 4:          # row-major: 4 rows x 4 k, transposed in registers
            self.get(full)
            with f.if_():
                self.loop(kk, lambda: f.i32_const(0), lambda: self.k(minus=3), 4, lambda: self._pack_a_4x4(src, kk, dst))
                self._pack_scalar_a(src, kk, dst, i)
                f.else_()
                self._pack_scalar_a(src, kk, dst, i, from_zero=True)
        elif a.row == 1:                    # transposed A: the 4 rows are contiguous at each k
            self.get(full)
            with f.if_():
                def vec_k():
                    self.get(dst)
                    self.addr(src, (kk, 4 * a.k))
                    f.v128_load(0, 0)
                    f.v128_store(0, 0)
                    self._bump(dst, 16)
                self.loop(kk, lambda: f.i32_const(0), lambda: self.k(), 1, vec_k)
                f.else_()
                self._pack_scalar_a(src, kk, dst, i, from_zero=True)
        else:
            self._pack_scalar_a(src, kk, dst, i, from_zero=True)

    def _pack_window(self, i, dst):
        """A conv2d's panel: row ``m`` of A is output pixel ``m``'s window, taps ``(kh, kw)`` in
        order, each its ``C`` channels (contiguous in the image) or zeros where the tap reads
        padding: im2col's row, so the micro-kernel's sums are the im2col matmul's."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        m, d, row, hb, wb, h, w, kh, kw, c, s, pn, poh, pow_ = (self.loc() for _ in range(14))

        def store(value):          # A[m, k] <- value; next k
            self.get(d)
            value()
            f.f32_store(0, 0)
            self._bump(d, 16)

        def zeros(count):
            self.loop(c, lambda: f.i32_const(0), lambda: f.i32_const(count), 1, lambda: store(lambda: f.f32_const(0.0)))

        def tap():
            # w = wb + kw * dw; ok = 0 <= h < H and 0 <= w < W
            self.get(wb, kw)
            f.i32_const(dw)
            f.i32_mul()
            f.i32_add()
            self.set_(w)
            self.get(h)
            f.i32_const(H)
            f.op("i32.lt_u")
            self.get(w)
            f.i32_const(W)
            f.op("i32.lt_u")
            f.i32_and()
            with f.if_():
                # s = row + ((h * W + w) * C) * 4
                self.get(h)
                f.i32_const(W)
                f.i32_mul()
                self.get(w)
                f.i32_add()
                f.i32_const(4 * C)
                f.i32_mul()
                self.get(row)
                f.i32_add()
                self.set_(s)

                def one():
                    store(lambda: (self.get(s), f.f32_load(0, 0)))
                    self._bump(s, 4)
                self.loop(c, lambda: f.i32_const(0), lambda: f.i32_const(C), 1, one)
                f.else_()
                zeros(C)

        def row_h():
            self.get(hb, kh)
            f.i32_const(dh)
            f.i32_mul()
            f.i32_add()
            self.set_(h)
            self.loop(kw, lambda: f.i32_const(0), lambda: f.i32_const(KW), 1, tap)

        # stride 1 and 4 rows of a panel inside one image row: 4 consecutive pixels at each tap, one
        # v128 load for one-channel images (the CNN's first layer), 4 x 4 blocks transposed in
        # registers for channels in fours (its later layers)
        fast = None
        if sw == 1 and W > 3:
            if C == 1 and p.K <= UNROLL_WINDOW:
                fast = lambda: self._window_rows4(dst, row, hb, wb, s, pn, poh, pow_)  # noqa: E731
            elif C % 4 == 0 and p.K <= UNROLL_CHANNELS:
                fast = lambda: self._window_rows4c(dst, row, hb, wb, s, h, c, pn, poh, pow_)  # noqa: E731
        if fast is not None:
            self._panel_pixel(i, pn, poh, pow_)
            with f.if_():
                fast()
                f.else_()
                self._window_rows(i, dst, m, d, row, hb, wb, h, kh, pn, poh, pow_, row_h, zeros)
        else:
            self._window_rows(i, dst, m, d, row, hb, wb, h, kh, pn, poh, pow_, row_h, zeros)
        self._bump(dst, 16 * p.K)

    def _pixel_of(self, m, pn, poh, pow_):
        """Pixel (n, oh, ow) of A's row ``m``."""
        f, p = self.f, self.p
        OH, OW = p.window[5:7]
        for loc, div, mod in ((pn, OH * OW, None), (poh, OW, OH), (pow_, 1, OW)):
            self.get(m)
            if div > 1:
                f.i32_const(div)
                f.op("i32.div_u")
            if mod is not None:
                f.i32_const(mod)
                f.op("i32.rem_u")
            self.set_(loc)

    def _panel_pixel(self, i, pn, poh, pow_):
        """Pixel (n, oh, ow) of row ``i``; leaves on the stack whether the panel is full and its 4
        rows lie in one image row."""
        f, OW = self.f, self.p.window[6]
        self.get(i)
        self._pixel_of(i, pn, poh, pow_)
        f.i32_const(MR)
        f.i32_add()
        self.get(self.end)
        f.i32_le_s()
        self.get(pow_)
        f.i32_const(OW - MR + 1)
        f.i32_lt_s()
        f.i32_and()

    def _inside(self, loc, step: int, ext: int) -> None:
        """Push ``0 <= loc + step < ext`` (one unsigned compare)."""
        f = self.f
        self.get(loc)
        if step:
            f.i32_const(step)
            f.i32_add()
        f.i32_const(ext)
        f.op("i32.lt_u")

    def _tap_base(self, row, hb, wb, base) -> None:
        """base = row + (hb * W + wb) * C * 4: tap (0, 0)'s address (wrapping; only read where valid)."""
        f, (W, C) = self.f, self.p.window[1:3]
        self.get(hb)
        f.i32_const(W)
        f.i32_mul()
        self.get(wb)
        f.i32_add()
        f.i32_const(4 * C)
        f.i32_mul()
        self.get(row)
        f.i32_add()
        self.set_(base)

    def _window_rows4c(self, dst, row, hb, wb, base, tb, c, pn, poh, pow_):
        """The fast panel of ``_pack_window`` for C a multiple of 4, stride 1, 4 rows in one image
        row: at a tap whose 4 pixels are all inside, each four channels are 4 v128 loads (one per
        pixel) transposed to 4 k-major vectors; at the others, pixel by pixel, zeros outside."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        self._pixel_bases(row, hb, wb, pn, poh, pow_)
        self._tap_base(row, hb, wb, base)
        inside = self._inside
        rows = [self.loc(V128) for _ in range(MR)]
        tmp = [self.loc(V128) for _ in range(8)]
        for u in range(KH):
            for v in range(KW):
                k0 = (u * KW + v) * C
                self.get(base)
                f.i32_const(4 * (u * dh * W + v * dw) * C)
                f.i32_add()
                self.set_(tb)                                   # the tap's first pixel, channel 0
                inside(hb, u * dh, H)
                inside(wb, v * dw, W - 3)
                f.i32_and()
                with f.if_():
                    for c4 in range(C // 4):
                        for r in range(MR):
                            self.get(tb)
                            f.v128_load(4 * (r * C + 4 * c4), 0)
                            self.set_(rows[r])
                        for j, vec in enumerate(self._transpose(rows, tmp)):
                            self.get(dst, vec)
                            f.v128_store(16 * (k0 + 4 * c4 + j), 0)
                    f.else_()
                    for r in range(MR):
                        def channels(value, r=r):   # A[row r, k0 + c] = value() for each channel c
                            def one():
                                self.get(dst, c)
                                f.i32_const(16)
                                f.i32_mul()
                                f.i32_add()
                                value()
                                f.f32_store(16 * k0 + 4 * r, 0)
                            self.loop(c, lambda: f.i32_const(0), lambda: f.i32_const(C), 1, one)

                        def pixel(r=r):             # image[pixel r, tap, c]
                            self.get(tb, c)
                            f.i32_const(4)
                            f.i32_mul()
                            f.i32_add()
                            f.f32_load(4 * r * C, 0)
                        inside(hb, u * dh, H)
                        inside(wb, v * dw + r, W)
                        f.i32_and()
                        with f.if_():
                            channels(pixel)
                            f.else_()
                            channels(lambda: f.f32_const(0.0))

    def _window_rows4(self, dst, row, hb, wb, base, pn, poh, pow_):
        """The fast panel of ``_pack_window`` (C = 1, stride 1, 4 rows in one image row): a tap whose
        4 pixels are all inside is one v128 load; the others test each pixel."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        self._pixel_bases(row, hb, wb, pn, poh, pow_)
        self._tap_base(row, hb, wb, base)
        inside = self._inside
        for u in range(KH):
            for v in range(KW):
                k = u * KW + v
                off = 4 * (u * dh * W + v * dw)
                inside(hb, u * dh, H)
                inside(wb, v * dw, W - 3)
                f.i32_and()
                with f.if_():
                    self.get(dst, base)
                    f.i32_const(off)
                    f.i32_add()
                    f.v128_load(0, 0)
                    f.v128_store(16 * k, 0)
                    f.else_()
                    for r in range(MR):
                        self.get(dst)
                        inside(hb, u * dh, H)
                        inside(wb, v * dw + r, W)
                        f.i32_and()
                        with f.if_(F32):
                            self.get(base)
                            f.i32_const(off + 4 * r)
                            f.i32_add()
                            f.f32_load(0, 0)
                            f.else_()
                            f.f32_const(0.0)
                        f.f32_store(16 * k + 4 * r, 0)

    def _pixel_bases(self, row, hb, wb, pn, poh, pow_):
        """row = x + n H W C * 4; hb = oh * sh - ph; wb = ow * sw - pw (pixel (n, oh, ow))."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        for loc, src, scale, const in ((row, pn, 4 * H * W * C, None), (hb, poh, sh, ph), (wb, pow_, sw, pw)):
            self.get(src)
            f.i32_const(scale)
            f.i32_mul()
            if const is None:
                self.get(self.a_base)
                f.i32_add()
            elif const:
                f.i32_const(const)
                f.i32_sub()
            self.set_(loc)

    def _window_rows(self, i, dst, m, d, row, hb, wb, h, kh, pn, poh, pow_, row_h, zeros):
        """``_pack_window``'s general panel: row by row, tap by tap."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        for r in range(MR):
            self.get(dst)
            f.i32_const(4 * r)
            f.i32_add()
            self.set_(d)
            self.get(i)
            f.i32_const(r)
            f.i32_add()
            self.set_(m)
            self.get(m, self.end)
            f.i32_lt_s()
            with f.if_():          # rows past ``end`` are zeros (never read: they may lie outside memory)
                if r == 0:         # pixel (n, oh, ow) of row i: divisions once per panel
                    self._pixel_of(m, pn, poh, pow_)
                else:              # the next pixel: ow + 1, carried into oh and n
                    self._bump(pow_, 1)
                    self.get(pow_)
                    f.i32_const(OW)
                    f.i32_eq()
                    with f.if_():
                        f.i32_const(0)
                        f.local_set(pow_)
                        self._bump(poh, 1)
                        self.get(poh)
                        f.i32_const(OH)
                        f.i32_eq()
                        with f.if_():
                            f.i32_const(0)
                            f.local_set(poh)
                            self._bump(pn, 1)
                self._pixel_bases(row, hb, wb, pn, poh, pow_)
                if p.K <= UNROLL_WINDOW:
                    self._window_unrolled(d, row, hb, wb, h)
                else:
                    self.loop(kh, lambda: f.i32_const(0), lambda: f.i32_const(KH), 1, row_h)
                f.else_()
                zeros(p.K)

    def _window_unrolled(self, d, row, hb, wb, base):
        """A short window (``K <= UNROLL_WINDOW``) with its taps and channels unrolled: each tap's
        bounds test and each element's offset are constants added to the row's bases."""
        f, p = self.f, self.p
        H, W, C, KH, KW, OH, OW, sh, sw, dh, dw, ph, pw = p.window
        self._tap_base(row, hb, wb, base)
        for u in range(KH):
            for v in range(KW):
                k0 = (u * KW + v) * C
                self._inside(hb, u * dh, H)
                self._inside(wb, v * dw, W)
                f.i32_and()
                with f.if_():
                    for cc in range(C):
                        self.get(d, base)
                        f.i32_const(4 * ((u * dh * W + v * dw) * C + cc))
                        f.i32_add()
                        f.f32_load(0, 0)
                        f.f32_store(16 * (k0 + cc), 0)
                    f.else_()
                    for cc in range(C):
                        self.get(d)
                        f.f32_const(0.0)
                        f.f32_store(16 * (k0 + cc), 0)

    def _bump(self, loc, n):
        f = self.f
        f.local_get(loc)
        f.i32_const(n)
        f.i32_add()
        f.local_set(loc)

    def _pack_scalar_a(self, src, kk, dst, i, from_zero=False):
        """k from kk (or 0) to K of a panel, element by element; rows past ``end`` are zeros
        and are not read (they may lie outside memory)."""
        f, a = self.f, self.p.a
        rows_left = self.loc()
        self.get(self.end, i)
        f.i32_sub()
        self.set_(rows_left)

        def one_k():
            for r in range(MR):
                self.get(dst)
                self.get(rows_left)
                f.i32_const(r)
                f.i32_gt_s()
                with f.if_(F32):
                    self.addr(src, (kk, 4 * a.k), const=4 * a.row * r)
                    f.f32_load(0, 0)
                    f.else_()
                    f.f32_const(0.0)
                f.f32_store(4 * r, 0)
            self._bump(dst, 16)
        lo = (lambda: f.i32_const(0)) if from_zero else (lambda: self.get(kk))
        self.loop(kk, lo, lambda: self.k(), 1, one_k)

    def _pack_a_4x4(self, src, kk, dst):
        """Rows i..i+3, k..k+3 of a row-major A -> four k-major vectors of 4 rows."""
        f, a = self.f, self.p.a
        rows = []
        for r in range(MR):
            self.addr(src, (kk, 4), const=4 * a.row * r)
            f.v128_load(0, 0)
            rows.append(self.set_(self.loc(V128)))
        for c, v in enumerate(self._transpose(rows)):
            self.get(dst, v)
            f.v128_store(16 * c, 0)
        self._bump(dst, 64)

    def _transpose(self, rows, tmp=None):
        """4x4 transpose of i32 lanes (two shuffle rounds); ``tmp``: 8 v128 locals to use (else new)."""
        f = self.f
        tmp = list(tmp) if tmp is not None else [self.loc(V128) for _ in range(8)]
        r0, r1, r2, r3 = rows
        t = []
        for x, y, lanes in ((r0, r1, (0, 4, 1, 5)), (r0, r1, (2, 6, 3, 7)), (r2, r3, (0, 4, 1, 5)),
                            (r2, r3, (2, 6, 3, 7))):
            self.get(x, y)
            f.i8x16_shuffle(_bytes_of_lanes(lanes))
            t.append(self.set_(tmp.pop(0)))
        out = []
        for x, y, lanes in ((t[0], t[2], (0, 1, 4, 5)), (t[0], t[2], (2, 3, 6, 7)), (t[1], t[3], (0, 1, 4, 5)),
                            (t[1], t[3], (2, 3, 6, 7))):
            self.get(x, y)
            f.i8x16_shuffle(_bytes_of_lanes(lanes))
            out.append(self.set_(tmp.pop(0)))
        return out

    def pack_b(self):
        """Bp[panel][k][c] = B[k, 8 panel + c] (0 beyond N)."""
        f, p = self.f, self.p
        b = p.b
        j, kk, dst, src = self.loc(), self.loc(), self.loc(), self.loc()
        self.get(self.bp)
        self.set_(dst)
        full_panels = p.N // NR
        if p.scales is not None:
            return self._pack_b_q8(j, kk, dst, src, full_panels)

        def panel():
            self.addr(self.b_base, (j, 4 * b.row))
            self.set_(src)
            if b.row == 1:                     # row-major B: 8 contiguous floats per k
                def vec_k():
                    for h in range(2):
                        self.get(dst)
                        self.addr(src, (kk, 4 * b.k), const=16 * h)
                        f.v128_load(0, 0)
                        f.v128_store(16 * h, 0)
                    self._bump(dst, 32)
                self.loop(kk, lambda: f.i32_const(0), lambda: self.k(), 1, vec_k)
            elif b.k == 1 and p.K >= 4:        # B stored transposed (N x K): 4x4 transposes
                def vec_4k():
                    for h in range(2):
                        rows = []
                        for c in range(4):
                            self.addr(src, (kk, 4), const=4 * b.row * (4 * h + c))
                            f.v128_load(0, 0)
                            rows.append(self.set_(self.loc(V128)))
                        for q, v in enumerate(self._transpose(rows)):
                            self.get(dst, v)
                            f.v128_store(32 * q + 16 * h, 0)
                    self._bump(dst, 128)
                self.loop(kk, lambda: f.i32_const(0), lambda: self.k(minus=3), 4, vec_4k)
                self._pack_b_scalar(src, kk, dst, NR, from_zero=False)
            else:
                self._pack_b_scalar(src, kk, dst, NR, from_zero=True)

        if full_panels:
            self.loop(j, lambda: f.i32_const(0), lambda: f.i32_const(full_panels * NR), NR, panel)
        rem = p.N - full_panels * NR
        if rem:
            f.i32_const(full_panels * NR)
            f.local_set(j)
            self.addr(self.b_base, (j, 4 * b.row))
            self.set_(src)
            self._pack_b_scalar(src, kk, dst, rem, from_zero=True)

    def _pack_b_q8(self, j, kk, dst, src, full_panels):
        """Bp[panel][k][c] = int8 B[k, 8 panel + c] * scales[8 panel + c] (0 beyond N)."""
        f, p = self.f, self.p
        sc = [self.loc(V128) for _ in range(2)]

        def panel():
            self.addr(self.b_base, (j, 1))
            self.set_(src)
            for h in range(2):                  # this panel's 8 scales, in two f32x4
                self.addr(1 + p.scales, (j, 4), const=16 * h)
                f.v128_load(0, 0)
                f.local_set(sc[h])

            def vec_k():
                w = self.loc(V128)
                self.addr(src, (kk, p.N))
                f.v128_load8x8_s(0, 0)          # 8 int8 -> 8 i16
                f.local_set(w)
                for h, widen in enumerate((f.i32x4_extend_low_i16x8_s, f.i32x4_extend_high_i16x8_s)):
                    self.get(dst, w)
                    widen()
                    f.f32x4_convert_i32x4_s()
                    self.get(sc[h])
                    f.f32x4_mul()
                    f.v128_store(16 * h, 0)
                self._bump(dst, 32)
            self.loop(kk, lambda: f.i32_const(0), lambda: self.k(), 1, vec_k)

        if full_panels:
            self.loop(j, lambda: f.i32_const(0), lambda: f.i32_const(full_panels * NR), NR, panel)
        cols = p.N - full_panels * NR
        if not cols:
            return

        def one_k():                            # the last, partial panel, element by element
            for c in range(NR):
                self.get(dst)
                if c < cols:
                    self.addr(self.b_base, (kk, p.N), const=full_panels * NR + c)
                    f.i32_load8_s(0, 0)
                    f.f32_convert_i32_s()
                    self.get(1 + p.scales)
                    f.f32_load(4 * (full_panels * NR + c), 0)
                    f.f32_mul()
                else:
                    f.f32_const(0.0)
                f.f32_store(4 * c, 0)
            self._bump(dst, 32)
        self.loop(kk, lambda: f.i32_const(0), lambda: self.k(), 1, one_k)

    def _pack_b_scalar(self, src, kk, dst, cols, from_zero):
        f, b = self.f, self.p.b

        def one_k():
            for c in range(NR):
                self.get(dst)
                if c < cols:
                    self.addr(src, (kk, 4 * b.k), const=4 * b.row * c)
                    f.f32_load(0, 0)
                else:
                    f.f32_const(0.0)
                f.f32_store(4 * c, 0)
            self._bump(dst, 32)
        lo = (lambda: f.i32_const(0)) if from_zero else (lambda: self.get(kk))
        self.loop(kk, lo, lambda: self.k(), 1, one_k)

    # ---- blocked loops and the micro-kernel ----
    def compute(self):
        f, p = self.f, self.p
        pc, jc, i, jp = self.loc(), self.loc(), self.loc(), self.loc()
        kc = self.loc()
        self.acc = [[self.loc(V128) for _ in range(2)] for _ in range(MR)]

        def k_block():
            # kc = min(KC, K - pc)
            self.k()
            self.get(pc)
            f.i32_sub()
            f.i32_const(KC)
            self.k()
            self.get(pc)
            f.i32_sub()
            f.i32_const(KC)
            f.i32_lt_s()
            f.select()
            self.set_(kc)
            self.loop(jc, lambda: f.i32_const(0), lambda: f.i32_const(p.N), NC, col_block)

        def col_block():
            self.loop(i, lambda: self.get(self.start), lambda: self.get(self.end), MR, row_panel)

        def row_panel():
            jend = self.loc()
            # jend = min(jc + NC, N)
            self.get(jc)
            f.i32_const(NC)
            f.i32_add()
            f.i32_const(p.N)
            self.get(jc)
            f.i32_const(NC)
            f.i32_add()
            f.i32_const(p.N)
            f.i32_lt_s()
            f.select()
            self.set_(jend)
            self.loop(jp, lambda: self.get(jc), lambda: self.get(jend), NR, lambda: self.tile(pc, kc, i, jp))

        self.loop(pc, lambda: f.i32_const(0), lambda: self.k(), KC, k_block)

    def compute_by_panel(self):
        """K <= KC, N <= NC: for each 4-row panel, pack it (it stays in L1) and run its tiles."""
        f, p = self.f, self.p
        pc, kc, i, jp, dst = self.loc(), self.loc(), self.loc(), self.loc(), self.loc()
        self.acc = [[self.loc(V128) for _ in range(2)] for _ in range(MR)]
        f.i32_const(0)
        f.local_set(pc)
        self.k()
        f.local_set(kc)

        def row_panel():
            self.get(self.ap)
            self.set_(dst)
            self.pack_a_panel(i, dst)
            self.loop(jp, lambda: f.i32_const(0), lambda: f.i32_const(p.N), NR,
                      lambda: self.tile(pc, kc, i, jp, panel=True))
        self.loop(i, lambda: self.get(self.start), lambda: self.get(self.end), MR, row_panel)

    def tile(self, pc, kc, i, j, panel=False):
        f, p = self.f, self.p
        pa, pb, kk = self.loc(), self.loc(), self.loc()
        acc = self.acc
        # pa = Ap + ((i - start) / 4 * K + pc) * 16 (Ap for a panel packed alone);  pb = Bp + (j / 8 * K + pc) * 32
        if panel:
            self.get(self.ap)
        else:
            self.get(i, self.start)
            f.i32_sub()
            self.k(4)                 # (i - start) / 4 panels * 16 K bytes
            f.i32_mul()
            self.get(self.ap)
            f.i32_add()
            self.get(pc)
            f.i32_const(16)
            f.i32_mul()
            f.i32_add()
        self.set_(pa)
        self.get(j)
        self.k(4)                 # j / 8 panels * 32 K bytes
        f.i32_mul()
        self.get(self.bp)
        f.i32_add()
        self.get(pc)
        f.i32_const(32)
        f.i32_mul()
        f.i32_add()
        self.set_(pb)
        for row in acc:
            for v in row:
                f.v128_const(bytes(16))
                f.local_set(v)
        a, b0, b1, s = self.loc(V128), self.loc(V128), self.loc(V128), self.loc(V128)
        self.get(kc)
        self.set_(kk)
        with f.loop():                  # kc >= 1
            self._k_step(pa, pb, a, b0, b1, s, 0, 0)
            self._bump(pa, 16)
            self._bump(pb, 32)
            self.get(kk)
            f.i32_const(1)
            f.i32_sub()
            f.local_tee(kk)
            f.br_if(0)
        self.store_tile(pc, i, j)

    def _k_step(self, pa, pb, a, b0, b1, s, oa, ob):
        """acc[r][h] += A[r, k] * B[k, 4h:4h+4] for one k (A lanes broadcast by splat loads or shuffles)."""
        f, acc = self.f, self.acc
        self.get(pb)
        f.v128_load(ob, 0)
        f.local_set(b0)
        self.get(pb)
        f.v128_load(ob + 16, 0)
        f.local_set(b1)
        if not self.splat:
            self.get(pa)
            f.v128_load(oa, 0)
            f.local_set(a)
        for r in range(MR):
            if self.splat:
                self.get(pa)
                f.v128_load32_splat(oa + 4 * r, 2)
            else:
                self.get(a, a)
                f.i8x16_shuffle(_bytes_of_lanes([r] * 4))
            f.local_set(s)
            for h, bv in enumerate((b0, b1)):
                if self.fma:
                    self.get(s, bv, acc[r][h])
                    f.f32x4_relaxed_madd()
                else:
                    self.get(acc[r][h], s, bv)
                    f.f32x4_mul()
                    f.f32x4_add()
                f.local_set(acc[r][h])

    def store_tile(self, pc, i, j):
        """C[i:i+4, j:j+8] (+)= acc; partial tiles through the tile buffer in scratch."""
        f, p = self.f, self.p
        c = self.loc()
        # c = C + (i N + j) * 4
        self.get(i)
        f.i32_const(4 * p.N)
        f.i32_mul()
        self.get(self.c_base)
        f.i32_add()
        self.get(j)
        f.i32_const(4)
        f.i32_mul()
        f.i32_add()
        self.set_(c)
        if self.epi is not None:
            self._epilogue(j)
        # full tile?
        self.get(i)
        f.i32_const(MR)
        f.i32_add()
        self.get(self.end)
        f.i32_le_s()
        self.get(j)
        f.i32_const(NR)
        f.i32_add()
        f.i32_const(p.N)
        f.i32_le_s()
        f.i32_and()
        with f.if_():
            self.get(pc)
            f.i32_eqz()
            with f.if_():
                self._store_rows(c, add=False)
                f.else_()
                self._store_rows(c, add=True)
            f.else_()
            self._store_partial(pc, c, i, j)

    def _epilogue(self, j):
        """acc[r][h] = epilogue(acc[r][h]) (``register_epilogue``'s expression) for the tile at column
        ``j``: a bias is one v128 load per half of the tile, an operation one ``ops.emit_op``."""
        f, e, acc = self.f, self.epi, self.n_in
        uses: dict = {}
        for x in nodes(e):
            for y in x.args:
                uses[y] = uses.get(y, 0) + 1
        # the generic lowering's rule (every operation here reads a load: all are on vectors)
        fused = fused_multiplies(nodes(e), lambda y: uses.get(y, 0)) if self.fma else set()
        col = self.loc()
        self.get(j)
        f.i32_const(4)
        f.i32_mul()
        self.set_(col)
        memo: dict = {}

        def val(x, r, h):
            key = (x, h) if x.op == "const" or x.op == "load" and x.arg != acc else (x, r, h)
            if key in memo:
                return memo[key]
            if x.op == "load" and x.arg == acc:
                return self.acc[r][h]
            if x.op == "const":
                f.v128_const(struct.pack("<f", x.arg) * 4)
            elif x.op == "load":                # in[x.arg][j + 4h .. j + 4h + 3]
                self.get(1 + x.arg, col)
                f.i32_add()
                f.v128_load(16 * h, 0)
            elif emit_fused(f, x, fused, lambda y: val(y, r, h)):
                pass
            else:
                emit_op(f, x, True, [val(y, r, h) for y in x.args], self.fma)
            memo[key] = loc = self.loc(V128)
            f.local_set(loc)
            return loc
        out = {}
        for r in range(MR):
            for h in range(2):
                out[r, h] = val(e, r, h)
        for (r, h), loc in out.items():         # after all are computed: acc[r][h] may be an operand above
            if loc != self.acc[r][h]:
                self.get(loc)
                f.local_set(self.acc[r][h])

    def _store_rows(self, c, add):
        f, p = self.f, self.p
        for r in range(MR):
            for h in range(2):
                off = 4 * (r * p.N + 4 * h)
                self.get(c)
                if add:
                    self.get(c)
                    f.v128_load(off, 0)
                    self.get(self.acc[r][h])
                    f.f32x4_add()
                else:
                    self.get(self.acc[r][h])
                f.v128_store(off, 0)

    def _store_partial(self, pc, c, i, j):
        f, p = self.f, self.p
        for r in range(MR):
            for h in range(2):
                self.get(self.scratch, self.acc[r][h])
                f.v128_store(32 * r + 16 * h, 0)
        rows, cols, r, q = self.loc(), self.loc(), self.loc(), self.loc()
        # rows = min(4, end - i), cols = min(8, N - j)
        for dst, lim_push, n in ((rows, lambda: (self.get(self.end, i), f.i32_sub()), MR),
                                 (cols, lambda: (f.i32_const(p.N), self.get(j), f.i32_sub()), NR)):
            f.i32_const(n)
            lim_push()
            f.i32_const(n)
            lim_push()
            f.i32_lt_s()
            f.select()                  # min(n, limit)
            f.local_set(dst)

        def one_row():
            def one_col():
                # addr = c + (r N + q) 4
                self.get(r)
                f.i32_const(4 * p.N)
                f.i32_mul()
                self.get(c)
                f.i32_add()
                self.get(q)
                f.i32_const(4)
                f.i32_mul()
                f.i32_add()
                t = self.loc()
                f.local_tee(t)
                self.get(self.scratch, r)
                f.i32_const(32)
                f.i32_mul()
                f.i32_add()
                self.get(q)
                f.i32_const(4)
                f.i32_mul()
                f.i32_add()
                f.f32_load(0, 0)
                self.get(pc)
                with f.if_(F32):
                    self.get(t)
                    f.f32_load(0, 0)
                    f.else_()
                    f.f32_const(0.0)
                f.f32_add()
                f.f32_store(0, 0)
            self.loop(q, lambda: f.i32_const(0), lambda: self.get(cols), 1, one_col)
        self.loop(r, lambda: f.i32_const(0), lambda: self.get(rows), 1, one_row)

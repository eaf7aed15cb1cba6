"""The ``matmul`` template, batched; operand layouts (transposes, broadcast batch dims) come from the
loads' index expressions, so nothing is materialised. ``choose_plan`` picks per shape:

- ``direct`` (most shapes): each invocation keeps an rm x rn block of sums in registers (4 x 4 up to
  8 x 8, fitted to N and to the output's size) and reads A and B straight from the buffers: no
  shared memory, no barriers, no padding of small N or K to a tile. Measured on Dawn/SwiftShader
  (``bench/bench_webgpu_peers.mjs``) it beats 64 x 64 shared-memory tiles at every size tried,
  12x on an im2col convolution (K = 9, N = 16), 3x on an MLP train step; jax-js, which is fast
  on GPUs too, generates register-blocked kernels of this kind. Its loads and stores are scalar:
  ``vec4`` rows of B and of the output (vec4 accumulators, bitwise the same sums) did not measure
  faster there (docs/measurements.md);
- ``tiled``: shared-memory tiles with 4 x 4 outputs per invocation, for products large and aligned
  enough that staging tiles pays on GPUs;
- None: the generic reduction (``reduce.py``, which splits K across a workgroup), for
  matrix-vector products, tiny outputs and operands that are not affine loads.

Which shapes take which, and the tiles' sizes, depend on the adapter's class (``Limits.adapter_class``:
software, integrated or discrete GPU, unknown): ``MATMUL_TUNING`` holds one row per class, with
where each row's values come from.

Few workgroups over a long K split K (partial sums, then a summing pass) in both kernels.

``template == 'matmul_q8'`` (``quantized_matmul``: B is an int8 K x N matrix packed four bytes to
an i32 word, times one scale per column): the tiled kernel (where its tiles are at least a fifth
useful work), whose B tile loads read the int8 byte (``extractBits``, sign-extending) and multiply
it by its column's scale, so the shared-memory tile holds the dequantized float32 weights and no
float32 copy of B exists outside it.

float16 on a device with ``shader-f16`` (``limits.compute_type``): the same kernels over f16 buffers
and f16 shared-memory tiles (half the workgroup storage), each operand widened to f32 as it is
multiplied (the product of two float16 values is exact in f32) and summed in f32, split K's partials
too; the sum is rounded to f16 once, where it is stored. That is what GPUs' float16 matmuls do (f32
accumulation; cuBLAS' ``CUBLAS_COMPUTE_32F``) and what ``reduce.py`` does for the generic path,
except that it also rounds each product to f16. Without ``shader-f16`` float16 is stored and
computed as f32, so its kernels are the float32 product's (then rounded to float16, ``wgsl.py``)."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Callable

from ..core import kernel_ir as K
from ..core.simplify import Simplifier
from .emit import BYTES, Emitter, Epilogue, Inputs, Lowered, Pass, epilogue_store, rows_bound, shader_header, \
    workgroup_grid
from .flatten import Space, add_all, int_const, load_offset, simplifier
from .limits import Limits, compute_type, storage_type
from .ops import cast_code, literal

MATMUL_MIN_WORKGROUPS = 16   # matmuls with fewer output tiles split K ...
MATMUL_SPLIT_K_MIN = 256     # ... into chunks of at least this many
MATMUL_TILED_MIN_USE = 0.5   # shared-memory tiles only where at least this share of their work is useful
MATMUL_Q8_MIN_USE = 0.2      # the q8 template's tiles: below this share of useful output, the generic reduction


@dataclass(frozen=True)
class Tuning:
    """One adapter class's matmul choices (``choose_plan``).

    ``tiled_min_macs``, ``tiled_min_tiles``: shared-memory tiles for products of at least this many
    multiply-adds (M * N * K, batch included) that fill more than this many output tiles (and at least
    ``MATMUL_TILED_MIN_USE`` of the tiles' work is useful); else the direct kernel. ``ts``, ``rr``, ``tk``:
    the tiles: a ts x ts workgroup (ts = 8 where a device allows fewer than 256 invocations),
    rr x rr outputs per invocation, k-depth tk (halved until two tiles fit the workgroup storage).
    ``direct_min_out``: fewer outputs (or a matrix-vector product): the generic reduction.
    ``direct_big_out``: from this many outputs, 8 x 8 blocks per invocation in the direct kernel
    (else 4 x 8)."""
    tiled_min_macs: int
    tiled_min_tiles: int
    ts: int
    rr: int
    tk: int
    direct_min_out: int
    direct_big_out: int


# The tuning of each adapter class (``Limits.adapter_class``): the one place these choices live.
# - "cpu" (SwiftShader, lavapipe): measured. On Dawn/SwiftShader (``node bench/bench_webgpu_peers.mjs``)
#   the direct kernel beat 64 x 64 shared-memory tiles at every size tried (12x on an im2col convolution,
#   3x on an MLP train step); 8 x 8 direct blocks from 2^15 outputs beat them from 2^18 by 1.2-1.3x on the
#   256 matmul and the MLP (unrolling K by 4 was slower). Tiles never: ``python bench/bench_webgpu_plans.py
#   --shapes 2048x1024x1024`` on lavapipe (wgpu-py): direct 1.9x the 64 x 64 tiles, 2-2.6x the GPU rows'
#   32 x 32; ``node bench/bench_webgpu_peers.mjs --webgpu-adapter cpu --compare-adapters integrated-gpu,
#   discrete-gpu``: the GPU rows 2.2-3.4x slower on the matmuls, 5-6x on the MLP (docs/measurements.md, "WebGPU plans
#   per adapter class").
# - "unknown" (the portable choice; exported artifacts' default, docs/artifact.md): the plans of the
#   measured software adapters for all but large aligned products, which take 64 x 64 tiles
#   (16 x 16 invocations, 4 x 4 outputs each), as GPUs gain from staging tiles there.
# - "integrated-gpu", "discrete-gpu": not measured here (no GPU on the machines this was built on);
#   TF.js's WebGPU backend's choices (tfjs-backend-webgpu 4.22, kernels/BatchMatMul_impl.ts and
#   webgpu_util.ts computeWorkgroupInfoForMatMul): shared-memory tiles of 32 x 32 (an 8 x 8 workgroup,
#   4 x 4 outputs per invocation, 32 deep) once the output has more than 8 such tiles
#   (``thresholdToIncreaseWorkgroups``, backend_webgpu.ts: 8, 16 on Intel Gen12+/Xe GPUs, the common
#   integrated ones), else kernels with more workgroups (ours: the direct kernel, splitting K when
#   the workgroups are few); the generic reduction (TF.js's MatMulReduceProgram) for at most 128 outputs.
MATMUL_TUNING = {
    "cpu": Tuning(tiled_min_macs=1 << 62, tiled_min_tiles=0, ts=16, rr=4, tk=16, direct_min_out=64,
                  direct_big_out=1 << 15),
    "unknown": Tuning(tiled_min_macs=1 << 31, tiled_min_tiles=0, ts=16, rr=4, tk=16, direct_min_out=64,
                      direct_big_out=1 << 15),
    "integrated-gpu": Tuning(tiled_min_macs=0, tiled_min_tiles=16, ts=8, rr=4, tk=32, direct_min_out=129,
                             direct_big_out=1 << 15),
    "discrete-gpu": Tuning(tiled_min_macs=0, tiled_min_tiles=8, ts=8, rr=4, tk=32, direct_min_out=129,
                           direct_big_out=1 << 15),
}


@dataclass(frozen=True)
class Plan:
    """How one matmul is computed. ``tiled``: shared-memory tiles of (ts * rr) x tk and tk x (ts * rr)
    in a ts x ts workgroup, rr x rr outputs per invocation. ``direct``: no shared memory and no
    barriers; each invocation reads its rm rows of A and rn columns of B straight from the buffers
    and keeps rm x rn sums in registers; a wx x wy workgroup covers (wy * rm) x (wx * rn) outputs."""
    kind: str
    ts: int = 0
    rr: int = 0
    tk: int = 1
    rm: int = 1
    rn: int = 1
    wx: int = 1
    wy: int = 1

    @property
    def tm(self) -> int:
        return self.ts * self.rr

    @property
    def tn(self) -> int:
        return self.ts * self.rr


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def choose_plan(batch: int, M: int, N: int, Kd: int, limits: Limits, tiled_only: bool = False,
                direct_only: bool = False) -> Plan | None:
    """The lowering for a (batch x) M x K by K x N product on an adapter of ``limits.adapter_class``
    (its ``MATMUL_TUNING`` row): ``tiled`` for products large enough, filling enough tiles, at least
    half of whose tile work is useful; ``direct`` for the shapes tiles waste (small N or K: im2col
    convolutions, the classifier layer of an MLP) and, on software adapters, all others; None (the
    generic reduction, which splits K across a workgroup) for matrix-vector products and outputs under
    the row's ``direct_min_out`` elements. ``tiled_only`` (the q8 template, whose B loads dequantize
    into the tiles): ``tiled`` where at least ``MATMUL_Q8_MIN_USE`` of its tile work is useful, else None.
    ``direct_only`` (the conv2d template, which has no tiled form): never ``tiled``."""
    tune = MATMUL_TUNING[limits.adapter_class]
    ts = tune.ts if min(limits.max_compute_invocations_per_workgroup, limits.max_compute_workgroup_size_x,
                        limits.max_compute_workgroup_size_y) >= tune.ts * tune.ts else 8
    rr, tk = tune.rr, tune.tk
    while 2 * tk * ts * rr * 4 > limits.max_compute_workgroup_storage_size and tk > 1:
        tk //= 2
    tiled = Plan("tiled", ts=ts, rr=rr, tk=tk)
    tm = tiled.tm
    tiles_m, tiles_n = -(-M // tm), -(-N // tm)
    if tiled_only:
        return tiled if M * N >= MATMUL_Q8_MIN_USE * tiles_m * tm * tiles_n * tm else None
    use = M * N * Kd / (tiles_m * tm * tiles_n * tm * -(-Kd // tk) * tk)
    if not direct_only and use >= MATMUL_TILED_MIN_USE and batch * M * N * Kd >= tune.tiled_min_macs and \
            batch * tiles_m * tiles_n > tune.tiled_min_tiles:
        return tiled
    if min(M, N) == 1 or batch * M * N < tune.direct_min_out:
        return None
    # bigger blocks reuse each loaded value more (rm + rn loads per rm * rn multiply-adds) but leave
    # fewer invocations; columns first (B's rows are contiguous in the common layouts)
    rn = min(N, 8 if N >= 16 else 4)
    rm = min(M, 8 if batch * M * N >= tune.direct_big_out else 4)
    wx = min(16, _pow2_at_least(-(-N // rn)))
    wy = min(64 // wx, _pow2_at_least(-(-M // rm)))
    return Plan("direct", rm=rm, rn=rn, wx=wx, wy=wy)


def _operand(e: K.Expr):
    """(load, its cast target or None, prologue or None) for an operand ``load``, ``cast(load)`` or
    float32 elementwise function of one float32 load (a prologue, ``core/compile.py``), else None."""
    if e.op == "load":
        return e, None, None
    if e.op == "cast" and e.args[0].op == "load":
        return e.args[0], e.dtype, None
    seen, stack = set(), [e]
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(x.args if x.op != "load" else ())
    loads = {x for x in seen if x.op == "load"}
    if e.dtype.name != "float32" or len(loads) != 1 or any(x.op == "idx" for x in seen) or \
            next(iter(loads)).dtype.name != "float32":
        return None
    return next(iter(loads)), None, e


_LOADED = "@loaded@"   # where a prologue's WGSL takes its operand's loaded value


def _prologue_code(e: K.Expr, em: Emitter) -> str:
    """The WGSL of prologue ``e`` as one expression, its load written ``_LOADED``: the same ops (and
    so the same float32 results) as the map kernel it replaces, whose Emitter renders them alike."""
    if e.op == "load":
        return _LOADED
    if e.op == "const":
        return literal(e.arg, em.t(e.dtype))
    code = em._render(e, [_prologue_code(x, em) for x in e.args])
    em.helpers.update(re.findall(r"\b(wt_\w+)\(", code))
    return f"({code})"


def lower_matmul(kernel: K.Kernel, limits: Limits, chunk: int | None = None) -> Lowered | None:
    """The tiled matmul, or None (the generic reduction lowers it) when the kernel is not
    ``sum_k A[.., m, k] * B[.., k, n]`` with affine operand indices, or when M x N fills too little
    of the output tiles.

    ``chunk``: run-time rows (``emit.py``) of a kernel whose loop space's axis 0 holds ``chunk``
    batch rows: the leading batch dimension (workgroups are batch-major: the first ``wt_rows``
    rows' workgroups come first) or, without batch dimensions, M (the first workgroups cover the
    first row tiles; split K then numbers a tile's K chunks consecutively, so they come with it;
    rows past ``wt_rows`` are not stored). Each output's sum is the chunk's: same plan, same K
    chunks, same order."""
    q8 = kernel.template == "matmul_q8"
    e = kernel.expr.args[0] if kernel.expr.op == "cast" else kernel.expr
    if kernel.combiner != "sum" or kernel.n_reduce != 1 or e.op != "mul" or len(kernel.space) < 3:
        return None
    ops = [_operand(x) for x in (e.args[:1] if q8 else e.args)]
    if None in ops:
        return None
    space = kernel.space
    nb = len(space) - 3
    M, N, Kd = space[nb], space[nb + 1], space[nb + 2]
    if q8 and (kernel.param("n") != N or ops[0][0].arg != 0):
        return None
    forms = Simplifier(space)
    info = []
    pro_em = Emitter(limits, forms, {}, {}, None)
    for load, cast_to, pro in ops:
        c0, coefs, rest = load_offset(load, kernel.inputs[load.arg].shape, forms)
        if rest:
            return None
        info.append((load, cast_to, c0, {d: c for d, c in coefs.items() if space[d] > 1 and c},
                     pro and _prologue_code(pro, pro_em)))
    if q8:        # B: element (k, n) of the row-major int8 matrix, in input 1's bytes; scales: input 2
        info.append((None, None, 0, {d: c for d, c in ((nb + 2, N), (nb + 1, 1)) if space[d] > 1}, None))
    a, b = (info[0], info[1]) if nb + 1 not in info[0][3] else (info[1], info[0])
    if nb + 1 in a[3] or nb in b[3]:
        return None
    ins = Inputs(kernel, limits, 1)
    t = compute_type(kernel.out.dtype, limits)      # the operands' type (and the tiles')
    acc_t = "f32" if t == "f16" else t               # float16 products are summed in f32 (as reduce.py)
    batch = math.prod(space[:nb])
    plan = choose_plan(batch, M, N, Kd, limits, tiled_only=q8)
    if plan is None:
        return None
    if plan.kind == "tiled":
        tiles_m, tiles_n = -(-M // plan.tm), -(-N // plan.tn)
    else:   # direct: a workgroup covers wy x wx blocks of rm x rn outputs
        tiles_m, tiles_n = -(-M // (plan.rm * plan.wy)), -(-N // (plan.rn * plan.wx))
    tiles = batch * tiles_m * tiles_n
    # split-K: few workgroups over a long K leave the device idle; chunks of K (multiples of tk)
    # write partial tiles, a second pass sums them.
    tk = plan.tk
    ksplit = 1
    if tiles < MATMUL_MIN_WORKGROUPS and Kd >= 2 * MATMUL_SPLIT_K_MIN:
        ksplit = min(-(-MATMUL_MIN_WORKGROUPS // tiles), Kd // MATMUL_SPLIT_K_MIN)
        while ksplit > 1 and batch * ksplit * M * N * 4 > limits.max_storage_buffer_binding_size:
            ksplit //= 2
    kchunk = -(-(-(-Kd // ksplit)) // tk) * tk
    ksplit = -(-Kd // kchunk)
    total = tiles * ksplit
    grid, wg_line = workgroup_grid(total, limits)
    wg_end, m_bound, rows_formula, sum_per = total, None, None, None
    order = f"""let zk = wg / {tiles_m * tiles_n};
  let z = zk / {ksplit};
  let ks = zk % {ksplit};
  let tile = wg % {tiles_m * tiles_n};"""
    if chunk and nb:            # the batch leads the batch dimensions: whole workgroups per row
        per_z = batch // chunk * tiles_m * tiles_n * ksplit
        wg_end, rows_formula, sum_per = rows_bound(per_z), (per_z, 1, 1), batch // chunk * M * N
    elif chunk:                 # the batch is M: row tiles of `rtile` rows, each with its K chunks
        km, rtile = M // chunk, plan.tm if plan.kind == "tiled" else plan.rm * plan.wy
        m_bound = rows_bound(km)
        wg_end = f"(({m_bound} + {rtile - 1}) / {rtile}) * {tiles_n * ksplit}"
        rows_formula, sum_per = (km, rtile, tiles_n * ksplit), km * N
        order = f"let z = 0;\n  let ks = wg % {ksplit};\n  let tile = wg / {ksplit};"
    sp = Space(space, [range(nb)])
    simp = simplifier((batch,))
    em = Emitter(limits, simp, {0: "z"}, {0: 1}, ins.load)

    def base(op_info):
        c0, co = op_info[2], op_info[3]
        if op_info[0] is None:               # q8's B: no batch dims
            return "0"
        return em.value(simp(add_all([int_const(c0)] + sp.runs({d: c for d, c in co.items() if d < nb}))))

    a_base, b_base = base(a), base(b)

    def read(op_info, off):
        load, cast_to = op_info[0], op_info[1]
        if load is None:                     # q8's B at element offset ``off``, column ``gm``
            word = ins.load(1, f"({off}) / 4", kernel.inputs[1].dtype)
            byte = f"extractBits({word}, u32(({off}) % 4) * 8u, 8u)"
            return f"{cast_code(byte, 'i32', t)} * {ins.load(2, 'gm', kernel.inputs[2].dtype)}"
        v = ins.load(load.arg, off, load.dtype)
        if op_info[4] is not None:           # a prologue: float32 in, float32 out
            return op_info[4].replace(_LOADED, v)
        return cast_code(v, compute_type(load.dtype, limits), t) if cast_to is not None or \
            compute_type(load.dtype, limits) != t else v

    zero = literal(0, acc_t)
    out_t = storage_type(kernel.out.dtype, limits)
    dest, obase = ("result", f"z * {M * N}") if ksplit == 1 else ("partials", f"(z * {ksplit} + ks) * {M * N}")
    pre = "\n  ".join(em.lines[1])
    head = f"""  {wg_line}
  if (wg >= {wg_end}) {{ return; }}
  {order}"""
    epi = Epilogue.of(kernel, ins, limits)       # applied where the result is stored
    first_ins = ins.decls() if ksplit == 1 else ins.decls({x[0].arg for x in (a, b) if x[0] is not None} |
                                                          ({1, 2} if q8 else set()))
    binds = tuple((name, w) for name, _, w in first_ins) + ((dest, True),)
    decls = first_ins + [(dest, out_t if ksplit == 1 else acc_t, True)]
    first_epi = epi if ksplit == 1 else None
    # fixed-size bindings, except under run-time rows (the buffers bound then hold fewer rows)
    lengths = None if chunk else {**ins.lengths(), dest: batch * ksplit * M * N}
    helpers = em.helpers | pro_em.helpers | (first_epi.helpers if first_epi else set())
    shared = _shared(plan, t) + (first_epi.source if first_epi else "")
    job = _Job(plan, M, N, Kd, kchunk, a, b, am=a[3].get(nb, 0), ak=a[3].get(nb + 2, 0), bk=b[3].get(nb + 2, 0),
               bn=b[3].get(nb + 1, 0), a_base=a_base, b_base=b_base, read=read, zero=zero, t=t, acc_t=acc_t,
               out_t=t if ksplit == 1 else acc_t, head=head, pre=pre,
               dest=dest, obase=obase, header=shader_header(decls, limits, helpers, shared, rows=bool(chunk),
                                                            lengths=lengths),
               binds=binds, grid=grid, epi=first_epi, m_bound=m_bound)
    first = dataclasses.replace(_tiled_pass(job) if plan.kind == "tiled" else _direct_pass(job), rows=rows_formula)
    if ksplit == 1:
        return ins.lowered([first])
    return ins.lowered([first, _sum_pass(batch, M, N, ksplit, acc_t, out_t, zero, limits, ins, epi, sum_per, lengths)],
                       scratch=[("partials", batch * ksplit * M * N * 4)])


@dataclass(frozen=True)
class _Job:
    """What both first passes need: the plan, the sizes, the operands (load info, strides along m, k
    and k, n; WGSL bases per batch), how to read them, and the shader's shared text."""
    plan: Plan
    M: int
    N: int
    Kd: int
    kchunk: int
    a: tuple
    b: tuple
    am: int
    ak: int
    bk: int
    bn: int
    a_base: str
    b_base: str
    read: Callable          # (operand info, WGSL element offset) -> its value, of type ``t``
    zero: str               # 0 of ``acc_t``
    t: str                  # the operands' WGSL type (and the shared-memory tiles')
    acc_t: str              # the sums' (f32 for f16 operands)
    out_t: str              # what the first pass stores (the sums' type under split K)
    head: str
    pre: str
    dest: str
    obase: str
    header: str
    binds: tuple
    grid: tuple
    epi: Epilogue | None = None
    m_bound: str | None = None      # run-time rows where the batch is M: WGSL for the rows of M to store

    def widen(self, v: str) -> str:
        """Operand value ``v`` (type ``t``) as ``acc_t``: f16 operands are multiplied in f32, exactly
        (a product of two 11-bit significands fits f32's 24 bits), as GPUs' float16 matmuls do."""
        return cast_code(v, self.t, self.acc_t)

    def store(self, index: str, acc: str) -> str:
        """The statement storing ``acc`` at ``obase + index`` (through the epilogue, if any)."""
        acc = cast_code(acc, self.acc_t, self.out_t)
        if self.epi is None:
            return f"{self.dest}[obase + {index}] = {acc};"
        return f"{{ let o = obase + {index}; {self.dest}[o] = {epilogue_store(self.epi, acc, 'o')}; }}"


def _shared(plan: Plan, t: str) -> str:
    if plan.kind != "tiled":
        return ""
    return (f"var<workgroup> tile_a: array<{t}, {plan.tk * plan.tm}>;\n"
            f"var<workgroup> tile_b: array<{t}, {plan.tk * plan.tn}>;")


def _tiled_pass(j: _Job) -> Pass:
    """Shared-memory tiles of tm x tk and tk x tn, a ts x ts workgroup, rr x rr outputs per invocation."""
    job = j
    plan, M, N, Kd, kchunk, a, b, read, zero = j.plan, j.M, j.N, j.Kd, j.kchunk, j.a, j.b, j.read, j.zero
    ts, rr, tm, tn, tk = plan.ts, plan.rr, plan.tm, plan.tn, plan.tk
    am, ak, bk, bn, a_base, b_base, dest = j.am, j.ak, j.bk, j.bn, j.a_base, j.b_base, j.dest
    nthreads = ts * ts
    tile_zero = literal(0, j.t)

    def tile_load(name, op_info, rows_name, rows_ext, rows_coef, k_coef, tile_rows, base_v):
        # tile[kk * tile_rows + mm]; consecutive invocations read consecutive addresses where possible
        if k_coef == 1 or rows_coef != 1:
            split = f"let mm = e / {tk}; let kk = e % {tk};"
        else:
            split = f"let kk = e / {tile_rows}; let mm = e % {tile_rows};"
        off = f"{base_v} + gm * {rows_coef} + gk * {k_coef}"
        return f"""    for (var e = li; e < {tile_rows * tk}; e = e + {nthreads}) {{
      {split}
      let gm = {rows_name}0 + mm;
      let gk = k0 + kk;
      var v = {tile_zero};
      if (gm < {rows_ext} && gk < {Kd}) {{ v = {read(op_info, off)}; }}
      {name}[kk * {tile_rows} + mm] = v;
    }}"""

    accs = [f"acc{i}{j}" for i in range(rr) for j in range(rr)]
    inner = [f"let a{i} = {job.widen(f'tile_a[kk * {tm} + ty + {ts * i}]')};" for i in range(rr)]
    inner += [f"let b{j} = {job.widen(f'tile_b[kk * {tn} + tx + {ts * j}]')};" for j in range(rr)]
    inner += [f"acc{i}{j} = acc{i}{j} + a{i} * b{j};" for i in range(rr) for j in range(rr)]
    stores = [f"if (m0 + ty + {ts * i} < {job.m_bound or M} && n0 + tx + {ts * j} < {N}) {{ "
              f"{job.store(f'(m0 + ty + {ts * i}) * {N} + n0 + tx + {ts * j}', f'acc{i}{j}')} }}"
              for i in range(rr) for j in range(rr)]
    tiles_n = -(-N // tn)
    src = j.header + f"""
@compute @workgroup_size({ts}, {ts})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {{
{j.head}
  let m0 = (tile / {tiles_n}) * {tm};
  let n0 = (tile % {tiles_n}) * {tn};
  let tx = i32(lid3.x);
  let ty = i32(lid3.y);
  let li = i32(lidx);
  let obase = {j.obase};
  {j.pre}
  {"; ".join(f"var {x} = {zero}" for x in accs)};
  for (var k0 = ks * {kchunk}; k0 < min(ks * {kchunk} + {kchunk}, {Kd}); k0 = k0 + {tk}) {{
{tile_load("tile_a", a, "m", M, am, ak, tm, a_base)}
{tile_load("tile_b", b, "n", N, bn, bk, tn, b_base)}
    workgroupBarrier();
    for (var kk = 0; kk < {tk}; kk = kk + 1) {{
      {(chr(10) + "      ").join(inner)}
    }}
    workgroupBarrier();
  }}
  {(chr(10) + "  ").join(stores)}
}}
"""
    return Pass(src, j.binds, j.grid, (ts, ts, 1), BYTES.get(j.t, 4) * tk * (tm + tn))


def _direct_pass(j: _Job) -> Pass:
    """Each invocation: rm x rn outputs, summed over its chunk of K from direct buffer reads (rows and
    columns past the edge read the last row/column and are not stored, so the loop has no branch)."""
    p, M, N = j.plan, j.M, j.N
    rm, rn, wx, wy = p.rm, p.rn, p.wx, p.wy
    blocks_m, blocks_n = -(-M // rm), -(-N // rn)
    tiles_n = -(-blocks_n // wx)

    def at(first, i, ext, stride):
        if stride == 0:
            return "0"
        idx = f"{first} + {i}" if i else first
        if (ext % (rm if first == "m0" else rn)) and i:
            idx = f"min({idx}, {ext - 1})"
        return f"({idx}) * {stride}" if stride != 1 else idx

    rows = [f"let ra{i} = {j.a_base} + {at('m0', i, M, j.am)};" for i in range(rm)]
    cols = [f"let cb{c} = {j.b_base} + {at('n0', c, N, j.bn)};" for c in range(rn)]
    kterm = lambda s: "k" if s == 1 else f"k * {s}"  # noqa: E731
    inner = [f"let a{i} = {j.widen(j.read(j.a, f'ra{i} + {kterm(j.ak)}'))};" for i in range(rm)]
    inner += [f"let b{c} = {j.widen(j.read(j.b, f'cb{c} + {kterm(j.bk)}'))};" for c in range(rn)]
    inner += [f"acc{i}{c} = acc{i}{c} + a{i} * b{c};" for i in range(rm) for c in range(rn)]
    stores = []
    for i in range(rm):
        for c in range(rn):
            conds = ([f"m0 + {i} < {j.m_bound or M}"] if (M % rm or j.m_bound) and i else []) + \
                ([f"n0 + {c} < {N}"] if N % rn and c else [])
            st = j.store(f"(m0 + {i}) * {N} + n0 + {c}", f"acc{i}{c}")
            stores.append(f"if ({' && '.join(conds)}) {{ {st} }}" if conds else st)
    bm = blocks_m if j.m_bound is None else f"({j.m_bound} + {rm - 1}) / {rm}"
    nl = "\n  "
    src = j.header + f"""
@compute @workgroup_size({wx}, {wy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {{
{j.head}
  let bi = (tile / {tiles_n}) * {wy} + i32(lid3.y);
  let bj = (tile % {tiles_n}) * {wx} + i32(lid3.x);
  if (bi >= {bm} || bj >= {blocks_n}) {{ return; }}
  let m0 = bi * {rm};
  let n0 = bj * {rn};
  let obase = {j.obase};
  {j.pre}
  {nl.join(rows + cols)}
  {"; ".join(f"var acc{i}{c} = {j.zero}" for i in range(rm) for c in range(rn))};
  for (var k = ks * {j.kchunk}; k < min(ks * {j.kchunk} + {j.kchunk}, {j.Kd}); k = k + 1) {{
    {(nl + "  ").join(inner)}
  }}
  {nl.join(stores)}
}}
"""
    return Pass(src, j.binds, j.grid, (wx, wy, 1))


def _sum_pass(batch, M, N, ksplit, t, out_t, zero, limits, ins: Inputs, epi: Epilogue | None,
              per: int | None = None, lengths: dict | None = None) -> Pass:
    """result[b, e] = sum over chunks s of partials[(b * ksplit + s) * M * N + e] (through the epilogue),
    summed in ``t`` (f32 for float16 products), stored as ``out_t``.
    ``per``: run-time rows: outputs per batch row (the first ``wt_rows * per`` are computed);
    ``lengths``: the first pass's fixed binding lengths (None: runtime-sized bindings)."""
    n_out, wgs = batch * M * N, limits.workgroup_size
    grid2, wg_line2 = workgroup_grid(-(-n_out // wgs), limits)
    extra = ins.decls(epi.inputs) if epi else []
    decls = extra + [("partials", t, False), ("result", out_t, True)]
    lengths = lengths and {**lengths, "result": batch * M * N}
    src2 = shader_header(decls, limits, epi.helpers if epi else (), epi.source if epi else "", rows=per is not None,
                         lengths=lengths) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line2}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n_out if per is None else rows_bound(per)}) {{ return; }}
  let first = (gid / {M * N}) * {ksplit * M * N} + gid % {M * N};
  var acc = {zero};
  for (var s = 0; s < {ksplit}; s = s + 1) {{ acc = acc + partials[first + s * {M * N}]; }}
  result[gid] = {epilogue_store(epi, cast_code("acc", t, out_t), "gid")};
}}
"""
    return Pass(src2, tuple((name, w) for name, _, w in decls), grid2, (wgs, 1, 1),
                rows=None if per is None else (per, wgs, 1))

"""Kernel IR -> WGSL compute shaders. Pure Python and stdlib only, so the same compiler runs
natively, in Pyodide and in the page.

:func:`lower` turns one :class:`~webtensor.core.kernel_ir.Kernel` into a :class:`Lowered`: one
or two compute passes (WGSL source, binding list, workgroup counts) and the scratch buffers they
use. Like every backend it knows the IR's vocabulary, never op names:

- expressions: a table from IR op to a WGSL expression (tinygrad's renderer style, ``_CODE``);
  the DAG is lowered once per node (memo) into ``let`` bindings, and bindings that do not depend
  on the reduction index are hoisted out of reduction loops;
- indices: each load's multi-dimensional index becomes a flat row-major offset. Affine parts are
  merged into runs of contiguous dimensions of the kernel's linear ids; a range analysis drops
  divisions, modulos, clamps and bounds tests that cannot change the result;
- ``map`` kernels: one invocation per output element; workgroups are folded into a 2-D/3-D grid
  when their count exceeds ``maxComputeWorkgroupsPerDimension``;
- ``reduce`` kernels: a tree reduction in ``var<workgroup>`` memory (one or several rows per
  workgroup), two passes when few rows are very long; argmax/argmin keep the first index on ties
  and, like numpy, treat NaN as the extreme value;
- ``template == 'matmul'``: a workgroup-tiled kernel with shared-memory tiles and 4x4 outputs per
  invocation, batched; operand layouts (transposes, broadcast batch dims) come from the loads'
  index expressions, so nothing is materialised. Few output tiles over a long K split K (partial
  tiles, then a summing pass); an output that fills under a fifth of its tiles (e.g. 9x16) and
  operands that are not affine loads use the generic reduction instead.

Device limits (:class:`Limits`, read from the adapter by the runtime) shape the result: at most
``maxStorageBuffersPerShaderStage`` bindings per pass (further inputs are packed into one binding
that the runtime fills with buffer copies), buffer sizes within ``maxStorageBufferBindingSize``
and ``maxBufferSize`` (:class:`BufferTooLarge` otherwise), workgroup size and workgroup memory
within their limits.

Numerics (what the tests hold the backend to): ``idiv``/``mod`` use floor semantics, ``round`` is
WGSL's half-to-even ``round``, float->int casts truncate toward zero and saturate, bool is stored as i32 0/1,
``pow`` follows numpy for negative bases with integral exponents, ``erf`` and ``tanh`` are
rational approximations (Eigen's float ones; drivers' ``tanh`` loses all relative accuracy near 0,
e.g. Mesa's lavapipe), inf/nan constants are ``wt_bits_f32`` of their bit patterns (a function call, as
WGSL makes a non-finite const-expression a shader-creation error: Tint/Dawn reject
``bitcast<f32>(0x7f800000u)``, naga accepts it), NaN
is detected on the bits (compilers may fold ``x != x`` to false; lavapipe does). WGSL leaves NaN
unspecified in ``max``/``min``, ``clamp`` and float->int conversion: the lowering makes them follow
the IR (NaN propagates through max/min, elementwise and in reductions, float->int saturates with
NaN -> 0); ``!=`` on floats is written ``!(a == b)`` (lavapipe compiles ``!=`` as an ordered
comparison, false for NaN).
"""
from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, fields
from typing import Callable, Mapping

from ..core import kernel_ir as K
from ..core.dtypes import DType, int32
from ..core.simplify import compare_ranges, interval, nodes

# ---- device limits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The device limits the compiler respects (WebGPU limit names in snake case). Defaults are the
    WebGPU spec's guaranteed minimums; ``shader_f16`` says the device has the ``shader-f16`` feature."""
    max_storage_buffers_per_shader_stage: int = 8
    max_storage_buffer_binding_size: int = 128 << 20
    max_buffer_size: int = 256 << 20
    max_compute_workgroups_per_dimension: int = 65535
    max_compute_invocations_per_workgroup: int = 256
    max_compute_workgroup_size_x: int = 256
    max_compute_workgroup_size_y: int = 256
    max_compute_workgroup_storage_size: int = 16384
    shader_f16: bool = False

    @classmethod
    def from_mapping(cls, limits: Mapping, features=(), **overrides) -> "Limits":
        """Limits from a device's ``limits`` (wgpu-py's ``max-buffer-size`` keys or JS ``maxBufferSize``)
        and ``features``; ``overrides`` replace single fields (tests simulate small devices with them)."""
        norm = {str(k).replace("-", "").replace("_", "").lower(): v for k, v in dict(limits).items()}
        kw = {}
        for f in fields(cls):
            key = f.name.replace("_", "")
            if key in norm and norm[key] is not None:
                kw[f.name] = int(norm[key])
        kw["shader_f16"] = "shader-f16" in set(features)
        kw.update(overrides)
        return cls(**kw)

    @property
    def workgroup_size(self) -> int:
        """Invocations per 1-D workgroup: 256, or less where the device allows less."""
        return max(1, min(256, self.max_compute_invocations_per_workgroup, self.max_compute_workgroup_size_x))


class BufferTooLarge(ValueError, MemoryError):
    """A buffer exceeds ``maxStorageBufferBindingSize`` or ``maxBufferSize``: the device cannot hold it
    (a MemoryError, as the other devices raise; a ValueError for code written before)."""


# ---- dtypes: the dtype table's ``wgsl`` column, plus how each type is stored ---------------------

def compute_type(dt: DType, limits: Limits) -> str:
    """WGSL type an expression of ``dt`` computes in (``dt.wgsl``; float16 computes in f32 where the
    device lacks ``shader-f16``)."""
    return "f32" if dt.wgsl == "f16" and not limits.shader_f16 else dt.wgsl


def storage_type(dt: DType, limits: Limits) -> str:
    """WGSL element type of a buffer holding ``dt`` (bool is stored as i32 0/1)."""
    t = compute_type(dt, limits)
    return "i32" if t == "bool" else t


def storage_nbytes(shape, dt: DType, limits: Limits) -> int:
    """Bytes of a contiguous buffer of ``shape`` and ``dt`` on the device."""
    return math.prod(shape) * (2 if storage_type(dt, limits) == "f16" else 4)


_BITS = {"f32": {"inf": "0x7f800000u", "-inf": "0xff800000u", "nan": "0x7fc00000u"}}


def literal(value, wtype: str) -> str:
    """A WGSL literal of ``wtype`` (f32 f16 i32 u32 bool). WGSL has no inf/nan literals: those are
    ``wt_bits_f32`` (every shader's bitcast helper, see :func:`_header`) of their bit patterns."""
    if wtype == "bool":
        return "true" if value else "false"
    if wtype == "u32":
        return f"{int(value)}u"
    if wtype == "i32":
        v = int(value)
        return "i32(-2147483647 - 1)" if v == -2 ** 31 else f"{v}i" if v >= 0 else f"({v}i)"
    v = float(value)
    limit = 3.4028234663852886e38 if wtype == "f32" else 65504.0
    if math.isnan(v) or abs(v) > limit:
        text = "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
        if abs(v) < math.inf and wtype == "f32":   # finite doubles past the f32 range may round to max
            try:
                v32 = struct.unpack("<f", struct.pack("<f", v))[0]
                if abs(v32) < math.inf:
                    return _float_text(v32, "f")
            except OverflowError:
                pass
        bits = f"wt_bits_f32({_BITS['f32'][text]})"
        return bits if wtype == "f32" else f"{wtype}({bits})"
    return _float_text(v, "f" if wtype == "f32" else "h")


def _float_text(v: float, suffix: str) -> str:
    """The shortest decimal that reads back as the same f32 (f16 values are exact in f32 too)."""
    r = struct.unpack("<f", struct.pack("<f", v))[0]
    for p in range(6, 18):
        s = f"{r:.{p}g}"
        if struct.unpack("<f", struct.pack("<f", float(s)))[0] == r:
            break
    if "." not in s and "e" not in s:
        s += ".0"
    return f"({s}{suffix})" if s.startswith("-") else f"{s}{suffix}"


def _cast_code(x: str, src: str, dst: str) -> str:
    """WGSL conversion of value ``x`` from type ``src`` to ``dst`` (IR cast semantics: float->int
    truncates toward zero, saturates and maps NaN to 0 (``wt_f2i``: WGSL's own conversion clamps to
    2**31 - 128 and leaves NaN undefined), x->bool is x != 0 (NaN is true), bool->number is 0/1)."""
    if src == dst:
        return x
    if dst == "bool":
        return f"(!({x} == {literal(0, src)}))"   # not `!=`: lavapipe compiles it ordered (NaN != 0 false)
    if src == "bool":
        return f"select({literal(0, dst)}, {literal(1, dst)}, {x})"
    if dst == "i32" and src in ("f32", "f16"):
        return f"wt_f2i_{src}({x})"
    return f"{dst}({x})"


# ---- the expression table ----------------------------------------------------------------------
# ``{0}``, ``{1}`` are operand values, ``{t}`` the operands' WGSL type; ``wt_*`` names are helper
# functions (``_HELPERS``), emitted once per shader that uses them.

_CODE = {
    "neg": "(-{0})", "abs": "abs({0})", "exp": "exp({0})", "log": "log({0})", "sqrt": "sqrt({0})",
    "sin": "sin({0})", "cos": "cos({0})", "tanh": "wt_tanh_{t}({0})", "erf": "wt_erf_{t}({0})",
    "floor": "floor({0})", "ceil": "ceil({0})", "round": "round({0})", "not": "(!{0})",
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "idiv": "floor({0} / {1})", "mod": "wt_mod_{t}({0}, {1})", "max": "wt_max_{t}({0}, {1})",
    "min": "wt_min_{t}({0}, {1})", "pow": "wt_pow_{t}({0}, {1})", "lt": "({0} < {1})", "le": "({0} <= {1})",
    "eq": "({0} == {1})", "ne": "(!({0} == {1}))", "gt": "({0} > {1})", "ge": "({0} >= {1})",
    "and": "({0} & {1})", "or": "({0} | {1})",
}
_CODE_INT = {"floor": "{0}", "ceil": "{0}", "round": "{0}", "div": "wt_floordiv_{t}({0}, {1})",
             "idiv": "wt_floordiv_{t}({0}, {1})", "mod": "wt_floormod_{t}({0}, {1})", "pow": "wt_ipow_{t}({0}, {1})",
             "max": "max({0}, {1})", "min": "min({0}, {1})", "ne": "({0} != {1})"}
_CODE_NONNEG = {"div": "({0} / {1})", "idiv": "({0} / {1})", "mod": "({0} % {1})"}  # both operands >= 0

_HELPERS = {
    # inf/nan values (``literal``): a call is not a const-expression, so a non-finite result is legal
    "bits": "fn wt_bits_{T}(b: u32) -> {T} { return bitcast<{T}>(b); }",
    # NaN on the bits: shader compilers may fold x != x to false (lavapipe does)
    "isnan": "fn wt_isnan_{T}(x: {T}) -> bool { return (bitcast<u32>(f32(x)) & 0x7fffffffu) > 0x7f800000u; }",
    # WGSL leaves max/min of a NaN unspecified (lavapipe returns the other operand): NaN wins, as in
    # numpy's maximum/minimum and max/min reductions
    "max": """fn wt_max_{T}(a: {T}, b: {T}) -> {T} {
  if (wt_isnan_{T}(a)) { return a; }
  if (wt_isnan_{T}(b)) { return b; }
  return max(a, b);
}""",
    "min": """fn wt_min_{T}(a: {T}, b: {T}) -> {T} {
  if (wt_isnan_{T}(a)) { return a; }
  if (wt_isnan_{T}(b)) { return b; }
  return min(a, b);
}""",
    # the IR's float -> int cast: truncate, saturate to int32's range, NaN -> 0 (WGSL's i32(x) clamps
    # to 2**31 - 128, the largest f32 below 2**31, f16 to its own finite range (lavapipe: -inf ->
    # -65504), and leaves NaN undefined)
    "f2i": """fn wt_f2i_{T}(x: {T}) -> i32 {
  if (wt_isnan_{T}(x)) { return 0i; }
  if (f32(x) >= 2147483648.0) { return 2147483647i; }
  if (f32(x) <= -2147483648.0) { return i32(-2147483647 - 1); }
  return i32(x);
}""",
    "floordiv": """fn wt_floordiv_{T}(a: {T}, b: {T}) -> {T} {
  if (b == 0) { return 0; }
  let q = a / b;
  if (q * b != a && ((a < 0) != (b < 0))) { return q - 1; }
  return q;
}""",
    "floormod": """fn wt_floormod_{T}(a: {T}, b: {T}) -> {T} {
  if (b == 0) { return 0; }
  let r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) { return r + b; }
  return r;
}""",
    "mod": """fn wt_mod_{T}(a: {T}, b: {T}) -> {T} {
  return a - b * floor(a / b);
}""",
    # numpy (C99 powf, Annex F.9.4.4): x**0 == 1**y == (-1)**(+-inf) == 1 (even for NaN); otherwise a
    # NaN operand gives NaN; 0**y is 0 (y > 0) or inf (y < 0); a base with its sign bit set (x < 0,
    # -0, -inf) gives a negative result for an odd integral exponent; a finite negative base with a
    # non-integral exponent gives nan.
    "pow": """fn wt_pow_{T}(a: {T}, b: {T}) -> {T} {
  let m = abs(a);
  let inf = wt_bits_f32(0x7f800000u);
  if (b == 0.0 || a == 1.0 || (m == 1.0 && f32(abs(b)) == inf)) { return 1.0; }
  if (wt_isnan_{T}(a) || wt_isnan_{T}(b)) { return {T}(wt_bits_f32(0x7fc00000u)); }
  var r = {T}(0.0);
  if (m == 0.0) { if (b < 0.0) { r = {T}(inf); } } else { r = pow(m, b); }
  if ((bitcast<u32>(f32(a)) & 0x80000000u) != 0u) {
    if (!(floor(b) == b)) { return select(r, {T}(wt_bits_f32(0x7fc00000u)), a < 0.0 && f32(m) < inf); }
    if (abs(b) < 16777216.0 && fract(b * 0.5) != 0.0) { return -r; }
  }
  return r;
}""",
    # Integer power by squaring; a negative exponent gives the truncated result (0 unless |a| == 1).
    "ipow": """fn wt_ipow_{T}(a: {T}, b: {T}) -> {T} {
  if (b < 0) { if (a == 1) { return 1; } if (a == -1) { return select(1, -1, (b & 1) != 0); } return 0; }
  var r: {T} = 1;
  var x = a;
  for (var e = b; e > 0; e = e >> 1u) {
    if ((e & 1) != 0) { r = r * x; }
    x = x * x;
  }
  return r;
}""",
    # Eigen's float erf (SpecialFunctionsImpl.h, generic_fast_erf_float; also XLA's f32 erf):
    # x * P(x^2) / Q(x^2) on x clamped to [-4, 4], where erf is +-1 in float32.
    "erf": """fn wt_erf_{T}(a: {T}) -> {T} {
  if (wt_isnan_{T}(a)) { return a; }      // clamp leaves NaN unspecified (lavapipe: -4)
  let x = clamp(a, -4.0, 4.0);
  let x2 = x * x;
  var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08;
  p = x2 * p + -2.10102402082508e-06;
  p = x2 * p + -5.69250639462346e-05;
  p = x2 * p + -7.34990630326855e-04;
  p = x2 * p + -2.95459980854025e-03;
  p = x2 * p + -1.60960333262415e-02;
  var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04;
  q = x2 * q + -1.68282697438203e-03;
  q = x2 * q + -7.37332916720468e-03;
  q = x2 * q + -1.42647390514189e-02;
  return x * p / q;
}""",
    # Eigen's float tanh (MathFunctionsImpl.h, ptanh_float; also XLA's EmitFastTanh): x for
    # |x| < 0.0004, else x * P(x^2) / Q(x^2) on x clamped to +-7.90531, where tanh is +-1 in float32.
    "tanh": """fn wt_tanh_{T}(a: {T}) -> {T} {
  if (abs(a) < 0.0004 || wt_isnan_{T}(a)) { return a; }   // clamp leaves NaN unspecified
  let x = clamp(a, -7.90531110763549805, 7.90531110763549805);
  let x2 = x * x;
  var p = x2 * -2.76076847742355e-16 + 2.00018790482477e-13;
  p = x2 * p + -8.60467152213735e-11;
  p = x2 * p + 5.12229709037114e-08;
  p = x2 * p + 1.48572235717979e-05;
  p = x2 * p + 6.37261928875436e-04;
  p = x2 * p + 4.89352455891786e-03;
  var q = x2 * 1.19825839466702e-06 + 1.18534705686654e-04;
  q = x2 * q + 2.26843463243900e-03;
  q = x2 * q + 4.89352518554385e-03;
  return x * p / q;
}""",
}


def _helper_source(name: str) -> str:
    base, t = name[3:].rsplit("_", 1)
    return _HELPERS[base].replace("{T}", t)


def _with_deps(helpers) -> list[str]:
    """``helpers`` plus the helpers they call (and ``wt_bits_f32``, every shader's inf/nan), sorted so
    that a helper comes after those it calls (WGSL allows any order; this reads better)."""
    out, todo = set(), list(set(helpers) | {"wt_bits_f32"})
    while todo:
        h = todo.pop()
        if h not in out:
            out.add(h)
            todo += re.findall(r"\b(wt_\w+)\(", _helper_source(h))
    deps = {h: set(re.findall(r"\b(wt_\w+)\(", _helper_source(h))) - {h} for h in out}
    order: list[str] = []
    while len(order) < len(out):
        order += sorted(h for h in out if h not in order and deps[h] <= set(order))
    return order


# ---- the kernel IR, prepared for WGSL -----------------------------------------------------------
# Two node kinds exist only here: ``lin`` (arg g: linear id of dimension group g, an int32 variable
# of the shader) and ``ld`` (arg k: input k at the flat offset args[0]).

def _lin(group: int) -> K.Expr:
    return K.Expr("lin", int32, (), group)


def _c(v: int) -> K.Expr:
    return K.const(v, int32)


def _topo(root: K.Expr) -> list[K.Expr]:
    """The DAG's distinct nodes, operands before users, last operand's subtree first (the order
    of the shader's ``let`` bindings)."""
    return nodes(root, operand_order="last")


def _row_major(shape) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


def _affine(e: K.Expr, memo: dict):
    """``(c0, {dim: coef})`` when integer ``e`` is c0 + sum(coef * idx(dim)), else None."""
    if e in memo:
        return memo[e]
    r = None
    if e.op == "const" and e.dtype.kind == "i":
        r = (e.arg, {})
    elif e.op == "idx":
        r = (0, {e.arg: 1})
    elif e.op in ("add", "sub", "mul") and e.dtype.kind == "i":
        a, b = (_affine(x, memo) for x in e.args)
        if a is not None and b is not None:
            if e.op == "mul":
                if a[1] and b[1]:
                    r = None
                else:
                    (k, _), (c0, co) = (a, b) if not a[1] else (b, a)
                    r = (c0 * k, {d: c * k for d, c in co.items()})
            else:
                s = 1 if e.op == "add" else -1
                co = dict(a[1])
                for d, c in b[1].items():
                    co[d] = co.get(d, 0) + s * c
                r = (a[0] + s * b[0], co)
    memo[e] = r
    return r


class _Space:
    """The kernel's index space cut into groups of consecutive dimensions, each with a linear id
    (``lin`` node): one group for a map kernel; output dims and reduced dims for a reduction."""

    def __init__(self, space, groups):
        self.space = tuple(space)
        self.groups = [tuple(g) for g in groups]
        self.stride, self.group_of = {}, {}
        for g, dims in enumerate(self.groups):
            s = 1
            for d in reversed(dims):
                self.stride[d], self.group_of[d] = s, g
                s *= self.space[d]

    def idx(self, d: int) -> K.Expr:
        """idx(d) in terms of its group's linear id."""
        if self.space[d] == 1:
            return _c(0)
        return K.binary("mod", K.binary("idiv", _lin(self.group_of[d]), _c(self.stride[d])), _c(self.space[d]))

    def runs(self, coefs: dict) -> list[K.Expr]:
        """sum(coef[d] * idx(d)) as few terms as possible: consecutive dims whose coefficients are in
        row-major proportion form one run, ``((lin / stride) % size) * coef``."""
        terms = []
        for g, dims in enumerate(self.groups):
            run = None                              # [coef of innermost dim, its stride, run size]
            for d in reversed(dims):
                n, c = self.space[d], coefs.get(d, 0)
                if n == 1:
                    continue
                if c != 0 and run is not None and c == run[0] * run[2]:
                    run[2] *= n
                    continue
                if run is not None:
                    terms.append(self._term(g, *run))
                run = [c, self.stride[d], n] if c != 0 else None
            if run is not None:
                terms.append(self._term(g, *run))
        return terms

    @staticmethod
    def _term(g, coef, stride, size):
        return K.binary("mul", K.binary("mod", K.binary("idiv", _lin(g), _c(stride)), _c(size)), _c(coef))


def _sum(terms: list[K.Expr]) -> K.Expr:
    out = None
    for t in terms:
        out = t if out is None else K.binary("add", out, t)
    return out if out is not None else _c(0)


def _flatten(kernel: K.Kernel, sp: _Space) -> K.Expr:
    """Loads -> ``ld`` at flat offsets, idx -> linear ids (the expression the shader computes)."""
    memo_aff: dict = {}
    new: dict = {}
    for e in _topo(kernel.expr):
        if e.op == "idx":
            new[e] = sp.idx(e.arg)
        elif e.op == "load":
            c0, coefs, rest = _load_offset(e, kernel.inputs[e.arg].shape, memo_aff)
            rest = [K.binary("mul", new[ix], _c(st)) for ix, st in rest]
            new[e] = K.Expr("ld", e.dtype, (_sum([_c(c0)] + sp.runs(coefs) + rest),), e.arg)
        elif e.args:
            args = tuple(new[a] for a in e.args)
            new[e] = e if args == e.args else K.Expr(e.op, e.dtype, args, e.arg)
        else:
            new[e] = e
    return new[kernel.expr]


def _load_offset(load: K.Expr, shape, memo_aff: dict):
    """A load's flat row-major offset as ``(c0, {dim: coef}, [(index expr, stride), ...])``: the
    affine part c0 + sum(coef * idx(dim)) plus the non-affine index components times their strides."""
    c0, coefs, rest = 0, {}, []
    for ix, n, st in zip(load.args, shape, _row_major(shape)):
        if n == 1:
            continue                       # in bounds by construction: the index is 0
        a = _affine(ix, memo_aff)
        if a is None:
            rest.append((ix, st))
            continue
        c0 += a[0] * st
        for d, c in a[1].items():
            coefs[d] = coefs.get(d, 0) + c * st
    return c0, coefs, rest


# ---- simplification with integer ranges ---------------------------------------------------------

class _Simplifier:
    """Bottom-up rewrite of integer index arithmetic using value ranges: x // c and x % c vanish
    when 0 <= x < c, clamps vanish when already in range, comparisons decided by ranges fold (so
    padding and bounds tests disappear where the index provably stays inside)."""

    def __init__(self, lin_extents: dict[int, int]):
        self.lin_extents = lin_extents
        self.ranges: dict = {}
        self.memo: dict = {}

    def range(self, e: K.Expr):
        return self.ranges.get(e)

    def __call__(self, root: K.Expr) -> K.Expr:
        for e in _topo(root):
            if e in self.memo:
                continue
            args = tuple(self.memo[a] for a in e.args)
            n = e if args == e.args else K.Expr(e.op, e.dtype, args, e.arg)
            n = self._rule(n)
            self.memo[e] = n
            if n not in self.ranges:
                self.ranges[n] = self._range(n)
        return self.memo[root]

    def _range(self, e):
        if e.dtype.kind != "i":
            return None
        op = e.op
        if op == "const":
            return (e.arg, e.arg)
        if op == "lin":
            return (0, self.lin_extents[e.arg] - 1)
        rs = [self.ranges.get(a) for a in e.args]
        if op == "where":
            rs = rs[1:]
        elif op == "neg" and rs[0]:
            return (-rs[0][1], -rs[0][0])
        if len(rs) != 2 or rs[0] is None or rs[1] is None:
            return None
        return interval(op, rs[0], rs[1])

    def _rule(self, e: K.Expr) -> K.Expr:
        op, args = e.op, e.args
        cv = [a.arg if a.op == "const" else None for a in args]
        if op == "where" and cv[0] is not None:
            return args[1] if cv[0] else args[2]
        if op == "and" and (cv[0] is not None or cv[1] is not None):
            c, other = (cv[0], args[1]) if cv[0] is not None else (cv[1], args[0])
            return other if c else K.const(False)
        if op == "or" and (cv[0] is not None or cv[1] is not None):
            c, other = (cv[0], args[1]) if cv[0] is not None else (cv[1], args[0])
            return K.const(True) if c else other
        if len(args) != 2 or args[0].dtype.kind != "i":
            return e
        x, y = args
        cx, cy = cv
        rx, ry = self.ranges.get(x), self.ranges.get(y)
        if op in K.COMPARISONS:
            if rx and ry:
                known = compare_ranges(op, rx, ry)
                if known is not None:
                    return K.const(known)
            return e
        if cx is not None and cy is not None:
            v = _fold_int(op, cx, cy)
            return _c(v) if v is not None else e
        if op == "add":
            return y if cx == 0 else x if cy == 0 else e
        if op == "sub":
            return x if cy == 0 else e
        if op == "mul":
            if cx == 0 or cy == 0:
                return _c(0)
            return y if cx == 1 else x if cy == 1 else e
        if op in ("idiv", "mod") and cy is not None and cy > 0:
            if cy == 1:
                return x if op == "idiv" else _c(0)
            if rx and 0 <= rx[0] and rx[1] < cy:
                return _c(0) if op == "idiv" else x
            return e
        if op in ("max", "min") and rx and ry:
            if op == "max":
                return x if rx[0] >= ry[1] else y if ry[0] >= rx[1] else e
            return x if rx[1] <= ry[0] else y if ry[1] <= rx[0] else e
        return e


def _fold_int(op, a, b):
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "max":
        return max(a, b)
    if op == "min":
        return min(a, b)
    if op in ("idiv", "div", "mod") and b != 0:
        return a // b if op != "mod" else a % b
    return None


# ---- emitting let bindings ----------------------------------------------------------------------

class _Emitter:
    """Writes an expression DAG as ``let`` bindings, one per distinct node. A node that depends on
    a linear id of level 2 (the reduction index) goes to ``lines[2]`` (the loop body); all others to
    ``lines[1]`` (before the loop)."""

    def __init__(self, limits: Limits, simplifier: _Simplifier, lin_names: dict, lin_levels: dict,
                 load: Callable[[int, str, DType], str]):
        self.limits, self.simp, self.load = limits, simplifier, load
        self.lin_names, self.lin_levels = lin_names, lin_levels
        self.lines: dict[int, list[str]] = {1: [], 2: []}
        self.names: dict = {}
        self.level: dict = {}
        self.helpers: set[str] = set()

    def t(self, dt: DType) -> str:
        return compute_type(dt, self.limits)

    def value(self, root: K.Expr) -> str:
        """The WGSL value of ``root`` (a name or a literal); its bindings are appended to ``lines``."""
        for e in _topo(root):
            if e not in self.names:
                self.names[e] = self._node(e)
        return self.names[root]

    def _node(self, e: K.Expr) -> str:
        if e.op == "const":
            self.level[e] = 0
            return literal(e.arg, self.t(e.dtype))
        if e.op == "lin":
            self.level[e] = self.lin_levels[e.arg]
            return self.lin_names[e.arg]
        a = [self.names[x] for x in e.args]
        level = self.level[e] = max(self.level[x] for x in e.args)
        code = self._render(e, a)
        self.helpers.update(re.findall(r"\b(wt_\w+)\(", code))
        name = f"v{len(self.names)}"
        self.lines[2 if level >= 2 else 1].append(f"let {name} = {code};")
        return name

    def _render(self, e: K.Expr, a: list[str]) -> str:
        op = e.op
        if op == "ld":
            return self.load(e.arg, a[0], e.dtype)
        if op == "cast":
            return _cast_code(a[0], self.t(e.args[0].dtype), self.t(e.dtype))
        if op == "where":
            return f"select({a[2]}, {a[1]}, {a[0]})"
        t = self.t(e.args[0].dtype)
        fmt = _CODE[op]
        if e.args[0].dtype.kind == "i":
            fmt = _CODE_INT.get(op, fmt)
            if op in _CODE_NONNEG:
                rx, ry = self.simp.range(e.args[0]), self.simp.range(e.args[1])
                if rx and ry and rx[0] >= 0 and ry[0] > 0:
                    fmt = _CODE_NONNEG[op]
        return fmt.format(*a, t=t)


# ---- shader assembly ----------------------------------------------------------------------------

_BYTES = {"f16": 2, "f32": 4, "i32": 4, "u32": 4}     # WGSL scalar sizes (workgroup memory)


@dataclass(frozen=True)
class Pass:
    """One compute dispatch: its WGSL ``source``, the buffers bound (``(name, writable)`` in binding
    order; names are ``in<k>`` for kernel input k, ``packed``, ``partials``, ``result``), the
    workgroup counts to dispatch, the shader's ``@workgroup_size`` and its ``var<workgroup>`` bytes
    (what an artifact lists as required limits)."""
    source: str
    bindings: tuple[tuple[str, bool], ...]
    workgroups: tuple[int, int, int]
    workgroup_size: tuple[int, int, int]
    workgroup_storage: int = 0


@dataclass(frozen=True)
class Lowered:
    """A kernel as WGSL passes. ``packed``: ``(input k, u32 word offset)`` for inputs the runtime copies
    into the ``packed`` buffer before the passes (more inputs than bindings); ``scratch``: ``(name,
    bytes)`` of the buffers the passes share (``packed``, ``partials``). No passes: nothing to compute."""
    passes: tuple[Pass, ...]
    packed: tuple[tuple[int, int], ...] = ()
    scratch: tuple[tuple[str, int], ...] = ()


def _grid(total: int, limits: Limits) -> tuple[tuple[int, int, int], str]:
    """Workgroup counts for ``total`` workgroups, folded into 2-D/3-D past the per-dimension limit,
    and the WGSL line computing the linear workgroup id ``wg``."""
    m = limits.max_compute_workgroups_per_dimension
    x = max(1, min(total, m))
    rest = -(-total // x)
    y = max(1, min(rest, m))
    z = max(1, -(-rest // y))
    if z > m:
        raise ValueError(f"a dispatch of {total} workgroups exceeds {m}^3 (maxComputeWorkgroupsPerDimension)")
    code = "wid.x"
    if y > 1 or z > 1:
        code += f" + wid.y * {x}u"
    if z > 1:
        code += f" + wid.z * {x * y}u"
    return (x, y, z), f"let wg = i32({code});"


def _header(decls: list[tuple[str, str, bool]], limits: Limits, helpers=(), shared: str = "") -> str:
    # every shader of an f16 device enables f16: a fused body may compute in f16 between f32 buffers
    lines = ["enable f16;"] if limits.shader_f16 else []
    for i, (name, t, writable) in enumerate(decls):
        lines.append(f"@group(0) @binding({i}) var<storage, {'read_write' if writable else 'read'}> "
                     f"{name}: array<{t}>;")
    lines += [_helper_source(h) for h in _with_deps(helpers)]
    if shared:
        lines.append(shared)
    return "\n".join(lines) + "\n"


def _store_code(v: str, t: str) -> str:
    return f"select(0i, 1i, {v})" if t == "bool" else v


class _Inputs:
    """How the shader reads kernel inputs: its own binding each, or (past the binding budget) one
    ``packed`` u32 binding the runtime fills with copies."""

    def __init__(self, kernel: K.Kernel, limits: Limits, outputs: int):
        loaded = sorted({e.arg for e in _topo(kernel.expr) if e.op == "load"})
        budget = limits.max_storage_buffers_per_shader_stage - outputs
        if budget < 1 or (len(loaded) > budget and budget < 2):
            raise ValueError(f"the device allows {limits.max_storage_buffers_per_shader_stage} storage buffers "
                             f"per shader stage; webgpu kernels need at least {outputs + 2}")
        self.limits, self.kernel = limits, kernel
        self.direct = loaded if len(loaded) <= budget else loaded[:budget - 1]
        self.packed: dict[int, int] = {}
        words = 0
        for k in loaded[len(self.direct):]:
            b = kernel.inputs[k]
            if storage_type(b.dtype, limits) == "f16":
                raise ValueError("a kernel with more float16 inputs than storage bindings is not supported")
            self.packed[k] = words
            words += max(math.prod(b.shape), 1)
        self.words = words
        if words * 4 > limits.max_storage_buffer_binding_size:
            raise BufferTooLarge(f"the packed inputs of a kernel need {words * 4} bytes, above this device's "
                                 f"maxStorageBufferBindingSize of {limits.max_storage_buffer_binding_size} bytes")

    def decls(self) -> list[tuple[str, str, bool]]:
        d = [(f"in{k}", storage_type(self.kernel.inputs[k].dtype, self.limits), False) for k in self.direct]
        return d + ([("packed", "u32", False)] if self.packed else [])

    def load(self, k: int, off: str, dt: DType) -> str:
        t = compute_type(dt, self.limits)
        if k in self.packed:
            word = f"packed[{self.packed[k]} + {off}]" if self.packed[k] else f"packed[{off}]"
            return f"({word} != 0u)" if t == "bool" else f"bitcast<{'i32' if t == 'i32' else 'f32'}>({word})"
        v = f"in{k}[{off}]"
        return f"({v} != 0i)" if t == "bool" else v

    def lowered(self, passes, scratch=()) -> Lowered:
        packed = tuple(sorted(self.packed.items()))
        scratch = tuple(scratch) + ((("packed", self.words * 4),) if self.packed else ())
        return Lowered(tuple(passes), packed, scratch)


def _check_sizes(kernel: K.Kernel, limits: Limits) -> None:
    bufs = [(f"input {k}", b) for k, b in enumerate(kernel.inputs)] + [("output", kernel.out)]
    for what, b in bufs:
        n = storage_nbytes(b.shape, b.dtype, limits)
        for limit, name in ((limits.max_storage_buffer_binding_size, "maxStorageBufferBindingSize"),
                            (limits.max_buffer_size, "maxBufferSize")):
            if n > limit:
                raise BufferTooLarge(f"kernel {what} ({b.dtype.name}{list(b.shape)}) needs {n} bytes, above this "
                                     f"device's {name} of {limit} bytes")


def lower(kernel: K.Kernel, limits: Limits = Limits()) -> Lowered:
    """Compile one kernel to WGSL passes for a device with ``limits``.

    Raises:
        BufferTooLarge: an input or the output exceeds ``maxStorageBufferBindingSize``/``maxBufferSize``.
        ValueError: the device's limits are too small for any lowering (fewer than 3 storage buffers).
    """
    _check_sizes(kernel, limits)
    if math.prod(kernel.out.shape) == 0:
        return Lowered(())
    if kernel.kind == "map":
        return _lower_map(kernel, limits)
    if kernel.template == "matmul":
        low = _lower_matmul(kernel, limits)
        if low is not None:
            return low
    return _lower_reduce(kernel, limits)


def copy_pass(words: int, dst_offset: int | None = None, limits: Limits = Limits()) -> Pass:
    """A dispatch copying 32-bit words from binding 0 (``src``, from its word 0) to binding 1 (``dst``)
    bit for bit: ``words`` words to ``dst`` from word ``dst_offset``, or with ``dst_offset=None``
    all of ``dst`` (``arrayLength``: bind a ``dst`` of exactly ``words`` words and a ``src`` at least
    as long; one shader then serves every size). For runtimes that run only dispatches (exported
    artifacts): they fill a kernel's ``packed`` binding (``Lowered.packed``) and route in-place
    updates through a temporary with it, where the native runtime uses ``copy_buffer_to_buffer``."""
    wgs = limits.workgroup_size
    grid, wg_line = _grid(max(1, -(-words // wgs)), limits)
    n, at = ("i32(arrayLength(&dst))", "gid") if dst_offset is None else (words, f"{dst_offset} + gid")
    src = _header([("src", "u32", False), ("dst", "u32", True)], limits) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  dst[{at}] = src[gid];
}}
"""
    return Pass(src, (("src", False), ("dst", True)), grid, (wgs, 1, 1))


# ---- map ----------------------------------------------------------------------------------------

def _lower_map(kernel: K.Kernel, limits: Limits) -> Lowered:
    ins = _Inputs(kernel, limits, 1)
    n = math.prod(kernel.space)
    wgs = limits.workgroup_size
    sp = _Space(kernel.space, [range(len(kernel.space))])
    simp = _Simplifier({0: n})
    em = _Emitter(limits, simp, {0: "gid"}, {0: 1}, ins.load)
    v = em.value(simp(_flatten(kernel, sp)))
    grid, wg_line = _grid(-(-n // wgs), limits)
    out_t = storage_type(kernel.out.dtype, limits)
    body = "\n  ".join(em.lines[1] + em.lines[2])
    src = _header(ins.decls() + [("result", out_t, True)], limits, em.helpers) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  {body}
  result[gid] = {_store_code(v, compute_type(kernel.out.dtype, limits))};
}}
"""
    binds = tuple((name, w) for name, _, w in ins.decls()) + (("result", True),)
    return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1))])


# ---- reduce -------------------------------------------------------------------------------------

_IDENTITY = {"sum": 0, "prod": 1, "max": -math.inf, "min": math.inf}
_INT_IDENTITY = {"sum": 0, "prod": 1, "max": -2 ** 31, "min": 2 ** 31 - 1}
_COMBINE = {"sum": "{0} + {1}", "prod": "{0} * {1}", "max": "wt_max_{t}({0}, {1})", "min": "wt_min_{t}({0}, {1})"}
_COMBINE_INT = {**_COMBINE, "max": "max({0}, {1})", "min": "min({0}, {1})"}
SPLIT_MIN_LENGTH = 1 << 14   # reductions this long over few rows use two passes
SPLIT_CHUNK = 4096           # elements per workgroup in the first of two passes
MATMUL_TK = 16               # k-depth of the matmul template's shared-memory tiles
MATMUL_MIN_WORKGROUPS = 16   # matmuls with fewer output tiles split K ...
MATMUL_SPLIT_K_MIN = 256     # ... into chunks of at least this many
MATMUL_MIN_USE = 0.2         # below this share of useful tile work, the generic reduction is faster


def _better(combiner: str, t: str) -> str:
    """``wt_better(a, ia, b, ib)``: is candidate (a, ia) preferred to (b, ib) for argmax/argmin?
    Index -1 means empty; NaN beats numbers (numpy); ties go to the smaller index."""
    cmp = ">" if combiner == "argmax" else "<"
    # NaN is tested on the bits: shader compilers may fold x != x to false (lavapipe does).
    nan = "" if t == "i32" else """
  let an = (bitcast<u32>(f32(a)) & 0x7fffffffu) > 0x7f800000u;
  let bn = (bitcast<u32>(f32(b)) & 0x7fffffffu) > 0x7f800000u;
  if (an || bn) { return an && (!bn || ia < ib); }"""
    return f"""fn wt_better(a: {t}, ia: i32, b: {t}, ib: i32) -> bool {{
  if (ia < 0) {{ return false; }}
  if (ib < 0) {{ return true; }}{nan}
  if (a {cmp} b) {{ return true; }}
  if (a != b) {{ return false; }}
  return ia < ib;
}}"""


def _threads_per_row(length: int, wgs: int) -> int:
    """Invocations cooperating on one row: a power of two, about a quarter of the row length."""
    t = 1
    while t < wgs and t * 4 < length:
        t *= 2
    return t


def _reduce_source(*, limits, decls, helpers, combiner, t, rows, length, pre, body, value, index,
                   store, row_split=None, prelude="") -> tuple[str, tuple[int, int, int]]:
    """One reduction pass. ``rows`` rows of ``length`` elements; ``pre``/``body`` are the lines before/in
    the loop over ``j`` (``r`` is the row, ``j`` the element); ``value``/``index`` what is combined;
    ``store(acc, acc_i)`` the lines writing row ``row``'s result. ``row_split``: (splits, chunk) when
    this is the first of two passes: row ``row`` covers chunk ``row % splits`` of row ``row / splits``."""
    wgs = limits.workgroup_size
    arg = combiner in ("argmax", "argmin")
    per_row = length if row_split is None else row_split[1]
    tpr = _threads_per_row(per_row, wgs)
    rpw = wgs // tpr
    grid, wg_line = _grid(-(-rows // rpw), limits)
    if arg:
        ident = literal(-math.inf if combiner == "argmax" else math.inf, t) if t != "i32" else \
            literal(-2 ** 31 if combiner == "argmax" else 2 ** 31 - 1, t)
    else:
        ident = literal((_IDENTITY if t != "i32" else _INT_IDENTITY)[combiner], t)
    if row_split is None:
        rowdef, lo, hi = "let r = row;", "0", str(length)
    else:
        s, ch = row_split
        rowdef = f"let r = row / {s};\n    let j0 = (row % {s}) * {ch};"
        lo, hi = "j0", f"min(j0 + {ch}, {length})"
    if arg:
        update = f"if (wt_better({value}, {index}, acc, acc_i)) {{ acc = {value}; acc_i = {index}; }}"
        merge = ("if (wt_better(red_v[lid + {s}], red_i[lid + {s}], red_v[lid], red_i[lid])) "
                 "{{ red_v[lid] = red_v[lid + {s}]; red_i[lid] = red_i[lid + {s}]; }}")
        acc_decl = f"var acc = {ident};\n  var acc_i = -1;"
    else:
        comb = (_COMBINE_INT if t == "i32" else _COMBINE)[combiner]
        update = f"acc = {comb.format('acc', value, t=t)};"
        merge = "red_v[lid] = " + comb.format("red_v[lid]", "red_v[lid + {s}]", t=t) + ";"
        acc_decl = f"var acc = {ident};"
        helpers = set(helpers) | set(re.findall(r"\b(wt_\w+)\(", update))
    pre_s = "\n    ".join(pre)
    body_s = "\n      ".join(body + [update])
    lane = f"i32(lid) % {tpr}" if tpr < wgs else "i32(lid)"
    row = f"wg * {rpw} + i32(lid) / {tpr}" if rpw > 1 else "wg"
    src = f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let row = {row};
  let lane = {lane};
  {acc_decl}
  if (row < {rows}) {{
    {rowdef}
    {pre_s}
    for (var j = {lo} + lane; j < {hi}; j = j + {tpr}) {{
      {body_s}
    }}
  }}
"""
    shared, need = "", 0
    if tpr > 1:
        shared = f"var<workgroup> red_v: array<{t}, {wgs}>;" + (f"\nvar<workgroup> red_i: array<i32, {wgs}>;"
                                                                  if arg else "")
        need = wgs * (_BYTES.get(t, 4) + (4 if arg else 0))
        if need > limits.max_compute_workgroup_storage_size:
            raise ValueError(f"a reduction needs {need} bytes of workgroup memory, above this device's "
                             f"maxComputeWorkgroupStorageSize of {limits.max_compute_workgroup_storage_size}")
        src += "  red_v[lid] = acc;\n" + ("  red_i[lid] = acc_i;\n" if arg else "") + "  workgroupBarrier();\n"
        s = tpr // 2
        while s >= 1:
            src += f"  if (lane < {s}) {{ {merge.format(s=s)} }}\n  workgroupBarrier();\n"
            s //= 2
        final, final_i = "red_v[lid]", "red_i[lid]"
        cond = f"lane == 0 && row < {rows}"
    else:
        final, final_i, cond = "acc", "acc_i", f"row < {rows}"
    src += f"  if ({cond}) {{\n    {store(final, final_i)}\n  }}\n}}\n"
    if arg:
        helpers = set(helpers)
        prelude += _better(combiner, t) + "\n"
    return _header(decls, limits, helpers, shared) + prelude + src, grid, need


def _lower_reduce(kernel: K.Kernel, limits: Limits) -> Lowered:
    n_out = len(kernel.out.shape)
    rows = math.prod(kernel.out.shape)
    length = math.prod(kernel.space[n_out:])
    combiner = kernel.combiner
    arg = combiner in ("argmax", "argmin")
    wgs = limits.workgroup_size
    split = None
    if length >= SPLIT_MIN_LENGTH and rows * 4 < wgs:      # few long rows: most of the device idles
        s = min(1024, -(-length // SPLIT_CHUNK))
        split = (s, -(-length // s))
    ins = _Inputs(kernel, limits, 1)
    sp = _Space(kernel.space, [range(n_out), range(n_out, len(kernel.space))])
    simp = _Simplifier({0: rows, 1: length})
    em = _Emitter(limits, simp, {0: "r", 1: "j"}, {0: 1, 1: 2}, ins.load)
    value = em.value(simp(_flatten(kernel, sp)))
    vdt = kernel.expr.dtype
    t = compute_type(vdt, limits)
    if t == "bool":                                          # argmax over bools compares 0/1
        value, t = _cast_code(value, "bool", "i32"), "i32"
    out_t = compute_type(kernel.out.dtype, limits)
    decls = ins.decls()
    common = dict(limits=limits, helpers=em.helpers, combiner=combiner, t=t, length=length,
                  pre=em.lines[1], body=em.lines[2], value=value, index="j")
    if split is None:
        src, grid, shared = _reduce_source(decls=decls + [("result", storage_type(kernel.out.dtype, limits), True)],
                                           rows=rows, store=_final_store(arg, out_t), **common)
        binds = tuple((n, w) for n, _, w in decls) + (("result", True),)
        return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1), shared)])
    s, chunk = split
    carrier = "i32" if t == "i32" else "f32"
    total = rows * s

    def store_partial(acc, acc_i):
        line = f"partials[row] = bitcast<u32>({carrier}({acc}));"
        return line + (f"\n    partials[{total} + row] = bitcast<u32>({acc_i});" if arg else "")

    src1, grid1, shared1 = _reduce_source(decls=decls + [("partials", "u32", True)], rows=total, store=store_partial,
                                 row_split=split, **common)
    val2 = f"{t}(bitcast<{carrier}>(partials[r * {s} + j]))"
    idx2 = f"bitcast<i32>(partials[{total} + r * {s} + j])"
    src2, grid2, shared2 = _reduce_source(limits=limits, decls=[("partials", "u32", False),
                                                       ("result", storage_type(kernel.out.dtype, limits), True)],
                                 helpers=(), combiner=combiner, t=t, rows=rows, length=s, pre=[], body=[],
                                 value=val2, index=idx2 if arg else "j", store=_final_store(arg, out_t))
    p1 = Pass(src1, tuple((n, w) for n, _, w in decls) + (("partials", True),), grid1, (wgs, 1, 1), shared1)
    p2 = Pass(src2, (("partials", False), ("result", True)), grid2, (wgs, 1, 1), shared2)
    return ins.lowered([p1, p2], scratch=[("partials", total * (8 if arg else 4))])


def _final_store(arg: bool, out_t: str):
    if arg:
        return lambda acc, acc_i: f"result[row] = {acc_i};"
    return lambda acc, acc_i: f"result[row] = {_store_code(acc, out_t)};"


# ---- matmul template ----------------------------------------------------------------------------

def _operand(e: K.Expr):
    """(load, its cast target or None) for an operand ``load`` or ``cast(load)``."""
    if e.op == "load":
        return e, None
    if e.op == "cast" and e.args[0].op == "load":
        return e.args[0], e.dtype
    return None


def _lower_matmul(kernel: K.Kernel, limits: Limits) -> Lowered | None:
    """The tiled matmul, or None (the generic reduction lowers it) when the kernel is not
    ``sum_k A[.., m, k] * B[.., k, n]`` with affine operand indices, or when M x N fills too little
    of the output tiles."""
    e = kernel.expr.args[0] if kernel.expr.op == "cast" else kernel.expr
    if kernel.combiner != "sum" or kernel.n_reduce != 1 or e.op != "mul" or len(kernel.space) < 3:
        return None
    ops = [_operand(x) for x in e.args]
    if None in ops:
        return None
    space = kernel.space
    nb = len(space) - 3
    M, N, Kd = space[nb], space[nb + 1], space[nb + 2]
    memo: dict = {}
    info = []
    for load, cast_to in ops:
        c0, coefs, rest = _load_offset(load, kernel.inputs[load.arg].shape, memo)
        if rest:
            return None
        info.append((load, cast_to, c0, {d: c for d, c in coefs.items() if space[d] > 1 and c}))
    a, b = (info[0], info[1]) if nb + 1 not in info[0][3] else (info[1], info[0])
    if nb + 1 in a[3] or nb in b[3]:
        return None
    if storage_type(a[0].dtype, limits) == "f16" or storage_type(b[0].dtype, limits) == "f16":
        return None   # keep f16 on the generic path until the template has an f16 variant
    ins = _Inputs(kernel, limits, 1)
    t = compute_type(kernel.out.dtype, limits)
    ts = 16 if min(limits.max_compute_invocations_per_workgroup, limits.max_compute_workgroup_size_x,
                   limits.max_compute_workgroup_size_y) >= 256 else 8
    rr = 4
    tm = tn = ts * rr
    tk = MATMUL_TK
    while 2 * tk * tm * 4 > limits.max_compute_workgroup_storage_size and tk > 1:
        tk //= 2
    batch = math.prod(space[:nb])
    tiles_n, tiles_m = -(-N // tn), -(-M // tm)
    tiles = batch * tiles_m * tiles_n
    if M * N < MATMUL_MIN_USE * tiles_m * tiles_n * tm * tn:
        return None
    # split-K: few output tiles over a long K leave the device idle; chunks of K (multiples of tk)
    # write partial tiles, a second pass sums them.
    ksplit = 1
    if tiles < MATMUL_MIN_WORKGROUPS and Kd >= 2 * MATMUL_SPLIT_K_MIN:
        ksplit = min(-(-MATMUL_MIN_WORKGROUPS // tiles), Kd // MATMUL_SPLIT_K_MIN)
        while ksplit > 1 and batch * ksplit * M * N * 4 > limits.max_storage_buffer_binding_size:
            ksplit //= 2
    kchunk = -(-(-(-Kd // ksplit)) // tk) * tk
    ksplit = -(-Kd // kchunk)
    total = tiles * ksplit
    grid, wg_line = _grid(total, limits)
    sp = _Space(space, [range(nb)])
    simp = _Simplifier({0: batch})
    em = _Emitter(limits, simp, {0: "z"}, {0: 1}, ins.load)

    def base(op_info):
        c0, co = op_info[2], op_info[3]
        return em.value(simp(_sum([_c(c0)] + sp.runs({d: c for d, c in co.items() if d < nb}))))

    a_base, b_base = base(a), base(b)
    am, ak = a[3].get(nb, 0), a[3].get(nb + 2, 0)
    bk, bn = b[3].get(nb + 2, 0), b[3].get(nb + 1, 0)

    def read(op_info, off):
        load, cast_to = op_info[0], op_info[1]
        v = ins.load(load.arg, off, load.dtype)
        return _cast_code(v, compute_type(load.dtype, limits), t) if cast_to is not None or \
            compute_type(load.dtype, limits) != t else v

    nthreads = ts * ts
    zero = literal(0, t)

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
      var v = {zero};
      if (gm < {rows_ext} && gk < {Kd}) {{ v = {read(op_info, off)}; }}
      {name}[kk * {tile_rows} + mm] = v;
    }}"""

    accs = [f"acc{i}{j}" for i in range(rr) for j in range(rr)]
    inner = [f"let a{i} = tile_a[kk * {tm} + ty + {ts * i}];" for i in range(rr)]
    inner += [f"let b{j} = tile_b[kk * {tn} + tx + {ts * j}];" for j in range(rr)]
    inner += [f"acc{i}{j} = acc{i}{j} + a{i} * b{j};" for i in range(rr) for j in range(rr)]
    out_t = storage_type(kernel.out.dtype, limits)
    dest, obase = ("result", f"z * {M * N}") if ksplit == 1 else ("partials", f"(z * {ksplit} + ks) * {M * N}")
    stores = [f"if (m0 + ty + {ts * i} < {M} && n0 + tx + {ts * j} < {N}) {{ "
              f"{dest}[obase + (m0 + ty + {ts * i}) * {N} + n0 + tx + {ts * j}] = acc{i}{j}; }}"
              for i in range(rr) for j in range(rr)]
    pre = "\n  ".join(em.lines[1])
    shared = f"var<workgroup> tile_a: array<{t}, {tk * tm}>;\nvar<workgroup> tile_b: array<{t}, {tk * tn}>;"
    src = _header(ins.decls() + [(dest, out_t if ksplit == 1 else t, True)], limits, em.helpers, shared) + f"""
@compute @workgroup_size({ts}, {ts})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {{
  {wg_line}
  if (wg >= {total}) {{ return; }}
  let zk = wg / {tiles_m * tiles_n};
  let z = zk / {ksplit};
  let ks = zk % {ksplit};
  let tile = wg % {tiles_m * tiles_n};
  let m0 = (tile / {tiles_n}) * {tm};
  let n0 = (tile % {tiles_n}) * {tn};
  let tx = i32(lid3.x);
  let ty = i32(lid3.y);
  let li = i32(lidx);
  let obase = {obase};
  {pre}
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
    binds = tuple((name, w) for name, _, w in ins.decls()) + ((dest, True),)
    tiled = Pass(src, binds, grid, (ts, ts, 1), _BYTES.get(t, 4) * tk * (tm + tn))
    if ksplit == 1:
        return ins.lowered([tiled])
    # second pass: result[b, e] = sum over chunks s of partials[(b * ksplit + s) * M * N + e]
    n_out, wgs = batch * M * N, limits.workgroup_size
    grid2, wg_line2 = _grid(-(-n_out // wgs), limits)
    src2 = _header([("partials", t, False), ("result", out_t, True)], limits) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line2}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n_out}) {{ return; }}
  let first = (gid / {M * N}) * {ksplit * M * N} + gid % {M * N};
  var acc = {zero};
  for (var s = 0; s < {ksplit}; s = s + 1) {{ acc = acc + partials[first + s * {M * N}]; }}
  result[gid] = acc;
}}
"""
    p2 = Pass(src2, (("partials", False), ("result", True)), grid2, (wgs, 1, 1))
    return ins.lowered([tiled, p2], scratch=[("partials", batch * ksplit * M * N * 4)])

"""The WGSL helper library: functions shaders call (``wt_<name>_<type>``) where WGSL's own builtins
differ from the kernel IR's semantics (NaN in max/min, floor division, float -> int saturation,
numpy's ``pow``, ``erf``/``tanh`` accuracy). A shader includes those it calls and their
dependencies (:func:`with_deps`)."""
from __future__ import annotations

import re

HELPERS = {
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


def helper_source(name: str) -> str:
    base, t = name[3:].rsplit("_", 1)
    return HELPERS[base].replace("{T}", t)


def with_deps(helpers) -> list[str]:
    """``helpers`` plus the helpers they call (and ``wt_bits_f32``, every shader's inf/nan), sorted so
    that a helper comes after those it calls (WGSL allows any order; this reads better)."""
    out, todo = set(), list(set(helpers) | {"wt_bits_f32"})
    while todo:
        h = todo.pop()
        if h not in out:
            out.add(h)
            todo += re.findall(r"\b(wt_\w+)\(", helper_source(h))
    deps = {h: set(re.findall(r"\b(wt_\w+)\(", helper_source(h))) - {h} for h in out}
    order: list[str] = []
    while len(order) < len(out):
        order += sorted(h for h in out if h not in order and deps[h] <= set(order))
    return order

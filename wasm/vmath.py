"""Transcendental functions as WebAssembly code: polynomial approximations emitted inline,
each in a scalar (``f32``) and a 4-lane (``f32x4``) form from one definition.

Every function takes the local holding ``x`` (and ``y`` for ``pow``) and returns a new local
holding the result. Both forms run the same operations lane for lane, so scalar tails agree
with vector bodies bit for bit; with ``Lanes(..., fma=True)`` the vector form evaluates the
polynomials with relaxed-SIMD ``f32x4.relaxed_madd`` (fused on FMA hardware), which may
change the last bit. Polynomials use Estrin's scheme (shorter dependency chains). Measured maximum errors against numpy (float64 reference,
rounded to float32), as ``tests/wasm/test_vmath.py`` checks them:

==========  ==============================================  ============================
function    method (source)                                  max error (domain)
==========  ==============================================  ============================
``exp``     Cephes ``expf``'s reduction x = n ln2 + r; e^r =  1 ulp on [-87.3, 88.7];
            1 + r + r^2 P(r), P of degree 4 fitted for        overflow to inf above
            minimax relative error (Lawson's iteration,       88.73, denormals below
            3.9e-9; test_vmath re-derives it); 2^n as two     (short form: 1 ulp on
            factors so gradual underflow and overflow are     [-87, 88.376], see exp)
            exact
``log``     Cephes ``logf``: x = m 2^e, m in [sqrt(1/2),      1 ulp on (0, inf) incl.
            sqrt 2), degree-9 polynomial in m - 1             denormals; log 0 = -inf,
                                                              log x<0 = nan, log inf = inf
``tanh``    Eigen ``generic_fast_tanh_float``: 13/6-degree    6 ulp, 4e-7 absolute;
            rational, clamped to +-7.9053 (without FMA the    exactly +-1 beyond 7.9053
            2 ulp Eigen quotes for FMA builds grows; its x
            for |x| < 4e-4 is dropped: 3 ulp there anyway;
            denormal x: 2e-43 absolute)
``erf``     Eigen ``generic_fast_erf_float`` (9/12-degree     6 ulp, 5e-7 absolute;
            rational, clamped at erfinv(1 - 2^-23))           +-1 beyond +-3.8325
``sin``     Cephes ``sinf``/``cosf``: octant reduction with   1e-7 absolute on
``cos``     three-part pi/4 (Cody-Waite), degree-3/4          |x| <= 8192 (Cephes' bound)
            polynomials on [-pi/4, pi/4]
``pow``     exp(y log|x|) with C99's (numpy's) special        |y log x| * 1.2e-7 relative
            cases: y = 0, x = 1, or x = -1 and y = +-inf      (from exp's argument)
            -> 1; finite x < 0 and non-integer y -> nan;
            x with its sign bit set (incl. -0, -inf) and
            odd integer y -> negative
==========  ==============================================  ============================

Sources: S. L. Moshier, Cephes Math Library (1984-1992), ``expf.c``, ``logf.c``, ``sinf.c``;
C. L. Lawson (1961), iteratively reweighted least squares toward the minimax fit;
Eigen 3.4, ``MathFunctionsImpl.h`` (tanh) and ``SpecialFunctionsImpl.h`` (erf).
Compilation needs only the standard library (this module runs in Pyodide).
"""
from __future__ import annotations

import struct

from .binary import F32, I32, V128, Function

LOG2E = 1.44269504088896341
INF = float("inf")
NAN = float("nan")


def _f32bits(x: float) -> int:
    return struct.unpack("<i", struct.pack("<f", x))[0]


class Lanes:
    """Emits f32/i32 arithmetic on a scalar (``width`` 1) or on 4 lanes (``width`` 4).

    Method names follow the instruction names; ``f(op)`` emits ``f32.op`` or ``f32x4.op``,
    ``i(op)`` emits ``i32.op`` or ``i32x4.op``. Comparisons give 0/1 (scalar) or lane masks
    (vector); ``select`` takes (a, b, condition) like WebAssembly's ``select``.
    """

    def __init__(self, f: Function, width: int, fma: bool = False):
        assert width in (1, 4)
        self.fn, self.vec = f, width == 4
        self.fma = fma and self.vec     # relaxed-SIMD f32x4.relaxed_madd in polynomials

    def tmp(self, integer: bool = False) -> int:
        return self.fn.local(V128 if self.vec else (I32 if integer else F32))

    def get(self, *locals_):
        for x in locals_:
            self.fn.local_get(x)

    def set(self, local: int) -> int:
        self.fn.local_set(local)
        return local

    def new(self, integer: bool = False) -> int:
        """Pop the top of the stack into a fresh local; return it."""
        return self.set(self.tmp(integer))

    def fconst(self, x: float):
        if self.vec:
            self.fn.v128_const(struct.pack("<f", x) * 4)
        else:
            self.fn.f32_const(x)

    def iconst(self, n: int):
        if self.vec:
            self.fn.v128_const(struct.pack("<i", n) * 4)
        else:
            self.fn.i32_const(n)

    def f(self, op: str):
        self.fn.op(("f32x4." if self.vec else "f32.") + op)

    def i(self, op: str):
        self.fn.op(("i32x4." if self.vec else "i32.") + op)

    def shift(self, op: str, n: int):
        """``shl``/``shr_s``/``shr_u`` by a constant (the count is an i32 in both forms)."""
        self.fn.i32_const(n)
        self.i(op)

    def bits(self):
        """f32 -> its bit pattern as i32 (no-op on v128)."""
        if not self.vec:
            self.fn.i32_reinterpret_f32()

    def float_bits(self):
        """i32 bit pattern -> f32 (no-op on v128)."""
        if not self.vec:
            self.fn.f32_reinterpret_i32()

    def to_int(self):
        """Truncate toward zero, saturating (nan -> 0)."""
        if self.vec:
            self.fn.i32x4_trunc_sat_f32x4_s()
        else:
            self.fn.i32_trunc_sat_f32_s()

    def to_float(self):
        if self.vec:
            self.fn.f32x4_convert_i32x4_s()
        else:
            self.fn.f32_convert_i32_s()

    def bitand(self):
        self.fn.v128_and() if self.vec else self.fn.i32_and()

    def bitor(self):
        self.fn.v128_or() if self.vec else self.fn.i32_or()

    def bitxor(self):
        self.fn.v128_xor() if self.vec else self.fn.i32_xor()

    def select(self):
        """(a, b, cond) -> cond ? a : b; cond is 0/1 (scalar) or a lane mask (vector)."""
        self.fn.v128_bitselect() if self.vec else self.fn.select()

    def to_mask(self):
        """An integer on the stack -> a condition (nonzero is true)."""
        if self.vec:
            self.iconst(0)
            self.fn.i32x4_ne()

    def clamp(self, x: int, lo: float, hi: float):
        """min(max(x, lo), hi) on the stack; nan stays nan."""
        self.get(x)
        self.fconst(lo)
        self.f("pmax" if self.vec else "max")   # pmax(x, lo) = x < lo ? lo : x keeps nan
        self.fconst(hi)
        self.f("pmin" if self.vec else "min")   # pmin(t, hi) = hi < t ? hi : t keeps nan

    def poly(self, x: int, coeffs, square: int | None = None):
        """c0 x^n + c1 x^(n-1) + ... + cn on the stack, by Estrin's scheme: pairs
        (a_2i + a_2i+1 x) combined with x^2, x^4, ... halve the dependency chain of Horner's
        rule, at the same number of multiply-adds (Horner measured no faster here).
        ``square``: a local already holding x^2 (saves one multiply)."""
        terms = list(reversed(coeffs))          # ascending powers
        p = x
        while len(terms) > 1:
            nxt = []
            for k in range(0, len(terms), 2):
                lo = terms[k]
                if k + 1 == len(terms):
                    nxt.append(lo)
                    continue
                self.madd(terms[k + 1], p, lo)
                nxt.append(self.new())
            terms = nxt
            if len(terms) > 1:
                if p == x and square is not None:
                    p = square
                    continue
                self.get(p, p)
                self.f("mul")
                p = self.new()
        self._push(terms[0])

    def _push(self, t):
        """A coefficient (float) or a local (int) onto the stack."""
        self.fconst(t) if isinstance(t, float) else self.get(t)

    def madd(self, a, b, c):
        """a * b + c on the stack (fused with ``fma``); operands are floats or locals."""
        self._push(a)
        self._push(b)
        if self.fma:
            self._push(c)
            self.fn.f32x4_relaxed_madd()
        else:
            self.f("mul")
            self._push(c)
            self.f("add")

    def nmadd(self, a, b, c):
        """c - a * b on the stack (fused with ``fma``)."""
        if self.fma:
            self._push(a)
            self._push(b)
            self._push(c)
            self.fn.f32x4_relaxed_nmadd()
        else:
            self._push(c)
            self._push(a)
            self._push(b)
            self.f("mul")
            self.f("sub")


# ---- exp -------------------------------------------------------------------------------------

_MAGIC = 12582912.0     # 1.5 * 2^23
_EXP_P = (1.381461275741458e-3, 8.368710055947304e-3, 4.166838899254799e-2, 1.666652113199234e-1,
          4.999999403953552e-1)   # P, highest power first: fitted (module docstring, test_vmath)


def exp(o: Lanes, x: int, negate: bool = False, full_range: bool = True,
        plus: float | None = None) -> int:
    """e^x (Cephes expf). Out of range: inf above ~88.72, gradual underflow to 0 below.

    ``negate``: e^-x, bit for bit as exp of a negated local, the sign folded into the constants.
    ``full_range=False``: for a value seen only through 1 / (c + e^x) (sigmoid, gelu): 2^n as
    one factor, so e^x keeps its 1 ulp only on [-87, 88.376]; below, e^-87 (invisible next to
    c); above, inf (1 / (1 + inf) = 0 where the exact value is below 4.2e-39).
    ``plus`` (short form only): c + e^x, the addition fused into the scaling multiply."""
    assert plus is None or not full_range
    lo, hi = (-104.0, 89.0) if full_range else (-87.0, 89.0)
    bias = 254 if full_range else 127
    magic = _MAGIC + bias
    xc = o.tmp()
    o.clamp(x, -hi, -lo) if negate else o.clamp(x, lo, hi)
    o.set(xc)
    # n = round(x log2 e) by the "magic bias": adding 1.5 * 2^23 + bias leaves m = n + bias in
    # the low mantissa bits (9 of them: m is in [1, 382])
    (o.nmadd if negate else o.madd)(xc, LOG2E, magic)
    t = o.new()
    o.get(t)
    o.fconst(magic)
    o.f("sub")
    fn = o.new()
    # r = x - n ln2 in two parts (Cephes C1 = 0.693359375, C2 = -2.12194440e-4); n C1 is exact.
    # Negated: q = -r = x + n ln2, and P's odd powers change sign
    step = o.madd if negate else o.nmadd
    step(fn, 0.693359375, xc)
    r = o.new()
    step(fn, -2.12194440e-4, r)
    o.set(r)
    o.get(r, r)
    o.f("mul")
    r2 = o.new()
    coeffs = [-c if negate and (len(_EXP_P) - 1 - k) % 2 else c for k, c in enumerate(_EXP_P)]
    o.poly(r, coeffs, square=r2)
    p = o.new()
    if negate:                              # 1 - (q - q^2 P(-q))
        o.fconst(1.0)
        o.nmadd(p, r2, r)
        o.f("sub")
    else:                                   # 1 + (r + r^2 P(r))
        o.madd(p, r2, r)
        o.fconst(1.0)
        o.f("add")
    o.set(p)
    # shifting t's bits left by 23 keeps just the low 9 bits, as a float's exponent field
    if not full_range:                      # 2^n = 2^(m - 127), m in [1, 255]
        o.get(t)
        o.bits()
        o.shift("shl", 23)
        o.float_bits()
        s = o.new()
        if plus is None:
            o.get(p, s)
            o.f("mul")
        else:
            o.madd(p, s, float(plus))
        return o.new()
    # 2^n = 2^((m >> 1) - 127) 2^(m - (m >> 1) - 127), both factors normal for n in [-150, 128]
    o.get(t)
    o.bits()
    o.shift("shr_u", 1)
    h = o.new(True)
    o.get(p, h)
    o.shift("shl", 23)
    o.float_bits()
    o.f("mul")
    o.get(t)
    o.bits()
    o.get(h)
    o.i("sub")
    o.shift("shl", 23)
    o.float_bits()
    o.f("mul")
    return o.new()


# ---- log -------------------------------------------------------------------------------------

_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)   # Cephes logf.c
_FLT_MIN = 1.17549435082228751e-38
_SQRTHF = 0.707106781186547524


def log(o: Lanes, x: int) -> int:
    """Natural log (Cephes logf), with denormal inputs scaled by 2^23 first."""
    o.get(x)
    o.fconst(_FLT_MIN)
    o.f("lt")
    small = o.new(True)
    o.get(x)
    o.fconst(8388608.0)
    o.f("mul")
    o.get(x, small)
    o.select()
    o.bits()
    b = o.new(True)
    # exponent e with mantissa m in [0.5, 1)
    o.get(b)
    o.shift("shr_s", 23)
    o.iconst(126)
    o.i("sub")
    o.iconst(-23)
    o.iconst(0)
    o.get(small)
    o.select()
    o.i("add")
    e = o.new(True)
    o.get(b)
    o.iconst(0x007FFFFF)
    o.bitand()
    o.iconst(0x3F000000)
    o.bitor()
    o.float_bits()
    m = o.new()
    # m < sqrt(1/2): e -= 1, m = 2m - 1; else m = m - 1
    o.get(m)
    o.fconst(_SQRTHF)
    o.f("lt")
    lo = o.new(True)
    o.get(e, lo)
    o.i("add" if o.vec else "sub")       # vector masks are -1 where true
    o.set(e)
    o.get(m, m)
    o.fconst(0.0)
    o.get(lo)
    o.select()
    o.f("add")
    o.fconst(1.0)
    o.f("sub")
    o.set(m)
    o.get(m, m)
    o.f("mul")
    z = o.new()
    o.get(e)
    o.to_float()
    fe = o.new()
    o.poly(m, _LOG_P)
    o.get(m)
    o.f("mul")
    o.get(z)
    o.f("mul")
    o.get(fe)
    o.fconst(-2.12194440e-4)
    o.f("mul")
    o.f("add")
    o.get(z)
    o.fconst(-0.5)
    o.f("mul")
    o.f("add")
    o.get(m)
    o.f("add")
    o.get(fe)
    o.fconst(0.693359375)
    o.f("mul")
    o.f("add")
    r = o.new()
    # special values: x < 0 or nan -> nan; 0 -> -inf; inf -> inf
    o.get(r)
    o.fconst(NAN)
    o.get(x)
    o.fconst(0.0)
    o.f("ge")
    o.select()
    o.set(r)
    o.fconst(-INF)
    o.get(r, x)
    o.fconst(0.0)
    o.f("eq")
    o.select()
    o.set(r)
    o.fconst(INF)
    o.get(r, x)
    o.fconst(INF)
    o.f("eq")
    o.select()
    return o.set(r)


# ---- tanh and erf: rational approximations (Eigen) ---------------------------------------------

_TANH_CLAMP = 7.90531110763549805
_TANH_NUM = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
             1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_DEN = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _sign_bit(o: Lanes, x: int):
    """Push the bits of ``x`` and'ed with 0x80000000 (its sign bit), as integers."""
    o.get(x)
    o.bits()
    o.iconst(-0x80000000)
    o.bitand()


def _sign_and_odd_rational(o: Lanes, x: int, x2: int, num, den):
    """Push copysign(1, x), then x P(x2) / Q(x2): the two arms of the select that ends tanh and erf."""
    _sign_bit(o, x)
    o.iconst(_f32bits(1.0))
    o.bitor()
    o.float_bits()
    o.poly(x2, num)
    o.get(x)
    o.f("mul")
    o.poly(x2, den)
    o.f("div")


def tanh(o: Lanes, x: int) -> int:
    """tanh (Eigen generic_fast_tanh_float): x P(x^2) / Q(x^2) on [-7.9053, 7.9053], +-1 beyond."""
    o.clamp(x, -_TANH_CLAMP, _TANH_CLAMP)
    xc = o.new()
    o.get(xc, xc)
    o.f("mul")
    x2 = o.new()
    _sign_and_odd_rational(o, xc, x2, _TANH_NUM, _TANH_DEN)   # +-1 where x was clamped
    o.get(x2)
    o.fconst(_TANH_CLAMP * _TANH_CLAMP)
    o.f("ge")
    o.select()
    return o.new()


_ERF_NUM = (0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861, 0.18520832239976145,
            1.128379143519084)
_ERF_DEN = (-1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885, 0.014070470171167667,
            0.11098505178285362, 0.49746925110067538, 1.0)
_ERF_CLAMP = 3.832506856900711      # erfinv(1 - 2^-23)


def erf(o: Lanes, x: int) -> int:
    """erf (Eigen generic_fast_erf_float): x P(x^2) / Q(x^2), +-1 beyond |x| = 3.8325."""
    o.get(x, x)
    o.f("mul")
    x2 = o.new()
    _sign_and_odd_rational(o, x, x2, _ERF_NUM, _ERF_DEN)
    o.get(x)
    o.f("abs")
    o.fconst(_ERF_CLAMP)
    o.f("ge")
    o.select()
    return o.new()


# ---- sin and cos (Cephes sinf.c / cosf.c) ------------------------------------------------------

_FOPI = 1.27323954473516                     # 4 / pi
_DP = (0.78515625, 2.4187564849853515625e-4, 3.77489497744594108e-8)   # pi/4 in three parts
_SIN_P = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_P = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)


def _sincos(o: Lanes, x: int, cos: bool) -> int:
    o.get(x)
    o.f("abs")
    ax = o.new()
    # octant j (even) and z = |x| - j pi/4 in [-pi/4, pi/4]
    o.get(ax)
    o.fconst(_FOPI)
    o.f("mul")
    o.to_int()
    o.iconst(1)
    o.i("add")
    o.iconst(-2)
    o.bitand()
    j = o.new(True)
    o.get(j)
    o.to_float()
    y = o.new()
    o.get(ax)
    for dp in _DP:
        o.get(y)
        o.fconst(dp)
        o.f("mul")
        o.f("sub")
    z = o.new()
    o.get(z, z)
    o.f("mul")
    zz = o.new()
    # cos(z) = 1 - zz/2 + zz^2 P(zz);  sin(z) = z + z zz P(zz)
    o.poly(zz, _COS_P)
    o.get(zz, zz)
    o.f("mul")
    o.f("mul")
    o.get(zz)
    o.fconst(0.5)
    o.f("mul")
    o.f("sub")
    o.fconst(1.0)
    o.f("add")
    c = o.new()
    o.poly(zz, _SIN_P)
    o.get(zz)
    o.f("mul")
    o.get(z)
    o.f("mul")
    o.get(z)
    o.f("add")
    s = o.new()
    # sin: octants 0,2,4,6 -> sin z, cos z, -sin z, -cos z; cos: cos z, -sin z, -cos z, sin z
    o.get(c, s) if not cos else o.get(s, c)
    o.get(j)
    o.iconst(2)
    o.bitand()
    o.to_mask()
    o.select()
    o.bits()
    o.get(j)
    if cos:
        o.iconst(2)
        o.i("add")
    o.iconst(4)
    o.bitand()
    o.shift("shl", 29)                      # 0x80000000 where the octant negates
    if not cos:
        _sign_bit(o, x)
        o.bitxor()                  # sin is odd: the sign of x flips it too
    o.bitxor()
    o.float_bits()
    return o.new()


def sin(o: Lanes, x: int) -> int:
    return _sincos(o, x, cos=False)


def cos(o: Lanes, x: int) -> int:
    return _sincos(o, x, cos=True)


# ---- pow ----------------------------------------------------------------------------------------

def pow(o: Lanes, x: int, y: int) -> int:   # noqa: A001 (the numpy name)
    """x ** y with numpy's (C99 powf, Annex F.9.4.4) special cases, via exp(y log|x|)."""
    o.get(x)
    o.f("abs")
    ax = o.new()
    la = log(o, ax)
    o.get(y, la)
    o.f("mul")
    # y log|x| is nan for y = 0 with |x| in {0, inf} and for |x| = 1 with y infinite: fixed below
    t = o.new()
    r = exp(o, t)
    # integer / odd tests on y: floor(y) == y, floor(y / 2) != y / 2
    o.get(y)
    o.f("floor")
    o.get(y)
    o.f("eq")
    isint = o.new(True)
    o.get(y)
    o.fconst(0.5)
    o.f("mul")
    o.f("floor")
    o.get(y)
    o.fconst(0.5)
    o.f("mul")
    o.f("ne")
    o.get(isint)
    o.bitand()
    odd = o.new(True)
    # the sign bit of x set (x < 0, -0, -inf) and y an odd integer -> -r (r >= 0 or nan here)
    o.get(r)
    o.bits()
    _sign_bit(o, x)
    o.iconst(0)
    o.get(odd)
    o.select()
    o.bitxor()
    o.float_bits()
    o.set(r)
    # finite x < 0 and y not an integer (nor infinite) -> nan; (-inf) ** 2.5 is inf, as in C
    o.get(r)
    o.fconst(NAN)
    o.get(isint)
    o.select()
    o.get(r, x)
    o.fconst(0.0)
    o.f("lt")
    o.get(x)
    o.fconst(-INF)
    o.f("gt")
    o.bitand()
    o.select()
    o.set(r)
    # y == 0, x == 1 (even for nan y) or x == -1 with y infinite -> 1
    o.fconst(1.0)
    o.get(r, y)
    o.fconst(0.0)
    o.f("eq")
    o.get(x)
    o.fconst(1.0)
    o.f("eq")
    o.bitor()
    o.get(ax)
    o.fconst(1.0)
    o.f("eq")
    o.get(y)
    o.f("abs")
    o.fconst(INF)
    o.f("eq")
    o.bitand()
    o.bitor()
    o.select()
    return o.set(r)


FUNCTIONS = {"exp": exp, "log": log, "tanh": tanh, "erf": erf, "sin": sin, "cos": cos}
"""Unary transcendentals by kernel-IR op name: ``fn(lanes, x_local) -> result_local``."""

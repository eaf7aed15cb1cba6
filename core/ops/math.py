"""More elementwise math (issue 14): floormod/truncatemod, expm1/log1p, the trigonometric and
hyperbolic functions and their inverses, erfc, the float class tests (is_nan ...), logical_xor and
clip_by_value, under their TensorFlow names.

Each function is a scalar expression of the kernel IR built from its existing vocabulary
(arithmetic, ``where``, ``floor``, ``sqrt``, ``exp``, ``log``), so it needs no backend change and
computes the same way on every device. Where composing the obvious primitives loses accuracy, the
expression is a published float32 approximation instead:

==========  ====================================================================================
``expm1``   |x| < 0.5: x + x^2 P(x), P the Taylor series of (e^x - 1 - x) / x^2 to x^7 (truncation
            below 5.4e-10 relative); else exp(x) - 1 (no cancellation there)
``log1p``   x in [sqrt(1/2) - 1, sqrt(2) - 1]: Cephes ``logf``'s polynomial, which *is* log(1 + f)
            for f = x (S. L. Moshier, Cephes Math Library, logf.c), so 1 + x is never rounded;
            elsewhere log(1 + x). (Kahan's x log(u) / (u - 1) needs a log accurate near 1, which
            WGSL does not promise: Mesa's lavapipe has 1.5e-7 absolute error there.)
``tan``     Cephes ``tanf``: reduction by pi/4 in three parts (Cody-Waite), degree-6 polynomial
            (accurate for |x| <= 8192, Cephes' bound)
``atan``    Cephes ``atanf``: reduction by tan(pi/8) and tan(3pi/8), degree-4 polynomial in x^2
``asin``    Cephes ``asinf`` (|x| > 0.5 through sqrt((1 - |x|) / 2)); ``acos`` is Cephes ``acosf``
            on top of it
``atan2``   the first-octant ratio min(|x|, |y|) / max(|x|, |y|) through ``atan``'s polynomial,
            moved to its quadrant; numpy's special cases (signed zeros, infinities) included
``sinh``    fdlibm's ``sinhf`` (Sun Microsystems 1993, e_sinhf.c): (t + t / (t + 1)) / 2 with
            t = expm1(|x|) for |x| < 9, else (e^(|x|/2) / 2) e^(|x|/2) (no overflow before sinh
            overflows); ``cosh``: (e^|x| + e^-|x|) / 2 below 9, the same split beyond
``asinh``   log1p(|x| + x^2 / (1 + sqrt(1 + x^2))), log(|x|) + log 2 beyond 2^12 (fdlibm s_asinhf.c);
``acosh``   log1p(t + sqrt(2t + t^2)) with t = x - 1 (e_acoshf.c's form near 1), log(x) + log 2
            beyond 2^12; ``atanh`` 0.5 log1p(2|x| / (1 - |x|)) (e_atanhf.c)
``erfc``    W. J. Cody's rational approximations (Math. Comp. 23 (1969) 631-637, the CALERF
            coefficients of ``core/cody_erf.py``) in float32, with exp(-x^2) computed as
            exp(-h^2) exp(-(x - h)(x + h)), h = x rounded down to 1/16 (exact products), so the tail
            keeps its relative accuracy down to float32's smallest numbers
==========  ====================================================================================

Maximum errors measured against numpy's float64 functions on float32 inputs, in float32 ulps
(``python tests/backends/test_math_accuracy.py`` prints this table; its tests hold each device to it;
"webgpu" is Mesa's lavapipe, whose ``exp`` alone has up to ~140 ulp at |x| ~ 70-88, as WGSL's
3 + 2|x| ulp allows, so the rows that use exp of a large argument inherit it on GPUs):

=========  ===========================  ======  ======
function   inputs                       wasm    webgpu
=========  ===========================  ======  ======
expm1      |x| in 1e-30 .. 0.5          0.7     0.7
expm1      [-88, 88]                    1.5     62
log1p      |x| in 1e-30 .. 0.4          2.1     3
log1p      (-1, 3e38)                   2.3     3.7
tan        [-10, 10]                    2.3     2.3
tan        [-8192, 8192]                5.2     7.2 (36 seen near zeros of tan at |x| ~ 7400)
atan       |x| in 1e-30 .. 1e30         2.4     2.4
asin       [-1, 1] (incl. 1 - 1e-8)     2.3     2.3
acos       [-1, 1] (incl. +-1 -+ 1e-8)  1.2     1.2
atan2      |x|, |y| in 1e-20 .. 1e20    2       2
sinh       |x| in 1e-30 .. 9            1.9     5.3
sinh       [-89, 89]                    2.7     61
cosh       [-89, 89]                    2.5     68
asinh      |x| in 1e-30 .. 3e38         2.4     2.9
acosh      1 + (1e-7 .. 3e38)           2       3
atanh      |x| in 1e-30 .. 1 - 1e-7     2.7     3.1
erfc       [-10, 10.1]                  4.4     116 (x ~ 8.2: the GPU's exp(-68))
softplus   [-100, 100]                  2.1     63 (results near 1e-37: exp(-85))
=========  ===========================  ======  ======

Results below 1.18e-38 count as exact within that absolute distance (GPUs may flush subnormals).
NaN, infinities and signed zeros follow numpy (``tests/backends/parity_more_math.py``).
"""
from __future__ import annotations

import math

from .. import kernel_ir as K
from ..dtypes import float16, float32
from ..cody_erf import ERF_A, ERF_B, ERF_C, ERF_D, ERF_P, ERF_Q, ONE_OVER_SQRT_PI
from ..op import as_tensor
from ..signature import op_signature
from .elementwise import _bgrad, _np, div, elementwise, exp, floor, less, maximum, minimum, neg, sqrt, where

PI = math.pi
LN2 = math.log(2.0)
NAN, INF = float("nan"), float("inf")


# ---- scalar building blocks (kernel IR expressions) ---------------------------------------------

def in_float32(fn):
    """``fn``'s scalar expression computed in float32 for float16 operands (the kernel casts the result
    back): coefficients and intermediate values (Cody's rationals reach 1e8) exceed float16."""
    def scalar(*xs):
        return fn(*(K.cast(x, float32) if isinstance(x, K.Expr) and x.dtype == float16 else x for x in xs))
    return scalar


def _poly(x, coeffs):
    """c0 x^n + ... + cn by Horner's rule (Cephes ``polevl`` order: highest degree first)."""
    r = K.const(coeffs[0], x.dtype)
    for c in coeffs[1:]:
        r = r * x + c
    return r


def _rational(z, p, q):
    """Cody's P(z) / Q(z) as ``numpy_util._rational`` evaluates it: ``p[k] z^k + p[0] z^(k-1) + ...
    + p[k-1]`` over ``z^k + q[0] z^(k-1) + ... + q[k-1]`` (k = len(q))."""
    k = len(q)
    num, den = z * p[k], z
    for a, b in zip(p[:k - 1], q[:k - 1]):
        num, den = (num + a) * z, (den + b) * z
    return (num + p[k - 1]) / (den + q[k - 1])


def _eq(a, b):
    return K.binary("eq", a, K.lift(b, a.dtype))


def _and(a, b):
    return K.binary("and", a, b)


def _or(a, b):
    return K.binary("or", a, b)


def _odd_sign(r, x):
    """An odd function's value at x from its value r at |x|: -r for x < 0, and x itself for
    x = +-0 (keeps the zero's sign) and NaN."""
    return K.where(x < 0, -r, K.where(x > 0, r, x))


def _sign_bit(x):
    """x < 0 or x is -0 (1 / -0 = -inf): numpy's atan2 tells the zeros apart."""
    return _or(x < 0, _and(_eq(x, 0), (1.0 / x) < 0))


def _isnan(x):
    return K.binary("ne", x, x)


def _nan(x):
    return K.const(NAN, x.dtype)


def _expm1(x):
    small = x + (x * x) * _poly(x, [1 / math.factorial(k) for k in range(9, 1, -1)])
    return K.where(K.unary("abs", x) < 0.5, small, K.exp(x) - 1.0)


_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)   # Cephes logf.c


def _log1p(x):
    z = x * x
    near = x + (x * z * _poly(x, _LOG_P) - 0.5 * z)
    far = K.where(x < -1.0, _nan(x), K.log(1.0 + x))        # WGSL leaves log of a negative number undefined
    return K.where(_and(x >= math.sqrt(0.5) - 1.0, x <= math.sqrt(2.0) - 1.0), near, far)


_FOPI = 4 / PI
_DP = (0.78515625, 2.4187564849853515625e-4, 3.77489497744594108e-8)   # pi/4 in three parts (Cephes)
_TAN_P = (9.38540185543e-3, 3.11992232697e-3, 2.44301354525e-2, 5.34112807005e-2, 1.33387994085e-1,
          3.33331568548e-1)                                              # Cephes tanf.c


def _tan(x):
    a = K.unary("abs", x)
    j = K.unary("floor", a * _FOPI)
    j = j + (j - 2.0 * K.unary("floor", j * 0.5))          # round odd octants up: j even
    z = ((a - j * _DP[0]) - j * _DP[1]) - j * _DP[2]      # |z| <= pi/4
    zz = z * z
    t = _poly(zz, _TAN_P) * zz * z + z
    quarter = j * 0.25
    t = K.where(quarter > K.unary("floor", quarter), -1.0 / t, t)   # j = 2 mod 4: -cot
    return _odd_sign(t, x)


_ATAN_P = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)   # Cephes atanf.c
_TAN_3PI_8, _TAN_PI_8 = 2.414213562373095, 0.4142135623730950


def _atan_pos(a):
    """atan(a) for a >= 0 (or NaN), Cephes ``atanf``."""
    big, mid = a > _TAN_3PI_8, a > _TAN_PI_8
    t = K.where(big, -1.0 / a, K.where(mid, (a - 1.0) / (a + 1.0), a))
    base = K.where(big, K.const(PI / 2, a.dtype), K.where(mid, K.const(PI / 4, a.dtype), K.const(0.0, a.dtype)))
    z = t * t
    return base + (_poly(z, _ATAN_P) * z * t + t)


def _atan(x):
    return _odd_sign(_atan_pos(K.unary("abs", x)), x)


def _atan2(y, x):
    ax, ay = K.unary("abs", x), K.unary("abs", y)
    swap = ay > ax
    num, den = K.where(swap, ax, ay), K.where(swap, ay, ax)
    t = num / den
    t = K.where(_eq(num, 0), K.const(0.0, t.dtype), K.where(_eq(num, INF), K.const(1.0, t.dtype), t))
    a = _atan_pos(t)                          # in [0, pi/4]
    a = K.where(swap, PI / 2 - a, a)
    a = K.where(_sign_bit(x), PI - a, a)
    a = K.where(_sign_bit(y), -a, a)
    return K.where(_or(_isnan(x), _isnan(y)), x + y, a)     # t = 0 or 1 above hid a NaN


_ASIN_P = (4.2163199048e-2, 2.4181311049e-2, 4.5470025998e-2, 7.4953002686e-2, 1.6666752422e-1)  # asinf.c


def _asin_small(s):
    """asin(s) for |s| <= 0.5 (Cephes ``asinf``'s polynomial)."""
    z = s * s
    return _poly(z, _ASIN_P) * z * s + s


def _asin(x):
    a = K.unary("abs", x)
    big = a > 0.5
    s = K.where(big, K.sqrt(0.5 * (1.0 - K.minimum(a, 1.0))), a)
    r = _asin_small(s)
    r = K.where(big, PI / 2 - 2.0 * r, r)
    return K.where(a > 1.0, _nan(x), _odd_sign(r, x))


def _acos(x):
    neg_, pos_ = x < -0.5, x > 0.5
    a = K.minimum(K.unary("abs", x), 1.0)
    s = K.where(_or(neg_, pos_), K.sqrt(0.5 * (1.0 - a)), x)
    r = _asin_small(s)
    r = K.where(neg_, PI - 2.0 * r, K.where(pos_, 2.0 * r, PI / 2 - r))
    return K.where(K.unary("abs", x) > 1.0, _nan(x), r)


def _sinh(x):
    a = K.unary("abs", x)
    t = _expm1(K.minimum(a, 9.0))
    w = K.exp(0.5 * a)
    r = K.where(a < 9.0, 0.5 * (t + t / (t + 1.0)), (0.5 * w) * w)
    return _odd_sign(r, x)


def _cosh(x):
    a = K.unary("abs", x)
    e = K.exp(K.minimum(a, 9.0))
    w = K.exp(0.5 * a)
    return K.where(a < 9.0, 0.5 * e + 0.5 / e, (0.5 * w) * w)


def _asinh(x):
    a = K.unary("abs", x)
    m = K.minimum(a, 4096.0)
    r = K.where(a > 4096.0, K.log(a) + LN2, _log1p(m + m * m / (1.0 + K.sqrt(1.0 + m * m))))
    return _odd_sign(r, x)


def _acosh(x):
    t = K.minimum(K.maximum(x, 1.0), 4096.0) - 1.0
    r = K.where(x > 4096.0, K.log(x) + LN2, _log1p(t + K.sqrt(2.0 * t + t * t)))
    return K.where(x < 1.0, _nan(x), r)


def _atanh(x):
    a = K.unary("abs", x)
    r = 0.5 * _log1p((a + a) / (1.0 - K.minimum(a, 1.0)))
    return K.where(a > 1.0, _nan(x), _odd_sign(r, x))


def _exp_neg_square(a):
    """exp(-a^2) for a >= 0 without the rounding of a^2 (whose error, ~a^2 2^-24 absolute, would be
    the result's relative error): h = floor(16 a) / 16 has at most 8 significant bits below 16, so
    h^2 is exact, and a^2 - h^2 = (a - h)(a + h) is small."""
    h = K.unary("floor", a * 16.0) * 0.0625
    return K.exp(-(h * h)) * K.exp(-((a - h) * (a + h)))


def _erfc(x):
    a = K.minimum(K.unary("abs", x), 10.5)     # erfc(10.5) underflows float32; keeps a finite
    small = 1.0 - x * _rational(x * x, ERF_A, ERF_B)
    e = _exp_neg_square(a)
    mid = e * _rational(a, ERF_C, ERF_D)
    z = 1.0 / (a * a)
    tail = e * (ONE_OVER_SQRT_PI - z * _rational(z, ERF_P, ERF_Q)) / a
    r = K.where(a > 4.0, tail, mid)
    r = K.where(x < 0, 2.0 - r, r)
    return K.where(a < 0.46875, small, r)


def _float_test(fn, for_int):
    """A float class test; integers are never NaN or infinite (``for_int`` is eq (True) or ne (False))."""
    return lambda x: fn(x) if x.dtype.is_floating else K.binary(for_int, x, x)


# ---- numpy references ---------------------------------------------------------------------------

def _ref_erfc(x):
    from ..numpy_util import erfc as np_erfc
    return np_erfc(x)


def _ref_floormod(a, b):
    import numpy as np
    return np.mod(a, b)


# ---- the ops ------------------------------------------------------------------------------------

def _floormod(a, b):
    if not a.dtype.is_floating:
        return a % b                          # the IR's integer mod: floor semantics, x % 0 = 0 (numpy)
    r = a - K.unary("floor", a / b) * b
    # numpy for an infinite divisor: a if a is 0 or has b's sign, else b (a - floor(a / b) b is NaN)
    same = _or(_eq(a, 0), K.binary("eq", a < 0, b < 0))
    inf_b = _and(_eq(K.unary("abs", b), INF), K.unary("abs", a) < INF)
    return K.where(inf_b, K.where(same, a, b), r)


def _truncatemod(a, b):
    r = _floormod(a, b)
    fix = _and(K.binary("ne", r, K.const(0, r.dtype)), K.binary("ne", r < 0, a < 0))
    r = K.where(fix, r - b, r)
    if a.dtype.is_floating:                   # fmod(a, +-inf) = a for finite a (floormod may have given b)
        r = K.where(_and(_eq(K.unary("abs", b), INF), K.unary("abs", a) < INF), a, r)
    return r


def _trunc(t):
    return where(less(t, 0.0), -floor(-t), floor(t))


floormod = elementwise(
    "floormod", 2, in_float32(_floormod), _ref_floormod,
    _bgrad(lambda g, y, a, b: g, lambda g, y, a, b: neg(g * floor(div(a, b)))), "arith",
    doc="""floormod(x, y): the remainder of floor division, with the sign of ``y`` (numpy's ``mod``,
    TensorFlow's ``floormod``/``mod``); x and y broadcast. int32 stays int32 (x mod 0 = 0, as numpy),
    bool becomes int32, floats compute x - floor(x / y) y (within an ulp of x of numpy's exact
    remainder; next to a multiple of y it may land on the other side of the jump). NaN, x = +-inf or
    y = 0 give NaN; y = +-inf gives x when x is 0 or has y's sign, else y (numpy).
    Gradient: (g, -g floor(x / y)).""")
truncatemod = elementwise(
    "truncatemod", 2, in_float32(_truncatemod), _np("fmod"),
    _bgrad(lambda g, y, a, b: g, lambda g, y, a, b: neg(g * _trunc(div(a, b)))), "arith",
    doc="""truncatemod(x, y): the remainder of division truncated toward zero, with the sign of ``x``
    (numpy's ``fmod``, C's ``%``, TensorFlow's ``truncatemod``); dtypes and accuracy as
    :func:`floormod`. y = +-inf gives x for finite x.""")

expm1 = elementwise("expm1", 1, in_float32(_expm1), _np("expm1"), lambda g, y, x: (g * (y + 1.0),),
                    doc="e^x - 1, accurate near 0 (where exp(x) - 1 cancels); int/bool inputs give float32. "
                        "Method and measured error: module docstring.")
log1p = elementwise("log1p", 1, in_float32(_log1p), _np("log1p"), lambda g, y, x: (g / (x + 1.0),),
                    doc="log(1 + x), accurate near 0 (Cephes logf's polynomial); -1 gives -inf, x < -1 NaN.")
tan = elementwise("tan", 1, in_float32(_tan), _np("tan"), lambda g, y, x: (g * (1.0 + y * y),),
                  doc="Tangent (Cephes tanf): accurate for |x| <= 8192 (Cephes' bound), less so beyond (as sin "
                      "and cos), NaN past |x| = 2.6e38 (the reduction overflows); +-inf gives NaN.")
atan = elementwise("atan", 1, in_float32(_atan), _np("arctan"), lambda g, y, x: (g / (1.0 + x * x),),
                   doc="Inverse tangent in [-pi/2, pi/2] (Cephes atanf).")
asin = elementwise("asin", 1, in_float32(_asin), _np("arcsin"), lambda g, y, x: (g / sqrt(1.0 - x * x),),
                   doc="Inverse sine in [-pi/2, pi/2] (Cephes asinf); |x| > 1 gives NaN.")
acos = elementwise("acos", 1, in_float32(_acos), _np("arccos"), lambda g, y, x: (-(g / sqrt(1.0 - x * x)),),
                   doc="Inverse cosine in [0, pi] (Cephes acosf); |x| > 1 gives NaN.")
atan2_op = elementwise(
    "atan2", 2, in_float32(_atan2), _np("arctan2"),
    _bgrad(lambda g, y, a, b: g * b / (a * a + b * b), lambda g, y, a, b: -(g * a / (a * a + b * b))),
    doc="atan2(y, x) as a primitive; see :func:`atan2`.")


@op_signature()
def atan2(y, x):
    """The angle of the point (x, y), in [-pi, pi] (numpy's ``arctan2``, TensorFlow's ``atan2``: y
    first); y and x broadcast; int/bool inputs give float32. Signed zeros and infinities as numpy
    (atan2(+-0, -0) = +-pi, atan2(+-inf, -inf) = +-3pi/4). Gradient: (x, -y) / (x^2 + y^2).
    Computed with Cephes' ``atanf`` polynomial (see this module's table of sources and errors).

    Args:
        y: a tensor (or a Python number, list or numpy array), the ordinate.
        x: a tensor whose shape broadcasts with ``y``'s, the abscissa.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the broadcast shape of ``y`` and ``x``; dtype: their promoted float dtype
        (float32 for int and bool inputs).
    Raises:
        ValueError: shapes that do not broadcast.
    """
    return atan2_op(y, x)


sinh = elementwise("sinh", 1, in_float32(_sinh), _np("sinh"), lambda g, y, x: (g * cosh(x),),
                   doc="Hyperbolic sine (fdlibm's method: expm1 for |x| < 9; no early overflow).")
cosh = elementwise("cosh", 1, in_float32(_cosh), _np("cosh"), lambda g, y, x: (g * sinh(x),),
                   doc="Hyperbolic cosine (no early overflow: e^(|x|/2)^2 / 2 beyond |x| = 9).")
asinh = elementwise("asinh", 1, in_float32(_asinh), _np("arcsinh"), lambda g, y, x: (g / sqrt(x * x + 1.0),),
                    doc="Inverse hyperbolic sine (log1p form, accurate near 0; log(2|x|) beyond 4096).")
acosh = elementwise("acosh", 1, in_float32(_acosh), _np("arccosh"), lambda g, y, x: (g / sqrt(x * x - 1.0),),
                    doc="Inverse hyperbolic cosine (log1p form, accurate near 1); x < 1 gives NaN.")
atanh = elementwise("atanh", 1, in_float32(_atanh), _np("arctanh"), lambda g, y, x: (g / (1.0 - x * x),),
                    doc="Inverse hyperbolic tangent (0.5 log1p(2x / (1 - x))); +-1 gives +-inf, |x| > 1 NaN.")
erfc = elementwise("erfc", 1, in_float32(_erfc), _ref_erfc,
                   lambda g, y, x: (g * (-2.0 / math.sqrt(math.pi)) * exp(-(x * x)),),
                   doc="Complementary error function 1 - erf(x), with its relative accuracy for large x "
                       "(Cody's rational approximations; 0 beyond x = 10.06, 2 for x -> -inf).")
is_nan = elementwise("is_nan", 1, _float_test(_isnan, "ne"), _np("isnan"), None, "compare",
                     doc="True where x is NaN (bool; int and bool inputs are never NaN).")
is_inf = elementwise("is_inf", 1, _float_test(lambda x: _eq(K.unary("abs", x), INF), "ne"), _np("isinf"), None,
                     "compare", doc="True where x is +inf or -inf (bool).")
is_finite = elementwise("is_finite", 1, _float_test(lambda x: K.unary("abs", x) < INF, "eq"), _np("isfinite"),
                        None, "compare", doc="True where x is neither NaN nor infinite (bool).")
logical_xor = elementwise("logical_xor", 2, lambda a, b: K.binary("ne", a, b), _np("logical_xor"), None, "bool",
                          doc="x XOR y elementwise (broadcast); inputs are cast to bool (nonzero is True).")


@op_signature()
def mod(x, y):
    """TensorFlow's ``tf.math.mod``: the same as :func:`floormod` (numpy's ``mod``): x - floor(x / y) y,
    the remainder with the sign of ``y``.

    Args:
        x: a tensor (or a Python number, list or numpy array), the dividend.
        y: a tensor whose shape broadcasts with ``x``'s, the divisor.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the broadcast shape of ``x`` and ``y``, of :func:`floormod`'s dtype.
    Raises:
        ValueError: shapes that do not broadcast.
    """
    return floormod(x, y)


@op_signature()
def clip_by_value(t, clip_value_min, clip_value_max):
    """``t`` clipped to [clip_value_min, clip_value_max]: minimum(maximum(t, min), max), as
    ``tf.clip_by_value`` (the bounds broadcast against ``t``; NaN stays NaN, as numpy's clip).
    The gradient flows to ``t`` where it is inside the bounds, and to a tensor bound where it binds.

    Args:
        t: a tensor (or a Python number, list or numpy array).
        clip_value_min: the lower bound, a number or a tensor that broadcasts with ``t``.
        clip_value_max: the upper bound, a number or a tensor that broadcasts with ``t``.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the broadcast shape of ``t`` and the bounds, of their promoted dtype (as
        :func:`maximum` and :func:`minimum`).
    Raises:
        ValueError: shapes that do not broadcast.
    """
    return minimum(maximum(as_tensor(t), clip_value_min), clip_value_max)


__all__ = ["floormod", "mod", "truncatemod", "expm1", "log1p", "tan", "atan", "asin", "acos", "atan2", "sinh",
           "cosh", "asinh", "acosh", "atanh", "erfc", "is_nan", "is_inf", "is_finite", "logical_xor",
           "clip_by_value"]

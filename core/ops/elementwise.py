"""Elementwise ops: each is a scalar expression in the kernel IR, so chains of them fuse.

One line each: name, scalar expression, numpy reference, gradient, dtype rule.
Dtype rules: ``float`` promotes bool/int inputs to float32 (like TF's math ops on
floats); ``arith`` keeps int32 and float, turning bool into int32; ``same`` keeps
the input dtype; ``bool`` is a logical op or comparison (bool result).
"""
from __future__ import annotations

import math

from .. import kernel_ir as K
from ..dtypes import DType, bool_, float32, int32, result_type
from ..op import Aval, Op
from ..shapes import broadcast_shapes
from ..dtypes import as_dtype
from .namespace import ops as _ops

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715  # Hendrycks & Gimpel 2016, "Gaussian Error Linear Units", eq. for the tanh form


def _out_dtype(rule: str, dtypes: list[DType], op: str) -> DType:
    t = result_type(*dtypes)
    if rule == "float":
        return t if t.is_floating else float32
    if rule == "arith":
        if t == bool_:
            return int32
        return t
    if rule == "same":
        return t
    if rule in ("bool", "compare"):
        return bool_
    raise AssertionError(rule)


def _compute_dtype(rule, dtypes, out):
    # Comparisons compute in the promoted input type; logical ops in bool.
    return result_type(*dtypes) if rule == "compare" else out


_RESULT_DTYPE = {
    "float": "float32 for bool and int32 inputs (promoted first, as TF's float math), else the inputs' "
             "promoted float dtype",
    "arith": "the inputs' promoted dtype (bool < int32 < float16 < float32); bool alone gives int32",
    "same": "the inputs' promoted dtype",
    "bool": "bool (each input is read as ``x != 0``)",
    "compare": "bool (the operands are compared in their promoted dtype)",
}


def _elementwise_doc(arity: int, rule: str, doc: str) -> str:
    """``doc`` (what the op computes, its formula and sources) and the sections every elementwise op
    shares, written from its arity and dtype rule."""
    if arity == 1:
        args = "    x: a tensor of any shape (or a Python number, list or numpy array)."
        shape, raises = "``x``'s shape", ""
    else:
        args = ("    x: a tensor (or a Python number, list or numpy array).\n"
                "    y: a tensor whose shape broadcasts with ``x``'s (numpy rules). A Python scalar operand\n"
                "        takes the other operand's dtype unless its own kind is higher (``int32 + 0.5`` is\n"
                "        float32).")
        shape, raises = "the broadcast shape of ``x`` and ``y``", "\n    ValueError: shapes that do not broadcast."
    args += "\n    name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops."
    return (f"{doc}\n\nArgs:\n{args}\nReturns:\n    A tensor of {shape}; dtype: {_RESULT_DTYPE[rule]}.\n"
            f"Raises:\n    TypeError: a wrong number of tensor arguments or an unexpected keyword argument."
            f"{raises}")


def elementwise(name: str, arity: int, scalar, reference, grad=None, rule: str = "float", doc: str = ""):
    """Define an elementwise op from its scalar expression (``scalar(*exprs) -> Expr``). ``doc`` says
    what it computes; the Args/Returns/Raises sections follow from the arity and ``rule``."""
    doc = _elementwise_doc(arity, rule, doc) if doc else (
        f"Elementwise ``{name}`` of ``x``, as numpy." if arity == 1 else
        f"Elementwise ``{name}`` of ``x`` and ``y`` (broadcast together), as numpy.")

    def infer(*xs: Aval) -> Aval:
        shape = broadcast_shapes(*(x.shape for x in xs), op=name)
        if rule in ("same", "arith") and name == "neg" and xs[0].dtype == bool_:
            raise TypeError(f"{name}: not defined for bool tensors; use logical_not")
        return Aval(shape, _out_dtype(rule, [x.dtype for x in xs], name))

    def ref(*arrays):
        import numpy as np
        from ..numpy_util import np_dtype
        dts = [as_dtype(a.dtype) for a in arrays]
        out = _out_dtype(rule, dts, name)
        cdt = np_dtype(_compute_dtype(rule, dts, out))
        with np.errstate(all="ignore"):
            r = reference(*(np.asarray(a).astype(cdt, copy=False) for a in arrays))
        return np.asarray(r).astype(np_dtype(out), copy=False)

    def kernel(ins: list[Aval], out: Aval) -> K.Kernel:
        cdt = _compute_dtype(rule, [x.dtype for x in ins], out.dtype)
        dims = [K.idx(d) for d in range(len(out.shape))]
        args = [K.cast(K.load(k, K.broadcast_index(x.shape, dims), x.dtype), cdt) for k, x in enumerate(ins)]
        return K.map_kernel([K.Buffer(x.shape, x.dtype) for x in ins], K.Buffer(out.shape, out.dtype),
                            scalar(*args))

    return Op(name, infer=infer, reference=ref, grad=grad, kernel=kernel, doc=doc,
              inputs=("x",) if arity == 1 else ("x", "y"))


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added, giving a tensor of ``shape``."""
    reduce_sum = _ops.reduce_sum
    reshape = _ops.reshape
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return reshape(reduce_sum(g, axes=axes, keepdims=False), shape=shape) if axes else reshape(g, shape=shape)


def _is_float(t) -> bool:
    return t.dtype.is_floating


def _fgrad(fn):
    """A unary gradient rule; no gradient flows into integer inputs."""
    return lambda g, y, x: (fn(g, y, x) if _is_float(x) else None,)


def _sign(x):
    # numpy's rule: 1, -1, 0 for zeros, and x itself otherwise (NaN stays NaN)
    return K.where(x > 0, 1, K.where(x < 0, -1, K.where(K.binary("eq", x, K.const(0, x.dtype)), 0, x)))


def _gelu_tanh(x):
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u) = x / (1 + e^(-2u)): the same function, computed without
    # the cancellation in 1 + tanh(u) for negative u, and with exp alone (a kernel that also
    # needs exp(-y), like the benchmark's gelu_tanh(..) * sigmoid(..), shares its constants).
    x2 = x * x
    return x / (1.0 + K.exp(-(x * (2 * SQRT_2_OVER_PI + 2 * SQRT_2_OVER_PI * GELU_C * x2))))


# ---- unary --------------------------------------------------------------------------------

def _np(name):
    def f(*a):
        import numpy as np
        return getattr(np, name)(*a)
    return f


def _ref_gelu_tanh(x):
    import numpy as np
    return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + GELU_C * x ** 3)))


def _ref_gelu_erf(x):
    from ..numpy_util import erf
    return 0.5 * x * (1 + erf(x / math.sqrt(2.0)))


def _ref_erf(x):
    from ..numpy_util import erf
    return erf(x)


def _ref_sigmoid(x):
    import numpy as np
    return 1 / (1 + np.exp(-x))


neg = elementwise("neg", 1, lambda x: -x, _np("negative"), lambda g, y, x: (neg(g),), "arith",
    doc="Numerical negative ``-x`` (numpy.negative). Not defined for bool tensors (TypeError: use\n"
        "``logical_not``).")
abs_ = elementwise("abs", 1, lambda x: K.unary("abs", x), _np("abs"),
                   _fgrad(lambda g, y, x: g * sign(x)), "arith",
    doc="Absolute value ``|x|`` (numpy.abs); NaN stays NaN. Gradient ``sign(x)`` (0 at 0).")
sign = elementwise("sign", 1, _sign, _np("sign"), None, "arith",
    doc="1, -1 or 0 by the sign of ``x`` (numpy.sign); NaN stays NaN. No gradient (piecewise constant).")
square = elementwise("square", 1, lambda x: x * x, _np("square"), _fgrad(lambda g, y, x: g * x * 2.0), "arith",
    doc="``x * x`` (numpy.square).")
exp = elementwise("exp", 1, K.exp, _np("exp"), lambda g, y, x: (g * y,),
    doc="e^x (numpy.exp): inf above about 88.72 in float32, gradual underflow to 0 below. On wasm,\n"
        "Cephes ``expf``'s range reduction and a degree-4 minimax polynomial, 1 ulp (``wasm/vmath.py``).")
log = elementwise("log", 1, K.log, _np("log"), lambda g, y, x: (g / x,),
    doc="Natural logarithm (numpy.log): log 0 = -inf, NaN for x < 0. On wasm, Cephes ``logf``, 1 ulp.")
sqrt = elementwise("sqrt", 1, K.sqrt, _np("sqrt"), lambda g, y, x: (g * 0.5 / y,),
    doc="Square root (numpy.sqrt); NaN for x < 0.")
rsqrt = elementwise("rsqrt", 1, lambda x: 1.0 / K.sqrt(x), lambda x: 1 / _np("sqrt")(x),
                    lambda g, y, x: (g * -0.5 * y * y * y,),
    doc="``1 / sqrt(x)`` (tf.math.rsqrt); inf at 0, NaN for x < 0.")
reciprocal = elementwise("reciprocal", 1, lambda x: 1.0 / x, lambda x: 1 / x, lambda g, y, x: (-(g * y * y),),
    doc="``1 / x`` (tf.math.reciprocal); +-inf at +-0.")
sin = elementwise("sin", 1, lambda x: K.unary("sin", x), _np("sin"), lambda g, y, x: (g * cos(x),),
    doc="Sine of ``x`` in radians (numpy.sin). On wasm, Cephes ``sinf``: 1e-7 absolute for |x| <= 8192.")
cos = elementwise("cos", 1, lambda x: K.unary("cos", x), _np("cos"), lambda g, y, x: (-(g * sin(x)),),
    doc="Cosine of ``x`` in radians (numpy.cos). On wasm, Cephes ``cosf``: 1e-7 absolute for |x| <= 8192.")
tanh = elementwise("tanh", 1, K.tanh, _np("tanh"), lambda g, y, x: (g * (1.0 - y * y),),
    doc="Hyperbolic tangent (numpy.tanh). On wasm and WebGPU: Eigen 3.4's float rational approximation\n"
        "(``generic_fast_tanh_float``), 6 ulp, exactly +-1 beyond +-7.9053.")
erf = elementwise("erf", 1, K.erf, _ref_erf,
                  lambda g, y, x: (g * (2.0 / math.sqrt(math.pi)) * exp(-(x * x)),),
    doc="The error function ``erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt`` (scipy.special.erf;\n"
        "numpy has none). Reference device: W. J. Cody's rational Chebyshev approximations (Math. Comp. 23\n"
        "(1969) 631-637) in float64, 2 double ulps; wasm and WebGPU: Eigen 3.4's float rational\n"
        "approximation (``generic_fast_erf_float``, as XLA's f32 erf), 6 ulp, exactly +-1 beyond +-3.8325.")
# 1 / (1 + e^-x): for x -> -inf, e^-x -> inf and the quotient -> 0, so no overflow trouble.
sigmoid = elementwise("sigmoid", 1, lambda x: 1.0 / (1.0 + K.exp(-x)), _ref_sigmoid,
                      lambda g, y, x: (g * y * (1.0 - y),),
    doc="Logistic sigmoid ``1 / (1 + exp(-x))`` (tf.math.sigmoid); tends to 0 as x -> -inf with no\n"
        "overflow.")
relu = elementwise("relu", 1, lambda x: K.maximum(x, 0), lambda x: _np("maximum")(x, 0),
                   _fgrad(lambda g, y, x: g * cast(greater(x, 0), dtype=g.dtype)), "arith",
    doc="``max(x, 0)`` (tf.nn.relu), as numpy's maximum: NaN stays NaN, relu(-inf) = 0.")
gelu_tanh = elementwise(
    "gelu_tanh", 1, _gelu_tanh, _ref_gelu_tanh,
    lambda g, y, x: (g * _gelu_tanh_grad(x),),
    doc="GELU, tanh approximation (Hendrycks & Gimpel 2016): 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))), "
        "computed as x sigmoid(2 sqrt(2/pi)(x + 0.044715x^3)) (the same function).")
gelu_erf = elementwise(
    "gelu_erf", 1, lambda x: 0.5 * x * (1 + K.erf(x * (1 / math.sqrt(2.0)))), _ref_gelu_erf,
    lambda g, y, x: (g * (0.5 * (1.0 + erf(x * (1 / math.sqrt(2.0))))
                          + x * exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))),),
    doc="GELU, exact form x * Phi(x) = 0.5x(1 + erf(x / sqrt 2)) (Hendrycks & Gimpel 2016), with\n"
        "erf approximated as :func:`erf` says (Cody 1969 on the reference device, Eigen's float erf on\n"
        "wasm and WebGPU).")
floor = elementwise("floor", 1, lambda x: K.unary("floor", x), _np("floor"), None, "same",
    doc="Largest integer <= ``x`` (numpy.floor), in ``x``'s dtype (int32 is unchanged). No gradient.")
ceil = elementwise("ceil", 1, lambda x: K.unary("ceil", x), _np("ceil"), None, "same",
    doc="Smallest integer >= ``x`` (numpy.ceil), in ``x``'s dtype (int32 is unchanged). No gradient.")
round_ = elementwise("round", 1, lambda x: K.unary("round", x), _np("rint"), None, "same",
    doc="Round half to even (numpy.rint, IEEE 754 roundTiesToEven), in ``x``'s dtype. No gradient.")
logical_not = elementwise("logical_not", 1, lambda x: K.unary("not", K.cast(x, bool_)), _np("logical_not"),
                          None, "bool",
    doc="``not x`` elementwise (numpy.logical_not).")
identity = elementwise("identity", 1, lambda x: x, lambda x: x, lambda g, y, x: (g,), "same",
    doc="A copy of ``x`` (how a variable read is recorded on tapes); the gradient passes through.")
stop_gradient = elementwise("stop_gradient", 1, lambda x: x, lambda x: x, None, "same",
    doc="``x`` unchanged, with a zero gradient (tf.stop_gradient): nothing flows back through it.")


def _gelu_tanh_grad(x):
    # d/dx [x s] with s = sigmoid(2u), u = sqrt(2/pi)(x + c x^3): s + x s (1 - s) 2u'
    x2 = x * x
    s = sigmoid(x * (2 * SQRT_2_OVER_PI + 2 * SQRT_2_OVER_PI * GELU_C * x2))
    return s + x * s * (1.0 - s) * (2 * SQRT_2_OVER_PI + 6 * SQRT_2_OVER_PI * GELU_C * x2)


# ---- binary -------------------------------------------------------------------------------

def _bgrad(fa, fb):
    """A binary gradient rule with broadcasting undone; integer inputs get no gradient."""
    def grad(g, y, a, b):
        ga = unbroadcast(fa(g, y, a, b), a.shape) if _is_float(a) else None
        gb = unbroadcast(fb(g, y, a, b), b.shape) if _is_float(b) else None
        return ga, gb
    return grad


def _mask(t, like):
    return cast(t, dtype=like.dtype)


def _ref_pow(a, b):
    import numpy as np
    return np.power(a, b)


add = elementwise("add", 2, lambda a, b: a + b, _np("add"), _bgrad(lambda g, y, a, b: g, lambda g, y, a, b: g), "arith",
    doc="``x + y`` (numpy.add).")
sub = elementwise("sub", 2, lambda a, b: a - b, _np("subtract"),
                  _bgrad(lambda g, y, a, b: g, lambda g, y, a, b: neg(g)), "arith",
    doc="``x - y`` (numpy.subtract).")
mul = elementwise("mul", 2, lambda a, b: a * b, _np("multiply"),
                  _bgrad(lambda g, y, a, b: g * b, lambda g, y, a, b: g * a), "arith",
    doc="``x * y`` (numpy.multiply).")
div = elementwise("div", 2, lambda a, b: a / b, _np("divide"),
                  _bgrad(lambda g, y, a, b: g / b, lambda g, y, a, b: neg(g * y / b)), "float",
    doc="True division ``x / y`` (numpy.true_divide): integer inputs give float32; x / 0 is +-inf, 0 / 0 NaN.")
pow_ = elementwise(
    "pow", 2, lambda a, b: K.binary("pow", a, b), _ref_pow,
    _bgrad(lambda g, y, a, b: g * b * pow_(a, b - 1.0),
           lambda g, y, a, b: g * y * log(where(greater(a, 0), a, 1.0))), "arith",
    doc="``x ** y`` (numpy.power) with C99's special cases: ``pow(x, 0) = 1``, a finite negative base\n"
        "with a non-integer exponent is NaN. On wasm, ``exp(y log|x|)``: relative error about\n"
        "``|y log x| * 1.2e-7``. The gradient for ``y`` uses ``log(x)`` where x > 0 and 0 elsewhere.")
maximum = elementwise("maximum", 2, lambda a, b: K.maximum(a, b), _np("maximum"),
                      _bgrad(lambda g, y, a, b: g * _mask(greater_equal(a, b), g),
                             lambda g, y, a, b: g * _mask(less(a, b), g)), "arith",
    doc="Elementwise max (numpy.maximum): NaN where either operand is NaN. Ties send the gradient to ``x``.")
minimum = elementwise("minimum", 2, lambda a, b: K.minimum(a, b), _np("minimum"),
                      _bgrad(lambda g, y, a, b: g * _mask(less_equal(a, b), g),
                             lambda g, y, a, b: g * _mask(greater(a, b), g)), "arith",
    doc="Elementwise min (numpy.minimum): NaN where either operand is NaN. Ties send the gradient to ``x``.")
equal = elementwise("equal", 2, lambda a, b: K.binary("eq", a, b), _np("equal"), None, "compare",
    doc="``x == y`` (numpy.equal).")
not_equal = elementwise("not_equal", 2, lambda a, b: K.binary("ne", a, b), _np("not_equal"), None, "compare",
    doc="``x != y`` (numpy.not_equal).")
less = elementwise("less", 2, lambda a, b: a < b, _np("less"), None, "compare",
    doc="``x < y`` (numpy.less).")
less_equal = elementwise("less_equal", 2, lambda a, b: a <= b, _np("less_equal"), None, "compare",
    doc="``x <= y`` (numpy.less_equal).")
greater = elementwise("greater", 2, lambda a, b: a > b, _np("greater"), None, "compare",
    doc="``x > y`` (numpy.greater).")
greater_equal = elementwise("greater_equal", 2, lambda a, b: a >= b, _np("greater_equal"), None, "compare",
    doc="``x >= y`` (numpy.greater_equal).")
logical_and = elementwise("logical_and", 2, lambda a, b: K.binary("and", a, b), _np("logical_and"), None, "bool",
    doc="``x and y`` elementwise (numpy.logical_and).")
logical_or = elementwise("logical_or", 2, lambda a, b: K.binary("or", a, b), _np("logical_or"), None, "bool",
    doc="``x or y`` elementwise (numpy.logical_or).")


# ---- where and cast -----------------------------------------------------------------------

def _where_infer(c: Aval, a: Aval, b: Aval) -> Aval:
    if c.dtype != bool_:
        raise TypeError(f"where: condition must be bool, got {c.dtype}")
    return Aval(broadcast_shapes(c.shape, a.shape, b.shape, op="where"), result_type(a.dtype, b.dtype))


def _where_ref(c, a, b):
    import numpy as np
    from ..numpy_util import np_dtype
    return np.where(c, a, b).astype(np_dtype(result_type(as_dtype(a.dtype), as_dtype(b.dtype))))


def _where_kernel(ins, out):
    dims = [K.idx(d) for d in range(len(out.shape))]
    c, a, b = (K.load(k, K.broadcast_index(x.shape, dims), x.dtype) for k, x in enumerate(ins))
    return K.map_kernel([K.Buffer(x.shape, x.dtype) for x in ins], K.Buffer(out.shape, out.dtype),
                        K.where(c, K.cast(a, out.dtype), K.cast(b, out.dtype)))


def _where_grad(g, y, c, a, b):
    zero = 0.0
    return (None,
            unbroadcast(where(c, g, zero), a.shape) if _is_float(a) else None,
            unbroadcast(where(c, zero, g), b.shape) if _is_float(b) else None)


where = Op("where", infer=_where_infer, reference=_where_ref, grad=_where_grad, kernel=_where_kernel,
           inputs=("condition", "x", "y"), doc="""``x`` where ``condition`` is true, else ``y`` (numpy.where, tf.where with
    three arguments); the gradient flows to the operand that was chosen.

    Args:
        condition: a bool tensor.
        x: a tensor (or Python number) taken where ``condition`` is true.
        y: a tensor (or Python number) taken where it is false.
        name: TensorFlow's op name (a str or None); unused: webtensor's graphs name no ops.
    Returns:
        A tensor of the broadcast shape of the three arguments, of ``x``'s and ``y``'s promoted dtype.
    Raises:
        TypeError: a non-bool ``condition``; a wrong number of tensor arguments.
        ValueError: shapes that do not broadcast.""")


def _cast_infer(x: Aval, *, dtype: DType) -> Aval:
    return Aval(x.shape, dtype)


def _cast_ref(x, *, dtype):
    import numpy as np
    from ..numpy_util import float_to_int32, np_dtype
    x = np.asarray(x)
    if dtype.kind == "i" and x.dtype.kind == "f":
        return float_to_int32(x)
    return x.astype(np_dtype(dtype))


def _cast_kernel(ins, out, *, dtype):
    dims = [K.idx(d) for d in range(len(out.shape))]
    x = K.load(0, tuple(dims), ins[0].dtype)
    e = K.binary("ne", x, K.const(0, x.dtype)) if dtype == bool_ else K.cast(x, dtype)
    return K.map_kernel([K.Buffer(ins[0].shape, ins[0].dtype)], K.Buffer(out.shape, out.dtype), e)


cast = Op("cast", infer=_cast_infer, reference=_cast_ref, kernel=_cast_kernel,
          grad=lambda g, y, x, *, dtype: (cast(g, dtype=x.dtype) if _is_float(x) and dtype.is_floating else None,),
          doc="""cast(x, dtype): ``x`` (any shape and dtype) converted elementwise to ``dtype``; same shape.

    float -> int32 (the rule on every device, eager and traced): truncate toward zero, then
    saturate to [-2**31, 2**31 - 1] (3e9 -> 2147483647, -inf -> -2147483648), and NaN -> 0.
    This is WebAssembly's ``i32.trunc_sat_f32_s`` (and numpy's ``astype`` on ARM); numpy on x86
    gives INT_MIN for every out-of-range value and NaN, and WGSL clamps to 2**31 - 128 with NaN
    undefined, so the reference device and the WGSL lowering implement the rule explicitly.
    int32 -> float rounds to nearest even; any dtype -> bool is ``x != 0`` (NaN is True);
    bool -> number is 0/1. The gradient flows between float dtypes only.""")

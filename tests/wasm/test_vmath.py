"""Error bounds of the polynomial transcendentals (wasm/vmath.py) against numpy in float64.

Each function runs in its scalar (f32) and 4-lane (f32x4) form over wide ranges, including
inf, nan, zeros, denormals and overflow; both forms must agree bit for bit.
"""
import math

import numpy as np
import pytest
import wasmtime

from webtensor.wasm import vmath
from webtensor.wasm.binary import I32, Module

_cfg = wasmtime.Config()
_cfg.wasm_relaxed_simd = True
ENGINE = wasmtime.Engine(_cfg)


VARIANTS = {   # vmath.exp's other forms, under test names
    "exp_neg": lambda o, x: vmath.exp(o, x, negate=True),
    "exp_sat": lambda o, x: vmath.exp(o, x, full_range=False),
    "exp_neg_sat": lambda o, x: vmath.exp(o, x, negate=True, full_range=False),
    "one_plus_exp_sat": lambda o, x: vmath.exp(o, x, full_range=False, plus=1.0),
}


def build(name, fma=False):
    """Module with ``s(in, out, n)`` (scalar loop) and ``v(in, out, n)`` (4 lanes per step)."""
    m = Module()
    m.import_memory("env", "memory", 1)
    arity = 2 if name == "pow" else 1
    for width, fname in ((1, "s"), (4, "v")):
        f = m.function(fname, params=[I32, I32, I32, I32], export=True)   # x, y, out, n
        o = vmath.Lanes(f, width, fma)
        i = f.local(I32)
        load, store = ("v128_load", "v128_store") if width == 4 else ("f32_load", "f32_store")
        with f.block():
            with f.loop():
                f.local_get(i), f.local_get(3), f.i32_ge_u(), f.br_if(1)
                xs = []
                for p in range(arity):
                    f.local_get(p), f.local_get(i), f.i32_const(4), f.i32_mul(), f.i32_add()
                    getattr(f, load)()
                    xs.append(o.new())
                r = (VARIANTS.get(name) or getattr(vmath, name))(o, *xs)
                f.local_get(2), f.local_get(i), f.i32_const(4), f.i32_mul(), f.i32_add(), f.local_get(r)
                getattr(f, store)()
                f.local_get(i), f.i32_const(width), f.i32_add(), f.local_set(i)
                f.br(0)
    data = m.emit()
    wasmtime.Module.validate(ENGINE, data)
    return data


def run(name, x, y=None, fma=False):
    """(scalar result, vector result) for float32 arrays x (and y)."""
    x = np.asarray(x, np.float32).ravel()
    n = -(-x.size // 4) * 4
    store = wasmtime.Store(ENGINE)
    pages = (3 * n * 4) // 65536 + 1
    mem = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(pages, None)))
    inst = wasmtime.Instance(store, wasmtime.Module(ENGINE, build(name, fma)), [mem])
    view = np.ctypeslib.as_array(mem.data_ptr(store), shape=(mem.data_len(store),)).view(np.float32)
    view[:x.size] = x
    if y is not None:
        view[n:n + x.size] = np.asarray(y, np.float32).ravel()
    out = []
    for fname in ("s", "v"):
        inst.exports(store)[fname](store, 0, n * 4, 2 * n * 4, n)
        out.append(view[2 * n:2 * n + x.size].copy())
    return out


def ulps(got, want):
    """|got - want| in units of the float32 spacing at want (want in float64)."""
    want32 = want.astype(np.float32)
    sp = np.spacing(np.abs(want32)).astype(np.float64)
    sp = np.where(sp == 0, np.spacing(np.float32(0)), sp)
    return np.abs(got.astype(np.float64) - want) / sp


def check(name, x, ref, max_ulp=None, max_abs=None, y=None):
    s, v = run(name, x, y)
    np.testing.assert_array_equal(s.view(np.int32), v.view(np.int32), err_msg=f"{name}: scalar != vector")
    want = ref(np.asarray(x, np.float64)) if y is None else ref(np.asarray(x, np.float64), np.asarray(y, np.float64))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isnan(s), np.isnan(want), err_msg=f"{name}: nan pattern")
    np.testing.assert_array_equal(s[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    if max_ulp is not None:
        e = ulps(s[finite], want[finite]).max()
        assert e <= max_ulp, f"{name}: {e} ulp > {max_ulp}"
    if max_abs is not None:
        e = np.abs(s[finite] - want[finite]).max()
        assert e <= max_abs, f"{name}: abs error {e} > {max_abs}"
    return s


def dense(lo, hi, n=200_003):
    return np.linspace(lo, hi, n, dtype=np.float32)


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3e38, -3e38], np.float32)


def test_exp():
    x = np.concatenate([dense(-87.3, 88.7), SPECIAL, [88.72, 88.73, 89, 100, -100, -103.9, -104.5, -200]])
    with np.errstate(over="ignore"):
        check("exp", x[:200_003], np.exp, max_ulp=1)
        s = check("exp", x, np.exp)
    with np.errstate(over="ignore"):
        assert s[x == np.float32(89)][0] == np.inf and np.exp(np.float32(88.73)) == np.inf
    # gradual underflow: tiny results are close in absolute terms
    tiny = dense(-103.9, -87.4, 10_001)
    s, _ = run("exp", tiny)
    assert np.abs(s - np.exp(tiny.astype(np.float64))).max() < 2e-45


EXP_CASES = np.concatenate([dense(-120, 120), SPECIAL, [88.37, 88.38, 88.72, 88.73, 89, -87, -87.1, -104.5]])


@pytest.mark.parametrize("fma", [False, True])
def test_exp_negate_is_exp_of_the_negation_bit_for_bit(fma):
    for full in ("", "_sat"):
        want = run("exp" + full, -EXP_CASES, fma=fma)
        got = run("exp_neg" + full, EXP_CASES, fma=fma)
        for g, w in zip(got, want):       # (a nan's sign bit may differ)
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_array_equal(g[~np.isnan(g)].view(np.int32), w[~np.isnan(w)].view(np.int32))


def test_exp_saturating_form():
    """full_range=False: 1 ulp on [-87, 88.37]; e^-87 below; inf from 88.377 (see vmath.exp)."""
    with np.errstate(over="ignore"):
        check("exp_sat", dense(-87, 88.37), np.exp, max_ulp=1)
        s = check("exp_sat", EXP_CASES[(EXP_CASES <= 88.37) | (EXP_CASES >= 88.73) | np.isnan(EXP_CASES)],
                  lambda x: np.exp(np.maximum(x, -87)))
    s, _ = run("exp_sat", [88.38, 88.72, 89, 200, -87.1, -150, -np.inf])
    assert np.all(np.isinf(s[:4])) and np.all((s[4:] > 1.6e-38) & (s[4:] < 1.7e-38))
    # where it is meant to be used, 1 / (1 + e^x) matches the full form to 1 ulp or 4.2e-39
    x = EXP_CASES[~np.isnan(EXP_CASES)]
    sat, full = (1 / (1 + run(name, x)[1]) for name in ("exp_sat", "exp"))
    assert np.all(np.abs(sat - full) <= np.maximum(np.spacing(full), 4.2e-39))
    # plus=1: 1 + e^x with the addition in the scaling multiply (fused only with fma)
    for fma in (False, True):
        got, want = run("one_plus_exp_sat", x, fma=fma)[1], 1 + run("exp_sat", x, fma=fma)[1]
        finite = np.isfinite(want)
        assert np.all(got[~finite] == want[~finite])
        assert np.all(ulps(got[finite], want[finite].astype(np.float64)) <= fma)


def test_exp_coefficients_are_a_minimax_fit():
    """_EXP_P: degree-4 P in e^r = 1 + r + r^2 P(r) on [-ln2/2, ln2/2] (Cody-Waite range), the
    minimax relative error fit found by Lawson's iteration (reweighted least squares); Cephes'
    degree-5 P is within 1.1e-9, this one within 3.9e-9 after rounding to float32."""
    h = math.log(2) / 2
    r = h * np.cos(np.pi * (np.arange(4000) + 0.5) / 4000)            # Chebyshev nodes
    w = r ** 2 / np.exp(r)                                              # relative error weight
    a, b = np.vander(r, 5) * w[:, None], (np.expm1(r) - r) / r ** 2 * w
    lw = np.full(r.size, 1 / r.size)
    for _ in range(200):
        c = np.linalg.lstsq(a * np.sqrt(lw)[:, None], b * np.sqrt(lw), rcond=None)[0]
        lw = lw * np.abs(a @ c - b)
        lw /= lw.sum()
    rr = np.linspace(-h, h, 400_001)

    def rel(coeffs):
        return np.abs((1 + rr + rr ** 2 * np.polyval(coeffs, rr)) / np.exp(rr) - 1).max()
    ours = np.array(vmath._EXP_P, np.float32).astype(np.float64)
    assert rel(ours) < 3.9e-9 and rel(ours) < 1.3 * rel(c)
    np.testing.assert_allclose(ours, c, rtol=1e-6)


def test_log():
    pos = np.concatenate([dense(1e-6, 10.0), np.geomspace(1e-45, 3e38, 100_001).astype(np.float32),
                          np.float32([1.0, 2.0, 0.5, 1e-40, 1.1754942e-38])])
    check("log", pos, np.log, max_ulp=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        check("log", np.concatenate([SPECIAL, [-1.0, -1e-30]]), np.log)


def test_tanh():
    x = np.concatenate([dense(-10, 10), np.geomspace(1e-30, 1e-2, 10_001).astype(np.float32)])
    check("tanh", np.concatenate([x, -x]), np.tanh, max_ulp=6, max_abs=4e-7)
    check("tanh", SPECIAL, np.tanh, max_abs=2e-43)     # denormals: absolute error only
    s, _ = run("tanh", np.float32([7.9054, 9, 1e4, -8, -3e38]))
    assert (s == np.float32([1, 1, 1, -1, -1])).all()  # saturates exactly


def test_erf():
    ref = np.vectorize(math.erf, otypes=[np.float64])
    x = np.concatenate([dense(-6, 6), np.geomspace(1e-30, 1e-2, 10_001).astype(np.float32)])
    check("erf", np.concatenate([x, -x, SPECIAL[SPECIAL == SPECIAL]]), ref, max_ulp=6, max_abs=5e-7)
    s, _ = run("erf", np.float32([np.nan]))
    assert np.isnan(s[0])


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos(name):
    ref = getattr(np, name)
    check(name, dense(-8192, 8192, 400_001), ref, max_abs=1e-7)
    small = np.geomspace(1e-30, 1.0, 10_001).astype(np.float32)
    if name == "sin":
        check(name, np.concatenate([small, -small]), ref, max_ulp=2)
    with np.errstate(invalid="ignore"):
        check(name, SPECIAL[[0, 1, 2, 3, 4]], ref)


def test_pow():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.01, 20, 100_000).astype(np.float32)
    y = rng.uniform(-8, 8, 100_000).astype(np.float32)
    s = check("pow", x, np.power, y=y)
    want = np.power(x.astype(np.float64), y.astype(np.float64))
    rel = np.abs(s - want) / want
    bound = np.abs(y * np.log(x.astype(np.float64))) * 1.2e-7 + 2.5e-7
    assert (rel <= bound).all(), rel[rel > bound][:5]
    # numpy's special cases (signs, zeros, integer exponents of negative bases)
    xs = np.float32([-2, -2, -2, -0.5, 0, 0, 0, 5, np.nan, 1, np.inf, np.inf, -np.inf, 3, -3, 2])
    ys = np.float32([3, 2, 0.5, -3, 2, -1, 0, 0, 0, np.nan, 2, -2, 3, np.inf, 2, -np.inf])
    with np.errstate(all="ignore"):
        s, v = run("pow", xs, ys)
        want = np.power(xs, ys)
    np.testing.assert_array_equal(s, want)
    np.testing.assert_array_equal(v, want)


@pytest.mark.parametrize("name,ref,lo,hi,bound", [
    ("exp", np.exp, -87.3, 88.7, 1), ("log", np.log, 1e-6, 10, 1), ("tanh", np.tanh, -10, 10, 6),
    ("erf", np.vectorize(math.erf, otypes=[np.float64]), -6, 6, 6), ("sin", np.sin, -8192, 8192, None),
    ("cos", np.cos, -8192, 8192, None)])
def test_fused_multiply_add_forms_keep_their_bounds(name, ref, lo, hi, bound):
    x = dense(lo, hi)
    _, v = run(name, x, fma=True)
    want = ref(x.astype(np.float64))
    if bound is None:
        assert np.abs(v - want).max() <= 1e-7
    else:
        assert ulps(v, want).max() <= bound + 1

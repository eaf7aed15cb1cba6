"""Reductions in the generic WebAssembly lowering: accumulators kept in registers per output lane
(vector over outputs) or in a lane vector reduced horizontally at the end (vector over the
reduced axis); argmax/argmin keep the first index on ties and, like numpy, pick the first NaN;
float max/min use ``pmax``/``pmin`` plus a sticky NaN mask; an empty reduced extent fills the
combiner's identity."""
from __future__ import annotations

import struct
from math import prod

from ..core.dtypes import bool_, int32
from ..core.simplify import I32MIN
from .binary import F32, I32
from .ops import is_float

_COMBINE = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}


class Reductions:
    """What ``lower._Gen`` (which mixes this in) does at each point of the loop nest: store a map's
    value, or fold it into the accumulators (``acc``) that ``_init_acc``/``_finish_acc`` set up and
    store around the reduced loops. Uses the generator's state (``f``, ``k``, ``reduce``, ``comb``,
    ``strategy``, ``vec``, ``root``, ``ridx``, loop locals ``i``) and its ``val``, ``_new``, ``_store``."""

    def _point(self):
        vec = self.vec
        if not self.reduce:
            return self._store(self.val(self.root, vec), vec, self.k.out.dtype)
        acc = self.acc[vec]
        x = self.val(self.root, vec)
        f = self.f
        if self.comb in ("argmax", "argmin"):
            av, ai = acc
            dt = self.root.dtype
            if vec and dt == bool_:
                f.local_get(x)
                f.i32x4_neg()
                x = self._new(True, int32)
            f.local_get(x)
            f.local_get(av)
            cmp = "gt" if self.comb == "argmax" else "lt"
            if is_float(dt):     # x wins when it compares better, or is the first nan (numpy)
                p = "f32x4." if vec else "f32."
                f.op(p + cmp)
                f.local_get(x)
                f.local_get(x)
                f.op(p + "ne")
                f.local_get(av)
                f.local_get(av)
                f.op(p + "eq")
                f.op("v128.and" if vec else "i32.and")
                f.op("v128.or" if vec else "i32.or")
            else:
                f.op(("i32x4." if vec else "i32.") + cmp + "_s")
            m = self._new(vec, int32)
            sel = (lambda: f.v128_bitselect()) if vec else (lambda: f.select())
            f.local_get(x)
            f.local_get(av)
            f.local_get(m)
            sel()
            f.local_set(av)
            f.local_get(self.val(self.ridx, vec))
            f.local_get(ai)
            f.local_get(m)
            sel()
            f.local_set(ai)
            return
        if isinstance(acc, tuple):      # vector float max/min: pmax plus a sticky nan mask
            av, nan = acc
            f.local_get(av)
            f.local_get(x)
            f.op("f32x4.pmax" if self.comb == "max" else "f32x4.pmin")
            f.local_set(av)
            f.local_get(nan)
            f.local_get(x)
            f.local_get(x)
            f.f32x4_ne()
            f.v128_or()
            f.local_set(nan)
            return
        self._combine(acc, x, vec, self.root.dtype)
        f.local_set(acc)

    def _combine(self, acc, x, vec, dt):
        """stack <- acc (combiner) x."""
        f = self.f
        op = _COMBINE[self.comb]
        f.local_get(acc)
        f.local_get(x)
        if is_float(dt):
            return f.op(("f32x4." if vec else "f32.") + op)
        if op in ("max", "min"):
            if vec:
                return f.op(f"i32x4.{op}_s")
            f.local_get(acc)
            f.local_get(x)
            f.op("i32.gt_s" if op == "max" else "i32.lt_s")
            return f.select()
        f.op(("i32x4." if vec else "i32.") + op)

    def _identity(self, dt, vec):
        f = self.f
        c = self.comb
        if c in ("argmax", "max"):
            v = float("-inf") if is_float(dt) else I32MIN
        elif c in ("argmin", "min"):
            v = float("inf") if is_float(dt) else -I32MIN - 1
        else:
            v = 1 if c == "prod" else 0
        if is_float(dt):
            f.v128_const(struct.pack("<f", v) * 4) if vec else f.f32_const(v)
        else:
            f.v128_const(struct.pack("<i", int(v)) * 4) if vec else f.i32_const(int(v))
        return self._new(vec, dt)

    def _init_acc(self):
        dt = self.root.dtype
        if self.comb in ("argmax", "argmin"):
            dt = int32 if dt == bool_ else dt
            mk = lambda vec: (self._identity(dt, vec), self._zero(vec))
        elif self.comb in ("max", "min") and is_float(dt):
            mk = lambda vec: (self._identity(dt, vec), self._zero(vec)) if vec else self._identity(dt, vec)
        else:
            mk = lambda vec: self._identity(dt, vec)
        self.acc = {}
        if self.strategy == "B":
            self.acc = {True: mk(True), False: mk(False)}
        else:
            self.acc = {self.vec: mk(self.vec)}

    def _zero(self, vec):
        self.f.v128_const(bytes(16)) if vec else self.f.i32_const(0)
        return self._new(vec, int32)

    def _finish_acc(self):
        f = self.f
        out_dt = self.k.out.dtype
        for key, acc in list(self.acc.items()):
            if key and isinstance(acc, tuple) and self.comb in ("max", "min"):   # apply the nan mask
                av, nan = acc
                f.v128_const(struct.pack("<f", float("nan")) * 4)
                f.local_get(av)
                f.local_get(nan)
                f.v128_bitselect()
                f.local_set(av)
                self.acc[key] = av
        if self.strategy != "B":
            acc = self.acc[self.vec]
            if self.comb in ("argmax", "argmin"):
                acc = acc[1]
            return self._store(acc, self.vec, out_dt)
        vacc, sacc = self.acc[True], self.acc[False]
        dt = self.root.dtype
        if self.comb in ("argmax", "argmin"):
            (vv, vi), (sv, si) = vacc, sacc
            dt = int32 if dt == bool_ else dt
            fl = is_float(dt)
            lv, li = f.local(F32 if fl else I32), f.local(I32)
            cmp = ("f32." if fl else "i32.") + ("gt" if self.comb == "argmax" else "lt") + ("" if fl else "_s")
            for lane in range(4):
                f.local_get(vv)
                f.f32x4_extract_lane(lane) if fl else f.i32x4_extract_lane(lane)
                f.local_set(lv)
                f.local_get(vi)
                f.i32x4_extract_lane(lane)
                f.local_set(li)
                # better = lv beats sv, or ties it with a smaller index, or (floats) lv is nan
                # and sv is not nan or has a larger index: the first nan wins, as in numpy
                f.local_get(lv)
                f.local_get(sv)
                f.op(cmp)
                f.local_get(lv)
                f.local_get(sv)
                f.op("f32.eq" if fl else "i32.eq")
                f.local_get(li)
                f.local_get(si)
                f.i32_lt_s()
                f.i32_and()
                f.i32_or()
                if fl:
                    f.local_get(lv)
                    f.local_get(lv)
                    f.f32_ne()
                    f.local_get(sv)
                    f.local_get(sv)
                    f.f32_eq()
                    f.local_get(li)
                    f.local_get(si)
                    f.i32_lt_s()
                    f.i32_or()
                    f.i32_and()
                    f.i32_or()
                m = f.local(I32)
                f.local_set(m)
                for src, dst in ((lv, sv), (li, si)):
                    f.local_get(src)
                    f.local_get(dst)
                    f.local_get(m)
                    f.select()
                    f.local_set(dst)
            return self._store(si, False, out_dt)
        fl = is_float(dt)
        lane_v = f.local(F32 if fl else I32)
        for lane in range(4):
            f.local_get(vacc)
            f.f32x4_extract_lane(lane) if fl else f.i32x4_extract_lane(lane)
            f.local_set(lane_v)
            self._combine(sacc, lane_v, False, dt)
            f.local_set(sacc)
        self._store(sacc, False, out_dt)

    def _fill(self):
        """A reduction over an empty extent: the combiner's identity everywhere."""
        f, k = self.f, self.k
        self.comb = k.combiner
        n = prod(k.out.shape)
        if k.combiner in ("argmax", "argmin"):
            f.i32_const(0)
            val = self._new(False, int32)
        else:
            val = self._identity(k.out.dtype, False)
        i = self.i[0]
        with f.block():
            with f.loop():
                f.local_get(i)
                f.i32_const(n)
                f.i32_ge_s()
                f.br_if(1)
                f.local_get(0)
                f.local_get(i)
                f.i32_const(2)
                f.i32_shl()
                f.i32_add()
                f.local_get(val)
                f.f32_store() if is_float(k.out.dtype) and k.combiner not in ("argmax", "argmin") else f.i32_store()
                f.local_get(i)
                f.i32_const(1)
                f.i32_add()
                f.local_set(i)
                f.br(0)

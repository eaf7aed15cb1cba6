"""``map`` kernels: one invocation per output element; workgroups are folded into a 2-D/3-D grid
when their count exceeds ``maxComputeWorkgroupsPerDimension``."""
from __future__ import annotations

import math

from ..core import kernel_ir as K
from .emit import Emitter, Inputs, Lowered, Pass, shader_header, store_code, workgroup_grid
from .flatten import Space, flatten, simplifier
from .limits import Limits, compute_type, storage_type


def lower_map(kernel: K.Kernel, limits: Limits) -> Lowered:
    ins = Inputs(kernel, limits, 1)
    n = math.prod(kernel.space)
    wgs = limits.workgroup_size
    sp = Space(kernel.space, [range(len(kernel.space))])
    simp = simplifier((n,))
    em = Emitter(limits, simp, {0: "gid"}, {0: 1}, ins.load)
    v = em.value(simp(flatten(kernel, sp)))
    grid, wg_line = workgroup_grid(-(-n // wgs), limits)
    out_t = storage_type(kernel.out.dtype, limits)
    body = "\n  ".join(em.lines[1] + em.lines[2])
    src = shader_header(ins.decls() + [("result", out_t, True)], limits, em.helpers) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  {body}
  result[gid] = {store_code(v, compute_type(kernel.out.dtype, limits))};
}}
"""
    binds = tuple((name, w) for name, _, w in ins.decls()) + (("result", True),)
    return ins.lowered([Pass(src, binds, grid, (wgs, 1, 1))])

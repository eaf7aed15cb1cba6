"""Kernel IR -> WGSL compute shaders. Pure Python and stdlib only, so the same compiler runs
natively, in Pyodide and in the page.

:func:`lower` turns one :class:`~webtensor.core.kernel_ir.Kernel` into a :class:`Lowered`: one
or two compute passes (WGSL source, binding list, workgroup counts) and the scratch buffers they
use. Like every backend it knows the IR's vocabulary, never op names:

- expressions: a table from IR op to a WGSL expression (tinygrad's renderer style, ``CODE``);
  the DAG is lowered once per node (memo) into ``let`` bindings, and bindings that do not depend
  on the reduction index are hoisted out of reduction loops;
- indices: each load's multi-dimensional index becomes a flat row-major offset. Affine parts are
  merged into runs of contiguous dimensions of the kernel's linear ids; core's simplifier
  (``core/simplify.py``) drops divisions, modulos, clamps and bounds tests that cannot change the
  result;
- ``map`` kernels: four consecutive output elements per invocation as ``vec4`` values where the
  output's size is a multiple of 4 (inputs read at the linear id bound as ``array<vec4<T>>``, other
  loads gathered lane by lane), else one element per invocation; workgroups are folded into a
  2-D/3-D grid when their count exceeds ``maxComputeWorkgroupsPerDimension``;
- ``reduce`` kernels: a tree reduction in ``var<workgroup>`` memory (one or several rows per
  workgroup; one row per invocation, no barriers, for many short rows), two passes when few rows
  are very long; argmax/argmin keep the first index on ties and, like numpy, treat NaN as the
  extreme value;
- ``template == 'matmul'``: batched; operand layouts (transposes, broadcast batch dims) come from
  the loads' index expressions, so nothing is materialised. A plan per shape (``matmul.py``'s
  ``choose_plan``): a register-blocked direct kernel (rm x rn outputs per invocation) for most
  shapes, shared-memory tiles for very large aligned products, split K (then a summing pass) for
  few workgroups over a long K; matrix-vector products, tiny outputs and operands that are not
  affine loads use the generic reduction instead;
- ``template == 'conv2d'``: a direct convolution (``conv.py``), the matmul's register-blocked plan
  reading its A operand through each output pixel's window (no im2col buffer);
- ``template == 'depthwise_conv2d'``: a direct depthwise convolution (``depthwise.py``), 4 output
  pixels by 4 channels (``vec4``) per invocation.

Device limits (:class:`Limits`, read from the adapter by the runtime) shape the result: at most
``maxStorageBuffersPerShaderStage`` bindings per pass (further inputs are packed into one binding
that the runtime fills with buffer copies), buffer sizes within ``maxStorageBufferBindingSize``
and ``maxBufferSize`` (:class:`BufferTooLarge` otherwise), workgroup size and workgroup memory
within their limits.

Numerics (what the tests hold the backend to): ``idiv``/``mod`` use floor semantics (as u32
division where the value ranges show both operands non-negative), ``round`` is
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

Where each part lives: ``limits.py`` (:class:`Limits`, how dtypes are stored, size checks),
``ops.py`` (literals, casts, the op table), ``helpers.py`` (the ``wt_*`` helper library),
``flatten.py`` (indices over linear ids), ``emit.py`` (``let`` bindings, bindings, shader header,
:class:`Pass`, :class:`Lowered`), ``map.py``, ``reduce.py``, ``matmul.py`` (the lowerings),
``group.py`` (horizontal fusion: independent one-pass maps of a program as one dispatch); this
module: :func:`lower`, :func:`copy_pass` and the names the runtimes and the exporter use.
"""
from __future__ import annotations

import dataclasses
import math

from ..core import kernel_ir as K
from .conv import lower_conv
from .depthwise import lower_depthwise
from .emit import Lowered, Pass, rows_bound, shader_header, workgroup_grid
from .limits import ADAPTER_CLASSES, BufferTooLarge, Limits, adapter_class, check_sizes, compute_type, storage_nbytes, \
    storage_type
from .map import lower_map
from .matmul import lower_matmul
from .ops import literal
from .reduce import lower_reduce

__all__ = ["ADAPTER_CLASSES", "BufferTooLarge", "Limits", "Lowered", "Pass", "adapter_class", "compute_type", "copy_pass",
           "literal", "lower", "storage_nbytes", "storage_type", "zero_rows_pass"]


def lower(kernel: K.Kernel, limits: Limits = Limits(), chunk: int | None = None) -> Lowered:
    """Compile one kernel to WGSL passes for a device with ``limits``.

    ``chunk`` (exported signatures with a symbolic batch; docs/artifact.md "Run-time rows: WebGPU"):
    the kernel loops over ``chunk`` batch rows, the outermost axis of its loop space and output
    (``core.runtime.artifacts.batch_steps``); its passes then compute only the first ``wt_rows``
    rows (a uniform, ``emit.py``) and carry how many workgroups that takes (``Pass.rows``), each
    row's values bit for bit those of the whole chunk. A float16 output's rounding pass (without
    ``shader-f16``) and packed-input copies still run over the whole chunk.

    Raises:
        BufferTooLarge: an input or the output exceeds ``maxStorageBufferBindingSize``/``maxBufferSize``.
        ValueError: the device's limits are too small for any lowering (fewer than 3 storage buffers).
    """
    check_sizes(kernel, limits)
    n = math.prod(kernel.out.shape)
    if n == 0:
        return Lowered(())
    if chunk is not None and (kernel.space[0] % chunk or kernel.out.shape[0] % chunk):   # batch_steps' promise
        raise AssertionError(f"a kernel over {kernel.space} does not loop over {chunk} batch rows")
    if kernel.kind == "map":
        low = lower_map(kernel, limits, chunk)
    else:
        low = lower_matmul(kernel, limits, chunk) if kernel.template in ("matmul", "matmul_q8") else \
            lower_conv(kernel, limits, chunk) if kernel.template == "conv2d" else \
            lower_depthwise(kernel, limits) if kernel.template == "depthwise_conv2d" and chunk is None else None
        if low is None:
            low = lower_reduce(kernel, limits, chunk)
    if kernel.out.dtype.wgsl == "f16" and storage_type(kernel.out.dtype, limits) == "f32":
        low = dataclasses.replace(low, passes=low.passes + (_round_f16_pass(n, limits),))
    return low


def _round_f16_pass(n: int, limits: Limits) -> Pass:
    """Without ``shader-f16`` a float16 output is computed and stored as f32: this pass rounds it in
    place to the nearest float16 (ties to even, 65520 and up to inf, subnormals to multiples of
    2**-24; NaN and inf unchanged), as the wasm backend does (``wasm/half.py``), on the f32 bits.
    The subnormal case scales by 2**24 and uses ``round`` (ties to even), which no compiler may
    reassociate away."""
    wgs = limits.workgroup_size
    grid, wg_line = workgroup_grid(-(-n // wgs), limits)
    src = shader_header([("result", "f32", True)], limits) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  let u = bitcast<u32>(result[gid]);
  let a = u & 0x7fffffffu;
  var r = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u;
  if (r > 0x477fe000u) {{ r = 0x7f800000u; }}
  if (a < 0x38800000u) {{ r = bitcast<u32>(round(bitcast<f32>(a) * 16777216.0) * 5.9604644775390625e-8); }}
  if (a >= 0x7f800000u) {{ r = a; }}
  result[gid] = bitcast<f32>(r | (u & 0x80000000u));
}}
"""
    return Pass(src, (("result", True),), grid, (wgs, 1, 1))


def zero_rows_pass(words_per_row: int, chunk: int, limits: Limits = Limits()) -> Pass:
    """A dispatch writing 0 to words ``[rows * words_per_row, chunk * words_per_row)`` of binding 0
    (``dst``), ``rows`` the run-time rows (docs/artifact.md "Run-time rows: train steps"): its
    ``Pass.rows`` = ``(1, chunk, W)`` dispatches its whole grid of W workgroups at any rows in
    [1, chunk] (ceil(rows / chunk) = 1), which covers the chunk's words.

    Args:
        words_per_row: 32-bit words per batch row of the buffer.
        chunk: rows of the buffer (the signature's chunk).
        limits: the device limits compiled for.
    """
    wgs = limits.workgroup_size
    total = chunk * words_per_row
    workgroups = max(1, -(-total // wgs))
    grid, wg_line = workgroup_grid(workgroups, limits)
    src = shader_header([("dst", "u32", True)], limits, rows=True) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let e = {rows_bound(words_per_row)} + wg * {wgs} + i32(lid);
  if (e >= {total}) {{ return; }}
  dst[e] = 0u;
}}
"""
    return Pass(src, (("dst", True),), grid, (wgs, 1, 1), rows=(1, chunk, workgroups))


def copy_pass(words: int, dst_offset: int | None = None, limits: Limits = Limits()) -> Pass:
    """A dispatch copying 32-bit words from binding 0 (``src``, from its word 0) to binding 1 (``dst``)
    bit for bit: ``words`` words to ``dst`` from word ``dst_offset``, or with ``dst_offset=None``
    all of ``dst`` (``arrayLength``: bind a ``dst`` of exactly ``words`` words and a ``src`` at least
    as long; one shader then serves every size). For runtimes that run only dispatches (exported
    artifacts): they fill a kernel's ``packed`` binding (``Lowered.packed``) and route in-place
    updates through a temporary with it, where the native runtime uses ``copy_buffer_to_buffer``."""
    wgs = limits.workgroup_size
    grid, wg_line = workgroup_grid(max(1, -(-words // wgs)), limits)
    n, at = ("i32(arrayLength(&dst))", "gid") if dst_offset is None else (words, f"{dst_offset} + gid")
    src = shader_header([("src", "u32", False), ("dst", "u32", True)], limits) + f"""
@compute @workgroup_size({wgs})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
  {wg_line}
  let gid = wg * {wgs} + i32(lid);
  if (gid >= {n}) {{ return; }}
  dst[{at}] = src[gid];
}}
"""
    return Pass(src, (("src", False), ("dst", True)), grid, (wgs, 1, 1))

"""Compact artifacts (TensorFlow Lite's role): ``webtensor.export(..., weights_dtype=...)``.

``'float16'``: every read-only float32 weight is stored in ``weights.safetensors`` as IEEE binary16
(round to nearest even); loaders widen it back to float32 (exactly) when they load the artifact,
as TensorFlow Lite's float16 quantization does on CPUs. Half the weight bytes; outputs change by
the weights' rounding (relative 2**-11 per weight).

``'int8'``: every read-only float32 weight that signatures use only as the right operand of a
matrix product (Dense and attention projections, Conv2D filters after im2col, an imported ONNX
model's Gemm ``transB`` and im2col Conv weights: the ``(K, N)`` matrix a ``matmul`` reads, through
identities, reshapes and transposes, the matmul's ``transpose_b`` included) is quantized per output
channel, symmetrically:
``scale[j] = max_i |W[i, j]| / 127`` (1 for an all-zero column),
``q[i, j] = clip(round_half_even(W[i, j] / scale[j]), -127, 127)`` (TensorFlow Lite's int8
weights: Jacob et al., CVPR 2018, section 2, zero point 0; TFLite's quantization spec, per-axis).
The scales are stored as float16 when every one of a weight's lies in float16's normal range
(``2**-14 .. 65504``), each rounded *up* to a float16 value so that no weight clips (the step grows
by less than 2**-10 relative; GGML's Q8_0 blocks store float16 scales too), else as float32;
loaders widen them to float32 exactly, so kernels compute with the stored values.
Each such matmul becomes ``quantized_matmul(a, q, scale)`` (``core/ops/linalg.py``), whose kernel
reads the int8 bytes and multiplies by the scale as it goes: no float32 copy of the weight is
ever written outside the kernel's own scratch panels. In the artifact the weight is an int32
variable of the packed bytes (four to a word: what the kernels read) whose ``storage`` says
``int8``, its logical shape and the name of its scales variable ``<weight path>/scales``;
``weights.safetensors`` holds it as an I8 tensor of the logical shape: the weight's own, or
``(K, N)`` when the matmul reads it transposed (the values are then that matrix's, quantized per
column). Embedding tables ``(rows, depth)`` read only by ``gather`` along axis 0 (and matmuls: a
tied output projection) are stored the same way as the ``(depth, rows)`` matrix, one scale per
row, and read by ``quantized_gather`` (TensorFlow Lite's quantized embedding lookup). A 2-D weight
read as a matmul's left operand, ``W @ b`` (an ONNX 1x1 convolution in NCHW), is stored as the
matrix ``W^T`` (a scale per row of ``W``) and computed as ``transpose(quantized_matmul(b^T, W^T))``.
Other weights (biases, normalization parameters, position tables added whole or sliced) stay
float32.

Only inference uses these: a signature that updates variables (``train_step``) needs float32
weights, so export refuses one with ``weights_dtype`` other than float32 (a model exports only
``predict`` by default then). Needs no numpy; with it the quantizer is vectorised (the same
bytes; 1 M weights: 0.01 s instead of 0.6 s).
"""
from __future__ import annotations

import struct
from array import array
from math import prod

from .core.graph import Graph, Node
from .core.op import Aval
from .core.ops.linalg import quantized_gather_op, quantized_matmul_op
from .core.ops.movement import reshape_op, transpose_op
from .core.ops.nn import conv2d_direct, extract_patches
from .tensor import Variable

WEIGHTS_DTYPES = ("float32", "float16", "int8")


def check_weights_dtype(weights_dtype) -> str:
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"export: weights_dtype must be one of {', '.join(map(repr, WEIGHTS_DTYPES))}, "
                         f"got {weights_dtype!r}")
    return weights_dtype


def check_inference_only(traced, weights_dtype):
    """Refuse signatures that write variables: their weights must stay float32 to be trained."""
    if weights_dtype == "float32":
        return
    writers = [t.name for t in traced if t.graph.updates]
    if writers:
        raise ValueError(f"export: weights_dtype={weights_dtype!r} stores read-only weights for inference, but "
                         f"signature(s) {writers} update variables (training needs float32 weights); export "
                         "signatures=['predict'], or weights_dtype='float32' to keep them trainable")


def _floats(v) -> array:
    a = array("f")
    a.frombytes(bytes(v._host_bytes()))
    return a


def float16_bytes(name: str, v) -> bytes:
    """The float32 Variable ``v``'s values as little-endian binary16 (round to nearest even)."""
    vals = _floats(v)
    try:
        return struct.pack(f"<{len(vals)}e", *vals)
    except (OverflowError, struct.error):
        raise ValueError(f"export: weights_dtype='float16': weight '{name}' has values beyond float16's range "
                         "(|x| > 65504); export it as float32") from None


def _numpy():
    """numpy if installed, else None: it only makes the quantizer faster (same bytes)."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


HALF_MIN, HALF_MAX = 2.0 ** -14, 65504.0     # float16's smallest normal and largest finite value


def _half_up(x: float) -> float:
    """The smallest float16 value >= ``x`` (positive, at most 65504), as a float: a channel's
    scale stored as float16 exactly while no weight of it clips."""
    (h,) = struct.unpack("<H", struct.pack("<e", x))           # round to nearest even ...
    s = struct.unpack("<e", struct.pack("<H", h))[0]
    return s if s >= x else struct.unpack("<e", struct.pack("<H", h + 1))[0]   # ... then up one step


def quantize_int8(values, channels: int) -> tuple[bytes, list[float], str]:
    """Per-channel symmetric int8 quantization (module docstring) of the row-major float values
    ``values`` whose last ``channels``-sized stride is the output channel (element ``i`` belongs
    to channel ``i % channels``). Returns ``(int8 bytes, scales, scales' storage dtype)``: the
    scales are float16 values (``'float16'``) when every channel's ``max|w| / 127`` lies in
    float16's normal range, else float32 (``'float32'``). Vectorised with numpy when it is
    installed (the same bytes: both divide in float64 and round half to even)."""
    np = _numpy()
    if np is not None:
        cols = np.asarray(values, np.float32).reshape(-1, channels)
        if not np.isfinite(cols).all():
            raise ValueError("export: weights_dtype='int8': a weight is not finite")
        peak = np.abs(cols).max(axis=0).astype(np.float64) if cols.size else np.zeros(channels)
        exact = np.where(peak > 0, peak / 127, 1.0)
        if ((exact >= HALF_MIN) & (exact <= HALF_MAX)).all():
            half = exact.astype(np.float16)                 # round to nearest even, then up one step
            low = half < exact
            half[low] = np.nextafter(half[low], np.float16(np.inf))
            scales, dtype = half.astype(np.float32), "float16"
        else:
            scales, dtype = exact.astype(np.float32), "float32"
        q = np.clip(np.rint(cols / scales.astype(np.float64)), -127, 127).astype(np.int8)
        return q.tobytes(), scales.tolist(), dtype
    peak = [0.0] * channels
    for i, w in enumerate(values):
        c = i % channels
        if abs(w) > peak[c] or w != w:
            peak[c] = abs(w)
    if any(p != p or p == float("inf") for p in peak):
        raise ValueError("export: weights_dtype='int8': a weight is not finite")
    exact = [p / 127 if p > 0 else 1.0 for p in peak]
    if all(HALF_MIN <= e <= HALF_MAX for e in exact):
        scales, dtype = [_half_up(e) for e in exact], "float16"
    else:
        scales, dtype = list(array("f", exact)), "float32"        # rounded to float32
    q = bytearray(len(values))
    for i, w in enumerate(values):
        q[i] = max(-127, min(127, round(w / scales[i % channels]))) & 0xFF
    return bytes(q), scales, dtype


def _transposed(values, shape, perm):
    """Row-major ``values`` of ``shape`` with their axes permuted as ``numpy.transpose(perm)``
    (pure Python: numpy may be missing)."""
    strides, s = [0] * len(shape), 1
    for d in range(len(shape) - 1, -1, -1):
        strides[d], s = s, s * shape[d]
    index = [0]
    for d in perm:                          # source offsets of the result, in its row-major order
        st = strides[d]
        index = [b + k * st for b in index for k in range(shape[d])]
    return [values[i] for i in index]


def weight_matrix(values, shape, path):
    """The ``(K, N)`` matrix a matmul reads from a weight of ``shape`` with row-major ``values``
    through ``path`` (``_matmul_uses``: reshapes, transposes and the matmul's own
    ``transpose_b``), as ``(row-major values, (K, N))``."""
    np = _numpy()
    shape = tuple(shape)
    for kind, arg in path:
        if kind == "reshape":
            shape = tuple(arg)
            continue
        if np is not None:
            values = np.asarray(values, np.float32).reshape(shape).transpose(arg).ravel()
        else:
            values = _transposed(values, shape, arg)
        shape = tuple(shape[d] for d in arg)
    return values, shape


def _matmul_uses(g: Graph):
    """``{capture value: [(node, N, path)]}`` for captures whose every use is an operand of a matmul
    (``transpose_a``/``transpose_b`` or not) as a 2-D matrix, or the table of a ``gather`` along
    axis 0 of a 2-D table (an embedding: its ``(rows, depth)`` read as the ``(depth, rows)`` matrix,
    a scale per row), directly or through identities, reshapes and transposes; ``path`` is how the
    weight becomes the ``(K, N)`` matrix (``weight_matrix``): ``(("reshape", shape) |
    ("transpose", perm), ...)``, a final transpose for ``transpose_b``, a left operand and a gather.
    Other captures are absent."""
    users = g.consumers()
    producer = {node.out: node for node in g.nodes}
    outs = set(g.outputs) | {v for _, v in g.updates}
    found = {}
    for cv, _ in g.captures:
        uses, ok, stack = [], True, [(cv, ())]
        while stack and ok:
            v, path = stack.pop()
            if v in outs:
                ok = False
            for n in users.get(v, []):
                if n.op.name == "matmul" and all(_reaches(i, cv, producer) for i in n.inputs):
                    ok = False                  # the weight on both sides (W @ W^T): left as it is
                elif n.op.name == "identity":
                    stack.append((n.out, path))
                elif n.op.name == "reshape" and n.inputs[0] is v:
                    stack.append((n.out, path + (("reshape", tuple(n.out.aval.shape)),)))
                elif n.op.name == "transpose" and n.inputs[0] is v:
                    stack.append((n.out, path + (("transpose", tuple(n.attrs["perm"])),)))
                elif n.op.name == "matmul" and n.inputs[1] is v and n.inputs[0] is not v and \
                        len(v.aval.shape) == 2:
                    tb = bool(n.attrs.get("transpose_b"))
                    uses.append((n, v.aval.shape[0 if tb else 1], path + ((("transpose", (1, 0)),) if tb else ())))
                elif n.op.name == "matmul" and n.inputs[0] is v and n.inputs[1] is not v and \
                        len(v.aval.shape) == 2 and len(n.inputs[1].aval.shape) >= 2:
                    # W @ x (an ONNX 1x1 convolution in NCHW): computed as (x^T @ W^T)^T, so the
                    # matrix read is W^T (W itself with transpose_a), a scale per row of W
                    ta = bool(n.attrs.get("transpose_a"))
                    uses.append((n, v.aval.shape[1 if ta else 0], path + (() if ta else (("transpose", (1, 0)),))))
                elif n.op is conv2d_direct and n.inputs[1] is v and n.inputs[0] is not v:
                    # a direct convolution's filters (KH, KW, C, O): the (KH*KW*C, O) matrix of its im2col form
                    kh, kw, c, o = v.aval.shape
                    uses.append((n, o, path + (("reshape", (kh * kw * c, o)),)))
                elif n.op.name == "gather" and n.inputs[0] is v and n.inputs[1] is not v and \
                        n.attrs.get("axis") == 0 and len(v.aval.shape) == 2:
                    # an embedding table (rows, depth): stored as the (depth, rows) matrix, a scale per row
                    uses.append((n, v.aval.shape[0], path + (("transpose", (1, 0)),)))
                else:
                    ok = False
        if ok and uses:
            found[cv] = uses
    return found


def _canonical(path) -> tuple:
    """``path`` with each run of reshapes reduced to its last, and none at all when it transposes
    nothing (then the matrix is the weight's row-major values as they are)."""
    out = []
    for step in path:
        if out and step[0] == "reshape" and out[-1][0] == "reshape":
            out.pop()
        out.append(step)
    return tuple(out) if any(k == "transpose" for k, _ in out) else ()


def plan_int8(traced, weights: dict) -> dict:
    """Which Variables to quantize: ``{id(variable): (N, path)}`` for float32 model weights
    (``weights``: ``{id: path}``) of rank >= 2 that every signature reads only as a matmul's
    ``(K, N)`` right operand, the same matrix everywhere (``path``, canonical, for
    ``weight_matrix``); with no transpose on the way, N must be a product of the weight's trailing
    axes."""
    plan, bad = {}, set()
    for t in traced:
        found = _matmul_uses(t.graph)
        for cv, var in t.graph.captures:
            if cv not in found:
                bad.add(id(var))
                continue
            for _, n, path in found[cv]:
                if plan.setdefault(id(var), (n, _canonical(path))) != (n, _canonical(path)):
                    bad.add(id(var))
    out = {}
    for t in traced:
        for _, var in t.graph.captures:
            i = id(var)
            if i in plan and i not in bad and i in weights and var.dtype.name == "float32" and len(var.shape) >= 2:
                (n, path), shape = plan[i], tuple(var.shape)
                if path or any(prod(shape[j:]) == n for j in range(1, len(shape))):
                    out[i] = plan[i]
    return out


def quantize_variables(traced, weights: dict, plan: dict) -> dict:
    """``{id(weight): (q Variable, scales Variable, int8 bytes, stored shape, scales dtype)}`` for the planned
    weights (``plan_int8``): ``q`` is int32 ``(ceil(size / 4),)`` (the bytes, four to a
    little-endian word, zero-padded), ``scales`` float32 ``(N,)`` (float16 values when ``scales dtype`` is
    ``'float16'``: how they are stored); both on the weight's device, not trainable. The stored shape is the weight's own, or ``(K, N)`` when the matmul reads it
    transposed (the bytes are then those of the matrix the matmul reads)."""
    out = {}
    for t in traced:
        for _, var in t.graph.captures:
            if id(var) in plan and id(var) not in out:
                n, path = plan[id(var)]
                shape = tuple(int(d) for d in var.shape)
                values, matrix = weight_matrix(_floats(var), shape, path)
                qbytes, scales, scales_dtype = quantize_int8(values, n)
                words = array("i")
                words.frombytes(qbytes + bytes(-len(qbytes) % 4))
                if words.itemsize != 4 or struct.pack("=i", 1) != struct.pack("<i", 1):
                    words = array("i", struct.unpack(f"<{len(words)}i", bytes(words)))   # not reached on LE hosts
                name = weights[id(var)]
                q = Variable(words, name=f"{name}/q", trainable=False, dtype="int32", device=var.device)
                s = Variable(array("f", scales), name=f"{name}/scales", trainable=False, dtype="float32",
                             device=var.device)
                out[id(var)] = (q, s, qbytes, matrix if path else shape, scales_dtype)
    return out


def _reaches(value, cv, producer: dict) -> bool:
    """Is ``value`` the capture ``cv`` or made from it by identities, reshapes and transposes
    (``producer``: ``{value: node}``)?"""
    while value is not cv:
        node = producer.get(value)
        if node is None or node.op.name not in ("identity", "reshape", "transpose"):
            return False
        value = node.inputs[0]
    return True


def _im2col_int8(node, qv, sv, n) -> list:
    """A ``conv2d_direct`` node as im2col: ``extract_patches``, then ``quantized_matmul`` of the
    (N*OH*OW, KH*KW*C) patches by the int8 (KH*KW*C, O) filter matrix (``core/ops/nn.py``'s conv2d)."""
    x, f, out = node.inputs[0], node.inputs[1], node.out
    kh, kw, c, o = f.aval.shape
    nb, oh, ow = out.aval.shape[:3]
    dt = out.aval.dtype
    val = type(out)
    p = val(Aval((nb, oh, ow, kh, kw, c), dt))
    p2, y = val(Aval((nb * oh * ow, kh * kw * c), dt)), val(Aval((nb * oh * ow, o), dt))
    a = node.attrs
    return [Node(extract_patches, [x], {"ksize": (kh, kw), "strides": a["strides"], "dilations": a["dilations"],
                                        "pads": a["pads"], "pad_value": 0.0}, p),
            Node(reshape_op, [p], {"shape": p2.aval.shape}, p2),
            Node(quantized_matmul_op, [p2, qv, sv], {"transpose_a": False, "n": int(n)}, y),
            Node(reshape_op, [y], {"shape": tuple(out.aval.shape)}, out)]


def rewrite_int8(g: Graph, quantized: dict) -> Graph:
    """``g`` with every matmul (gather) reading a quantized weight replaced by ``quantized_matmul``
    (``quantized_gather``) on its int8 words and scales (new captures in the weight's place); the reshapes that led to it are
    left for dead-code elimination (``compile_graph`` keeps only what reaches an output)."""
    found = _matmul_uses(g)
    producer = {node.out: node for node in g.nodes}
    captures, repl = [], {}
    for cv, var in g.captures:
        entry = quantized.get(id(var))
        if entry is None or cv not in found:
            captures.append((cv, var))
            continue
        q, s = entry[0], entry[1]
        qv, sv = type(cv)(q._aval), type(cv)(s._aval)
        captures += [(qv, q), (sv, s)]
        for node, n, _ in found[cv]:
            repl[node] = (qv, sv, n, node.op.name == "matmul" and _reaches(node.inputs[0], cv, producer))
    nodes = []
    for node in g.nodes:
        if node in repl:
            qv, sv, n, left = repl[node]
            if left:                            # W @ b -> transpose(b^T @ W^T): the last two axes swapped back
                b, out = node.inputs[1], node.out
                r = len(out.aval.shape)
                tmp = type(out)(Aval(tuple(out.aval.shape[:-2]) + (out.aval.shape[-1], out.aval.shape[-2]), out.aval.dtype))
                nodes.append(Node(quantized_matmul_op, [b, qv, sv],
                                  {"transpose_a": not node.attrs.get("transpose_b"), "n": int(n)}, tmp))
                nodes.append(Node(transpose_op, [tmp], {"perm": tuple(range(r - 2)) + (r - 1, r - 2)}, out))
            elif node.op is conv2d_direct:         # back to im2col: patches, then the int8 matmul
                nodes += _im2col_int8(node, qv, sv, n)
            elif node.op.name == "gather":
                nodes.append(Node(quantized_gather_op, [qv, sv, node.inputs[1]],
                                  {"depth": int(node.inputs[0].aval.shape[1])}, node.out))
            else:
                nodes.append(Node(quantized_matmul_op, [node.inputs[0], qv, sv],
                                  {"transpose_a": bool(node.attrs.get("transpose_a")), "n": int(n)}, node.out))
        else:
            nodes.append(node)
    live = set(g.outputs) | {v for _, v in g.updates}
    kept = []
    for node in reversed(nodes):                 # drop what no longer reaches an output
        if node.out in live:
            kept.append(node)
            live.update(node.inputs)
    captures = [(cv, var) for cv, var in captures if cv in live]
    return Graph(inputs=list(g.inputs), captures=captures, consts=dict(g.consts), nodes=kept[::-1],
                 outputs=list(g.outputs), updates=list(g.updates))

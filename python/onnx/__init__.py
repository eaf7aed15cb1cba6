"""``webtensor.onnx``: run ONNX models as webtensor models (the optional extra ``webtensor[onnx]``).

``webtensor.onnx.load(path_or_bytes)`` parses the file with the ``onnx`` package and returns an
:class:`ONNXModel`, a :class:`webtensor.nn.Model`: call it on tensors, or use it in
``webtensor.function``, ``GradientTape``, ``compile``/``fit``/``predict`` and ``export`` like any model.
Its initializers become Variables named as in the file (floating ones trainable), so an imported
model can be fine-tuned and its weights saved.

How a graph becomes webtensor ops: each node goes through the one table of converters
(:data:`webtensor.onnx.ops.CONVERTERS`). A value known at import (an initializer, a ``Constant``,
the ``Shape`` of a tensor — webtensor's shapes are static) stays a numpy array, and a node whose
inputs are all known is computed at import with ONNX's own reference implementation
(``onnx.reference``), so shape subgraphs (``Shape``, ``Gather``, ``Concat``, ``Range``,
``ConstantOfShape``...) fold into constants. int64 values are kept exactly while they are folded;
a value that meets a tensor becomes int32 (OverflowError names one outside int32's range), so
int64 model inputs and outputs are int32 tensors.

Supported: the ``ai.onnx`` domain, opsets 13 to 21 (an older file is upgraded to opset 13 with
``onnx.version_converter``); element types float32, float16, bool, int32, int64 (and the small
integer types, widened); ``If`` whose condition is known at import (its branch runs inline). Not
supported: ``Loop``, ``Scan``, data-dependent output shapes (``NonZero``, ``NonMaxSuppression`` on
tensors), training-mode nodes, float64, 3-D convolution and pooling. docs/onnx.md lists the op
types and ONNX's conformance results. Integer ``Div`` of tensors goes through float32 (exact below
2**24; shape arithmetic, folded at import, is exact int64).

Errors. The file is untrusted input: it is parsed by ``onnx`` from bytes, checked by
``onnx.checker``, its sizes and element types checked, and external data must lie inside
``base_dir`` (the model's folder when loaded from a path). Every problem with the file is an
:class:`ONNXImportError` (a ValueError); a node that cannot be imported raises NotImplementedError
naming its op type, node name and opset, at import when the input shapes are known (declared in
the file or given as ``input_shapes``), and nothing is created then.
"""
from __future__ import annotations

import os

from .. import _state
from ..core.graph import Value
from ..core.op import Aval
from ..device import get_device
from ..function import Trace
from ..nn.model import Model
from ..tensor import Tensor, Variable, init_scope, tensor
from ..util import require

__all__ = ["load", "ONNXModel", "ONNXImportError"]


def __dir__():
    return __all__     # as webtensor's other public modules: dir() lists the API only

MIN_OPSET, MAX_OPSET = 13, 21
MAX_FILE_BYTES = 2 ** 31            # protobuf's own limit
MAX_FOLDED_ELEMENTS = 1 << 26       # a value computed at import larger than this is refused


class ONNXImportError(ValueError):
    """The file is not a model this importer can read: malformed, failing ``onnx.checker``, an
    unsupported domain, opset or element type, or external data outside ``base_dir``."""


def _onnx():
    return require("onnx", "webtensor.onnx")


def _read(path_or_bytes, base_dir):
    """The ModelProto and the folder its external data may come from."""
    onnx = _onnx()
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ONNXImportError(f"webtensor.onnx.load: {path} is {size} bytes (the limit is {MAX_FILE_BYTES})")
        with open(path, "rb") as f:
            data = f.read()
        if base_dir is None:
            base_dir = os.path.dirname(os.path.abspath(path))
    elif hasattr(path_or_bytes, "SerializeToString") and hasattr(path_or_bytes, "graph"):
        data = path_or_bytes.SerializeToString()
    else:
        raise TypeError(f"webtensor.onnx.load: expected a path, bytes or an onnx.ModelProto, got "
                        f"{type(path_or_bytes).__name__}")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:      # protobuf's DecodeError and friends
        raise ONNXImportError(f"webtensor.onnx.load: not an ONNX model ({type(e).__name__}: {e})") from None
    return model, base_dir


def _load_external(model, base_dir):
    """Read tensors stored outside the file, refusing any location outside ``base_dir``."""
    from onnx import external_data_helper as edh
    tensors = [t for t in edh._get_all_tensors(model) if edh.uses_external_data(t)]
    if not tensors:
        return
    if base_dir is None:
        raise ONNXImportError("webtensor.onnx.load: the model keeps tensors in external files; load it from a "
                              "path, or pass base_dir (the folder that holds them)")
    root = os.path.realpath(base_dir)
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        full = os.path.realpath(os.path.join(root, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([root, full]) != root:
            raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r}'s external data {loc!r} lies outside "
                                  f"{root}")
        if not os.path.isfile(full):
            raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r}'s external data {loc!r} is missing")
        offset, length = int(info.get("offset", 0) or 0), info.get("length")
        size = os.path.getsize(full)
        length = size - offset if length is None else int(length)
        if offset < 0 or length < 0 or offset + length > size:
            raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r}'s external data ({offset}+{length} "
                                  f"bytes) lies outside {loc!r} ({size} bytes)")
        with open(full, "rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        del t.external_data[:]
        t.data_location = 0


def _check(model):
    """Check the model (onnx.checker, domains, opset); a model older than opset 13 is upgraded with
    ``onnx.version_converter`` (which rewrites the ops whose meaning changed). Returns (model, opset)."""
    onnx = _onnx()
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not 1 <= opset <= MAX_OPSET:
        raise ONNXImportError(f"webtensor.onnx.load: opset {opset} of ai.onnx is not supported "
                              f"({MIN_OPSET} to {MAX_OPSET})")
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ONNXImportError(f"webtensor.onnx.load: node {node.name!r} ({node.op_type}) is in operator domain "
                                  f"{node.domain!r}; only ai.onnx is supported")
    if model.functions:
        raise ONNXImportError("webtensor.onnx.load: model-local functions are not supported")
    try:
        onnx.checker.check_model(model)
    except Exception as e:      # onnx.checker.ValidationError and the C++ errors behind it
        raise ONNXImportError(f"webtensor.onnx.load: the model fails onnx.checker: {e}") from None
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as e:
            raise ONNXImportError(f"webtensor.onnx.load: opset {opset} is older than {MIN_OPSET} and "
                                  f"onnx.version_converter could not upgrade it ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''})") from None
        opset = MIN_OPSET
    return model, opset


def _array(t):
    """An initializer or Constant TensorProto as numpy, its element type checked."""
    from onnx import numpy_helper
    from .ops import NUMPY_OF_ONNX
    if t.data_type not in NUMPY_OF_ONNX:
        raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r} has ONNX element type {t.data_type}; "
                              "supported: float32, float16, bool, int64, int32, int16, int8, uint16, uint8")
    n = 1
    for d in t.dims:
        if d < 0:
            raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r} has a negative dimension")
        n *= d
    if n > MAX_FOLDED_ELEMENTS * 16:
        raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r} has {n} elements")
    try:
        return numpy_helper.to_array(t)
    except Exception as e:
        raise ONNXImportError(f"webtensor.onnx.load: tensor {t.name!r} is malformed ({e})") from None


def _declared_shape(vi):
    tt = vi.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim] \
        if tt.HasField("shape") else None


def _input_shape(vi, given):
    """The declared shape of graph input ``vi`` (None for an unknown dim), refined by ``given``."""
    tt = vi.type.tensor_type
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in tt.shape.dim] \
        if tt.HasField("shape") else None
    if given is None:
        return declared
    given = [None if d is None else int(d) for d in given]
    if declared is not None and (len(given) != len(declared) or
                                 any(a is not None and b is not None and a != b for a, b in zip(given, declared))):
        raise ValueError(f"webtensor.onnx.load: input_shapes[{vi.name!r}] = {tuple(given)} does not fit the "
                         f"declared shape {tuple(declared)}")
    return given


def load(path_or_bytes, input_shapes=None, *, base_dir=None, constants=None, name=None) -> "ONNXModel":
    """Import an ONNX model (a file path, its bytes, or an ``onnx.ModelProto``) as an :class:`ONNXModel`.

    Args:
        input_shapes: optional ``{input name: shape}`` (or a list in graph input order) fixing dims the
            file leaves unknown (None for one still unknown); with every input's shape known the
            whole graph is converted once at import, so any unsupported node raises then.
        base_dir: the folder external data may be read from (default: the model file's folder; with
            bytes and no ``base_dir``, external data is refused).
        constants: optional ``{input name: array}``: graph inputs bound to fixed values at import
            (they fold like initializers and are no longer inputs of the model).
        name: the model's name (default: the graph's name).

    Returns: an :class:`ONNXModel`; its :attr:`~ONNXModel.input_names` and ``output_names`` are the
    graph's, in order.

    Raises:
        ONNXImportError (a ValueError): the bytes are not an ONNX model, ``onnx.checker`` rejects it, an
            unsupported domain, opset or element type, external data outside ``base_dir``.
        NotImplementedError: a node that cannot be imported (the message names its op type, node name
            and opset); ``webtensor.onnx.ops.DataDependentError`` when a shape depends on input values.
        ValueError: ``input_shapes`` or ``constants`` that do not fit the graph's inputs.
        ImportError: the ``onnx`` package is missing (``pip install 'webtensor[onnx]'``).
    """
    model, base_dir = _read(path_or_bytes, base_dir)
    _load_external(model, base_dir)
    model, opset = _check(model)
    return ONNXModel(model, opset, input_shapes, constants or {}, name)


class ONNXModel(Model):
    """An imported ONNX graph as a webtensor Model (made by :func:`load`).

    Call it with the graph's inputs: one tensor per input, positionally in graph order (a list or
    tuple, or the tensor itself for a one-input graph) or as a dict keyed by input name; it returns
    one Tensor, or a tuple in graph output order. int64 inputs are given as int32 (or int64 arrays,
    checked for overflow), int64 outputs come back as int32.

    ``export``: a one-input model exports for ``batch_size`` from its input shape; a model with several
    inputs takes ``example_inputs`` as a dict keyed by input name, and the artifact's inputs carry
    those names (in the order export gives a dict: sorted).

    Raises (on call):
        ValueError: a missing input, a wrong number of inputs, a shape the graph declares otherwise.
        NotImplementedError: a node that cannot be converted for these shapes.
    """
    autocast = False     # the graph declares its inputs' dtypes (a float16 input stays float16)

    def __init__(self, proto, opset: int, input_shapes, constants: dict, name=None):
        super().__init__(name=name or _safe_name(proto.graph.name))
        import numpy as np
        from .ops import CONVERTERS, ONNX_DTYPES
        g = proto.graph
        d = self.__dict__
        init_names = {t.name for t in g.initializer}
        inputs = [vi for vi in g.input if vi.name not in init_names]
        unknown = set(constants) - {vi.name for vi in inputs}
        if unknown:
            raise ValueError(f"webtensor.onnx.load: constants names {sorted(unknown)}, which are not graph inputs "
                             f"{[vi.name for vi in inputs]}")
        consts = {k: np.asarray(v) for k, v in constants.items()}
        inputs = [vi for vi in inputs if vi.name not in consts]
        if isinstance(input_shapes, (list, tuple)):
            if len(input_shapes) != len(inputs):
                raise ValueError(f"webtensor.onnx.load: {len(input_shapes)} input_shapes for {len(inputs)} inputs")
            input_shapes = {vi.name: s for vi, s in zip(inputs, input_shapes)}
        input_shapes = dict(input_shapes or {})
        extra = set(input_shapes) - {vi.name for vi in inputs}
        if extra:
            raise ValueError(f"webtensor.onnx.load: input_shapes for {sorted(extra)}, which are not graph inputs "
                             f"{[vi.name for vi in inputs]}")
        in_specs, given = [], []      # (name, declared shape, dtype); shapes given to load (or declared)
        for vi in inputs:
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type") or tt.elem_type not in ONNX_DTYPES:
                raise ONNXImportError(f"webtensor.onnx.load: input {vi.name!r} has an unsupported type "
                                      f"(element type {tt.elem_type})")
            in_specs.append((vi.name, _declared_shape(vi), ONNX_DTYPES[tt.elem_type]))
            given.append(_input_shape(vi, input_shapes.get(vi.name)))
        nodes = _parse_nodes(g, opset)
        # Which initializers are used as tensors (else they stay numpy constants, e.g. shapes)
        as_tensor, trainable = {o.name for o in g.output}, {o.name for o in g.output}
        for node, attrs in nodes:
            conv = CONVERTERS.get(node.op_type)
            const, state = (conv.const, conv.state) if conv is not None else ((), ())
            as_tensor.update(n for i, n in enumerate(node.input) if n and i not in const)
            trainable.update(n for i, n in enumerate(node.input) if n and i not in const and i not in state)
            if node.op_type == "If":
                as_tensor.update(_reads(node, attrs)[1:])
                trainable.update(_reads(node, attrs)[1:])
        # Weights: floating initializers, and floating Constant nodes of more than one element (where
        # paddle2onnx and others store them), when a node uses them as tensors.
        stored = [(t.name, t) for t in g.initializer]
        weight_nodes = set()
        for node, attrs in nodes:
            v = attrs.get("value")
            if node.op_type == "Constant" and hasattr(v, "dims") and v.data_type in (1, 10) and \
                    _elements(v) > 1 and node.output[0] in as_tensor:
                stored.append((node.output[0], v))
                weight_nodes.add(id(node))
        nodes = [(n, a) for n, a in nodes if id(n) not in weight_nodes]
        weights, values, var_values = {}, dict(consts), {}
        with init_scope():
            for name_, t in stored:
                a = _array(t)
                if a.dtype.kind == "f" and name_ in as_tensor:
                    var = Variable(tensor(a), name=name_, trainable=name_ in trainable)
                    weights[name_] = values[name_] = var
                    var_values[id(var)] = a
                else:
                    values[name_] = a
        for k, var in weights.items():
            self._weights[k] = var
        d.update(_opset=opset, _nodes=nodes, _in_specs=in_specs, _given=given, _init_values=values,
                 _var_values=var_values, _branches={},
                 _fold_cache={}, output_names=[o.name for o in g.output])
        d["_dead_after"] = _dead_after(nodes, set(self.output_names) | set(values))
        # Check every op type now; convert the whole graph once when every input shape is known.
        for node, _ in nodes:
            if node.op_type not in CONVERTERS and node.op_type not in ("Constant", "If") and node.input:
                from .ops import Ctx
                raise Ctx(node, {}, opset, None, {}).fail("this op type is not supported")
        if all(s is not None and None not in s for s in given):
            self._dry_run()
        self.built = True
        if len(given) == 1 and given[0] and None not in given[0][1:]:
            self._build_shape = tuple(given[0])     # export(batch_size=...) builds inputs from it

    # ---- inputs --------------------------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The graph's input names (initializers and ``constants`` excluded), in graph order."""
        return [n for n, _, _ in self._in_specs]

    @property
    def input_shapes(self) -> list:
        """Each input's shape as given to :func:`load` (else as declared), None for an unknown dim. Calls
        may use other sizes for the dims the file leaves free (the graph is converted for each)."""
        return [None if s is None else tuple(s) for s in self._given]

    def _n_inputs(self):
        # one input: a list is its data; several: None, so fit/predict/export read lists, tuples and
        # dicts as one value per input (as for a subclassed Keras model)
        return 1 if len(self._in_specs) == 1 else None

    def _n_outputs(self):
        return 1 if len(self.output_names) == 1 else None

    def _feeds(self, inputs) -> dict:
        specs = self._in_specs
        if isinstance(inputs, dict):
            missing = [n for n, _, _ in specs if n not in inputs]
            if missing:
                raise ValueError(f"model {self.name!r}: input(s) {missing} missing; its inputs are "
                                 f"{self.input_names}")
            vals = [inputs[n] for n, _, _ in specs]
        elif isinstance(inputs, (list, tuple)) and len(specs) != 1:
            vals = list(inputs)
        elif isinstance(inputs, (list, tuple)) and len(inputs) == 1 and (isinstance(inputs[0], Tensor) or
                                                                         hasattr(inputs[0], "shape")):
            vals = list(inputs)
        else:
            vals = [inputs]
        if len(vals) != len(specs):
            raise ValueError(f"model {self.name!r} takes {len(specs)} inputs {self.input_names}, got {len(vals)}")
        feeds = {}
        for (n, shape, dt), v in zip(specs, vals):
            v = v if isinstance(v, Tensor) else tensor(v, dtype=dt)
            if v.dtype != dt:
                raise ValueError(f"model {self.name!r}: input {n!r} must be {dt.name}, got {v.dtype.name}")
            if shape is not None and (len(shape) != len(v.shape) or
                                      any(a is not None and a != b for a, b in zip(shape, v.shape))):
                raise ValueError(f"model {self.name!r}: input {n!r} expects shape {tuple(shape)}, got "
                                 f"{tuple(v.shape)}")
            feeds[n] = v
        return feeds

    # ---- running -------------------------------------------------------------------------------
    def call(self, inputs, training=False):
        feeds = self._feeds(inputs)
        outs = self._run(feeds)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _run(self, feeds: dict) -> list:
        import numpy as np
        from .ops import CONVERTERS, Ctx
        device = next(iter(feeds.values())).device if feeds else None
        if device is None:
                device = get_device()
        env = dict(self._init_values)
        env.update(feeds)
        sig = tuple((n, tuple(v.shape), v.dtype.name) for n, v in feeds.items())
        cache = self._fold_cache.setdefault(sig, {})
        if len(self._fold_cache) > 64:
            self._fold_cache.clear()
            cache = self._fold_cache.setdefault(sig, {})
        self._run_nodes(self._nodes, self._dead_after, env, device, cache)
        res = []
        for name in self.output_names:
            v = env[name]
            if not isinstance(v, Tensor):
                from .ops import wt_dtype_of_numpy
                v = tensor(np.asarray(v), dtype=wt_dtype_of_numpy(np.asarray(v).dtype), device=device)
            res.append(v)
        return res

    def _run_nodes(self, nodes, dead_after, env: dict, device, cache: dict) -> None:
        """Convert ``nodes`` in order, reading and writing ``env`` (name -> array or Tensor)."""
        from .ops import CONVERTERS, Ctx
        for k, (node, attrs) in enumerate(nodes):
            ins = [env[n] if n else None for n in node.input]
            if node.op_type == "If":
                outs = self._run_if(node, attrs, ins[0], env, device, cache)
            elif all(not isinstance(v, Tensor) for v in ins):
                key = (id(nodes), k)
                outs = cache.get(key)
                if outs is None:
                    outs = cache[key] = _fold(node, attrs, ins, self._opset)
            else:
                conv = CONVERTERS.get(node.op_type)
                ctx = Ctx(node, attrs, self._opset, device, self._var_values)
                if conv is None:
                    raise ctx.fail("this op type is not supported")
                for i in conv.const:
                    if i < len(ins) and ins[i] is not None:
                        ins[i] = ctx.c(ins[i], i)
                try:
                    outs = conv.fn(ctx, *ins)
                except (TypeError, ValueError, IndexError) as e:
                    raise type(e)(f"ONNX {node.op_type} (node {ctx.name!r}): {e}") from e
                outs = outs if isinstance(outs, tuple) else (outs,)
            for name, v in zip(node.output, outs):
                if name:
                    env[name] = v
            for name in dead_after[k]:
                env.pop(name, None)

    def _run_if(self, node, attrs, cond, env, device, cache):
        """``If`` whose condition is known at import (often a shape test): the chosen branch's nodes run
        inline, reading the outer values they name."""
        from .ops import DataDependentError
        if isinstance(cond, Tensor) and id(cond) not in self._var_values:
            raise DataDependentError(f"ONNX If (node {node.name or '(unnamed)'!r}, opset {self._opset}): its "
                                     "condition must be known at import (webtensor traces no data-dependent "
                                     "control flow), but it is computed from the model's inputs", node.input[0])
        import numpy as np
        branch = attrs["then_branch"] if bool(np.asarray(cond).reshape(-1)[0]) else attrs["else_branch"]
        parsed = self._branches.get(id(branch))
        if parsed is None:
            sub = _parse_nodes(branch, self._opset)
            parsed = self._branches[id(branch)] = (branch, sub, _dead_after(sub, {o.name for o in branch.output}))
        branch, sub, dead = parsed
        inner = dict(env)
        for t in branch.initializer:
            inner[t.name] = _array(t)
        self._run_nodes(sub, dead, inner, device, cache)
        return tuple(inner[o.name] for o in branch.output)

    def _dry_run(self):
        """Convert the whole graph once, symbolically (a trace of symbolic inputs: nothing is allocated
        or run), for the given or declared shapes."""
        dev = next(iter(self._weights.values())).device if self._weights else get_device()
        tr = Trace(dev)
        feeds = {n: tr.symbolic(Value(Aval(tuple(s), dt))) for (n, _, dt), s in zip(self._in_specs, self._given)}
        _state.local.traces.append(tr)
        try:
            self._run(feeds)
        finally:
            _state.local.traces.pop()


def _parse_nodes(g, opset) -> list:
    """``(node, attributes)`` for each node of graph ``g``: attribute values as Python values (strings
    decoded); a subgraph only where webtensor runs one (``If``'s branches)."""
    from onnx import helper
    nodes = []
    for node in g.node:
        attrs = {}
        for a in node.attribute:
            if a.type in (a.GRAPH, a.GRAPHS) and node.op_type != "If":
                raise NotImplementedError(f"ONNX {node.op_type} (node {node.name or '(unnamed)'!r}, opset "
                                          f"{opset}): subgraphs are not supported (only If's, when its "
                                          "condition is known at import)")
            v = helper.get_attribute_value(a)
            attrs[a.name] = v.decode() if isinstance(v, bytes) else v
        nodes.append((node, attrs))
    return nodes


def _reads(node, attrs) -> list:
    """The outer names ``node`` reads: its inputs and, for ``If``, those its branches name."""
    names = [n for n in node.input if n]
    for key in ("then_branch", "else_branch"):
        g = attrs.get(key)
        if g is not None:
            for sub in g.node:
                names += _reads(sub, {a.name: a.g for a in sub.attribute if a.type == a.GRAPH})
    return names


def _dead_after(nodes, keep: set) -> list:
    """For each node, the values no later node reads (dropped after it runs, so an eager call holds
    only the live activations; a large model's would not fit in wasm32's 4 GiB otherwise)."""
    last = {}
    for k, (node, attrs) in enumerate(nodes):
        for n in _reads(node, attrs):
            last[n] = k
    return [[n for n in dict.fromkeys(_reads(node, attrs)) if last.get(n) == k and n not in keep]
            for k, (node, attrs) in enumerate(nodes)]


def _elements(t) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def _safe_name(s: str) -> str:
    s = "".join(c if c.isalnum() or c in "_-" else "_" for c in s)[:64]
    return s or "onnx_model"


_GROWING = {"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad", "Upsample"}


def _fold(node, attrs, ins, opset):
    """Compute a node whose inputs are all known at import with ``onnx.reference`` (ONNX's reference
    implementation: exact ONNX semantics, int64 included)."""
    import numpy as np
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    if node.op_type in _GROWING:
        _check_growth(node, attrs, ins)
    names = [f"i{i}" if v is not None else "" for i, v in enumerate(ins)]
    outs = [f"o{i}" if n else "" for i, n in enumerate(node.output)]
    n2 = helper.make_node(node.op_type, names, outs, domain=node.domain)
    n2.attribute.extend(node.attribute)
    try:
        ev = ReferenceEvaluator(helper.make_model(
            helper.make_graph([n2], "fold", [helper.make_tensor_value_info(n, 0, None) for n in names if n],
                              [helper.make_tensor_value_info(o, 0, None) for o in outs if o]),
            opset_imports=[helper.make_opsetid("", opset)]))
        res = ev.run(None, {n: np.asarray(v) for n, v in zip(names, ins) if n})
    except NotImplementedError:
        raise
    except Exception as e:
        raise NotImplementedError(f"ONNX {node.op_type} (node {node.name or '(unnamed)'!r}, opset {opset}): "
                                  f"folding its constant inputs failed ({type(e).__name__}: {e})") from None
    it = iter(res)
    out = []
    for o in outs:
        v = np.asarray(next(it)) if o else None
        if v is not None and v.size > MAX_FOLDED_ELEMENTS:
            raise ONNXImportError(f"ONNX {node.op_type} (node {node.name!r}): a constant of {v.size} elements")
        out.append(v)
    return tuple(out)


def _check_growth(node, attrs, ins):
    """Refuse a constant computation whose result would be huge, before computing it."""
    import numpy as np
    n = None
    try:
        if node.op_type == "ConstantOfShape":
            n = int(np.prod(np.asarray(ins[0], np.float64)))
        elif node.op_type == "Expand":
            n = int(np.prod(np.maximum(np.asarray(ins[1], np.float64), 1))) * max(np.asarray(ins[0]).size, 1)
        elif node.op_type == "Tile":
            n = int(np.prod(np.asarray(ins[1], np.float64))) * np.asarray(ins[0]).size
        elif node.op_type == "Range":
            s, e, d = (float(np.asarray(v).reshape(())) for v in ins)
            n = int(np.ceil((e - s) / d)) if d else None
    except (ValueError, TypeError, OverflowError):
        n = None
    if n is not None and n > MAX_FOLDED_ELEMENTS:
        raise ONNXImportError(f"ONNX {node.op_type} (node {node.name!r}): a constant of {n} elements")

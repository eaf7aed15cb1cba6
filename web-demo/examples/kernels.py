# webtensor's compiler, inside Pyodide (no numpy): build a graph, compile it to fused kernels,
# emit WebAssembly and WGSL from Python, run the WebAssembly with this JavaScript engine's
# WebAssembly (through Pyodide's `js` module), check it against plain Python, and (in a
# browser with WebGPU) compile the WGSL with navigator.gpu.
import array
import json
import math
import random
import sys

import js
from pyodide.ffi import to_js

import webtensor as wt
from webtensor.core.compile import compile_graph
from webtensor.core.graph import Graph, Value
from webtensor.core.op import OPS, Aval
from webtensor.wasm.binary import Module
from webtensor.wasm.lower import lower
from webtensor.webgpu import wgsl

print(f"webtensor {wt.__version__} on Python {sys.version.split()[0]}; numpy loaded: {'numpy' in sys.modules}")
f32 = wt.float32


def op(g, name, inputs, **attrs):
    """Add op `name` to graph `g` (shape and dtype from the op's own inference rule)."""
    return g.add(OPS[name], inputs, attrs, OPS[name].infer(*[v.aval for v in inputs], **attrs))


# y = softmax(relu(x @ w + b)), x: (4, 8), w: (8, 3), b: (3,)
g = Graph()
x, w, b = (Value(Aval(shape, f32)) for shape in [(4, 8), (8, 3), (3,)])
g.inputs += [x, w, b]
h = op(g, "relu", [op(g, "add", [op(g, "matmul", [x, w], transpose_a=False, transpose_b=False), b])])
e = op(g, "exp", [op(g, "sub", [h, op(g, "reduce_max", [h], axes=(1,), keepdims=True)])])
y = op(g, "div", [e, op(g, "reduce_sum", [e], axes=(1,), keepdims=True)])
g.outputs.append(y)
prog = compile_graph(g)
print(f"graph: {len(g.nodes)} ops -> {len(prog.steps)} fused kernels")

# WebAssembly: one module, one exported function per kernel (out, in_0.., start, end, scratch).
module = Module()
module.import_memory("env", "memory", 1)
lowered = [lower(module, step.kernel, f"k{i}", export=True) for i, step in enumerate(prog.steps)]
wasm = module.emit()
print(f"WebAssembly: {len(wasm)} bytes, valid: {bool(js.WebAssembly.validate(to_js(wasm)))}")

# A static memory plan: every buffer at a 64-byte aligned address, then the scratch space.
address, top = {}, 64
for buf in prog.bufs:
    address[buf.id] = top
    top += -(-buf.nbytes // 64) * 64
scratch, top = top, top + max([lw.scratch for lw in lowered] + [0])
to_object = js.Object.fromEntries
memory = js.WebAssembly.Memory.new(to_js({"initial": -(-top // 65536)}, dict_converter=to_object))
instance = (await js.WebAssembly.instantiate(to_js(wasm), to_js({"env": {"memory": memory}}, dict_converter=to_object))).instance

rng = random.Random(0)
values = {v: [round(rng.uniform(-1, 1), 3) for _ in range(math.prod(v.aval.shape))] for v in (x, w, b)}
for v, buf in zip(g.inputs, prog.inputs):
    js.Float32Array.new(memory.buffer, address[buf], len(values[v])).assign(array.array("f", values[v]))
for i, (step, lw) in enumerate(zip(prog.steps, lowered)):
    out, ins = address[step.output], [address[k] for k in step.inputs]
    if lw.copy:      # the output is input 0's bytes
        n = prog.bufs[step.output].nbytes
        js.Uint8Array.new(memory.buffer, out, n).set(js.Uint8Array.new(memory.buffer, ins[0], n))
    else:
        getattr(instance.exports, f"k{i}")(out, *ins, 0, lw.rows, scratch)
got = array.array("f", js.Uint8Array.new(memory.buffer, address[prog.outputs[0]], 4 * 12).to_bytes())

# The same in plain Python.
X, W, B = values[x], values[w], values[b]
want = []
for r in range(4):
    hr = [max(0.0, sum(X[r * 8 + k] * W[k * 3 + c] for k in range(8)) + B[c]) for c in range(3)]
    er = [math.exp(v - max(hr)) for v in hr]
    want += [v / sum(er) for v in er]
err = max(abs(p - q) for p, q in zip(got, want))
print(f"softmax(relu(x @ w + b)) on WebAssembly:\n  {[round(v, 5) for v in got]}\n  max |error| vs Python: {err:.2e}")

# WGSL: the same kernels as compute shaders (the WebGPU spec's default limits).
passes = [p for step in prog.steps for p in wgsl.lower(step.kernel).passes]
print(f"WGSL: {len(passes)} compute passes; the first one:\n" + passes[0].source)
compiled, errors = None, []
gpu = getattr(js.navigator, "gpu", None) if hasattr(js, "navigator") else None
adapter = await gpu.requestAdapter() if gpu else None
if adapter:
    device = await adapter.requestDevice()
    compiled = 0
    for p in passes:
        info = await device.createShaderModule(to_js({"code": p.source}, dict_converter=to_object)).getCompilationInfo()
        errors += [m.message for m in info.messages if m.type == "error"]
        compiled += 1
    print(f"WebGPU ({adapter.info.vendor} {adapter.info.architecture}) compiled {compiled} shaders, {len(errors)} errors")
else:
    print("no WebGPU adapter here: WGSL not compiled")
print("RESULT " + json.dumps({"wasm_bytes": len(wasm), "kernels": len(prog.steps), "max_abs_err": err, "y": list(got),
                              "inputs": {"x": X, "w": W, "b": B}, "wgsl_passes": len(passes),
                              "wgsl_compiled": compiled, "wgsl_errors": errors, "numpy": "numpy" in sys.modules}))

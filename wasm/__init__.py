"""webtensor.wasm: WebAssembly emitted by pure Python, and the ``"wasm"`` device.

Compilation (no numpy; runs in Pyodide):

- ``binary``: the WebAssembly binary format (Core Spec 2.0 §5) with SIMD128;
  ``text`` dumps what the builder recorded, for debugging;
- ``ir``: the lowering's own node kinds and the kernel function's signature (``Lowered``);
- ``analysis``: index simplification (core's ``Simplifier``), affine load offsets, loop-dim
  split/merge;
- ``lower``: kernel IR -> WebAssembly functions (vectorised maps and reductions), with
  ``ops`` (one IR op's instructions) and ``reduce`` (accumulators);
- ``vmath``: polynomial exp/log/tanh/erf/sin/cos/pow, scalar and f32x4;
- ``matmul``: the register-tiled SIMD128 matmul template.

Execution (no numpy needed):

- ``runtime``: ``WasmDevice`` (one linear memory, allocator, kernel cache, one-call executables);
- ``engines``: what runs the modules: ``wasmtime`` natively (``pip install 'webtensor[wasm]'``),
  the page's ``WebAssembly`` in Pyodide.

Artifacts: ``export`` (the "wasm" exporter: one module for every signature) and ``artifact`` (the
"wasm" artifact loader), registered in ``core.runtime.artifacts`` when imported.

Importing this package registers the ``"wasm"`` device (``core.runtime.device.register_device``).
"""
import sys

from ..core.runtime.device import register_device
from .runtime import WasmDevice


def _probe() -> bool:
    """The default device where no hardware GPU is: natively when wasmtime is installed; always in
    Pyodide (the page's WebAssembly)."""
    if sys.platform == "emscripten":
        return True
    import wasmtime  # noqa: F401  (optional: ImportError says no)
    return True


register_device("wasm", WasmDevice, probe=_probe, rank=1)

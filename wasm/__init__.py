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
"""

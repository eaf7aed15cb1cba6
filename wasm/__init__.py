"""webtensor.wasm: WebAssembly emitted by pure Python.

``binary`` writes the WebAssembly binary format (Core Spec 2.0 §5) with
SIMD128; ``text`` dumps what the builder recorded, for debugging.
"""

"""``webtensor.config``: process-wide settings (in the spirit of ``tf.config``). Threads per kernel:
``webtensor.config.threading`` (``tf.config.threading``'s names).

Cache limits: compiled code is cached so that repeated work compiles nothing, and the caches are
bounded so that work over many shapes does not grow memory without end. When a cache is full the
least recently used entry is dropped (and compiled again if it is needed again):

- ``kernels``: per device, the eager kernels kept compiled ("wasm": one WebAssembly module each,
  about 30 KB of machine code; "webgpu": the kernel's WGSL and compute pipelines). Default 512.
- ``traces``: per ``webtensor.function`` (per instance, for methods), the input signatures kept
  traced, each with its optimised graph and compiled executable (one WebAssembly module, or the
  WebGPU pipelines and buffer plan; from tens of KB to about a MB for a small model). Default 32.

A function's traces belong to it: ``del f`` releases them with their compiled code (on "wasm" the
engine frees the machine code of dropped modules once enough have accumulated). Retracing often
(5 traces within the last 10 calls, as TensorFlow counts) warns once per function with a
:class:`RetracingWarning`.
"""
from __future__ import annotations

from . import config_threading as threading  # noqa: F401  (tf.config.threading's names)
from .core.runtime.cache import LIMITS as _LIMITS, TICK, LRUCache  # noqa: F401  (the caches these limits bound)


def set_cache_limits(kernels: int | None = None, traces: int | None = None) -> None:
    """Bound the compiled-code caches (see the module docstring); None leaves a limit unchanged.
    New limits apply at each cache's next insertion.

    Args:
        kernels: eager kernels kept compiled per device (an int >= 1; default 512).
        traces: traced signatures kept per ``webtensor.function`` (an int >= 1; default 32).

    Raises:
        ValueError: a limit that is not an int >= 1.
    """
    new = {}
    for name, value in (("kernels", kernels), ("traces", traces)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"set_cache_limits: {name} must be an int >= 1, got {value!r}")
        new[name] = value
    _LIMITS.update(new)


def get_cache_limits() -> dict:
    """The current limits: ``{'kernels': int, 'traces': int}`` (a copy)."""
    return dict(_LIMITS)


class RetracingWarning(UserWarning):
    """A ``webtensor.function`` traced again and again (new shapes, new Python values, or the
    function created anew in a loop); see :class:`webtensor.function.Function`."""

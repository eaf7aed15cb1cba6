"""``webtensor.config``: process-wide settings (in the spirit of ``tf.config``).

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

import itertools

_LIMITS = {"kernels": 512, "traces": 32}


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


TICK = itertools.count(1)    # use stamps: next(TICK) is later than every stamp before it


class LRUCache(dict):
    """A dict bounded to the ``config`` limit named ``limit`` (a key of :func:`get_cache_limits`).

    Values are objects with a writable ``used`` attribute: a use stamp from :data:`TICK`. :meth:`get`
    stamps the value it finds (hot paths may look up with ``dict.get`` and stamp it themselves:
    ``value.used = next(TICK)``); :meth:`put` stamps and inserts, and past the limit drops the least
    recently used entries down to three quarters of the limit (so a full cache sorts its stamps once
    per ``limit // 4 + 1`` insertions; ``evictions`` counts the entries dropped). Entries stamped alike (one value under
    several keys) count as one use. Not locked: its owner (a device, a function) holds its own lock
    around it."""

    def __init__(self, limit: str):
        if limit not in _LIMITS:
            raise ValueError(f"LRUCache: unknown limit {limit!r} (known: {sorted(_LIMITS)})")
        super().__init__()
        self.limit, self.evictions = limit, 0

    def get(self, key, default=None):
        """The value for ``key`` (stamped as used now), or ``default``. Raises TypeError for an
        unhashable key."""
        value = dict.get(self, key)
        if value is None:
            return default
        value.used = next(TICK)
        return value

    def put(self, key, value) -> None:
        """Insert or replace ``key`` as the most recently used entry, then evict past the limit."""
        value.used = next(TICK)
        self[key] = value
        limit = _LIMITS[self.limit]
        if len(self) > limit:
            oldest = sorted(self.items(), key=lambda kv: kv[1].used)[:len(self) - (limit - limit // 4)]
            for k, _ in oldest:
                del self[k]
            self.evictions += len(oldest)

    def __repr__(self):
        return f"LRUCache({self.limit}: {len(self)}/{_LIMITS[self.limit]})"

"""Bounded compiled-code caches (LRU) and their limits, which ``webtensor.config.set_cache_limits``
sets (its docstring says what each limit bounds). Devices and functions own one cache each."""
from __future__ import annotations

import itertools

LIMITS = {"kernels": 512, "traces": 32}     # the current limits; webtensor.config changes them


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
        if limit not in LIMITS:
            raise ValueError(f"LRUCache: unknown limit {limit!r} (known: {sorted(LIMITS)})")
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
        limit = LIMITS[self.limit]
        if len(self) > limit:
            oldest = sorted(self.items(), key=lambda kv: kv[1].used)[:len(self) - (limit - limit // 4)]
            for k, _ in oldest:
                del self[k]
            self.evictions += len(oldest)

    def __repr__(self):
        return f"LRUCache({self.limit}: {len(self)}/{LIMITS[self.limit]})"

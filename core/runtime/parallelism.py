"""The intra-op thread count (``webtensor.config.threading`` sets it; backends read it when they
compile an executable or load an artifact). Default: ``$WEBTENSOR_NUM_THREADS`` if set, else 1
(``docs/architecture.md``, "Threads", says why 1)."""
from __future__ import annotations

import os

MAX_THREADS = 16
_SET: list = [None]          # the value set by set_intra_op_threads (None: from the environment)


def _check(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_THREADS:
        raise ValueError(f"{what}: the thread count must be an int in [0, {MAX_THREADS}] (0: the default), got {n!r}")
    return n


def set_intra_op_threads(n: int) -> None:
    """Threads per executable from now on (0: back to the default)."""
    _SET[0] = _check(n, "set_intra_op_parallelism_threads") or None


def intra_op_threads() -> int:
    """The thread count in effect: the value set, else ``$WEBTENSOR_NUM_THREADS``, else 1.

    Raises:
        ValueError: ``$WEBTENSOR_NUM_THREADS`` is not an integer in [0, MAX_THREADS].
    """
    if _SET[0] is not None:
        return _SET[0]
    env = os.environ.get("WEBTENSOR_NUM_THREADS", "").strip()
    if not env:
        return 1
    try:
        n = int(env)
    except ValueError:
        raise ValueError(f"$WEBTENSOR_NUM_THREADS must be an integer, got {env!r}") from None
    return _check(n, "$WEBTENSOR_NUM_THREADS") or 1

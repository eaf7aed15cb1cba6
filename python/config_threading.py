"""``webtensor.config.threading`` (``tf.config.threading``'s names): how many threads one kernel may
use. Applies to the ``"wasm"`` device's compiled executables (``webtensor.function``) and to wasm
artifacts loaded afterwards; eager ops stay on one thread. Large kernels are split into tiles that
do not depend on the thread count, so results are bitwise identical for any count
(``docs/architecture.md``, "Threads"). The default is ``$WEBTENSOR_NUM_THREADS``, else 1.
"""
from __future__ import annotations

from .core.runtime.parallelism import intra_op_threads, set_intra_op_threads

__all__ = ["set_intra_op_parallelism_threads", "get_intra_op_parallelism_threads",
           "set_inter_op_parallelism_threads", "get_inter_op_parallelism_threads"]


def set_intra_op_parallelism_threads(num_threads: int) -> None:
    """Threads used within one kernel by executables compiled (and wasm artifacts loaded) from now on.

    Args:
        num_threads: an int in [0, 16]; 0 restores the default (``$WEBTENSOR_NUM_THREADS``, else 1).

    Raises:
        ValueError: ``num_threads`` is not an int in [0, 16].
    """
    set_intra_op_threads(num_threads)


def get_intra_op_parallelism_threads() -> int:
    """The thread count in effect (the value set, else ``$WEBTENSOR_NUM_THREADS``, else 1).

    Raises:
        ValueError: ``$WEBTENSOR_NUM_THREADS`` is not an int in [0, 16].
    """
    return intra_op_threads()


def set_inter_op_parallelism_threads(num_threads: int) -> None:
    """Accepted for TensorFlow compatibility: webtensor runs one kernel at a time (kernels of a step
    depend on each other through the arena), so only 1 (or 0, the default) is meaningful.

    Args:
        num_threads: 0 or 1.

    Raises:
        ValueError: any other value.
    """
    if num_threads not in (0, 1) or isinstance(num_threads, bool):
        raise ValueError(f"set_inter_op_parallelism_threads: only 0 or 1 is supported, got {num_threads!r}")


def get_inter_op_parallelism_threads() -> int:
    """Always 1 (see :func:`set_inter_op_parallelism_threads`)."""
    return 1


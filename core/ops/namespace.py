"""Every op of the op set by name, for gradient rules and compositions that use ops of other
families (``unbroadcast`` needs ``reduce_sum``, ``reduce_sum``'s gradient needs ``broadcast_to`` ...).

The families reference each other only at call time, so instead of importing one another (which
would run in circles) they read this namespace, which ``core/ops/__init__.py`` fills once every
family is defined: imports run one way (families -> this module; ``__init__`` -> families).
"""
from __future__ import annotations

import types

from ..op import Op


class _Namespace(types.SimpleNamespace):
    def __getattr__(self, name):
        raise AttributeError(f"core.ops.namespace: no op {name!r} (is core.ops imported?)")


ops = _Namespace()


def fill(modules) -> None:
    """Add the public names each module defines itself (ops and functions, not what it imports)."""

    for m in modules:
        for name, value in vars(m).items():
            if name.startswith("_") or isinstance(value, types.ModuleType):
                continue
            if isinstance(value, Op) or getattr(value, "__module__", None) == m.__name__:
                setattr(ops, name, value)

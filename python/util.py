"""Lazy imports of optional dependencies: :mod:`webtensor.core.runtime.util` (re-exported here)."""
from .core.runtime.util import require, require_numpy  # noqa: F401

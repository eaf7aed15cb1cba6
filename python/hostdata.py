"""Host data without numpy: :mod:`webtensor.core.runtime.hostdata` (the runtime layer), under its
former name. Not API (``docs/architecture.md``)."""
import sys as _sys

from .core.runtime import hostdata as _hostdata

_sys.modules[__name__] = _hostdata     # one module: ``webtensor.hostdata`` is the runtime's

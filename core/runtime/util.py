"""Lazy imports of optional dependencies, with errors that name the pip extra."""
from __future__ import annotations

import importlib
import sys

_EXTRAS = {"numpy": "numpy", "wasmtime": "wasm", "wgpu": "webgpu", "tensorboardX": "tensorboard"}


def require(module: str, feature: str):
    """Import an optional dependency or raise ImportError naming the pip extra that provides it
    (in Pyodide, the ``micropip`` call that installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = (f"await micropip.install('{module}')" if sys.platform == "emscripten"
               else f"pip install 'webtensor[{_EXTRAS.get(module, module)}]'")
        raise ImportError(f"{feature} needs the optional dependency '{module}': {how}") from e


def require_numpy(feature: str):
    return require("numpy", feature)

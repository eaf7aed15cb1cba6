"""Make ``webtensor.wasm`` importable from the source tree when the package is not installed."""
import importlib.util
import pathlib
import sys
import types

try:
    import webtensor.wasm.binary  # noqa: F401
except ImportError:
    root = pathlib.Path(__file__).resolve().parents[2]
    if "webtensor" not in sys.modules:
        pkg = types.ModuleType("webtensor")
        pkg.__path__ = [str(root / "python")]
        sys.modules["webtensor"] = pkg
    spec = importlib.util.spec_from_file_location(
        "webtensor.wasm", root / "wasm" / "__init__.py", submodule_search_locations=[str(root / "wasm")])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["webtensor.wasm"] = mod
    spec.loader.exec_module(mod)

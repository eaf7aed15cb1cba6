"""The import rules of docs/architecture.md ("Rules"), checked on every module's imports with ``ast``
(imports inside functions included), so that the layers keep matching the folders:

- ``core/`` (``webtensor.core``, with the runtime layer ``core/runtime/``) imports nothing else of
  webtensor;
- ``wasm/`` and ``webgpu/`` import only ``core/`` and themselves, never each other;
- ``python/`` (the API, ``webtensor``) reaches the backends only through the runtime layer's
  registries: only the package's ``__init__`` (the composition root) imports them, so that they
  register their devices, exporters and artifact loaders;
- no function-body import of a webtensor module (imports run one way, at the top), except
  ``core.numpy_util`` (it imports numpy, optional, at module level) and :data:`LAZY_ALLOWED`.

The checker is tried on synthetic sources first (each rule must catch its violation).
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = {"core": "webtensor.core", "wasm": "webtensor.wasm", "webgpu": "webtensor.webgpu", "python": "webtensor"}
NUMPY_MODULE = "webtensor.core.numpy_util"      # numpy at module level: imported lazily everywhere

# Function-body imports that remain, each with its reason. The list only shrinks: an entry no
# longer needed fails test_allow_list_is_current.
LAZY_ALLOWED = {
    ("webtensor.webgpu", "webtensor.webgpu.browser"): "Pyodide only: browser.py imports the js module",
    ("webtensor.onnx", "webtensor.onnx.ops"): "ops.py imports numpy (optional): loaded with the first model",
}


def layer(module: str) -> str | None:
    """``'core'``, ``'wasm'``, ``'webgpu'`` or ``'api'`` for a webtensor module; None for others."""
    if module != "webtensor" and not module.startswith("webtensor."):
        return None
    for name in ("core", "wasm", "webgpu"):
        if module == f"webtensor.{name}" or module.startswith(f"webtensor.{name}."):
            return name
    return "api"


def all_modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """``{module name: (path, is_package)}`` of every module of the package."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            parts = parts[:-1] if is_package else parts
            out[".".join((package,) + parts)] = (path, is_package)
    return out


def imports(source: str, module: str, is_package: bool, known) -> list[tuple[str, int, bool]]:
    """``(imported webtensor module, line, inside a function)`` for every import of ``source``;
    ``from pkg import name`` counts as ``pkg.name`` when that is a module (``known``), else ``pkg``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, lazy) for a in child.names if layer(a.name))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                    base = f"{base}.{child.module}" if child.module else base
                else:
                    base = child.module or ""
                if layer(base):
                    for a in child.names:
                        found.append((f"{base}.{a.name}" if f"{base}.{a.name}" in known else base, child.lineno, lazy))
            visit(child, inner)
    visit(ast.parse(source), False)
    return found


def violations(source: str, module: str, is_package: bool = False, known=frozenset()) -> list[str]:
    """The rules (module docstring) ``source``, as the module ``module``, breaks."""
    out = []
    here = layer(module)
    for target, line, lazy in imports(source, module, is_package, known):
        there = layer(target)
        where = f"{module}:{line} imports {target}"
        if here == "core" and there != "core":
            out.append(f"{where}: core imports nothing else of webtensor")
        elif here in ("wasm", "webgpu") and there not in ("core", here):
            out.append(f"{where}: a backend imports only core and itself")
        elif here == "api" and there in ("wasm", "webgpu") and module != "webtensor":
            out.append(f"{where}: the API reaches backends only through core.runtime's registries")
        if (lazy and target != NUMPY_MODULE and (module, target) not in LAZY_ALLOWED):
            out.append(f"{where} inside a function: imports run one way, at the top")
    return out


# ---- the checker catches each violation --------------------------------------------------------

@pytest.mark.parametrize("module, source, rule", [
    ("webtensor.core.graph", "from ..tensor import Tensor\n", "core imports nothing"),
    ("webtensor.core.runtime.device", "from ...wasm import runtime\n", "core imports nothing"),
    ("webtensor.core.compile", "import webtensor.nn\n", "core imports nothing"),
    ("webtensor.wasm.runtime", "from ..webgpu import wgsl\n", "a backend imports only core"),
    ("webtensor.webgpu.export", "from ..device import get_device\n", "a backend imports only core"),
    ("webtensor.export", "from .wasm.lower import lower\n", "only through core.runtime"),
    ("webtensor.artifact", "from .webgpu import artifact\n", "only through core.runtime"),
    ("webtensor.nn.model", "def export(self):\n    from ..export import export\n", "inside a function"),
    ("webtensor.core.op", "class A:\n    def f(self):\n        import webtensor.core.graph\n", "inside a function"),
])
def test_checker_catches(module, source, rule):
    found = violations(source, module)
    assert len(found) == 1 and rule in found[0], found


@pytest.mark.parametrize("module, source", [
    ("webtensor.core.runtime.device", "from ..dtypes import DType\nfrom .hostdata import NUMPY\n"),
    ("webtensor.wasm.export", "from ..core.runtime.artifacts import register_exporter\nfrom .lower import lower\n"),
    ("webtensor.webgpu", "from ..core.runtime.device import register_device\n"),
    ("webtensor", "from .wasm import artifact\n"),                       # the composition root
    ("webtensor.tensor", "def f():\n    from .core.numpy_util import np_dtype\n    import numpy\n"),
    ("webtensor.export", "import json\nfrom .core.runtime.artifacts import exporter\n"),
])
def test_checker_allows(module, source):
    assert violations(source, module) == []


def test_relative_imports_resolve():
    known = {"webtensor.nn.layer", "webtensor.core.runtime.hostdata"}
    assert imports("from . import layer\nfrom .. import tensor\n", "webtensor.nn.model", False, known) == [
        ("webtensor.nn.layer", 1, False), ("webtensor", 2, False)]
    assert imports("from .runtime import hostdata\n", "webtensor.core", True, known) == [
        ("webtensor.core.runtime.hostdata", 1, False)]
    assert imports("from ...dtypes import int32\n", "webtensor.core.runtime.x.y", False, known) == [
        ("webtensor.core.dtypes", 1, False)]


# ---- the package follows the rules -------------------------------------------------------------

def test_package_follows_the_import_rules():
    modules = all_modules()
    assert {"webtensor", "webtensor.core.runtime.device", "webtensor.wasm.export", "webtensor.webgpu.artifact",
            "webtensor.nn.model"} <= modules.keys()
    found = []
    for name, (path, is_package) in modules.items():
        found += violations(path.read_text(encoding="utf-8"), name, is_package, modules.keys())
    assert found == [], "\n".join(found)


def test_allow_list_is_current():
    modules = all_modules()
    used = set()
    for name, (path, is_package) in modules.items():
        used |= {(name, t) for t, _, lazy in imports(path.read_text(encoding="utf-8"), name, is_package, modules.keys())
                 if lazy}
    assert set(LAZY_ALLOWED) <= used, sorted(set(LAZY_ALLOWED) - used)

"""Fixtures for the Pyodide tests: the wheel built from the sources, and the scenario's native results."""
import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyodide_util import HERE, ROOT

WHEEL_SOURCES = ("pyproject.toml", "README.md", "python", "core", "wasm", "webgpu")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The py3-none-any wheel built from a clean copy of the sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in WHEEL_SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, tmp / "src" / name, ignore=ignore)
        else:
            (tmp / "src").mkdir(exist_ok=True)
            shutil.copy2(p, tmp / "src" / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(tmp / "src")],
                   check=True, capture_output=True)
    (whl,) = (tmp / "dist").glob("webtensor-*-py3-none-any.whl")
    return whl


@pytest.fixture(scope="session")
def native() -> dict:
    """The scenario on the native wasm device with the portable setting (no relaxed-SIMD FMA)."""
    sys.path.insert(0, str(HERE))
    try:
        import scenario
        import webtensor as wt
        from webtensor.wasm.runtime import WasmDevice
        wt.register_device("wasm_portable", lambda: WasmDevice(fma=False))
        return asyncio.run(scenario.run("wasm_portable", sync=True))
    finally:
        sys.path.remove(str(HERE))

"""Shared by the Pyodide tests: paths, and comparison of the scenario's nested lists of numbers."""
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json"    # Vulkan ICD for Dawn without a GPU


def assert_close(a, b, rtol, atol, path="") -> None:
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{path}: {a} vs {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, rtol, atol, f"{path}[{i}]")
    elif isinstance(a, (bool, int)) and not isinstance(b, float):
        assert a == b, f"{path}: {a} != {b}"
    else:
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), f"{path}: {a} vs {b}"



"""Tests compare against numpy: unless a test names a device, ops run on the "reference" device.

In CI (``CI`` set, as CI runs with CI=true) a missing device is a failure, not a skip: the helpers
that skip where a machine has no WebGPU adapter, no wgpu or no wasm runtime
(``pytest.skip("no webgpu device: ...")``, ``pytest.importorskip("wgpu")``) fail there instead.
``tests/backends/test_webgpu.py`` never skips for a missing adapter, anywhere.

The "wasm" device fills every new block of its memory with 0xFF bytes (``WEBTENSOR_POISON_MEMORY``,
``wasm/runtime.py``): a kernel that leaves part of its output unwritten shows NaN (or -1) instead
of passing on what a freed block held (a previous run's right answer).
"""
import os
import re

import pytest

os.environ.setdefault("WEBTENSOR_DEVICE", "reference")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
os.environ.setdefault("WEBTENSOR_POISON_MEMORY", "1")

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
_MISSING_DEVICE = re.compile(r"no (webgpu|wasm) device|could not import '(wgpu|wasmtime)'", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if _MISSING_DEVICE.search(reason):
            report.outcome = "failed"
            report.longrepr = (f"{reason}\n(in CI, CI={os.environ['CI']}, a missing device is a failure, "
                               "not a skip)")

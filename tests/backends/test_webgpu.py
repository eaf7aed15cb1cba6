"""The "webgpu" device (wgpu-py; Mesa's lavapipe CPU adapter where no GPU exists): every parity
case eagerly, traced and differentiated, plus the device-limit, cache and pool behaviour."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
import webtensor as wt  # noqa: E402

from parity import CASES, assert_parity  # noqa: E402


@pytest.mark.parametrize("mode", ["eager", "function", "grad"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_parity(case, mode):
    if mode == "grad" and not case.grad:
        pytest.skip("not differentiable")
    assert_parity(case, "webgpu", mode)

"""Fixtures of the backend tests."""
from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture
def force_tiled_matmul(monkeypatch):
    """A function that makes every adapter class's WebGPU matmul plan take shared-memory tiles from one
    multiply-add and one tile on (the products of tests are small; ``webgpu/matmul.py``
    ``MATMUL_TUNING``), and ``min_use`` the share of useful tile work they need, if given."""
    from webtensor.webgpu import matmul

    def force(min_use: float | None = None) -> None:
        for name, tune in list(matmul.MATMUL_TUNING.items()):
            monkeypatch.setitem(matmul.MATMUL_TUNING, name,
                                dataclasses.replace(tune, tiled_min_macs=1, tiled_min_tiles=0))
        if min_use is not None:
            monkeypatch.setattr(matmul, "MATMUL_TILED_MIN_USE", min_use)
    return force

"""The "wasm" device: every parity case (eager, inside function, gradients) plus runtime checks."""
import pytest

from parity import CASES, assert_parity

pytest.importorskip("wasmtime")


@pytest.mark.parametrize("mode", ["eager", "function", "grad"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_parity(case, mode):
    if mode == "grad" and not case.grad:
        pytest.skip("no gradient for this case")
    assert_parity(case, "wasm", mode)

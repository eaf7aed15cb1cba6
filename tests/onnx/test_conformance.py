"""ONNX's conformance suite on "reference" and "wasm": the pass counts may not fall below the ones
recorded in docs/onnx.md (regenerate both with ``python tests/onnx/conformance.py --write``).
About 10 s for both devices (measured: `pytest tests/onnx/test_conformance.py`, 8.4 s on this 2-core machine)."""
import pytest

pytest.importorskip("onnx")

from conformance import run  # noqa: E402  (tests/onnx is on sys.path: rootdir-relative import)

# passed / eligible, as docs/onnx.md records them
RECORDED = {"reference": 628, "wasm": 628}
ELIGIBLE = 717


@pytest.fixture(scope="module")
def results():
    res, excluded, todo = run(list(RECORDED))
    return res, todo


@pytest.mark.parametrize("device", list(RECORDED))
def test_conformance_pass_count(results, device):
    res, todo = results
    assert len(todo) == ELIGIBLE, "the eligible set changed (another onnx version?): regenerate docs/onnx.md"
    failed = sorted(n for n, r in res[device].items() if r is not None)
    passed = len(res[device]) - len(failed)
    assert passed >= RECORDED[device], f"{device}: {passed} passed, recorded {RECORDED[device]}; failing: {failed}"
    assert passed >= 0.85 * ELIGIBLE

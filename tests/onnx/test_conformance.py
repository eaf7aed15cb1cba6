"""ONNX's conformance suite on "reference", "wasm" and "webgpu": the pass counts may not fall below
the ones recorded in docs/onnx.md (regenerate both with ``python tests/onnx/conformance.py --write``).
Measured on the shared 2-core development machine: 9 to 30 s for the three devices together (webgpu
on lavapipe, a software Vulkan), depending on the load."""
import pytest

pytest.importorskip("onnx")

from conformance import run  # noqa: E402  (tests/onnx is on sys.path: rootdir-relative import)

# passed / eligible, as docs/onnx.md records them
RECORDED = {"reference": 664, "wasm": 664, "webgpu": 664}
ELIGIBLE = 717


@pytest.fixture(scope="module")
def results():
    import webtensor as wt
    devices = list(RECORDED)
    try:
        wt.get_device("webgpu")
    except (ImportError, RuntimeError) as e:
        devices.remove("webgpu")
        reason = f"no webgpu device: {e}"
    res, excluded, todo = run(devices)
    for d in set(RECORDED) - set(devices):
        res[d] = reason
    return res, todo


@pytest.mark.parametrize("device", list(RECORDED))
def test_conformance_pass_count(results, device):
    res, todo = results
    if isinstance(res[device], str):
        pytest.skip(res[device])
    assert len(todo) == ELIGIBLE, "the eligible set changed (another onnx version?): regenerate docs/onnx.md"
    failed = sorted(n for n, r in res[device].items() if r is not None)
    passed = len(res[device]) - len(failed)
    assert passed >= RECORDED[device], f"{device}: {passed} passed, recorded {RECORDED[device]}; failing: {failed}"
    assert passed >= 0.85 * ELIGIBLE

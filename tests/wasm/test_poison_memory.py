"""``WEBTENSOR_POISON_MEMORY`` (set for every test by tests/conftest.py): new blocks of the "wasm"
device's memory start as 0xFF bytes, also where a freed block is reused, so output a kernel fails
to write reads as NaN, not as a previous result."""
import numpy as np
import pytest

pytest.importorskip("wasmtime")


def test_new_and_reused_blocks_start_poisoned():
    from webtensor.wasm.runtime import WasmDevice
    dev = WasmDevice()
    assert dev.alloc._poison is not None, "tests/conftest.py sets WEBTENSOR_POISON_MEMORY"
    with dev.lock:
        first = dev.buffer(64)
        dev.engine.write(first.offset, bytes(64))                 # a result: zeros
        offset = first.offset
        del first
        again = dev.buffer(64)                                    # the freed block, reused
        assert again.offset == offset
        raw = np.frombuffer(bytes(dev.engine.read(again.offset, 64)), np.float32)
    assert np.isnan(raw).all()


def test_off_without_the_variable(monkeypatch):
    from webtensor.wasm.runtime import WasmDevice
    monkeypatch.setenv("WEBTENSOR_POISON_MEMORY", "0")
    assert WasmDevice().alloc._poison is None

"""The package imports and compiles without numpy (Pyodide pages have none)."""
import subprocess
import sys
import textwrap

BLOCK_NUMPY = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                raise ImportError("numpy is blocked in this test")
    sys.meta_path.insert(0, _Block())
""")


def run_without_numpy(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_NUMPY + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_import_and_kernel_ir_without_numpy():
    r = run_without_numpy("""
        import webtensor as wt
        from webtensor.core.op import OPS, Aval
        from webtensor.core import kernel_ir as K
        k = OPS["add"].kernel([Aval((3, 1), wt.float32), Aval((4,), wt.float32)], Aval((3, 4), wt.float32))
        assert k.kind == "map" and k.space == (3, 4), k
        assert "numpy" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_reference_device_names_the_extra_without_numpy():
    r = run_without_numpy("""
        import webtensor as wt
        try:
            wt.tensor([1.0, 2.0])
        except ImportError as e:
            print(e)
    """)
    assert r.returncode == 0, r.stderr
    assert "pip install 'webtensor[numpy]'" in r.stdout


def test_export_works_without_numpy_and_writes_the_same_bytes(tmp_path):
    """webtensor.export needs no numpy (Pyodide): a function and a Keras model export in a
    process that cannot import it, byte for byte as with numpy, and the model's artifact runs."""
    import numpy as np
    import webtensor as wt
    fn = "lambda a: a * 2.0 + wt.sin(a)"
    r = run_without_numpy(f"""
        import webtensor as wt
        x = wt.tensor([1.0, 2.0, 3.0], device="wasm")
        wt.export({fn}, (x,), {str(tmp_path / "fn")!r})
        with wt.device("wasm"):
            m = wt.nn.Sequential([wt.nn.Input((4,)), wt.nn.Dense(3, activation="relu"), wt.nn.Dense(2)])
            m.compile(optimizer="sgd", loss="mse")
        m.export({str(tmp_path / "model")!r}, batch_size=2)
        assert "numpy" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    wt.export(eval(fn, {"wt": wt}), (wt.tensor([1.0, 2.0, 3.0], device="wasm"),), tmp_path / "fn_np")
    for name in ("manifest.json", "module.wasm", "weights.safetensors"):
        assert (tmp_path / "fn" / name).read_bytes() == (tmp_path / "fn_np" / name).read_bytes(), name
    m = wt.load(tmp_path / "model", backend="wasm")
    w = m.get_weights()
    k1, b1, k2, b2 = (w[n] for n in ("dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"))
    x = np.array([[1, -2, 3, 0.5], [0, 1, -1, 2]], np.float32)
    got = m.predict(x)
    np.testing.assert_allclose(got, np.maximum(x @ k1 + b1, 0) @ k2 + b2, rtol=1e-5, atol=1e-6)


# ---- devices without numpy (the paths Pyodide takes), checked natively --------------------------

SCENARIO_DIR = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "pyodide")
RUN_SCENARIO = f"""
    import asyncio, json, sys
    sys.path.insert(0, {SCENARIO_DIR!r})
    import scenario, webtensor as wt
    from webtensor.wasm.runtime import WasmDevice
    wt.register_device("wasm_portable", lambda: WasmDevice(fma=False))
    out = asyncio.run(scenario.run(sys.argv[1], sync=sys.argv[2] == "sync"))
    assert "numpy" not in sys.modules
    print(json.dumps(out))
"""


def _scenario(device: str, mode: str, block: bool) -> dict:
    import json
    code = (BLOCK_NUMPY if block else "") + textwrap.dedent(RUN_SCENARIO).replace(
        'assert "numpy" not in sys.modules', 'assert "numpy" not in sys.modules' if block else "pass")
    r = subprocess.run([sys.executable, "-c", code, device, mode], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_wasm_training_without_numpy_matches_with_numpy_bitwise():
    without = _scenario("wasm_portable", "sync", block=True)
    with_np = _scenario("wasm_portable", "sync", block=False)
    assert without == with_np
    assert without["loss"][-1] < without["loss"][0] and without["accuracy"][-1] > 0.5


def test_webgpu_async_api_without_numpy_matches_wasm():
    import math
    gpu = _scenario("webgpu", "async", block=True)
    cpu = _scenario("wasm_portable", "sync", block=False)
    assert gpu["int_ops"] == cpu["int_ops"] and gpu["compare"] == cpu["compare"]
    for key in ("matmul", "exp_sum", "softmax", "function", "gradient", "loss", "evaluate"):
        flat = lambda v: [y for x in v for y in flat(x)] if isinstance(v, list) else [v]   # noqa: E731
        for a, b in zip(flat(gpu[key]), flat(cpu[key])):
            assert math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4), (key, a, b)


def test_host_data_on_devices_without_numpy(tmp_path):
    r = run_without_numpy(f"""
        import array, struct
        import webtensor as wt
        for dev in ("wasm", "webgpu"):
            with wt.device(dev):
                x = wt.tensor([[1.5, -2.0], [3.0, 4.25]])
                assert x.dtype == wt.float32 and x.shape == (2, 2) and x.device.name == dev
                assert x.tolist() == [[1.5, -2.0], [3.0, 4.25]]
                assert (x * 2 + 1).tolist() == [[4.0, -3.0], [7.0, 9.5]]
                assert float(x.sum()) == 6.75 and int(wt.tensor(7)) == 7 and bool(wt.tensor(True))
                assert x[1].tolist() == [3.0, 4.25] and x[[1, 0]].tolist() == [[3.0, 4.25], [1.5, -2.0]]
                assert wt.tensor([[True, False]]).tolist() == [[True, False]]
                try:
                    wt.tensor([1, 2**31 + 5])
                    raise AssertionError("an int out of int32's range was accepted")
                except OverflowError as e:
                    assert "2147483653 is out of range for int32" in str(e)
                assert wt.tensor([1.9, -1.9, 3e9, float("nan")], dtype="int32").tolist() == [1, -1, 2**31 - 1, 0]
                h = wt.tensor([1.5, -2.0, 70000.0], dtype="float16")
                assert h.dtype == wt.float16 and h.tolist() == [1.5, -2.0, float("inf")]
                a = wt.tensor(array.array("i", range(6))).reshape((2, 3))
                assert a.dtype == wt.int32 and a.tolist() == [[0, 1, 2], [3, 4, 5]]
                m = wt.tensor(memoryview(struct.pack("<4f", 1, 2, 3, 4)).cast("f", (2, 2)))
                assert m.shape == (2, 2) and (m @ m).tolist() == [[7.0, 10.0], [15.0, 22.0]]
                raw = struct.pack("<2f", 1.5, -2)                  # raw bytes: a format, or a TypeError
                try:
                    wt.tensor(memoryview(raw))
                    raise AssertionError("raw bytes accepted")
                except TypeError as e:
                    assert "raw bytes (format 'B')" in str(e)
                assert wt.tensor(memoryview(raw), dtype="int32").tolist() == list(raw)
                import ctypes
                be = (ctypes.c_float.__ctype_be__ * 2)(1.5, -2)     # big-endian '>f'
                assert wt.tensor(be).tolist() == [1.5, -2.0] and wt.tensor(array.array("d", [0.5])).dtype == wt.float32
                from webtensor import safetensors_io as S                # foreign dtypes, as with numpy
                st = S.save(dict(d=("float64", (2,), struct.pack("<2d", 0.5, -3)), q=("int64", (1, 2), struct.pack("<2q", 7, -1)),
                                 b=("bfloat16", (), struct.pack("<H", 0x3FC0)), u=("uint8", (2,), bytes([0, 255]))))
                got = wt.load_safetensors(st)
                assert got["d"].dtype == wt.float32 and got["d"].tolist() == [0.5, -3.0]
                assert got["q"].dtype == wt.int32 and got["q"].tolist() == [[7, -1]]
                assert got["b"].dtype == wt.float32 and got["b"].shape == () and got["b"].item() == 1.5
                assert got["u"].tolist() == [0, 255]
                assert wt.zeros((2, 0)).tolist() == [[], []] and wt.tensor(2.5).item() == 2.5
                assert "device=" + dev in repr(x) and "[[1.5, -2.0], [3.0, 4.25]]" in repr(x)
                for bad in ([[1, 2], [3]], [1, [2]]):
                    try:
                        wt.tensor(bad)
                        raise AssertionError("ragged data accepted")
                    except ValueError as e:
                        assert "ragged" in str(e)
                try:
                    wt.tensor(["a"])
                    raise AssertionError("strings accepted")
                except TypeError as e:
                    assert "str" in str(e)
                try:
                    x.numpy()
                    raise AssertionError("numpy() without numpy")
                except ImportError as e:
                    assert "pip install 'webtensor[numpy]'" in str(e)
        assert wt.tensor([1.0, 2.0], device="wasm").to("webgpu").to("wasm").tolist() == [1.0, 2.0]

        wt.set_seed(1)
        with wt.device("wasm"):
            m1 = wt.nn.Sequential([wt.nn.Input((3,)), wt.nn.Dense(4)])
            m1.save_weights({str(tmp_path / 'w.safetensors')!r})
            wt.set_seed(2)
            m2 = wt.nn.Sequential([wt.nn.Input((3,)), wt.nn.Dense(4)])
            assert m2.layers[0].kernel.tolist() != m1.layers[0].kernel.tolist()
            m2.load_weights({str(tmp_path / 'w.safetensors')!r})
            assert m2.layers[0].kernel.tolist() == m1.layers[0].kernel.tolist()
        assert "numpy" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")

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

"""The README's Pyodide snippet (top-level ``await``) runs as written: natively, where the awaited
calls read synchronously (the API and the numbers), and inside Pyodide in Node."""
import ast
import asyncio
import json
import re
import shutil
import subprocess

from pyodide_util import HERE, ROOT


def readme_pyodide_block() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## In Pyodide")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.find("\n## ", start + 1)], re.S)
    return block


def test_readme_pyodide_snippet_runs():
    env: dict = {}
    coro = eval(compile(readme_pyodide_block(), "README Pyodide", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), env)
    asyncio.run(coro)
    assert env["acc"] > 0.9 and env["loss"] < 0.5
    assert abs(sum(env["probs"][0]) - 1.0) < 1e-5 and len(env["probs"][0]) == 10


def test_readme_pyodide_snippet_runs_in_pyodide(wheel, tmp_path):
    """The same block inside Pyodide (Node, npm ``pyodide``, no numpy), as ``runPythonAsync`` runs it:
    without a ``navigator.gpu``, ``init_async`` falls back to "wasm" as the comment there says."""
    node = shutil.which("node")
    assert node, "node is not installed"
    script = tmp_path / "readme_snippet.py"
    script.write_text(readme_pyodide_block() + "\nimport json, sys\n"
                      "json.dumps({'acc': acc, 'loss': loss, 'probs': probs, 'device': wt.get_device().name,\n"
                      "            'numpy': 'numpy' in sys.modules})\n")
    r = subprocess.run([node, str(HERE / "run_pyodide.mjs"), str(wheel), str(script)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, f"Pyodide run failed (rc {r.returncode}):\n{r.stderr[-4000:]}"
    got = json.loads(lines[-1][len("RESULT "):])
    assert got["device"] == "wasm" and got["numpy"] is False
    assert got["acc"] > 0.9 and got["loss"] < 0.5
    assert abs(sum(got["probs"][0]) - 1.0) < 1e-5 and len(got["probs"][0]) == 10

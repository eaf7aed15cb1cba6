"""The README's Pyodide snippet (top-level ``await``) runs as written; natively the awaited calls
read synchronously, so this checks the API and the numbers, the Pyodide tests check the browser."""
import ast
import asyncio
import re

from pyodide_util import ROOT


def test_readme_pyodide_snippet_runs():
    text = (ROOT / "README.md").read_text()
    start = text.index("## In Pyodide")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.find("\n## ", start + 1)], re.S)
    env: dict = {}
    coro = eval(compile(block, "README Pyodide", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), env)
    asyncio.run(coro)
    assert env["acc"] > 0.9 and env["loss"] < 0.5
    assert abs(sum(env["probs"][0]) - 1.0) < 1e-5 and len(env["probs"][0]) == 10

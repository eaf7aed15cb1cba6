"""The README's Python tour runs as written (the README stays true)."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], re.S)


def test_python_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (block,) = python_blocks("## A short tour (Python)")
    env: dict = {}
    exec(compile(block, "README tour", "exec"), env)
    wt = env["wt"]
    assert abs(float(env["loss"]) - float(wt.mean(wt.square(env["x"] @ env["w"])))) < 1e-6
    assert env["dw"].shape == (2, 3)
    assert (tmp_path / "digits.safetensors").exists()
    logs = env["model"].history.history if hasattr(env["model"], "history") else None
    assert logs is None or logs["loss"][-1] < logs["loss"][0]


def test_export_snippet_runs_after_the_tour(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(python_blocks("## A short tour (Python)")[0], "README tour", "exec"), env)
    for block in python_blocks("## Export"):
        exec(compile(block, "README export", "exec"), env)
    assert (tmp_path / "digits_mlp" / "manifest.json").exists()
    m, x = env["m"], env["x_test"][:32]
    import numpy as np
    np.testing.assert_allclose(np.asarray(m.predict(x)), env["model"].predict(x).numpy(), rtol=1e-4, atol=1e-5)

"""The README's Python tour runs as written (the README stays true), with what its install line
installs."""
import importlib.metadata
import json
import pathlib
import re
import subprocess
import sys
import tomllib

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def section_text(section: str) -> str:
    text = README.read_text()
    start = text.index(section)
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def python_blocks(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section_text(section), re.S)


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


def test_distribute_snippet_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    fit_block, loop_block = python_blocks("## Distributed training")
    exec(compile(fit_block, "README distribute", "exec"), env)
    assert env["strategy"].num_replicas_in_sync == 2
    loss, accuracy = env["model"].evaluate(env["x_test"], env["y_test"], verbose=0)
    assert accuracy > 0.75         # 10 epochs of the small CNN on two replicas (measured: 0.84)
    exec(compile(loop_block, "README custom loop", "exec"), env)   # 5 epochs of the custom loop
    model, opt = env["model"], env["optimizer"]
    assert int(opt.iterations.numpy()) == 5 * -(-len(env["x"]) // 128)
    model.compile("adam", env["loss_fn"].__class__(from_logits=True), metrics=["accuracy"])
    assert model.evaluate(env["x_test"], env["y_test"], verbose=0)[1] > 0.8   # linear model (measured 0.88)


# ---- the tour's install line: what it installs is what the tour imports -------------------------

def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1)).lower()


def distributions_installed_by(spec: str) -> set[str]:
    """The distributions ``pip install 'SPEC'`` installs (``webtensor[a,b]``): this repository's
    extras from pyproject.toml, then their requirements' requirements as installed here."""
    name, extras = re.fullmatch(r"([\w-]+)(?:\[([\w,]+)\])?", spec).groups()
    assert name == "webtensor", spec
    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    todo = list(project["dependencies"])
    for extra in filter(None, (extras or "").split(",")):
        todo += project["optional-dependencies"][extra]          # KeyError: the README names no such extra
    seen = {"webtensor"}
    while todo:
        dist = _name(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [r for r in requires if "extra" not in r.partition(";")[2]]
    return seen


# Runs README blocks in a process that can import only the standard library and the modules of the
# given distributions: every other installed distribution looks uninstalled (ModuleNotFoundError).
ONLY_THESE = """
import importlib.metadata, json, re, sys
allowed = set(json.loads(sys.argv[1]))
owners = importlib.metadata.packages_distributions()
class OnlyThese:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, ())}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {top!r} (not installed by the README's line)", name=top)
sys.meta_path.insert(0, OnlyThese())
for i, block in enumerate(json.loads(sys.argv[2])):
    exec(compile(block, f"README block {i}", "exec"), globals())
print("README blocks ran")
"""


def run_with_only(dists: set[str], blocks: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ONLY_THESE, json.dumps(sorted(dists)), json.dumps(blocks)],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def tour_install_spec() -> str:
    lines = re.findall(r"^pip install '([^']+)'", section_text("## A short tour (Python)"), re.M)
    assert len(lines) == 1, f"the tour names one install line, not {lines}"
    return lines[0]


def test_tour_install_line_provides_every_import_the_tour_needs(tmp_path):
    """The tour and the export snippet run with exactly what the README's install line installs."""
    spec = tour_install_spec()
    blocks = python_blocks("## A short tour (Python)") + python_blocks("## Export")
    r = run_with_only(distributions_installed_by(spec), blocks, tmp_path)
    assert r.returncode == 0 and "README blocks ran" in r.stdout, f"with pip install '{spec}':\n{r.stderr[-3000:]}"


def test_plain_install_is_not_enough_for_the_tour_and_says_which_extra(tmp_path):
    """What the README says of a plain ``pip install webtensor``: an ImportError naming the extra."""
    (tour,) = python_blocks("## A short tour (Python)")
    r = run_with_only(distributions_installed_by("webtensor"), [tour], tmp_path)
    assert r.returncode != 0
    assert re.search(r"ImportError: .*pip install 'webtensor\[\w+\]'", r.stderr), r.stderr[-3000:]

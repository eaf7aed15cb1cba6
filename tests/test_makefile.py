"""The README's two commands work with Debian's own python3, which refuses ``pip install`` (PEP 668,
"externally managed"): the Makefile makes the project's virtual environment ``.venv`` with ``$(PY)``
and runs every Python step with it, and CI (``.ci/run``) takes that path with ``/usr/bin/python3``.
(``make -n`` prints the recipes without running them; ``.ci/run`` itself runs them for real.)"""
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def make(*args: str) -> str:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], check=True,
                          capture_output=True, text=True).stdout


def dry_run(target: str, py: str = "/usr/bin/python3") -> list[str]:
    """The shell commands ``make TARGET PY=py`` would run, continuation lines joined."""
    return make("-n", target, f"PY={py}").replace("\\\n", " ").splitlines()


def python_commands(lines: list[str]) -> list[str]:
    """Every command of these lines that starts a Python interpreter."""
    return [c.strip() for line in lines for c in re.split(r"[;&|]{1,2}|\bthen\b|\$\(", line)
            if re.match(r"\s*(\S*/)?python[0-9.]*\s", c)]


@pytest.mark.parametrize("target", ["digits", "test", "test-py", "bench", "demo"])
def test_every_python_step_runs_in_the_project_venv(target):
    commands = python_commands(dry_run(target))
    assert any(c.startswith(".venv/bin/python ") for c in commands), commands
    for c in commands:
        if c.startswith("/usr/bin/python3 "):            # the chosen python only makes the venv
            assert re.fullmatch(r"/usr/bin/python3 (-m venv \.venv|-c .*)", c), c
        else:
            assert c.startswith(".venv/bin/python "), c
    pip = [c for c in commands if " -m pip install" in c]
    assert pip and all(c.startswith(".venv/bin/python -m pip install") for c in pip), pip


def test_digits_makes_the_venv_with_the_chosen_python():
    commands = python_commands(dry_run("digits", "/opt/some/python3.12"))
    assert "/opt/some/python3.12 -m venv .venv" in commands
    assert ".venv/bin/python -m webtensor" in commands
    assert any(c.startswith(".venv/bin/python -m pip install") and "-e '.[test]'" in c for c in commands)


def test_recipes_find_the_venv_python_first_on_path():
    """The JS tests start ``python3`` by name (js/test/helpers.js): it must be the venv's."""
    path = make("--eval", "print-path: ; @echo $$PATH", "print-path").strip()
    assert path.split(":")[0] == str(ROOT / ".venv" / "bin")


def test_debian_packages_include_python3_venv():
    """Debian's python3 has no ``venv``/``ensurepip`` without python3-venv."""
    packages = make("--eval", "print-apt: ; @echo $(APT_PKGS)", "print-apt").split()
    assert "python3-venv" in packages


def test_ci_runs_make_test_with_debians_python():
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test PY=/usr/bin/python3"


def test_text_job_runs_in_the_venv_with_its_corpus_installed():
    """``make text`` (the second main job) runs in the venv, and a fresh machine gets its corpus."""
    commands = python_commands(dry_run("text"))
    assert ".venv/bin/python -m webtensor text" in commands
    assert "fortunes-min" in make("--eval", "print-apt: ; @echo $(APT_PKGS)", "print-apt").split()

"""Meta-tests: every primitive of ``webtensor.core.op.OPS`` is checked against numpy
(``test_ops.py``) and every gradient rule against finite differences (``test_gradients.py``).

Coverage is what those modules' tests actually run, recorded by ``coverage_plugin.py`` (the
primitives called in a test that compares with numpy; the gradient rules run inside
``check_grad``), not a hand-written list.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import webtensor  # noqa: F401  (defines every op)
from webtensor.core.op import OPS

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def covered(tmp_path_factory):
    out = tmp_path_factory.mktemp("coverage") / "coverage.json"
    env = dict(os.environ, WEBTENSOR_COVERAGE_OUT=str(out),
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "coverage_plugin", "-p", "no:cacheprovider",
                        str(HERE / "test_ops.py"), str(HERE / "test_gradients.py")],
                       env=env, capture_output=True, text=True, cwd=HERE)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    cov = json.loads(out.read_text())
    assert cov["failed"] == 0
    return cov


def test_every_primitive_has_a_numpy_check(covered):
    missing = sorted(set(OPS) - set(covered["numpy"]))
    assert not missing, f"primitives no test_ops.py test compares with numpy: {missing}"


def test_every_gradient_rule_has_a_finite_difference_check(covered):
    with_rule = {name for name, op in OPS.items() if op.grad is not None}
    missing = sorted(with_rule - set(covered["finite_differences"]))
    assert not missing, f"gradient rules no test_gradients.py check_grad runs: {missing}"

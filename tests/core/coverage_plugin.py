"""A pytest plugin (``-p coverage_plugin``) that records which primitives the op tests really check.

- ``numpy``: primitives called during a test of ``test_ops.py`` that compares with numpy
  (calls its ``check``);
- ``finite_differences``: primitives whose gradient rule ran inside ``test_gradients.check_grad``
  (the tape's gradient, then compared with central differences; second-order cases run the rules of
  the primitives that gradient rules call).

At the end of the session it writes ``{"numpy": [...], "finite_differences": [...], "failed": n}``
to ``$WEBTENSOR_COVERAGE_OUT``. ``test_coverage.py`` runs the two modules under it.
"""
import json
import os

import pytest

from webtensor.core.op import OPS, Op

RECORDED = {"numpy": set(), "finite_differences": set()}
_calls: list[set] = []       # open recordings of primitive calls
_rules: list[set] = []       # open recordings of gradient rules run
_failed = 0


def _install():
    call = Op.__call__

    def recording_call(self, *inputs, **attrs):
        for s in _calls:
            s.add(self.name)
        return call(self, *inputs, **attrs)

    Op.__call__ = recording_call
    for op in OPS.values():
        if op.grad is not None:
            def rule(*a, _op=op, _grad=op.grad, **k):
                for s in _rules:
                    s.add(_op.name)
                return _grad(*a, **k)
            op.grad = rule


_install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    module = item.module
    name = module.__name__.rsplit(".", 1)[-1]
    restore = []
    calls, rules, checked = set(), set(), []
    if name == "test_ops":
        check = module.check

        def counting_check(*a, **k):
            checked.append(True)
            return check(*a, **k)
        module.check = counting_check
        restore.append(("check", check))
        _calls.append(calls)
    elif name == "test_gradients":
        check_grad = module.check_grad

        def recording_check_grad(*a, **k):
            _rules.append(rules)
            try:
                return check_grad(*a, **k)
            finally:
                _rules.remove(rules)
        module.check_grad = recording_check_grad
        restore.append(("check_grad", check_grad))
    try:
        outcome = yield
    finally:
        for attr, fn in restore:
            setattr(module, attr, fn)
        if calls in _calls:
            _calls.remove(calls)
    if outcome.excinfo is None:          # a failing test covers nothing
        if checked:
            RECORDED["numpy"] |= calls
        RECORDED["finite_differences"] |= rules


def pytest_runtest_logreport(report):
    global _failed
    if report.failed:
        _failed += 1


def pytest_sessionfinish(session):
    out = os.environ.get("WEBTENSOR_COVERAGE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump({k: sorted(v) for k, v in RECORDED.items()} | {"failed": _failed}, f)

"""Every registered experiment runs at its quick size (what `make demo` runs), runs negative controls, and
reproduces: its checks pass and every control is rejected. The fault-injection tests
(tests/experiments/test_faults_*.py) show that the same checks go red when the science is broken."""

from __future__ import annotations

import pytest

from geodyn.experiments import REGISTRY
from geodyn.experiments.registry import Verdict


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTRY.names())
def test_quick_size_runs(name):
    exp = REGISTRY[name]
    fractions = []
    outcome = exp.run(exp.context("quick", progress=fractions.append))
    assert outcome.checks, "an experiment must measure something"
    assert outcome.controls, "an experiment must run at least one negative control"
    assert all(control.checks for control in outcome.controls)
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    assert outcome.figures
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    for fig in outcome.figures.values():
        assert fig.axes

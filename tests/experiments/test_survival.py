"""The survival-of-the-smartest experiment runs at its quick size and reports checks, data and figures."""

from __future__ import annotations

import math

import pytest

from geodyn.experiments.registry import REGISTRY, Verdict
from geodyn.experiments.survival import survival_of_the_smartest


def test_registered_with_its_claim():
    exp = REGISTRY["survival-of-the-smartest"]
    assert exp is survival_of_the_smartest
    assert exp.claim.equations == ("4.10", "6.2", "6.5")
    assert exp.claim.section == "Sec. 6 Complex systems"


def test_quick_size_runs_and_reports():
    exp = survival_of_the_smartest
    fractions = []
    outcome = exp.run(exp.context("quick", seed=0, progress=fractions.append))
    assert len(outcome.checks) == 4
    assert all(math.isfinite(c.value) and math.isfinite(c.tolerance) for c in outcome.checks)
    assert outcome.verdict in set(Verdict)
    assert set(outcome.figures) == {"fitness_vs_time", "tuning_and_memory"}
    for fig in outcome.figures.values():
        assert fig.axes and fig.axes[0].lines
    assert fractions and fractions[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in fractions)
    data = outcome.data
    names = data["learners"]
    assert len(names) == 3 and set(data["best_scales"]) == set(names)
    assert all(s in data["tuning"]["scales"] for s in data["best_scales"].values())
    p = exp.sizes["quick"]
    assert len(data["trace_steps"]) == p["steps"] // p["record_every"] + 1
    assert all(0.0 < f < 1.0 for f in data["time_averaged_fitness"].values())
    assert sorted(data["tau_sweep"]["taus"]) == sorted({p["tau"], *p["taus"]})
    assert outcome.summary.startswith("Time-averaged fitness")

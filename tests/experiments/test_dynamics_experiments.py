"""The walkers-vs-Fokker–Planck experiment runs at quick size (2.7); alpha-of-optimizers is tested with the other
step-fluctuation experiments in test_faults_fluct.py."""

from __future__ import annotations

import pytest

import geodyn.experiments.dynamics_experiments as dyn
from geodyn.experiments.registry import Verdict
from quick_outcomes import group, quick_outcome


def _run(name):
    outcome, fractions = quick_outcome(name)  # asserts that the experiment restores torch's thread count
    assert outcome.checks and outcome.figures
    assert all(fig.axes for fig in outcome.figures.values())
    assert fractions and fractions[-1] == pytest.approx(1.0)
    return outcome


@pytest.mark.xdist_group(group("walkers-vs-fokker-planck"))
def test_walkers_match_fokker_planck_at_quick_size():
    outcome = _run("walkers-vs-fokker-planck")
    assert len(outcome.checks) == len(dyn.ALPHAS)
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    # recorded controls: walkers without the Itô drift where D depends on q (α = 0, 1), the grid with D doubled
    # at every α; each is rejected by the claim's own check
    assert [c.name for c in outcome.controls] == [
        "walkers without the Itô drift, α = 0",
        "Fokker–Planck with D doubled, α = 0",
        "Fokker–Planck with D doubled, α = 0.5",
        "walkers without the Itô drift, α = 1",
        "Fokker–Planck with D doubled, α = 1",
    ]
    assert all(c.rejected for c in outcome.controls)
    for alpha in (0.0, 1.0):
        d = outcome.data[f"alpha={alpha:g}"]
        assert d["without_ito_drift"]["l1"] > 2 * d["agreement"]["tolerance"]
    # two ensembles at quick size, an interval over them, and a note saying so
    for alpha in dyn.ALPHAS:
        a = outcome.data[f"alpha={alpha:g}"]["agreement"]
        lo, hi = a["l1_per_ensemble_interval"]
        assert len(a["l1_per_ensemble"]) == 2 and lo <= sum(a["l1_per_ensemble"]) / 2 <= hi
    assert any("2 walker ensembles" in n for n in outcome.notes)
    # heat maps carry colour bars (one extra axes each) and every panel names its axes
    fig = outcome.figures["densities"]
    assert len(fig.axes) == len(dyn.ALPHAS) * (5 + 3)
    assert all(ax.get_xlabel() for ax in fig.axes if ax.get_label() != "<colorbar>")

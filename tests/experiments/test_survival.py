"""The survival-of-the-smartest experiment at its quick size: memory learners (α > 0) beat flat ones in a switching
environment on every count the experiment checks, and every control (flat learners relabelled, memory of the
mirrored trait, a static environment) is rejected."""

from __future__ import annotations

import math

import pytest

from geodyn.experiments.registry import REGISTRY, Verdict
from geodyn.experiments.survival import CONTROL_LEARNERS, survival_of_the_smartest
from quick_outcomes import group, quick_outcome

pytestmark = pytest.mark.xdist_group(group("survival-of-the-smartest"))


def test_registered_with_its_claim():
    exp = REGISTRY["survival-of-the-smartest"]
    assert exp is survival_of_the_smartest
    assert exp.claim.equations == ("4.10", "6.2", "6.5")
    assert exp.claim.section == "Sec. 6 Complex systems"


@pytest.fixture(scope="module")
def quick():
    return quick_outcome("survival-of-the-smartest")


def test_memory_learners_outperform_flat_learners_with_intervals_over_seeds(quick):
    outcome, _ = quick
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    p = survival_of_the_smartest.sizes["quick"]
    names = outcome.data["learners"]
    for name in names[1:]:
        adv = outcome.data["advantage_over_flat"][name]
        assert len(adv["per_seed"]) == p["seeds"] >= 2
        # the pooled advantage exceeds Z genome SEs and the 95 % interval over seeds lies above zero
        assert adv["mean"] > 3.89 * adv["se"] > 0
        assert adv["seed_interval"][0] > 0
    # two checks per memory learner (pooled, over seeds) and the tuning-grid edge check
    assert len(outcome.checks) == 5 and all(c.passed for c in outcome.checks)
    assert any("quick size: 4 seed(s)" in n for n in outcome.notes)


def test_every_control_is_rejected(quick):
    outcome, _ = quick
    names = [c.name for c in outcome.controls]
    learners = outcome.data["learners"]
    assert names == [*CONTROL_LEARNERS, *(f"static environment, {n}" for n in learners[1:])]
    assert all(c.rejected for c in outcome.controls), outcome.failed()
    relabelled = outcome.data["advantage_over_flat"]["flat relabelled as memory"]
    lo, hi = relabelled["seed_interval"]
    assert lo < 0 < hi  # a flat learner under another name gains nothing
    mirrored = outcome.data["advantage_over_flat"]["memory of the mirrored trait"]
    assert mirrored["seed_interval"][1] < 0  # the memory's content matters: on the wrong traits it hurts
    for n in learners[1:]:
        static = outcome.data["static_advantage_over_flat"][n]
        assert static["mean"] < 3.89 * static["se"]  # no advantage without a change to track


def test_reports_figures_data_and_progress(quick):
    outcome, fractions = quick
    assert all(math.isfinite(c.value) and math.isfinite(c.tolerance) for c in outcome.checks)
    assert set(outcome.figures) == {"fitness_vs_time", "tuning_and_memory", "advantage"}
    for fig in outcome.figures.values():
        assert fig.axes and all(ax.get_xlabel() for ax in fig.axes)
    assert fractions and fractions[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in fractions)
    data = outcome.data
    names = data["learners"]
    assert len(names) == 3 and set(data["best_scales"]) == {*names, *CONTROL_LEARNERS}
    assert all(s in data["tuning"]["scales"] for seeds in data["best_scales"].values() for s in seeds)
    p = survival_of_the_smartest.sizes["quick"]
    assert len(data["trace_steps"]) == p["steps"] // p["record_every"] + 1
    assert all(0.0 < f < 1.0 for f in data["time_averaged_fitness"].values())
    assert sorted(data["tau_sweep"]["taus"]) == sorted({p["tau"], *p["taus"]})
    assert outcome.summary.startswith("Time-averaged fitness")

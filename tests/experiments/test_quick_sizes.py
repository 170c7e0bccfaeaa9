"""Every registered experiment runs at its quick size and reaches a verdict (what `make demo` runs)."""

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
    assert outcome.verdict in set(Verdict)
    assert outcome.figures
    assert fractions and fractions[-1] == pytest.approx(1.0)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    for fig in outcome.figures.values():
        assert fig.axes


MUST_REPRODUCE = (
    "exact-limits",
    "fluctuation-exponent",
    "schrodinger-from-learning",
    "quantum-shift-symmetry",
    "nelson-walkers",
    "neural-potential",
)


@pytest.mark.parametrize("name", MUST_REPRODUCE)
def test_identity_experiments_reproduce_at_quick_size(name):
    """These are exact, round-off or Monte-Carlo identities with derived tolerances: at quick size they must hold,
    not just run."""
    exp = REGISTRY[name]
    outcome = exp.run(exp.context("quick"))
    assert outcome.verdict is Verdict.REPRODUCED, [c for c in outcome.checks if not c.passed]

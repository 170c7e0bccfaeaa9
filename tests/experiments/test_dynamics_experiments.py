"""The walkers-vs-Fokker–Planck experiment runs at quick size (2.7); alpha-of-optimizers is tested with the other
step-fluctuation experiments in test_faults_fluct.py."""

from __future__ import annotations

import pytest
import torch

import geodyn.experiments.dynamics_experiments as dyn
from geodyn.experiments.registry import REGISTRY, Verdict


def _run(name):
    exp = REGISTRY[name]
    fractions = []
    threads = torch.get_num_threads()
    outcome = exp.run(exp.context("quick", progress=fractions.append))
    assert torch.get_num_threads() == threads, "the experiment must restore torch's thread count"
    assert outcome.checks and outcome.figures
    assert all(fig.axes for fig in outcome.figures.values())
    assert fractions and fractions[-1] == pytest.approx(1.0)
    return outcome


def test_walkers_match_fokker_planck_at_quick_size():
    outcome = _run("walkers-vs-fokker-planck")
    assert len(outcome.checks) == len(dyn.ALPHAS)
    assert outcome.verdict is Verdict.REPRODUCED, [c for c in outcome.checks if not c.passed]
    # the Itô drift matters where D depends on q (α ≠ ½): leaving it out breaks the agreement
    for alpha in (0.0, 1.0):
        d = outcome.data[f"alpha={alpha:g}"]
        assert d["l1_without_ito_drift"] > d["tolerance"]

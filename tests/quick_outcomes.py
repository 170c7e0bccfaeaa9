"""One quick-size run per experiment per test process, shared by every test that inspects it.

The tests that look at the same quick run carry ``pytest.mark.xdist_group(group(name))``, and ``make test`` runs
pytest-xdist with ``--dist loadgroup``, so they land on one worker and the experiment runs once there.
"""

from __future__ import annotations

import functools

import torch

from geodyn.experiments import REGISTRY
from geodyn.experiments.registry import Outcome


def group(name: str) -> str:
    return f"quick-{name}"


@functools.cache
def quick_outcome(name: str) -> tuple[Outcome, tuple[float, ...]]:
    """The experiment's outcome at its quick size (seed 0) and the progress fractions it reported."""
    exp = REGISTRY[name]
    fractions: list[float] = []
    threads = torch.get_num_threads()
    outcome = exp.run(exp.context("quick", progress=fractions.append))
    assert torch.get_num_threads() == threads, f"{name} must restore torch's thread count"
    return outcome, tuple(fractions)

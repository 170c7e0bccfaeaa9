"""Every claim of the paper as an experiment; importing this package registers them all."""

from geodyn.experiments import exact_limits, fluctuations, optimizer_ordering  # noqa: F401  (registers them)
from geodyn.experiments.registry import (
    REGISTRY,
    Check,
    Claim,
    Context,
    Experiment,
    Outcome,
    Registry,
    Verdict,
    experiment,
    verdict_of,
)

__all__ = [
    "REGISTRY",
    "Check",
    "Claim",
    "Context",
    "Experiment",
    "Outcome",
    "Registry",
    "Verdict",
    "experiment",
    "verdict_of",
]

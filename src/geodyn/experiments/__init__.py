"""Every claim of the paper as an experiment; importing this package registers them all."""

from geodyn.experiments import exact_limits, fluctuations  # noqa: F401  (registration on import)
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

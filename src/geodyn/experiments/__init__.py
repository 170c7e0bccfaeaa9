"""Every claim of the paper as an experiment; importing this package registers them all."""

from geodyn.experiments import (  # noqa: F401  (importing registers them)
    dynamics_experiments,
    exact_limits,
    fluctuations,
    noise_spectrum,
    optimizer_ordering,
    phase_transition,
    quantum,
    survival,
)
from geodyn.experiments.registry import (
    REGISTRY,
    Check,
    Claim,
    Context,
    Control,
    Experiment,
    Finding,
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
    "Control",
    "Context",
    "Experiment",
    "Finding",
    "Outcome",
    "Registry",
    "Verdict",
    "experiment",
    "verdict_of",
]

"""Analysis of learning runs: the metric exponent α from step fluctuations (EQUATIONS.md (2.8), (2.9))."""

from geodyn.analysis.exponent import AlphaEstimate, StepStatistics, estimate_alpha

__all__ = ["AlphaEstimate", "StepStatistics", "estimate_alpha"]

"""Analysis of learning runs: the metric exponent α and regime maps (EQUATIONS.md (2.8), (2.9), §5)."""

from geodyn.analysis.exponent import AlphaEstimate, StepStatistics, estimate_alpha
from geodyn.analysis.regimes import REGIME_NAMES, RegimeMap, regime_map

__all__ = ["AlphaEstimate", "StepStatistics", "estimate_alpha", "REGIME_NAMES", "RegimeMap", "regime_map"]

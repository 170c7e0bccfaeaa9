"""The tuning protocol (BENCHMARKS.md §2, after AlgoPerf and "Descending through a crowded valley").

Every optimizer gets the same budget, declared here and in :mod:`geodyn.bench.optimizers` before any result was
seen: the same log-spaced learning-rate grid times two values of one hyperparameter of its own (β₂ for Adam, weight
decay for AdamW, ζ̃ for the three-regime law, …), one run per trial on the tuning seed, scored on the *validation*
split. The best trial is rerun on fresh seeds (:data:`SEEDS`) and scored on the *test* split only, so that picking
the best of the grid does not flatter the score. When the best learning rate lies on an edge of the grid, the grid is
extended by one half-decade on that side for that optimizer (up to :data:`MAX_EXTENSIONS` times) and the point is
flagged in the report.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LR_GRID", "SEEDS", "TUNING_SEED", "SIZES", "HOLD", "MAX_EXTENSIONS", "lr_grid", "split_of", "extend_lr",
]  # fmt: skip

SIZES = ("quick", "full")

_HALF_DECADES = tuple(float(f"{v:.3g}") for v in np.logspace(-4.0, 0.0, 9))

#: Learning-rate grids, in half-decade steps: 3.16e-4 to 0.316 at full size (7 points); at quick size the six
#: points 3.16e-4 to 0.1 (a subset of the full grid, so quick cells are comparable with full ones). The grid's
#: outer half-decades (1e-4, 1 and beyond) are reached by edge extension only where an optimizer's best trial asks
#: for them: on 2 cores the extremes cost the most (a too-small learning rate runs the whole budget) and rarely win.
LR_GRID: dict[str, tuple[float, ...]] = {"full": _HALF_DECADES[1:8], "quick": _HALF_DECADES[1:7]}

#: The seed of the tuning runs (validation split), and the fresh seeds that score the best trial (test split).
TUNING_SEED = 0
SEEDS: dict[str, tuple[int, ...]] = {"full": (1, 2, 3, 4, 5), "quick": (1, 2, 3)}

#: A target counts as reached when it holds for this many consecutive evaluations (a lucky dip does not count).
HOLD = 3

#: How many half-decades the learning-rate grid may grow beyond an edge where the best trial sits.
MAX_EXTENSIONS = 2


def lr_grid(size: str) -> tuple[float, ...]:
    if size not in LR_GRID:
        raise ValueError(f"unknown size {size!r}: expected one of {SIZES}")
    return LR_GRID[size]


def split_of(seed: int) -> str:
    """The data split a run is evaluated on: validation for the tuning seed, test for the scoring seeds."""
    return "validation" if seed == TUNING_SEED else "test"


def extend_lr(lr: float, side: int) -> float:
    """The next half-decade learning rate below (side = −1) or above (side = +1) ``lr``, rounded as the grid is."""
    if side not in (-1, 1):
        raise ValueError(f"side must be -1 or +1, got {side!r}")
    half_decades = round(2.0 * math.log10(lr)) + side  # on the grid's lattice 10^(k/2), whatever lr's rounding
    return float(f"{10.0 ** (0.5 * half_decades):.3g}")

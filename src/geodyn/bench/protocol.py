"""The tuning protocol (BENCHMARKS.md §2, after AlgoPerf and "Descending through a crowded valley").

Every optimizer gets the same budget: the same log-spaced learning-rate grid, declared here before any result was
seen, one run per grid point (seed :data:`TUNING_SEED`); then the best grid point is rerun on three fresh seeds
(:data:`SEEDS`), so that picking the best of the grid does not bias its score. All other hyperparameters are the
libraries' defaults (:mod:`geodyn.bench.optimizers`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LR_GRID", "SEEDS", "TUNING_SEED", "SIZES", "lr_grid"]

SIZES = ("quick", "full")

_HALF_DECADES = tuple(float(f"{v:.3g}") for v in np.logspace(-4.0, 0.0, 9))

#: Learning-rate grids, in half-decade steps: 1e-4 to 1 at full size (9 points); at quick size the six middle
#: points, 3.16e-4 to 0.1 (a subset of the full grid, so quick cells are comparable with full ones).
LR_GRID: dict[str, tuple[float, ...]] = {"full": _HALF_DECADES, "quick": _HALF_DECADES[1:7]}

#: The seed of the tuning runs, and the fresh seeds on which the best grid point is scored.
TUNING_SEED = 0
SEEDS: dict[str, tuple[int, ...]] = {"full": (1, 2, 3), "quick": (1, 2, 3)}


def lr_grid(size: str) -> tuple[float, ...]:
    if size not in LR_GRID:
        raise ValueError(f"unknown size {size!r}: expected one of {SIZES}")
    return LR_GRID[size]

"""The tuning protocol (BENCHMARKS.md §2, after AlgoPerf and "Descending through a crowded valley").

Every optimizer gets the same budget: the same log-spaced learning-rate grid, declared here before any result was
seen, one run per grid point (seed :data:`TUNING_SEED`); then the best grid point is rerun on fresh seeds
(:data:`SEEDS`), so that picking the best of the grid does not bias its score. All other hyperparameters are the
libraries' defaults (:mod:`geodyn.bench.optimizers`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LR_GRID", "SEEDS", "TUNING_SEED", "SIZES", "lr_grid"]

SIZES = ("quick", "full")

#: Learning-rate grids: log-spaced from 1e-4 to 1, half-decade steps at full size (9 points), 6 points at quick size.
LR_GRID: dict[str, tuple[float, ...]] = {
    "full": tuple(float(f"{v:.3g}") for v in np.logspace(-4.0, 0.0, 9)),
    "quick": tuple(float(f"{v:.3g}") for v in np.logspace(-4.0, 0.0, 6)),
}

#: The seed of the tuning runs, and the fresh seeds on which the best grid point is scored.
TUNING_SEED = 0
SEEDS: dict[str, tuple[int, ...]] = {"full": (1, 2, 3), "quick": (1, 2)}


def lr_grid(size: str) -> tuple[float, ...]:
    if size not in LR_GRID:
        raise ValueError(f"unknown size {size!r}: expected one of {SIZES}")
    return LR_GRID[size]

"""The optimizer benchmark (BENCHMARKS.md §2): tasks with fixed targets, an equal tuning budget for every
optimizer, steps and time to target over seeds, performance profiles, a resumable runner and its report."""

from geodyn.bench.cell import Cell, CellResult, run_cell
from geodyn.bench.optimizers import OPTIMIZERS, OptimizerSpec, available, optimizer_names
from geodyn.bench.protocol import LR_GRID, SEEDS, TUNING_SEED, lr_grid
from geodyn.bench.runner import REFERENCE, SCHEMA_VERSION, BenchResults, load_cells, run_bench, summarise
from geodyn.bench.scoring import performance_profile, performance_ratios, spread, steps_to_target, time_to_target
from geodyn.bench.tasks import TASKS, Problem, Task, task_names

__all__ = [
    "Cell",
    "CellResult",
    "run_cell",
    "OPTIMIZERS",
    "OptimizerSpec",
    "available",
    "optimizer_names",
    "LR_GRID",
    "SEEDS",
    "TUNING_SEED",
    "lr_grid",
    "REFERENCE",
    "SCHEMA_VERSION",
    "BenchResults",
    "load_cells",
    "run_bench",
    "summarise",
    "performance_profile",
    "performance_ratios",
    "spread",
    "steps_to_target",
    "time_to_target",
    "TASKS",
    "Problem",
    "Task",
    "task_names",
]

"""Run the benchmark into a folder, resumably.

Layout of a bench folder::

    config.toml                                  the resolved settings of the latest run
    cells/<size>/<task>/<optimizer>/lr=…_seed=….json   one finished cell (curve, status, scores)
    results.json                                 schema-versioned summary: tuning, seeds, scores, ratios, profile
    report.html, figures/*.png                   loss curves, tuning curves, performance profiles

A cell is saved (atomically) the moment it finishes; a rerun with the same folder loads finished cells and runs
only the rest, so a killed run loses at most the cells that were running. Tuning comes first: once every grid
point of a (task, optimizer) pair has finished, its best learning rate is rerun on the fresh seeds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import tomli_w

import geodyn
from geodyn.backends import Backend, InlineBackend
from geodyn.bench.cell import Cell, CellResult, run_cell
from geodyn.bench.optimizers import OPTIMIZERS
from geodyn.bench.protocol import SEEDS, TUNING_SEED, lr_grid
from geodyn.bench.scoring import INF, Spread, ratio, spread
from geodyn.bench.tasks import TASKS
from geodyn.serialize import jsonable

__all__ = ["SCHEMA_VERSION", "REFERENCE", "BenchResults", "run_bench", "summarise", "load_cells", "pairs_for"]

SCHEMA_VERSION = 1
#: The optimizer every ratio is taken against (BENCHMARKS.md §2: targets are what tuned AdamW reaches).
REFERENCE = "adamw"


@cache
def _shape(task: str) -> tuple[int, int]:
    problem = TASKS[task].build(0)
    return sum(p.numel() for p in problem.params), len(problem.hidden)


def parameter_count(task: str) -> int:
    return _shape(task)[0]


def applies(task: str, optimizer: str) -> bool:
    """Whether the optimizer applies to the task (size limits of full covariance; Muon needs hidden matrices)."""
    return OPTIMIZERS[optimizer].fits(*_shape(task))


def pairs_for(tasks: Iterable[str], optimizers: Iterable[str]) -> list[tuple[str, str]]:
    """(task, optimizer) pairs to run: every combination where the optimizer applies to the task."""
    optimizers = list(dict.fromkeys(optimizers))
    return [(t, o) for t in dict.fromkeys(tasks) for o in optimizers if applies(t, o)]


def _cell_path(root: Path, cell: Cell) -> Path:
    return root / f"{cell.key}.json"


def _save_cell(root: Path, result: CellResult) -> None:
    path = _cell_path(root, result.cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result.to_json()))
    os.replace(tmp, path)  # atomic: a reader never sees half a cell


def load_cells(root: Path, size: str, current: bool = True) -> dict[str, CellResult]:
    """Finished cells of ``size`` under ``root`` by key. Unreadable files (a crash mid-write) are ignored; with
    ``current``, so are cells of tasks or optimizers that no longer exist, cells made under another definition of
    their task or optimizer (fingerprint), and cells that ended in an error, so that a rerun tries them again."""
    from geodyn.bench.cell import fingerprint

    out: dict[str, CellResult] = {}
    base = root / size
    if not base.exists():
        return out
    for path in base.rglob("*.json"):
        try:
            result = CellResult.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            continue
        c = result.cell
        if current and (
            c.task not in TASKS
            or c.optimizer not in OPTIMIZERS
            or result.status == "error"
            or result.fingerprint != fingerprint(c.task, c.optimizer, c.size)
        ):
            continue
        out[c.key] = result
    return out


def _rank(result: CellResult) -> tuple[float, float, float]:
    """Sort key of a tuning run: fewer steps to target first; unreached runs by the best metric on their curve."""
    goal = TASKS[result.cell.task].goal
    best = result.best_value
    quality = INF if math.isnan(best) else (best if goal == "min" else -best)
    return (result.steps_to_target, quality, result.cell.lr)


def best_lr(results: list[CellResult]) -> float:
    return min(results, key=_rank).cell.lr


@dataclass
class PairSummary:
    task: str
    optimizer: str
    tuning: list[dict[str, Any]]
    best_lr: float | None
    on_edge: bool
    seeds: list[dict[str, Any]]
    steps: Spread
    time: Spread
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "optimizer": self.optimizer,
            "complete": self.complete,
            "tuning": self.tuning,
            "best_lr": self.best_lr,
            "best_lr_on_grid_edge": self.on_edge,
            "seeds": self.seeds,
            "steps_to_target": self.steps.as_dict(),
            "time_to_target": self.time.as_dict(),
        }


@dataclass
class BenchResults:
    size: str
    tasks: list[str]
    optimizers: list[str]
    pairs: list[PairSummary]
    interrupted: bool = False
    missing: list[str] = field(default_factory=list)
    reference: str | None = REFERENCE

    def pair(self, task: str, optimizer: str) -> PairSummary | None:
        for p in self.pairs:
            if p.task == task and p.optimizer == optimizer:
                return p
        return None

    def ratios(self, score: str = "steps") -> dict[str, dict[str, float | None]]:
        """Median score of each optimizer over that of the reference, per task (None: no comparison)."""
        out: dict[str, dict[str, float | None]] = {}
        if self.reference is None:
            return out
        for task in self.tasks:
            ref = self.pair(task, self.reference)
            row: dict[str, float | None] = {}
            for opt in self.optimizers:
                p = self.pair(task, opt)
                if ref is None or p is None or not p.complete or not ref.complete:
                    row[opt] = None
                    continue
                a, b = (p.steps, ref.steps) if score == "steps" else (p.time, ref.time)
                r = ratio(a.median, b.median)
                row[opt] = None if math.isnan(r) else r
            out[task] = row
        return out

    def ratio_text(self, task: str, optimizer: str, score: str = "steps") -> str:
        """The ratio to the reference as shown in tables: "0.62", "∞" (unreached), "reached, ref ∞",
        "∞, ref ∞", "n/a" (the optimizer does not apply to the task) or "—" (not finished)."""
        p = self.pair(task, optimizer)
        if p is None:
            return "n/a"
        ref = self.pair(task, self.reference) if self.reference else None
        if not p.complete or ref is None or not ref.complete:
            return "—"
        a, b = (p.steps, ref.steps) if score == "steps" else (p.time, ref.time)
        if math.isinf(b.median):
            return "∞, ref ∞" if math.isinf(a.median) else "reached, ref ∞"
        return "∞" if math.isinf(a.median) else f"{a.median / b.median:.2f}"

    def score_matrix(self, score: str = "steps") -> list[list[float]]:
        """(tasks × optimizers) medians for the performance profile: ∞ where unreached or unfinished, NaN where the
        optimizer does not apply to the task (left out of that optimizer's share)."""
        rows = []
        for task in self.tasks:
            row = []
            for opt in self.optimizers:
                p = self.pair(task, opt)
                if p is None:
                    row.append(math.nan)
                elif not p.complete:
                    row.append(INF)
                else:
                    row.append((p.steps if score == "steps" else p.time).median)
            rows.append(row)
        return rows

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (task, optimizer): the table of the report and of ``geodyn reproduce --bench``."""
        out = []
        for p in self.pairs:
            out.append(
                {
                    "task": p.task,
                    "optimizer": p.optimizer,
                    "best lr": p.best_lr,
                    "steps to target (median)": _finite(p.steps.median),
                    "steps (min)": _finite(p.steps.low),
                    "steps (max)": _finite(p.steps.high),
                    "seconds to target (median)": _finite(p.time.median),
                    "reached": f"{p.steps.reached}/{p.steps.runs}",
                    f"steps ratio to {self.reference}": self.ratio_text(p.task, p.optimizer),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "geodyn_version": geodyn.__version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "size": self.size,
                "environment": _environment(),
                "protocol": {
                    "lr_grid": list(lr_grid(self.size)),
                    "tuning_seed": TUNING_SEED,
                    "seeds": list(SEEDS[self.size]),
                    "reference": self.reference,
                },
                "tasks": {
                    t: {
                        "description": TASKS[t].description,
                        "metric": TASKS[t].metric,
                        "goal": TASKS[t].goal,
                        "target": TASKS[t].target_for(self.size),
                        "steps": TASKS[t].steps[self.size],
                        "eval_every": TASKS[t].eval_every[self.size],
                        "parameters": parameter_count(t),
                    }
                    for t in self.tasks
                },
                "optimizers": {
                    o: {"family": OPTIMIZERS[o].family, "description": OPTIMIZERS[o].description}
                    for o in self.optimizers
                },
                "pairs": [p.as_dict() for p in self.pairs],
                "ratios_steps": self.ratios("steps"),
                "ratios_time": self.ratios("time"),
                "ratio_texts": {t: {o: self.ratio_text(t, o) for o in self.optimizers} for t in self.tasks},
                "rows": self.rows(),
                "interrupted": self.interrupted,
                "missing": self.missing,
            }
        )


def _environment() -> dict[str, Any]:
    """Versions of the compared libraries and the machine: wall times only mean something with them."""
    import importlib.metadata

    from geodyn.environment import environment

    env = environment()
    for package in ("pytorch-optimizer", "adabelief-pytorch", "scikit-learn"):
        try:
            env[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            env[package] = None
    return env


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def summarise(cells: dict[str, CellResult], size: str, tasks: list[str], optimizers: list[str]) -> BenchResults:
    """Scores of every (task, optimizer) pair from finished cells: best grid point, then the spread over seeds."""
    grid = lr_grid(size)
    pairs = []
    missing = []
    for task, opt in pairs_for(tasks, optimizers):
        tune = [cells.get(Cell(task, opt, lr, TUNING_SEED, size).key) for lr in grid]
        finished = [r for r in tune if r is not None]
        tuning = [
            {
                "lr": r.cell.lr,
                "status": r.status,
                "steps_to_target": _finite(r.steps_to_target),
                "best_value": _finite(r.best_value),
            }
            for r in finished
        ]
        lr = best_lr(finished) if len(finished) == len(grid) else None
        seeds: list[dict[str, Any]] = []
        if lr is not None:
            for seed in SEEDS[size]:
                r = cells.get(Cell(task, opt, lr, seed, size).key)
                if r is None:
                    missing.append(Cell(task, opt, lr, seed, size).key)
                    continue
                seeds.append(
                    {
                        "seed": seed,
                        "status": r.status,
                        "steps_to_target": r.steps_to_target,
                        "time_to_target": r.time_to_target,
                    }
                )
        else:
            missing += [Cell(task, opt, g, TUNING_SEED, size).key for g, r in zip(grid, tune) if r is None]
        complete = lr is not None and len(seeds) == len(SEEDS[size])
        pairs.append(
            PairSummary(
                task=task,
                optimizer=opt,
                tuning=tuning,
                best_lr=lr,
                on_edge=lr is not None and lr in (grid[0], grid[-1]),
                seeds=seeds,
                steps=spread([s["steps_to_target"] for s in seeds]) if complete else Spread(INF, INF, INF, 0, 0),
                time=spread([s["time_to_target"] for s in seeds]) if complete else Spread(INF, INF, INF, 0, 0),
                complete=complete,
            )
        )
    reference = REFERENCE if REFERENCE in optimizers else None
    return BenchResults(size, list(tasks), list(optimizers), pairs, missing=missing, reference=reference)


def run_bench(
    out: Path,
    size: str = "quick",
    tasks: list[str] | None = None,
    optimizers: list[str] | None = None,
    backend: Backend | None = None,
    on_plan: Callable[[int, int], None] = lambda total, done: None,
    on_cell: Callable[[CellResult, bool], None] = lambda result, cached: None,
    on_lost: Callable[[Cell, BaseException], None] = lambda cell, exc: None,
    threads: int = 1,
    report: bool = True,
) -> BenchResults:
    """Run (or resume) the benchmark in ``out`` and write results.json and report.html.

    ``on_plan(total, done)`` is called once with the number of cells; ``on_cell(result, cached)`` after each cell
    (``cached``: it was loaded from an earlier run); ``on_lost(cell, exc)`` when the backend could not run a cell
    (it is reported missing and a rerun tries it again). On KeyboardInterrupt the finished cells are kept, results and
    report are written with ``interrupted=True``, and the interrupt is re-raised.
    """
    from geodyn.bench.optimizers import available

    tasks = list(dict.fromkeys(tasks or TASKS))
    optimizers = list(dict.fromkeys(optimizers or available()))
    grid, seeds = lr_grid(size), SEEDS[size]
    backend = backend or InlineBackend()
    out.mkdir(parents=True, exist_ok=True)
    root = out / "cells"
    config = {"size": size, "tasks": tasks, "optimizers": optimizers, "lr_grid": list(grid), "seeds": list(seeds)}
    (out / "config.toml").write_text(tomli_w.dumps(config))

    cells = load_cells(root, size)
    pairs = pairs_for(tasks, optimizers)
    total = len(pairs) * (len(grid) + len(seeds))
    todo: list[Cell] = []
    for task, opt in pairs:
        tune = [Cell(task, opt, lr, TUNING_SEED, size) for lr in grid]
        todo += [c for c in tune if c.key not in cells]
    on_plan(total, 0)
    for result in cells.values():
        c = result.cell
        if c.task in tasks and c.optimizer in optimizers:
            on_cell(result, True)

    scheduled = {c.key for c in todo}

    def seed_cells(task: str, opt: str) -> list[Cell]:
        """The scoring cells of a pair once its tuning is complete, except those finished or already scheduled."""
        tune = [cells.get(Cell(task, opt, lr, TUNING_SEED, size).key) for lr in grid]
        if any(r is None for r in tune):
            return []
        lr = best_lr(tune)  # type: ignore[arg-type]
        new = [Cell(task, opt, lr, s, size) for s in seeds]
        new = [c for c in new if c.key not in cells and c.key not in scheduled]
        scheduled.update(c.key for c in new)
        return new

    for task, opt in pairs:
        todo += seed_cells(task, opt)
    todo.reverse()  # pop() from the end keeps the planned order

    inflight: dict[Future, Cell] = {}
    interrupted = False
    try:
        while todo or inflight:
            while todo and len(inflight) < max(1, backend.capacity):
                cell = todo.pop()
                try:
                    inflight[backend.submit(run_cell, cell, threads)] = cell
                except Exception as exc:  # the backend itself broke (e.g. a killed pool): stop, keep what finished
                    on_lost(cell, exc)
                    todo.clear()
                    break
            if not inflight:
                break
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                cell = inflight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the backend lost the cell (e.g. retries exhausted): it stays missing
                    on_lost(cell, exc)
                    continue
                _save_cell(root, result)
                cells[cell.key] = result
                on_cell(result, False)
                if cell.seed == TUNING_SEED:
                    new = seed_cells(cell.task, cell.optimizer)
                    todo[:0] = list(reversed(new))  # seeds of a finished pair run after the queued tuning cells
    except KeyboardInterrupt:
        interrupted = True
        backend.close(cancel=True)

    results = summarise(cells, size, tasks, optimizers)
    results.interrupted = interrupted
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results.to_json(), indent=1))
    os.replace(tmp, out / "results.json")  # atomic: a second Ctrl-C cannot leave half a file
    if report:
        from geodyn.bench.report import write_bench_report

        write_bench_report(results, cells, out)
    if interrupted:
        raise KeyboardInterrupt
    return results

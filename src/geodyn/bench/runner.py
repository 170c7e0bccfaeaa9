"""Run the benchmark into a folder, resumably.

Layout of a bench folder::

    config.toml                                  the resolved settings of the latest run
    cells/<size>/<task>/<optimizer>/lr=…_seed=….json   one finished cell (curve, status, scores)
    results.json                                 schema-versioned summary: tuning, seeds, scores, ratios, profile
    report.html, figures/*.png                   loss curves, tuning curves, performance profiles

A cell is saved (atomically) the moment it finishes; a rerun with the same folder loads finished cells and runs
only the rest, so a killed run loses at most the cells that were running. Tuning comes first: once every trial
(learning rate × hyperparameter value) of a (task, optimizer) pair has finished on the validation split, a best
learning rate on an edge of the grid extends the grid by a half-decade on that side (those trials run next, up to
``MAX_EXTENSIONS`` times), and otherwise the best trial is rerun on the fresh seeds, scored on the test split.
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
from geodyn.bench.protocol import HOLD, MAX_EXTENSIONS, SEEDS, TUNING_SEED, extend_lr, lr_grid
from geodyn.bench.scoring import INF, PairedTest, Spread, ratio, sign_test, spread
from geodyn.bench.tasks import TASKS
from geodyn.serialize import jsonable

__all__ = ["SCHEMA_VERSION", "REFERENCE", "BenchResults", "run_bench", "summarise", "load_cells", "pairs_for"]

SCHEMA_VERSION = 2
#: The rows judged by :meth:`BenchResults.goals`, and the tasks that count as "the language model" there.
GOAL_ROWS = {"diagonal": "geodyn-three-regime", "kronecker": "geodyn-three-regime-kron"}
LANGUAGE_MODELS = ("byte-lm", "char-transformer")
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


def _folder(size: str, device: str) -> str:
    return size if device == "cpu" else f"{size}@{device}"


def load_cells(root: Path, size: str, current: bool = True, device: str = "cpu") -> dict[str, CellResult]:
    """Finished cells of ``size`` (on ``device``) under ``root`` by key. Unreadable files (a crash mid-write) are
    ignored; with ``current``, so are cells of tasks or optimizers that no longer exist, cells made under another
    definition of their task or optimizer (fingerprint), and cells that ended in an error, so that a rerun tries
    them again."""
    from geodyn.bench.cell import fingerprint

    out: dict[str, CellResult] = {}
    base = root / _folder(size, device)
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


def best_trial(results: list[CellResult]) -> CellResult:
    """The tuning run with the fewest steps to target (ties: better metric, then the smaller lr)."""
    return min(results, key=_rank)


def best_lr(results: list[CellResult]) -> float:
    return best_trial(results).cell.lr


@dataclass
class Tuning:
    """The state of one pair's tuning: the trials run so far (or to run next), the best finished trial once every
    trial has finished and no extension is pending, the learning rates tried and how often the grid was extended."""

    trials: list[Cell]
    results: list[CellResult]
    best: CellResult | None
    lrs: list[float]
    extensions: int
    on_edge: bool

    @property
    def missing(self) -> list[Cell]:
        done = {r.cell.key for r in self.results}
        return [c for c in self.trials if c.key not in done]


def tuning_state(cells: dict[str, CellResult], task: str, opt: str, size: str, device: str = "cpu") -> Tuning:
    """Walk the protocol's tuning for one pair over the finished cells: the lr grid × the optimizer's hyperparameter
    values; while the best trial sits on an edge of the grid, extend the grid by a half-decade on that side (at most
    ``MAX_EXTENSIONS`` times). ``best`` is None while trials are missing."""
    values = OPTIMIZERS[opt].values
    lrs = list(lr_grid(size))
    extensions = 0
    while True:
        trials = [Cell(task, opt, lr, TUNING_SEED, size, h, device) for lr in lrs for h in values]
        results = [cells[c.key] for c in trials if c.key in cells]
        if len(results) < len(trials):
            return Tuning(trials, results, None, lrs, extensions, False)
        best = best_trial(results)
        side = -1 if best.cell.lr == lrs[0] else 1 if best.cell.lr == lrs[-1] else 0
        if side == 0 or extensions >= MAX_EXTENSIONS:
            return Tuning(trials, results, best, lrs, extensions, side != 0)
        lrs = [extend_lr(lrs[0], -1), *lrs] if side < 0 else [*lrs, extend_lr(lrs[-1], 1)]
        extensions += 1


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
    best_hyper: float | None = None
    extensions: int = 0
    paired: PairedTest | None = None
    regimes: list[list[float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "optimizer": self.optimizer,
            "complete": self.complete,
            "tuning": self.tuning,
            "best_lr": self.best_lr,
            "best_hyper": self.best_hyper,
            "hyper": OPTIMIZERS[self.optimizer].hyper,
            "best_lr_on_grid_edge": self.on_edge,
            "grid_extensions": self.extensions,
            "seeds": self.seeds,
            "steps_to_target": self.steps.as_dict(),
            "time_to_target": self.time.as_dict(),
            "paired_vs_reference": None if self.paired is None else self.paired.as_dict(),
            "regime_shares": self.regimes,
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
    device: str = "cpu"

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

    def fewest(self, task: str, optimizer: str, score: str = "steps") -> bool | None:
        """Whether ``optimizer``'s median score on ``task`` is finite and no larger than every other optimizer's
        (ties count for both); None while a pair of the task is unfinished or the optimizer does not apply."""
        own = self.pair(task, optimizer)
        others = [p for p in self.pairs if p.task == task]
        if own is None or not all(p.complete for p in others):
            return None
        mine = (own.steps if score == "steps" else own.time).median
        best = min((p.steps if score == "steps" else p.time).median for p in others)
        return math.isfinite(mine) and mine <= best

    def goals(self) -> dict[str, Any]:
        """The three-regime law's goals (docs/bench.md, "Goals"), judged on the finished tasks: the diagonal row
        (:data:`GOAL_ROWS` ``diagonal``) takes no more steps than the reference on ≥ 6 tasks and is never ∞ where the
        reference is finite; the Kronecker row takes the fewest steps of all optimizers on ≥ 5 tasks and the fewest
        seconds on ≥ 4, the language model among them. ``met`` is None while a task the goal needs is unfinished."""
        diag, kron = GOAL_ROWS["diagonal"], GOAL_ROWS["kronecker"]
        out: dict[str, Any] = {}
        ref = self.reference
        if ref is not None and diag in self.optimizers:
            within, infinite, open_ = [], [], []
            for t in self.tasks:
                a, b = self.pair(t, diag), self.pair(t, ref)
                if a is None or b is None:
                    continue
                if not (a.complete and b.complete):
                    open_.append(t)
                elif math.isfinite(a.steps.median) and a.steps.median <= b.steps.median:
                    within.append(t)
                elif math.isinf(a.steps.median) and math.isfinite(b.steps.median):
                    infinite.append(t)
            if infinite or len(within) + len(open_) < 6:
                met: bool | None = False
            else:
                met = True if len(within) >= 6 else None
            out["diagonal"] = {"optimizer": diag, "steps_within_reference": within, "infinite_where_reference_finite":
                               infinite, "unfinished": open_, "met": met}  # fmt: skip
        if kron in self.optimizers:
            res: dict[str, Any] = {"optimizer": kron}
            for score, need in (("steps", 5), ("time", 4)):
                verdicts = {t: self.fewest(t, kron, score) for t in self.tasks if self.pair(t, kron) is not None}
                won = [t for t, v in verdicts.items() if v]
                open_ = [t for t, v in verdicts.items() if v is None]
                enough = len(won) >= need and (score == "steps" or any(t in LANGUAGE_MODELS for t in won))
                could = len(won) + len(open_) >= need
                res[f"fewest_{score}"] = won
                res[f"unfinished_{score}"] = open_
                res[f"met_{score}"] = True if enough else (None if open_ and could else False)
            out["kronecker"] = res
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (task, optimizer): the table of the report and of ``geodyn reproduce --bench``."""
        out = []
        for p in self.pairs:
            out.append(
                {
                    "task": p.task,
                    "optimizer": p.optimizer,
                    "best lr": p.best_lr,
                    "tuned": None if p.best_hyper is None else f"{OPTIMIZERS[p.optimizer].hyper}={p.best_hyper:g}",
                    "steps to target (median)": _finite(p.steps.median),
                    "steps (min)": _finite(p.steps.low),
                    "steps (max)": _finite(p.steps.high),
                    "seconds to target (median)": _finite(p.time.median),
                    "reached": f"{p.steps.reached}/{p.steps.runs}",
                    f"steps ratio to {self.reference}": self.ratio_text(p.task, p.optimizer),
                    f"sign test vs {self.reference} (p)": None if p.paired is None else p.paired.p_value,
                }
            )
        return out

    def markdown(self) -> str:
        """The tables of docs/bench.md: steps and seconds ratios to the reference, the reference's own scores, the
        paired tests, the best trials (flagging grid edges) and the three-regime rows' regime shares."""
        opts, tasks = self.optimizers, self.tasks
        head = "| optimizer | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks) + "\n"
        out = [f"Bench at {self.size} size on {self.device}; scores on the test split, medians over seeds "
               f"{', '.join(map(str, SEEDS[self.size]))}.\n"]  # fmt: skip
        if self.reference:
            for score, title in (("steps", "Steps"), ("time", "Seconds")):
                out.append(f"\n**{title} to target, median over seeds, relative to {self.reference}**\n\n{head}")
                for o in opts:
                    out.append(f"| {o} | " + " | ".join(self.ratio_text(t, o, score) for t in tasks) + " |\n")
            out.append(f"\n**{self.reference}** (median [min, max] steps; seeds that reached the target)\n\n")
            out.append("| task | lr | hyper | steps | seconds | reached |\n|---|---|---|---|---|---|\n")
            for t in tasks:
                p = self.pair(t, self.reference)
                if p is not None and p.complete:
                    out.append(
                        f"| {t} | {p.best_lr:g} | {p.best_hyper:g} | {_fmt(p.steps.median)} [{_fmt(p.steps.low)}, "
                        f"{_fmt(p.steps.high)}] | {_fmt(p.time.median, '.2f')} | {p.steps.reached}/{p.steps.runs} |\n"
                    )
            out.append(f"\n**Paired sign test against {self.reference}** (wins/losses/ties over seeds; p)\n\n{head}")
            for o in opts:
                cells = []
                for t in tasks:
                    p = self.pair(t, o)
                    q = None if p is None else p.paired
                    cells.append("—" if q is None else f"{q.wins}/{q.losses}/{q.ties}; {q.p_value:.2g}")
                out.append(f"| {o} | " + " | ".join(cells) + " |\n")
        out.append(f"\n**Best trial** (lr, hyperparameter; * = still on a grid edge, +k = grid extended k times)"
                   f"\n\n{head}")  # fmt: skip
        for o in opts:
            cells = []
            for t in tasks:
                p = self.pair(t, o)
                if p is None or p.best_lr is None:
                    cells.append("—")
                    continue
                mark = ("*" if p.on_edge else "") + (f" +{p.extensions}" if p.extensions else "")
                cells.append(f"{p.best_lr:g}, {OPTIMIZERS[o].hyper}={p.best_hyper:g}{mark}")
            out.append(f"| {o} | " + " | ".join(cells) + " |\n")
        goals = self.goals()
        if goals:
            out.append("\n**Goals of the three-regime law** (met: yes / no / open while a task is unfinished)\n\n")
            word = {True: "yes", False: "no", None: "open"}
            if "diagonal" in goals:
                g = goals["diagonal"]
                out.append(f"- {g['optimizer']}: no more steps than {self.reference} on ≥ 6 tasks and never ∞ where it "
                           f"is finite — {word[g['met']]} ({len(g['steps_within_reference'])}: "
                           f"{', '.join(g['steps_within_reference']) or 'none'}; ∞ where {self.reference} is finite: "
                           f"{', '.join(g['infinite_where_reference_finite']) or 'none'})\n")  # fmt: skip
            if "kronecker" in goals:
                g = goals["kronecker"]
                out.append(f"- {g['optimizer']}: fewest steps of all on ≥ 5 tasks — {word[g['met_steps']]} "
                           f"({len(g['fewest_steps'])}: {', '.join(g['fewest_steps']) or 'none'}); fewest seconds on "
                           f"≥ 4 including a language model — {word[g['met_time']]} ({len(g['fewest_time'])}: "
                           f"{', '.join(g['fewest_time']) or 'none'})\n")  # fmt: skip
        regime_rows = [p for p in self.pairs if p.regimes]
        if regime_rows:
            out.append("\n**Share of variables per regime** (slow / intermediate / fast, % of variables; mean over "
                       "seeds at the first, middle and last evaluation)\n\n| task | optimizer | first | middle | last |"
                       "\n|---|---|---|---|---|\n")  # fmt: skip
            for p in regime_rows:
                r = p.regimes
                picks = [r[0], r[len(r) // 2], r[-1]]
                cells = [f"{x[1]:.0%} / {x[2]:.0%} / {x[3]:.0%} (step {x[0]:.0f})" for x in picks]
                out.append(f"| {p.task} | {p.optimizer} | " + " | ".join(cells) + " |\n")
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        return jsonable(
            {
                "schema_version": SCHEMA_VERSION,
                "geodyn_version": geodyn.__version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "size": self.size,
                "environment": _environment(),
                "device": self.device,
                "protocol": {
                    "lr_grid": list(lr_grid(self.size)),
                    "hyperparameters": {o: [OPTIMIZERS[o].hyper, list(OPTIMIZERS[o].values)] for o in self.optimizers},
                    "max_grid_extensions": MAX_EXTENSIONS,
                    "hold": HOLD,
                    "tuning_seed": TUNING_SEED,
                    "tuning_split": "validation",
                    "seeds": list(SEEDS[self.size]),
                    "scoring_split": "test",
                    "reference": self.reference,
                    "paired_test": "exact two-sided sign test over the scoring seeds",
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
                "goals": self.goals(),
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


def _fmt(x: float, spec: str = ".0f") -> str:
    return "∞" if not math.isfinite(x) else format(x, spec)


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _regime_curve(results: list[CellResult]) -> list[list[float]]:
    """[step, slow, intermediate, fast] at each evaluation, averaged over the seeds that recorded that step."""
    by_step: dict[int, list[list[float]]] = {}
    for r in results:
        for step, shares in zip(r.steps[1:], r.regimes, strict=False):
            by_step.setdefault(step, []).append(shares)
    return [[float(step)] + [sum(x[k] for x in v) / len(v) for k in range(3)] for step, v in sorted(by_step.items())]


def summarise(
    cells: dict[str, CellResult], size: str, tasks: list[str], optimizers: list[str], device: str = "cpu"
) -> BenchResults:
    """Scores of every (task, optimizer) pair from finished cells: best trial on the validation split, then the
    spread over the scoring seeds on the test split, and the paired sign test against the reference."""
    pairs = []
    missing = []
    seed_scores: dict[tuple[str, str], dict[int, float]] = {}
    for task, opt in pairs_for(tasks, optimizers):
        tune = tuning_state(cells, task, opt, size, device)
        tuning = [
            {
                "lr": r.cell.lr,
                "hyper": r.cell.hyper,
                "status": r.status,
                "steps_to_target": _finite(r.steps_to_target),
                "best_value": _finite(r.best_value),
            }
            for r in tune.results
        ]
        best = tune.best
        seeds: list[dict[str, Any]] = []
        scored: list[CellResult] = []
        if best is not None:
            for seed in SEEDS[size]:
                key = Cell(task, opt, best.cell.lr, seed, size, best.cell.hyper, device).key
                r = cells.get(key)
                if r is None:
                    missing.append(key)
                    continue
                scored.append(r)
                seeds.append(
                    {
                        "seed": seed,
                        "status": r.status,
                        "steps_to_target": r.steps_to_target,
                        "time_to_target": r.time_to_target,
                    }
                )
        else:
            missing += [c.key for c in tune.missing]
        complete = best is not None and len(seeds) == len(SEEDS[size])
        if complete:
            seed_scores[(task, opt)] = {s["seed"]: s["steps_to_target"] for s in seeds}
        pairs.append(
            PairSummary(
                task=task,
                optimizer=opt,
                tuning=tuning,
                best_lr=None if best is None else best.cell.lr,
                on_edge=tune.on_edge,
                seeds=seeds,
                steps=spread([s["steps_to_target"] for s in seeds]) if complete else Spread(INF, INF, INF, 0, 0),
                time=spread([s["time_to_target"] for s in seeds]) if complete else Spread(INF, INF, INF, 0, 0),
                complete=complete,
                best_hyper=None if best is None else best.cell.hyper,
                extensions=tune.extensions,
                regimes=_regime_curve(scored),
            )
        )
    reference = REFERENCE if REFERENCE in optimizers else None
    if reference is not None:
        for p in pairs:
            ref = seed_scores.get((p.task, reference))
            own = seed_scores.get((p.task, p.optimizer))
            if ref is not None and own is not None and p.optimizer != reference:
                order = sorted(own)
                p.paired = sign_test([own[k] for k in order], [ref[k] for k in order])
    return BenchResults(size, list(tasks), list(optimizers), pairs, missing=missing, reference=reference, device=device)


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
    device: str = "cpu",
) -> BenchResults:
    """Run (or resume) the benchmark in ``out`` and write results.json, tables.md and report.html.

    ``on_plan(total, done)`` is called with the number of cells (again when a grid extension adds some);
    ``on_cell(result, cached)`` after each cell (``cached``: it was loaded from an earlier run); ``on_lost(cell,
    exc)`` when the backend could not run a cell (it is reported missing and a rerun tries it again). On
    KeyboardInterrupt the finished cells are kept, results and report are written with ``interrupted=True``, and the
    interrupt is re-raised. ``device``: where the tasks run ("cuda": the byte LM at full size).
    """
    from geodyn.bench.optimizers import available

    tasks = list(dict.fromkeys(tasks or TASKS))
    optimizers = list(dict.fromkeys(optimizers or available()))
    grid, seeds = lr_grid(size), SEEDS[size]
    backend = backend or InlineBackend()
    out.mkdir(parents=True, exist_ok=True)
    root = out / "cells"
    config = {
        "size": size, "device": device, "tasks": tasks, "optimizers": optimizers, "lr_grid": list(grid),
        "seeds": list(seeds),
    }  # fmt: skip
    (out / "config.toml").write_text(tomli_w.dumps(config))

    cells = load_cells(root, size, device=device)
    pairs = pairs_for(tasks, optimizers)
    total = sum(len(grid) * len(OPTIMIZERS[o].values) + len(seeds) for _, o in pairs)
    scheduled: set[str] = set()

    def next_cells(task: str, opt: str) -> list[Cell]:
        """The pair's cells to run now (missing trials, an extension of the grid, or the scoring seeds), except
        those finished or already scheduled."""
        tune = tuning_state(cells, task, opt, size, device)
        if tune.best is None:
            new = tune.missing
        else:
            b = tune.best.cell
            new = [Cell(task, opt, b.lr, s, size, b.hyper, device) for s in seeds]
        new = [c for c in new if c.key not in cells and c.key not in scheduled]
        scheduled.update(c.key for c in new)
        return new

    todo: list[Cell] = []
    for task, opt in pairs:
        todo += next_cells(task, opt)
    on_plan(total, 0)
    for result in cells.values():
        c = result.cell
        if c.task in tasks and c.optimizer in optimizers:
            on_cell(result, True)
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
                    new = next_cells(cell.task, cell.optimizer)
                    extra = [c for c in new if c.seed == TUNING_SEED and c.lr not in grid]
                    if extra:  # a grid extension: the plan grows
                        total += len(extra)
                        on_plan(total, -1)
                    # A pair's next cells (extension trials, then its scoring seeds) run next: a long run that is
                    # stopped keeps whole pairs, not every pair's tuning without a single score.
                    todo.extend(reversed(new))
    except KeyboardInterrupt:
        interrupted = True
        backend.close(cancel=True)

    results = summarise(cells, size, tasks, optimizers, device)
    results.interrupted = interrupted
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results.to_json(), indent=1))
    os.replace(tmp, out / "results.json")  # atomic: a second Ctrl-C cannot leave half a file
    (out / "tables.md").write_text(results.markdown(), encoding="utf-8")
    if report:
        from geodyn.bench.report import write_bench_report

        write_bench_report(results, cells, out)
    if interrupted:
        raise KeyboardInterrupt
    return results

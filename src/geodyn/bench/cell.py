"""One cell of the benchmark: a task trained by one optimizer at one learning rate, hyperparameter value and seed.

A cell is a pure function of its key (task, optimizer, lr, hyper, seed, size, device): it builds the problem, trains
until the target is reached (held for :data:`~geodyn.bench.protocol.HOLD` consecutive evaluations), the run diverges
or the step budget is spent, and returns its curve. The tuning seed is evaluated on the validation split, scoring
seeds on the test split. It runs in any process (locally, in a worker pool or as a Ray task) and its result is plain
JSON. Three-regime optimizers also record, at each evaluation, the share of variables in each regime.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

import torch

from geodyn.bench.protocol import HOLD, split_of
from geodyn.optim import NonFiniteGradientError

__all__ = ["Cell", "CellResult", "run_cell", "DIVERGENCE_FACTOR"]

#: A loss-type metric above this multiple of its initial value counts as divergence (the run stops, unreached).
DIVERGENCE_FACTOR = 1e6


@dataclass(frozen=True)
class Cell:
    """``hyper``: the value of the optimizer's tuned hyperparameter (None: its default); ``device``: where the task
    runs ("cpu", or "cuda" where a task's size depends on it)."""

    task: str
    optimizer: str
    lr: float
    seed: int
    size: str
    hyper: float | None = None
    device: str = "cpu"

    @property
    def key(self) -> str:
        folder = self.size if self.device == "cpu" else f"{self.size}@{self.device}"
        h = "" if self.hyper is None else f"_h={self.hyper:.3g}"
        return f"{folder}/{self.task}/{self.optimizer}/lr={self.lr:.3g}{h}_seed={self.seed}"

    @property
    def split(self) -> str:
        return split_of(self.seed)


@dataclass
class CellResult:
    """``status``: "reached", "budget" (step budget spent), "diverged" or "error". ``steps``/``seconds``/``values``
    form the evaluation curve on the cell's split (step 0 is the initial evaluation; ``seconds`` counts training
    time only). ``steps_to_target`` is the first evaluation of the run of :data:`HOLD` consecutive ones that met
    the target. ``regimes``: [slow, intermediate, fast] shares of the variables at each evaluation after step 0
    (three-regime optimizers only)."""

    cell: Cell
    status: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    steps_to_target: float = math.inf
    time_to_target: float = math.inf
    error: str = ""
    wall: float = 0.0
    fingerprint: str = ""
    regimes: list[list[float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cell"] = asdict(self.cell)
        for k in ("steps_to_target", "time_to_target"):
            out[k] = None if math.isinf(out[k]) else out[k]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CellResult:
        raw = dict(raw)
        raw["cell"] = Cell(**raw["cell"])
        for k in ("steps_to_target", "time_to_target"):
            raw[k] = math.inf if raw.get(k) is None else float(raw[k])
        return cls(**raw)

    @property
    def best_value(self) -> float:
        """The best metric value on the curve (for ranking runs that did not reach the target)."""
        from geodyn.bench.tasks import TASKS

        finite = [v for v in self.values if v is not None and math.isfinite(v)]
        if not finite:
            return math.nan
        return min(finite) if TASKS[self.cell.task].goal == "min" else max(finite)


#: The sources that define geodyn's optimizers: a cell of a geodyn row made with other code is run again.
_GEODYN_OPTIMIZER_SOURCES = ("optim", "metric.py", "noise.py")


@cache
def implementation(optimizer: str) -> str:
    """What implements ``optimizer``: for geodyn's rows a hash of the sources of geodyn.optim, geodyn.metric and
    geodyn.noise; for peers the installed version of their library; torch's version for both."""
    from geodyn.bench.optimizers import OPTIMIZERS

    spec = OPTIMIZERS[optimizer]
    parts = [f"torch {torch.__version__}"]
    if spec.family == "geodyn":
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for name in _GEODYN_OPTIMIZER_SOURCES:
            path = root / name
            for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
        parts.append(f"geodyn sources {digest.hexdigest()[:16]}")
    elif spec.needs and not spec.needs.startswith("torch."):
        module = spec.needs.split(".")[0]
        distribution = (packages_distributions().get(module) or [module])[0]
        try:
            parts.append(f"{distribution} {version(distribution)}")
        except PackageNotFoundError:
            parts.append(f"{distribution} (not installed)")
    return ", ".join(parts)


def fingerprint(task: str, optimizer: str, size: str) -> str:
    """A hash of what a cell's result depends on besides its key: the task's definition at this size, the
    optimizer's declaration and its implementation (:func:`implementation`). A saved cell whose fingerprint differs
    was made under another definition or other code and is run again."""
    from geodyn.bench.optimizers import OPTIMIZERS
    from geodyn.bench.tasks import TASKS

    t, o = TASKS[task], OPTIMIZERS[optimizer]
    fields = [t.description, t.metric, t.goal, t.target_for(size), t.steps[size], t.eval_every[size]]
    fields += [o.description, o.family, o.hyper, list(o.values), DIVERGENCE_FACTOR, HOLD, implementation(optimizer)]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def _switch(opt: torch.optim.Optimizer, mode: str) -> None:
    # Schedule-free optimizers evaluate at a different point than they train at and expose train()/eval().
    fn = getattr(opt, mode, None)
    if callable(fn) and not isinstance(opt, torch.nn.Module):
        fn()


def run_cell(cell: Cell, threads: int | None = 1) -> CellResult:
    """Train one cell. Never raises for a failing optimizer: the error becomes the result (status "error")."""
    from geodyn.bench.optimizers import OPTIMIZERS
    from geodyn.bench.regimes import regime_shares
    from geodyn.bench.tasks import TASKS

    start_wall = time.perf_counter()
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    task, spec = TASKS[cell.task], OPTIMIZERS[cell.optimizer]
    result = CellResult(cell, status="budget", fingerprint=fingerprint(cell.task, cell.optimizer, cell.size))
    split = cell.split
    try:
        problem = task.build(cell.seed) if cell.device == "cpu" else task.build(cell.seed, device=cell.device)
        opt = spec.build(problem.params, problem.hidden, cell.lr, cell.hyper)
        _switch(opt, "train")
        budget, every = task.steps[cell.size], task.eval_every[cell.size]
        initial = problem.evaluate(split)
        result.steps.append(0)
        result.seconds.append(0.0)
        result.values.append(initial)
        elapsed = 0.0
        streak, first = 0, (math.inf, math.inf)
        for t in range(1, budget + 1):
            tic = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = problem.loss(t)
            loss.backward()
            opt.step()
            loss_value = loss.item()  # synchronises a GPU before the clock is read
            elapsed += time.perf_counter() - tic
            if not math.isfinite(loss_value):
                result.status = "diverged"
                break
            if t % every and t != budget:
                continue
            _switch(opt, "eval")
            value = problem.evaluate(split)
            _switch(opt, "train")
            result.steps.append(t)
            result.seconds.append(elapsed)
            result.values.append(value if math.isfinite(value) else None)
            shares = regime_shares(opt)
            if shares is not None:
                result.regimes.append(shares)
            if task.reached(value, cell.size):
                streak += 1
                if streak == 1:
                    first = (float(t), elapsed)
                if streak >= HOLD:
                    result.status = "reached"
                    result.steps_to_target, result.time_to_target = first
                    break
            else:
                streak = 0
            if not math.isfinite(value) or (task.goal == "min" and initial > 0 and value > DIVERGENCE_FACTOR * initial):
                result.status = "diverged"
                break
    except NonFiniteGradientError:
        # geodyn's optimizers refuse a NaN gradient, which follows a step that blew the parameters up
        result.status = "diverged"
    except Exception as exc:  # a failing optimizer is a result of the benchmark, not a crash of it
        result.status = "error"
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
    finally:
        torch.set_num_threads(previous)
    result.wall = time.perf_counter() - start_wall
    return result

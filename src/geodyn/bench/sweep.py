"""The sweep that sets the scale-free three-regime defaults (ε̃, ζ̃), on the tuning (validation) split only.

For every (ε̃, ζ̃) on a small grid and every task, the learning rate is tuned over the bench's grid on the tuning seed
exactly as a bench cell is run (validation split, target held for ``HOLD`` evaluations), and the score is the best
steps to target over the learning rates divided by AdamW's, tuned the same way. The defaults are the (ε̃, ζ̃) with
the best geometric mean of that ratio (unreached: the step budget × 2, so that failing costs more than being slow),
then frozen in :mod:`geodyn.bench.optimizers` before any scoring seed is run. Test data are never read.

    python -m geodyn.bench.sweep --tasks noisy-quadratic,mlp-digits,multiplication --size quick
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from geodyn.bench.cell import Cell, run_cell
from geodyn.bench.optimizers import OPTIMIZERS, OptimizerSpec
from geodyn.bench.protocol import TUNING_SEED, lr_grid
from geodyn.bench.tasks import TASKS
from geodyn.optim import presets

__all__ = ["sweep", "EPS_GRID", "ZETA_GRID"]

EPS_GRID = (1e-3, 1e-2, 1e-1)
ZETA_GRID = (0.0, 0.1, 1.0)


def _name(eps: float, zeta: float) -> str:
    return f"sweep-three-regime-e{eps:g}-z{zeta:g}"


def _register(eps: float, zeta: float) -> str:
    """A temporary bench row for one (ε̃, ζ̃): cells run exactly as the bench runs them (inline, this process)."""
    name = _name(eps, zeta)
    make: Callable[..., Any] = lambda p, lr, h, e=eps, z=zeta: presets.three_regime(p, lr=lr, eps=e, zeta=z)  # noqa: E731
    OPTIMIZERS[name] = OptimizerSpec(name, make, "geodyn", f"sweep ε̃={eps:g}, ζ̃={zeta:g}", "none", (0.0,))
    return name


def _best_steps(task: str, optimizer: str, size: str, hyper: float | None) -> tuple[float, float]:
    """(fewest steps to target over the lr grid on the tuning seed, the lr that gave it)."""
    best = (math.inf, math.nan)
    for lr in lr_grid(size):
        r = run_cell(Cell(task, optimizer, lr, TUNING_SEED, size, hyper))
        if r.status == "error":
            raise RuntimeError(f"sweep cell {r.cell.key} failed: {r.error}")
        if r.steps_to_target < best[0]:
            best = (r.steps_to_target, lr)
    return best


def sweep(
    tasks: Sequence[str],
    size: str = "quick",
    eps_values: Sequence[float] = EPS_GRID,
    zeta_values: Sequence[float] = ZETA_GRID,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run the sweep; return {"adamw": {task: steps}, "rows": [{eps, zeta, steps: {task: …}, lr: {…}, score}]}."""
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")
    adamw = {t: _best_steps(t, "adamw", size, OPTIMIZERS["adamw"].values[0]) for t in tasks}
    log(f"adamw: {json.dumps({t: s for t, (s, _) in adamw.items()})}")
    rows = []
    for eps, zeta in itertools.product(eps_values, zeta_values):
        name = _register(eps, zeta)
        try:
            found = {t: _best_steps(t, name, size, 0.0) for t in tasks}
        finally:
            OPTIMIZERS.pop(name, None)
        logs = []
        for t in tasks:
            penalty = 2.0 * TASKS[t].steps[size]
            mine, ref = (min(x, penalty) for x in (found[t][0], adamw[t][0]))
            logs.append(math.log(mine / ref))
        score = math.exp(sum(logs) / len(logs))
        row = {
            "eps": eps,
            "zeta": zeta,
            "steps": {t: s for t, (s, _) in found.items()},
            "lr": {t: lr for t, (_, lr) in found.items()},
            "ratio_geomean": score,
        }
        rows.append(row)
        log(json.dumps(row))
    return {"size": size, "tasks": list(tasks), "adamw": {t: s for t, (s, _) in adamw.items()}, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="noisy-quadratic,mlp-digits,multiplication")
    parser.add_argument("--size", default="quick", choices=("quick", "full"))
    parser.add_argument("--eps", default=",".join(map(str, EPS_GRID)))
    parser.add_argument("--zeta", default=",".join(map(str, ZETA_GRID)))
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args(argv)
    result = sweep(
        [t for t in args.tasks.split(",") if t],
        args.size,
        [float(x) for x in args.eps.split(",")],
        [float(x) for x in args.zeta.split(",")],
        log=lambda line: print(line, flush=True),
    )
    best = min(result["rows"], key=lambda r: r["ratio_geomean"])
    print(f"best: eps={best['eps']:g} zeta={best['zeta']:g} geometric-mean steps ratio to adamw "
          f"{best['ratio_geomean']:.3f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

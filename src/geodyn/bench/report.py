"""Figures and the HTML page of a benchmark run: loss curves, tuning curves and performance profiles."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from geodyn.bench.cell import Cell, CellResult  # noqa: E402
from geodyn.bench.scoring import performance_profile, performance_ratios  # noqa: E402
from geodyn.bench.tasks import TASKS  # noqa: E402

if TYPE_CHECKING:
    from geodyn.bench.runner import BenchResults

__all__ = ["curves_figure", "tuning_figure", "profile_figure", "regimes_figure", "write_bench_report"]


def _style(optimizers: list[str]) -> dict[str, dict[str, Any]]:
    cmap = plt.get_cmap("tab20")
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # the ten strong colours first, then their light pairs
    return {
        o: {"color": cmap(order[i % 20]), "linestyle": "-" if o.startswith("geodyn") else "--", "linewidth": 1.3}
        for i, o in enumerate(optimizers)
    }


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(4, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _legend_below(fig: plt.Figure, handles: list, labels: list[str]) -> None:
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(labels) / 5), 1, 1))


def curves_figure(results: BenchResults, cells: dict[str, CellResult]) -> plt.Figure:
    """Per task: the metric against steps of every optimizer at its best learning rate (all seeds, thin lines),
    with the target as a horizontal line."""
    style = _style(results.optimizers)
    fig, axes = _grid(len(results.tasks))
    for ax, task in zip(axes, results.tasks, strict=False):
        spec = TASKS[task]
        for opt in results.optimizers:
            pair = results.pair(task, opt)
            if pair is None or pair.best_lr is None:
                continue
            for k, s in enumerate(pair.seeds):
                key = Cell(task, opt, pair.best_lr, s["seed"], results.size, pair.best_hyper, results.device).key
                r = cells.get(key)
                if r is None:
                    continue
                v = np.array([np.nan if x is None else x for x in r.values], dtype=float)
                ax.plot(r.steps, v, alpha=0.8, label=opt if k == 0 else None, **style[opt])
        target = spec.target_for(results.size)
        ax.axhline(target, color="k", linewidth=0.8, linestyle=":")
        if spec.goal == "min":
            ax.set_yscale("log")
        else:
            ax.set_ylim(max(0.0, target - 0.3), 1.0)
        ax.set_title(f"{task} (target {target:g})", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(spec.metric)
    handles, labels = [], []
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    _legend_below(fig, handles, labels)
    return fig


def tuning_figure(results: BenchResults, cells: dict[str, CellResult]) -> plt.Figure:
    """Per task: steps to target (validation split) against the learning rate, at the best value of each optimizer's
    own hyperparameter (tuning seed; extended grid points included); unreached runs are drawn at the top edge. A best
    point on the grid's edge means the grid may have cut an optimizer short."""
    style = _style(results.optimizers)
    fig, axes = _grid(len(results.tasks))
    for ax, task in zip(axes, results.tasks, strict=False):
        budget = TASKS[task].steps[results.size]
        for opt in results.optimizers:
            pair = results.pair(task, opt)
            if pair is None or pair.best_lr is None:
                continue
            trials = sorted((t["lr"], t["steps_to_target"]) for t in pair.tuning if t["hyper"] == pair.best_hyper)
            xs = [lr for lr, _ in trials]
            ys = [1.15 * budget if steps is None else min(steps, 1.15 * budget) for _, steps in trials]
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=opt, **style[opt])
        ax.axhline(budget, color="k", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("steps to target (above line: unreached)")
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def profile_figure(results: BenchResults) -> plt.Figure:
    """Dolan–Moré performance profiles of steps and of wall time to target across the tasks (each optimizer's share
    is of the tasks it applies to)."""
    style = _style(results.optimizers)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, score, label in zip(axes, ("steps", "time"), ("steps to target", "wall time to target"), strict=True):
        scores = np.array(results.score_matrix(score), dtype=float)
        ratios = performance_ratios(scores)
        finite = ratios[np.isfinite(ratios)]
        if finite.size == 0:
            ax.text(0.5, 0.5, "no optimizer reached any target", ha="center", transform=ax.transAxes)
            continue
        taus = np.logspace(0.0, math.log10(max(finite.max(), 1.0) * 1.5), 200)
        rho = performance_profile(scores, taus)
        for j, opt in enumerate(results.optimizers):
            ax.step(taus, rho[:, j], where="post", label=opt, **style[opt])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("τ (within this factor of the best)")
        ax.set_ylabel("share of tasks")
        ax.set_title(f"performance profile: {label}")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def regimes_figure(results: BenchResults) -> plt.Figure | None:
    """Per three-regime (task, optimizer) pair: the share of variables in the slow, intermediate and fast regimes
    over training (mean over the scoring seeds). None when no pair recorded regimes."""
    rows = [p for p in results.pairs if p.regimes]
    if not rows:
        return None
    fig, axes = _grid(len(rows))
    colours = {"slow (ε)": "tab:blue", "intermediate (√κ)": "tab:green", "fast (ζκ)": "tab:red"}
    for ax, p in zip(axes, rows, strict=False):
        r = np.array(p.regimes, dtype=float)
        ax.stackplot(r[:, 0], r[:, 1], r[:, 2], r[:, 3], labels=list(colours), colors=list(colours.values()))
        ax.set_ylim(0, 1)
        ax.set_title(f"{p.task} · {p.optimizer}", fontsize=8)
        ax.set_xlabel("step")
        ax.set_ylabel("share of variables")
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def write_bench_report(results: BenchResults, cells: dict[str, CellResult], out: Path) -> Path:
    """Write figures/*.png and a self-contained report.html into ``out``."""
    from geodyn.report.html import render_bench

    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    figures = {}
    if results.pairs:
        for name, fig in (
            ("profile", profile_figure(results)),
            ("curves", curves_figure(results, cells)),
            ("tuning", tuning_figure(results, cells)),
            ("regimes", regimes_figure(results)),
        ):
            if fig is None:
                continue
            fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
            plt.close(fig)
            figures[name] = folder / f"{name}.png"
    path = out / "report.html"
    path.write_text(render_bench(results.to_json(), figures), encoding="utf-8")
    return path

"""Learning as a stochastic process: walkers against the Fokker–Planck grid ((2.5), (2.7), (3.1))."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import torch

from geodyn.dynamics import EulerMaruyama, FokkerPlanck2D, Histogram, LangevinEnsemble, LearningModel
from geodyn.experiments.registry import Check, Context, Outcome, experiment
from geodyn.metric import Power

__all__ = ["double_well", "state_kappa", "walkers_vs_fokker_planck"]

ALPHAS = (0.0, 0.5, 1.0)


@contextmanager
def _threads(n: int):
    """Run with ``torch.set_num_threads(n)`` and restore the previous setting afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------------------------------------------
# 1. walkers vs Fokker–Planck
# ---------------------------------------------------------------------------------------------------------------
def double_well(q: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """H̄(x, y) = scale·[(x² − 1)² + y²/2], batched (P, 2) ↦ (P,)."""
    x, y = q[:, 0], q[:, 1]
    return scale * ((x * x - 1.0) ** 2 + 0.5 * y * y)


def state_kappa(q: torch.Tensor) -> torch.Tensor:
    """A smooth, strictly positive, q-dependent diagonal noise covariance κ(q), (P, 2) ↦ (P, 2):
    κ_xx = 0.5 + 0.5 x² + 0.25 y², κ_yy = 0.5 + 0.25 (x + y)²."""
    x, y = q[:, 0], q[:, 1]
    return torch.stack([0.5 + 0.5 * x * x + 0.25 * y * y, 0.5 + 0.25 * (x + y) ** 2], dim=-1)


def _coarsen(p: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """Average a (nx, ny) cell density over blocks of factor cells (→ density on the coarser bins)."""
    fx, fy = factor
    nx, ny = p.shape
    return p.reshape(nx // fx, fx, ny // fy, fy).mean(axis=(1, 3))


def _mc_l1(prob: np.ndarray, m: int) -> tuple[float, float]:
    """Mean and standard deviation of Σ_b |n_b/M − π_b| for multinomial counts n of M walkers in bins of
    probability π (normal approximation per bin: E|N(0, σ²)| = σ√(2/π), Var = σ²(1 − 2/π))."""
    var = prob * (1.0 - prob) / m
    return float(np.sum(np.sqrt(var)) * math.sqrt(2.0 / math.pi)), float(math.sqrt(np.sum(var) * (1.0 - 2.0 / math.pi)))


def _walker_histograms(model, q0, t_final, dt, steps_at, edges, seed, ito=True):
    n_steps = round(t_final / dt)
    rec = Histogram(edges, steps=[round(t / dt) for t in steps_at])
    solver = EulerMaruyama(dt, ito_drift=ito)
    LangevinEnsemble(model=model).simulate(q0, n_steps, solver, recorders=[rec], seed=seed)
    return (rec.counts.double() / rec.total).numpy()  # (T, bx, by) probabilities per bin


def _grid_probabilities(model, domain, shape, p0, t_final, dt, times, bins):
    fp = FokkerPlanck2D(model=model, domain=domain, shape=shape)
    # Crank–Nicolson keeps p ≥ 0 for dt·max|A_cc| ≤ 2: shrink the step to that where needed
    dt = min(dt, 1.9 / float(np.abs(fp.generator.diagonal()).max()))
    sol = fp.evolve(fp.normalize(p0), t_final, dt, scheme="crank_nicolson", save_at=times)
    factor = (shape[0] // bins[0], shape[1] // bins[1])
    probs = np.stack([_coarsen(p, factor) * fp.cell_volume * factor[0] * factor[1] for p in sol.p])
    return fp, sol, probs  # probs (T, bx, by): grid probability per histogram bin


@experiment(
    "walkers-vs-fokker-planck",
    equations=("2.5", "2.7", "3.1"),
    statement="Langevin walkers with a q-dependent noise κ(q) and metric g = κ^α, integrated with the Itô drift "
    "∂_ν D^{μν}, have the density that solves the gradient-form Fokker–Planck equation (2.7) (with g = κ: (3.1)).",
    section="Sec. 2 Learning as a stochastic process",
    quick={"walkers": 20000, "grid": 64, "bins": 16, "dt": 0.01, "times": (0.3, 1.0, 2.5)},
    full={"walkers": 400000, "grid": 128, "bins": 32, "dt": 0.0025, "times": (0.3, 1.0, 2.5, 6.0)},
)
def walkers_vs_fokker_planck(ctx: Context) -> Outcome:
    p = ctx.params
    m, n_grid, n_bins, dt = int(p["walkers"]), int(p["grid"]), int(p["bins"]), float(p["dt"])
    times = tuple(float(t) for t in p["times"])
    gamma, scale = 0.5, 1.0
    domain = ((-2.4, 2.4), (-2.0, 2.0))
    mu0, sigma0 = np.array([-1.0, 0.6]), 0.25
    edges = [np.linspace(*domain[0], n_bins + 1), np.linspace(*domain[1], n_bins + 1)]
    t_final = times[-1]

    def p0(x, y):
        return np.exp(-((x - mu0[0]) ** 2 + (y - mu0[1]) ** 2) / (2 * sigma0**2))

    checks, data, panels = [], {}, []
    start = time.perf_counter()
    with _threads(1):
        for i, alpha in enumerate(ALPHAS):
            model = LearningModel(lambda q: double_well(q, scale), metric=Power(alpha), kappa=state_kappa, gamma=gamma)
            gen = torch.Generator().manual_seed(ctx.seed * 1000 + i)
            q0 = torch.as_tensor(mu0) + sigma0 * torch.randn(m, 2, generator=gen, dtype=torch.float64)
            walk = _walker_histograms(model, q0, t_final, dt, times, edges, ctx.seed * 1000 + 100 + i)
            walk_coarse = _walker_histograms(model, q0, t_final, 2 * dt, times, edges, ctx.seed * 1000 + 200 + i)
            no_ito = _walker_histograms(model, q0, t_final, dt, times, edges, ctx.seed * 1000 + 100 + i, ito=False)
            fp, sol, grid = _grid_probabilities(model, domain, (n_grid, n_grid), p0, t_final, dt, times, (n_bins,) * 2)
            _, _, grid_coarse = _grid_probabilities(
                model, domain, (n_grid // 2, n_grid // 2), p0, t_final, 2 * dt, times, (n_bins,) * 2
            )
            # the final time
            w, g = walk[-1], grid[-1]
            l1 = float(np.abs(w - g).sum())
            mc_mean, mc_sd = _mc_l1(g, m)
            grid_err = float(np.abs(grid_coarse[-1] - g).sum())  # grid/time error of the coarse run bounds the fine
            # EM weak error (order 1): the dt-vs-2dt difference beyond what two independent samples differ by
            em_err = max(0.0, float(np.abs(walk_coarse[-1] - w).sum()) - math.sqrt(2.0) * mc_mean)
            tol = mc_mean + 4.0 * mc_sd + grid_err + em_err
            checks.append(
                Check(
                    f"α = {alpha:g}: L1(walker histogram, Fokker–Planck) at t = {t_final:g}",
                    l1,
                    tol,
                    note=f"tolerance = MC mean {mc_mean:.4f} + 4 sd {4 * mc_sd:.4f} + grid error {grid_err:.4f} "
                    f"({n_grid}² vs {n_grid // 2}² cells, dt vs 2dt) + EM weak error {em_err:.4f} "
                    f"(dt vs 2dt, beyond MC); "
                    f"{m} walkers, {n_bins}² bins",
                )
            )
            per_time = [float(np.abs(walk[k] - grid[k]).sum()) for k in range(len(times))]
            data[f"alpha={alpha:g}"] = {
                "l1_per_time": per_time,
                "mc_l1_mean": mc_mean,
                "mc_l1_sd": mc_sd,
                "grid_error": grid_err,
                "em_error": em_err,
                "tolerance": tol,
                "mass_outside": float(1.0 - w.sum()),
                "l1_without_ito_drift": float(np.abs(no_ito[-1] - g).sum()),
            }
            panels.append((alpha, fp, sol, walk))
            ctx.progress((i + 1) / len(ALPHAS))
    runtime = time.perf_counter() - start
    data["runtime_s"] = runtime
    data["times"] = times

    fig = _density_figure(panels, times, edges)
    summary = "; ".join(
        f"α = {a:g}: L1 {c.value:.4f} (tolerance {c.tolerance:.4f}; without the Itô drift "
        f"{data[f'alpha={a:g}']['l1_without_ito_drift']:.4f})"
        for a, c in zip(ALPHAS, checks, strict=True)
    )
    return Outcome(
        checks=checks,
        figures={"densities": fig},
        data=data,
        summary=f"Walker histograms ({m} walkers, Euler–Maruyama dt = {dt:g} with the Itô drift) against the "
        f"{n_grid}² finite-volume Fokker–Planck solution at t = {t_final:g}: {summary} ({runtime:.1f} s).",
    )


def _density_figure(panels, times, edges):
    n_rows, n_cols = len(panels), len(times) + 1
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.3 * n_rows), squeeze=False)
    cx = 0.5 * (edges[0][1:] + edges[0][:-1])
    for r, (alpha, fp, sol, walk) in enumerate(panels):
        (ax0, bx), (ay, by) = fp.domain
        for c, t in enumerate(times):
            ax = axes[r, c]
            ax.imshow(sol.p[c + 1 if sol.p.shape[0] > len(times) else c].T, origin="lower",
                      extent=(ax0, bx, ay, by), aspect="auto", cmap="viridis")  # fmt: skip
            ax.set_title(f"α = {alpha:g}, t = {t:g}", fontsize=8)
            ax.tick_params(labelsize=6)
        ax = axes[r, -1]
        bin_w = edges[0][1] - edges[0][0]
        grid_marg = sol.p[-1].sum(axis=1) * fp.hy
        ax.plot(fp.axes[0], grid_marg, "k-", lw=1, label="Fokker–Planck")
        ax.step(cx, walk[-1].sum(axis=1) / bin_w, where="mid", color="C1", label="walkers")
        ax.set_title(f"x-marginal, t = {times[-1]:g}", fontsize=8)
        ax.tick_params(labelsize=6)
        if r == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig

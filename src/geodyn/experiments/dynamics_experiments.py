"""Learning as a stochastic process: walkers against the Fokker–Planck grid ((2.5), (2.7), (3.1))."""

from __future__ import annotations

import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats

from geodyn.dynamics import EulerMaruyama, FokkerPlanck2D, Histogram, LangevinEnsemble, LearningModel
from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment, torch_threads
from geodyn.metric import Power

__all__ = ["double_well", "state_kappa", "walkers_vs_fokker_planck"]

ALPHAS = (0.0, 0.5, 1.0)


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


class _DoubledDiffusion(LearningModel):
    """A wrong (2.7) for a control: D = γ² g⁻¹κg⁻¹, the ½ of D = (γ²/2) g⁻¹κg⁻¹ dropped (drift unchanged)."""

    def diffusion(self, q: torch.Tensor) -> torch.Tensor:
        return 2.0 * super().diffusion(q)


def _walker_histograms(model, q0, t_final, dt, steps_at, edges, seed, ito=True):
    n_steps = round(t_final / dt)
    rec = Histogram(edges, steps=[round(t / dt) for t in steps_at])
    solver = EulerMaruyama(dt, ito_drift=ito)
    LangevinEnsemble(model=model).simulate(q0, n_steps, solver, recorders=[rec], seed=seed)
    return (rec.counts.double() / rec.total).numpy()  # (T, bx, by) probabilities per bin


def _ensembles(model, starts, t_final, dt, times, edges, seeds, ito=True) -> np.ndarray:
    """Bin probabilities (S, T, bx, by) of S independent walker ensembles, one per (start, noise seed)."""
    runs = [
        _walker_histograms(model, q0, t_final, dt, times, edges, s, ito) for q0, s in zip(starts, seeds, strict=True)
    ]
    return np.stack(runs)


def _grid_probabilities(model, domain, shape, p0, t_final, dt, times, bins):
    fp = FokkerPlanck2D(model=model, domain=domain, shape=shape)
    # Crank–Nicolson keeps p ≥ 0 for dt·max|A_cc| ≤ 2: shrink the step to that where needed
    dt = min(dt, 1.9 / float(np.abs(fp.generator.diagonal()).max()))
    sol = fp.evolve(fp.normalize(p0), t_final, dt, scheme="crank_nicolson", save_at=times)
    factor = (shape[0] // bins[0], shape[1] // bins[1])
    probs = np.stack([_coarsen(p, factor) * fp.cell_volume * factor[0] * factor[1] for p in sol.p])
    return fp, sol, probs  # probs (T, bx, by): grid probability per histogram bin


def _agreement(walk: np.ndarray, walk_coarse: np.ndarray, grid: np.ndarray, grid_coarse: np.ndarray, m: int) -> dict:
    """L1 distance at the final time between the pooled histogram of S walker ensembles (M walkers each, step dt)
    and the grid solution, with its tolerance:

    * Monte-Carlo: mean + 4 sd of the L1 of S·M multinomial walkers (one-sided normal level 3e-5);
    * grid: the coarse grid's (h, dt → 2h, 2dt) distance from the fine one bounds the fine one's error (the
      scheme converges at first order or better, so the fine error is at most half of it);
    * Euler–Maruyama: weak order 1, so the dt-vs-2dt distance of the walkers beyond what two independent samples
      differ by (√2 × the Monte-Carlo mean) bounds the error at dt.

    Also the L1 of each ensemble alone and its 95 % t-interval over the S ensembles."""
    n_seeds = walk.shape[0]
    w, wc, g = walk[:, -1].mean(0), walk_coarse[:, -1].mean(0), grid[-1]
    mc_mean, mc_sd = _mc_l1(g, n_seeds * m)
    grid_err = float(np.abs(grid_coarse[-1] - g).sum())
    em_err = max(0.0, float(np.abs(wc - w).sum()) - math.sqrt(2.0) * mc_mean)
    per_seed = [float(np.abs(walk[k, -1] - g).sum()) for k in range(n_seeds)]
    mean = float(np.mean(per_seed))
    half = (
        float(stats.t.ppf(0.975, n_seeds - 1) * np.std(per_seed, ddof=1) / math.sqrt(n_seeds))
        if n_seeds > 1
        else math.nan
    )
    return {
        "l1": float(np.abs(w - g).sum()),
        "tolerance": mc_mean + 4.0 * mc_sd + grid_err + em_err,
        "mc_l1_mean": mc_mean,
        "mc_l1_sd": mc_sd,
        "grid_error": grid_err,
        "em_error": em_err,
        "l1_per_time": [float(np.abs(walk[:, k].mean(0) - grid[k]).sum()) for k in range(grid.shape[0])],
        "l1_per_ensemble": per_seed,
        "l1_per_ensemble_interval": (mean - half, mean + half),
        "mc_l1_one_ensemble": _mc_l1(g, m)[0],
        "mass_outside": float(1.0 - w.sum()),
    }


def _check(name: str, a: dict, m: int, n_seeds: int, n_grid: int, n_bins: int) -> Check:
    return Check(
        name,
        a["l1"],
        a["tolerance"],
        note=f"tolerance = MC mean {a['mc_l1_mean']:.4f} + 4 sd {4 * a['mc_l1_sd']:.4f} + grid error "
        f"{a['grid_error']:.4f} ({n_grid}² vs {n_grid // 2}² cells, dt vs 2dt) + EM weak error {a['em_error']:.4f} "
        f"(dt vs 2dt, beyond MC); {n_seeds} ensembles × {m} walkers, {n_bins}² bins; L1 per ensemble "
        f"{np.mean(a['l1_per_ensemble']):.4f}, 95 % interval [{a['l1_per_ensemble_interval'][0]:.4f}, "
        f"{a['l1_per_ensemble_interval'][1]:.4f}] (one ensemble's MC mean {a['mc_l1_one_ensemble']:.4f})",
    )


@experiment(
    "walkers-vs-fokker-planck",
    equations=("2.5", "2.7", "3.1"),
    statement="Langevin walkers with a q-dependent noise κ(q) and metric g = κ^α, integrated with the Itô drift "
    "∂_ν D^{μν}, have the density that solves the gradient-form Fokker–Planck equation (2.7) (with g = κ: (3.1)).",
    section="Sec. 2 Learning as a stochastic process",
    quick={"walkers": 10000, "seeds": 2, "grid": 64, "bins": 16, "dt": 0.01, "times": (0.3, 1.0, 2.5)},
    full={"walkers": 16000, "seeds": 5, "grid": 96, "bins": 24, "dt": 0.005, "times": (0.3, 1.0, 2.5, 4.0)},
)
def walkers_vs_fokker_planck(ctx: Context) -> Outcome:
    """Walkers of (2.5) (Euler–Maruyama with the Itô drift ∂_ν D^{μν}) against the finite-volume solution of (2.7)
    for g = κ^α, α ∈ {0, ½, 1} (α = 1: (3.1)). Controls: walkers without the Itô drift where D depends on q, and
    the grid with D doubled."""
    p = ctx.params
    m, n_seeds, n_grid, n_bins, dt = int(p["walkers"]), int(p["seeds"]), int(p["grid"]), int(p["bins"]), float(p["dt"])
    times = tuple(float(t) for t in p["times"])
    alphas = tuple(float(a) for a in p.get("alphas", ALPHAS))
    gamma, scale = 0.5, 1.0
    domain = ((-2.4, 2.4), (-2.0, 2.0))
    mu0, sigma0 = np.array([-1.0, 0.6]), 0.25
    edges = [np.linspace(*domain[0], n_bins + 1), np.linspace(*domain[1], n_bins + 1)]
    t_final = times[-1]

    def p0(x, y):
        return np.exp(-((x - mu0[0]) ** 2 + (y - mu0[1]) ** 2) / (2 * sigma0**2))

    def starts(base):
        gens = [torch.Generator().manual_seed(base + k) for k in range(n_seeds)]
        return [torch.as_tensor(mu0) + sigma0 * torch.randn(m, 2, generator=g, dtype=torch.float64) for g in gens]

    def check(label, agreement):
        return _check(f"{label}: L1(walker histogram, Fokker–Planck) at t = {t_final:g}", agreement, m, n_seeds,
                      n_grid, n_bins)  # fmt: skip

    checks, controls, data, panels = [], [], {}, []
    wrong_d = "(2.7) with D = γ² g⁻¹κg⁻¹ (the ½ dropped), solved on the same grids, against the same walkers"
    start = time.perf_counter()
    with torch_threads(1):
        for i, alpha in enumerate(alphas):
            args = dict(metric=Power(alpha), kappa=state_kappa, gamma=gamma)
            model = LearningModel(lambda q: double_well(q, scale), **args)
            base = ctx.seed * 100_000 + i * 1000
            fine_starts, coarse_starts = starts(base), starts(base + 500)
            fine_seeds, coarse_seeds = (
                [base + 100 + k for k in range(n_seeds)],
                [base + 600 + k for k in range(n_seeds)],
            )
            walk = _ensembles(model, fine_starts, t_final, dt, times, edges, fine_seeds)
            walk2 = _ensembles(model, coarse_starts, t_final, 2 * dt, times, edges, coarse_seeds)

            def grids(mdl):
                fine = _grid_probabilities(mdl, domain, (n_grid,) * 2, p0, t_final, dt, times, (n_bins,) * 2)
                coarse = _grid_probabilities(mdl, domain, (n_grid // 2,) * 2, p0, t_final, 2 * dt, times, (n_bins,) * 2)
                return fine, coarse[2]

            (fp, sol, grid), grid2 = grids(model)
            a = _agreement(walk, walk2, grid, grid2, m)
            checks.append(check(f"α = {alpha:g}", a))
            entry = {"agreement": a}
            # the Itô drift ∂_ν D^{μν} vanishes where D is constant (α = ½ here: D = γ²/2 I); there leaving it out
            # is the same theory, not a wrong one, so that control runs only where the drift is measured non-zero
            centres = torch.as_tensor(np.stack([c.ravel() for c in fp.centres], axis=-1))
            ito_size = float(model.ito_drift(centres).abs().max())
            entry["max_ito_drift_on_grid"] = ito_size
            no_ito = None
            if ito_size > 1e-12:
                no_ito = _ensembles(model, fine_starts, t_final, dt, times, edges, fine_seeds, ito=False)
                no_ito2 = _ensembles(model, coarse_starts, t_final, 2 * dt, times, edges, coarse_seeds, ito=False)
                b = _agreement(no_ito, no_ito2, grid, grid2, m)
                entry["without_ito_drift"] = b
                controls.append(
                    Control(
                        f"walkers without the Itô drift, α = {alpha:g}",
                        "Euler–Maruyama without ∂_ν D^{μν} (its density solves the Itô form ∂_μ∂_ν(D^{μν}p), not "
                        f"(2.7)); D depends on q at α = {alpha:g} (max |∂_ν D^{{μν}}| = {ito_size:.3f} on the grid)",
                        [check(f"α = {alpha:g}, no Itô drift", b)],
                    )
                )
            wrong = _DoubledDiffusion(lambda q: double_well(q, scale), **args)
            (_, sol_d, grid_d), grid_d2 = grids(wrong)
            c = _agreement(walk, walk2, grid_d, grid_d2, m)
            entry["fokker_planck_with_doubled_d"] = c
            controls.append(
                Control(
                    f"Fokker–Planck with D doubled, α = {alpha:g}",
                    wrong_d,
                    [check(f"α = {alpha:g}, D doubled", c)],
                )
            )
            data[f"alpha={alpha:g}"] = entry
            panels.append((alpha, fp, sol, walk, no_ito, sol_d, a, entry))
            ctx.progress((i + 1) / len(alphas))
    runtime = time.perf_counter() - start
    data.update(runtime_s=runtime, times=times, walkers_per_ensemble=m, ensembles=n_seeds)

    figures = {"densities": _density_figure(panels, times, edges), "l1_vs_time": _l1_figure(panels, times)}
    parts = []
    for alpha, *_, entry in panels:
        a = entry["agreement"]
        part = f"α = {alpha:g}: L1 {a['l1']:.4f} (tolerance {a['tolerance']:.4f}"
        if "without_ito_drift" in entry:
            part += f"; without the Itô drift {entry['without_ito_drift']['l1']:.4f}"
        parts.append(part + f"; against D doubled {entry['fokker_planck_with_doubled_d']['l1']:.4f})")
    notes = [
        f"α = {a:g}: the Itô drift vanishes on the grid (D constant), so no Itô-drift control is run there"
        for a, *_, entry in panels
        if "without_ito_drift" not in entry
    ]
    if n_seeds < 5:
        notes.append(f"{ctx.size} size: {n_seeds} walker ensembles (full size: 5)")
    return Outcome(
        checks=checks,
        controls=controls,
        figures=figures,
        data=data,
        summary=f"Walker histograms ({n_seeds} ensembles × {m} walkers, Euler–Maruyama dt = {dt:g} with the Itô "
        f"drift) against the {n_grid}² finite-volume Fokker–Planck solution at t = {t_final:g}: {'; '.join(parts)} "
        f"({runtime:.1f} s).",
        notes=notes,
    )


def _heat(fig, ax, z, extent, title, label, **kw):
    im = ax.imshow(z.T, origin="lower", extent=extent, aspect="auto", **kw)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(r"$q^1$", fontsize=7)
    ax.set_ylabel(r"$q^2$", fontsize=7)
    ax.tick_params(labelsize=6)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def _density_figure(panels, times, edges):
    """Per α: the Fokker–Planck density, the walker density and their difference at the final time (heat maps, the
    first two on one colour scale), and both marginals with the controls."""
    n_rows, t = len(panels), times[-1]
    fig, axes = plt.subplots(n_rows, 5, figsize=(20, 3.4 * n_rows), squeeze=False)
    centres = [0.5 * (e[1:] + e[:-1]) for e in edges]
    widths = [e[1] - e[0] for e in edges]
    extent = (edges[0][0], edges[0][-1], edges[1][0], edges[1][-1])
    for r, (alpha, fp, sol, walk, no_ito, sol_d, a, _entry) in enumerate(panels):
        w = walk[:, -1].mean(0) / (widths[0] * widths[1])  # walker density per bin
        factor = (fp.shape[0] // w.shape[0], fp.shape[1] // w.shape[1])
        g = _coarsen(sol.p[-1], factor)
        top = max(float(sol.p[-1].max()), float(w.max()))
        (ax0, bx), (ay, by) = fp.domain
        _heat(fig, axes[r, 0], sol.p[-1], (ax0, bx, ay, by), f"Fokker–Planck (2.7): $p(q, t={t:g})$, α = {alpha:g}",
              r"$p$", cmap="viridis", vmin=0, vmax=top)  # fmt: skip
        _heat(fig, axes[r, 1], w, extent, f"walkers (with Itô drift): histogram, α = {alpha:g}", r"$p$",
              cmap="viridis", vmin=0, vmax=top)  # fmt: skip
        lim = float(np.abs(w - g).max())
        _heat(fig, axes[r, 2], w - g, extent, f"walkers − Fokker–Planck, α = {alpha:g} (L1 = {a['l1']:.3f})",
              r"$\Delta p$", cmap="RdBu_r", vmin=-lim, vmax=lim)  # fmt: skip
        for axis in (0, 1):
            ax, other = axes[r, 3 + axis], 1 - axis
            hh = fp.hy if axis == 0 else fp.hx
            ax.plot(fp.axes[axis], sol.p[-1].sum(axis=other) * hh, "k-", lw=1.2, label="Fokker–Planck (2.7)")
            ax.plot(fp.axes[axis], sol_d.p[-1].sum(axis=other) * hh, "k:", lw=1, label="control: D doubled")
            walk_m = walk[:, -1].mean(0).sum(axis=other) / widths[axis]
            ax.step(centres[axis], walk_m, where="mid", color="C1", label="walkers")
            if no_ito is not None:
                ax.step(centres[axis], no_ito[:, -1].mean(0).sum(axis=other) / widths[axis], where="mid",
                        color="C3", lw=0.9, label="control: walkers, no Itô drift")  # fmt: skip
            ax.set_title(f"$q^{axis + 1}$-marginal, t = {t:g}, α = {alpha:g}", fontsize=8)
            ax.set_xlabel(f"$q^{axis + 1}$", fontsize=7)
            ax.set_ylabel(f"$\\int p\\,\\mathrm{{d}}q^{other + 1}$", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _l1_figure(panels, times):
    """L1(walkers, Fokker–Planck) at every saved time, for the claim and its controls, with the tolerance of the
    check at the final time."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, (alpha, *_rest, entry) in enumerate(panels):
        a = entry["agreement"]
        ax.plot(times, a["l1_per_time"], "o-", color=f"C{i}", label=f"α = {alpha:g}: walkers vs (2.7)")
        ax.plot(times, entry["fokker_planck_with_doubled_d"]["l1_per_time"], ":", color=f"C{i}",
                label=f"α = {alpha:g}: control, D doubled")  # fmt: skip
        if "without_ito_drift" in entry:
            ax.plot(times, entry["without_ito_drift"]["l1_per_time"], "s--", ms=3, color=f"C{i}",
                    label=f"α = {alpha:g}: control, no Itô drift")  # fmt: skip
        ax.plot([times[-1]], [a["tolerance"]], "_", ms=18, mew=2, color=f"C{i}")
    ax.plot([], [], "_", ms=12, mew=2, color="k", label=f"tolerance of the check at t = {times[-1]:g}")
    ax.set(xlabel=r"time $t$", ylabel=r"$L_1 = \sum_b |p_b^{\mathrm{walkers}} - p_b^{\mathrm{FP}}|$",
           yscale="log", title="walkers against the Fokker–Planck grid: claim and controls")  # fmt: skip
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig

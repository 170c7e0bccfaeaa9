"""``nelson-walkers``: stochastic learners whose density follows |ψ(t)|² ((3.7), (3.10), (3.11)).

The walkers and ψ are stepped together; the walkers' empirical law is compared at several times with |ψ(t)|² sampled
independently (a reference sample), through W1 against its sampling floor and through z-scores of the first two
moments. The control drops the osmotic velocity (the walkers then follow the learning flow −γ∂θ plus noise only)
and is judged by the same checks.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm, wasserstein_distance
from scipy.stats import t as student_t

from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment
from geodyn.quantum import (
    Grid,
    Hamiltonian,
    NelsonWalkers,
    SplitStepSchrodinger,
    gaussian,
    sample_density,
    wasserstein_floor,
)

__all__ = ["nelson"]

TIMES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, math.pi)
N_CONTROL = 3  # without the osmotic velocity the walkers miss |ψ|² by far already at the first times
DELTA = 1e-4  # family-wise false-alarm level of the checks (over times, moments and seeds)


def _compare(run, grid, m_ref, rng, n_times: int, n_seeds: int) -> dict[str, np.ndarray]:
    """W1 of the walkers against an independent sample of |ψ(t)|², its floor E W1 and Borell–TIS bound, and the
    moment z-scores, at each recorded time."""
    x = grid.axes[0]
    m_w = run.x.shape[1]
    n_eff = 1.0 / (1.0 / m_w + 1.0 / m_ref)
    out = {k: [] for k in ("w1", "floor", "sd", "bound", "z_mean", "z_var")}
    for k in range(len(run.times)):
        dens = np.abs(run.psi[k]) ** 2
        mu = float(grid.integrate(x * dens).real)
        var = float(grid.integrate((x - mu) ** 2 * dens).real)
        ref = sample_density(dens, grid, m_ref, rng)
        mean, sd = wasserstein_floor(dens, grid, m_w, m_ref)
        out["w1"].append(wasserstein_distance(run.x[k], ref))
        out["floor"].append(mean)
        out["sd"].append(sd)
        # Borell–TIS: P(W1 ≥ E W1 + u) ≤ exp(−n u²/(2σ_x²)), at family level δ over the compared times and seeds
        out["bound"].append(mean + math.sqrt(var) * math.sqrt(2 * math.log(n_times * n_seeds / DELTA) / n_eff))
        out["z_mean"].append(abs(run.x[k].mean() - mu) / math.sqrt(var / m_w))
        out["z_var"].append(abs(run.x[k].var() - var) / (var * math.sqrt(2 / m_w)))
    return {k: np.array(v) for k, v in out.items()}


def _checks(per_seed: list[dict[str, np.ndarray]], z: float) -> list[Check]:
    excess = max(float(np.max(c["w1"] - c["bound"])) for c in per_seed)
    z_moments = max(float(max(c["z_mean"].max(), c["z_var"].max())) for c in per_seed)
    # the W1 z-scores at different times share the walkers: sd of their mean is ≤ 1 for any correlation
    z_w1 = max(abs(float(np.mean((c["w1"] - c["floor"]) / c["sd"]))) for c in per_seed)
    ratios = np.array([c["w1"] / c["floor"] for c in per_seed])
    return [
        Check(
            "max over t and seeds of W1(walkers, |ψ|²) − Borell–TIS bound above the sampling floor",
            excess,
            0.0,
            note=f"W1 / E W1 = {np.round(ratios.mean(0), 2)} (mean over seeds)",
        ),
        Check("max |z| of the walkers' mean and variance against |ψ(t)|²", z_moments, z),
        Check("max over seeds of |mean over t of the W1 z-score (W1 − E W1)/sd|", z_w1, z),
    ]


@experiment(
    "nelson-walkers",
    equations=("3.7", "3.10", "3.11"),
    statement="Stochastic learners with drift b = v + u (current velocity −γ∂θ plus osmotic velocity (ħ/2m)∂log p) "
    "and diffusion ħ/(2m) have the density |ψ(t)|² of the Schrödinger evolution at all times.",
    section="Sec. 3 Quantum regime",
    quick={"walkers": 10000, "dt": 4e-3, "grid": 256, "reference": 200000, "seeds": 1},
    full={"walkers": 40000, "dt": 2e-3, "grid": 512, "reference": 800000, "seeds": 5},
)
def nelson(ctx: Context) -> Outcome:
    p = ctx.params
    m_w, m_ref, n_seeds = int(p["walkers"]), int(p["reference"]), int(p["seeds"])
    grid = Grid((-10.0, 10.0), int(p["grid"]))
    x = grid.axes[0]
    ham = Hamiltonian(grid, 1.0, 1.0, 0.5 * x * x)  # γ = 1, β = 4
    psi0 = ham.normalize(gaussian(grid, 1.5, 0.5))
    walkers = NelsonWalkers(ham, SplitStepSchrodinger(float(p["dt"])))
    k_times = len(TIMES)
    # two-sided normal quantile for 2K moment z-scores and the pooled W1 z-score per seed, at family level δ
    z = float(norm.isf(DELTA / (2 * (2 * k_times + 1) * n_seeds)))
    claim, control, runs = [], [], []
    for s in range(n_seeds):
        seed = ctx.seed + 1000 * s
        rng = np.random.default_rng(seed)
        x0 = sample_density(np.abs(psi0) ** 2, grid, m_w, rng)

        def progress(f, s=s):
            ctx.progress((s + 0.8 * f) / n_seeds)

        run = walkers.run(psi0, x0, math.pi, list(TIMES), seed=seed + 1, progress=progress)
        wrong = walkers.run(psi0, x0, TIMES[N_CONTROL - 1], list(TIMES[:N_CONTROL]), seed=seed + 1, velocity="current")
        claim.append(_compare(run, grid, m_ref, rng, k_times, n_seeds))
        control.append(_compare(wrong, grid, m_ref, rng, k_times, n_seeds))
        runs.append((run, wrong))
        ctx.progress((s + 1) / n_seeds)
    checks = _checks(claim, z)
    controls = [
        Control(
            "no osmotic velocity",
            "walkers with the current velocity −γ∂θ and the diffusion ħ/(2m) but without the osmotic velocity "
            "(ħ/2m)∂log p",
            _checks(control, z),
        )
    ]
    ratio = np.array([c["w1"] / c["floor"] for c in claim])
    ratio_control = np.array([c["w1"] / c["floor"] for c in control])
    fig = _figure(runs[0], claim[0], control[0], m_w, m_ref, grid)
    notes = [] if n_seeds >= 5 else [f"{ctx.size} size: {n_seeds} seed(s); the full size runs 5 with intervals"]
    spread = ratio.max(1)  # per seed: the worst time
    if n_seeds > 1:  # 95 % Student-t interval of the seed mean
        half = float(student_t.isf(0.025, n_seeds - 1) * spread.std(ddof=1) / math.sqrt(n_seeds))
        interval = f"{spread.mean():.2f} ± {half:.2f} (95 % over {n_seeds} seeds)"
    else:
        half, interval = math.nan, f"{spread.mean():.2f} (one seed, no interval)"
    return Outcome(
        checks=checks,
        controls=controls,
        figures={"walkers": fig},
        data={
            "times": runs[0][0].times.tolist(),
            "seeds": n_seeds,
            "w1_over_floor": ratio,
            "max_w1_over_floor_mean_ci95": [float(spread.mean()), half],
            "w1_over_floor_control": ratio_control,
            "w1": [c["w1"] for c in claim],
            "bound": [c["bound"] for c in claim],
        },
        summary=f"{n_seeds} seed(s) × {m_w} walkers (stochastic Heun, dt = {p['dt']:g}) against |ψ(t)|²: max over t "
        f"of W1 / floor {interval}; without the "
        f"osmotic velocity {_span(ratio_control[:, -1])}× the floor by "
        f"t = {TIMES[N_CONTROL - 1]:g}.",
        notes=notes,
    )


def _span(values: np.ndarray) -> str:
    lo, hi = f"{values.min():.0f}", f"{values.max():.0f}"
    return lo if lo == hi else f"{lo}–{hi}"


def _figure(runs, claim, control, m_w, m_ref, grid):
    run, wrong = runs
    x = grid.axes[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
    edges = np.linspace(-4, 4, 81)
    for k in (0, 2, 4, 6):
        c = f"C{k // 2}"
        axes[0].hist(run.x[k], bins=edges, density=True, histtype="step", color=c, label=f"$t = {run.times[k]:.2f}$")
        axes[0].plot(x, np.abs(run.psi[k]) ** 2, color=c, lw=0.8)
    axes[0].set_xlim(-4, 4)
    axes[0].set_xlabel(r"$q$")
    axes[0].set_ylabel(r"density $p(q, t)$")
    axes[0].set_title(r"walker histograms (steps) and $|\psi(q, t)|^2$ (lines)", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].hist(wrong.x[-1], bins=edges, density=True, histtype="step", color="C3", label="no osmotic velocity")
    axes[1].hist(run.x[N_CONTROL - 1], bins=edges, density=True, histtype="step", color="C0", label="Nelson walkers")
    axes[1].plot(x, np.abs(run.psi[N_CONTROL - 1]) ** 2, "k", lw=0.8, label=r"$|\psi|^2$")
    axes[1].set_xlim(-4, 4)
    axes[1].set_xlabel(r"$q$")
    axes[1].set_ylabel(rf"density at $t = {TIMES[N_CONTROL - 1]:g}$")
    axes[1].set_title("control: walkers without the osmotic velocity", fontsize=9)
    axes[1].legend(fontsize=7)
    ts = run.times
    axes[2].plot(ts, claim["w1"] / claim["floor"], "o-", label="Nelson walkers")
    axes[2].plot(ts[:N_CONTROL], control["w1"] / control["floor"], "s-", color="C3", label="no osmotic velocity")
    axes[2].plot(ts, claim["bound"] / claim["floor"], "k--", lw=0.8, label="Borell–TIS bound")
    axes[2].set_yscale("log")
    axes[2].set_xlabel(r"$t$")
    axes[2].set_ylabel(r"$W_1 / \mathbb{E}\,W_1$ (sampling floor)")
    axes[2].set_title(rf"$W_1$(walkers, $|\psi|^2$), {m_w} walkers vs {m_ref} reference samples", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig

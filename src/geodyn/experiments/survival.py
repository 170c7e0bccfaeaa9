"""Survival of the smartest (EQUATIONS.md §5 "memory", (4.10), (6.2), (6.5)): in a changing environment, do
learners whose jump covariance is built from a memory of past fluctuations out-track flat (α = 0) learners?

Set-up (every number is a size parameter):

* Environment — a fitness peak H(q, t) = ½ (q − c(t))ᵀ K (q − c(t)) in N dimensions with curvatures k_i
  log-spaced with ratio ``condition``; every ``period`` steps the optimum switches to c = a ξ / √k with fresh
  random signs ξ ∈ {±1}^N (so a trait that moves contributes ½ k_i (2a/√k_i)² = 2a² to the loss whatever its
  curvature, and optima are not revisited: an earlier version alternated between +c and −c, and there a learner
  whose jumps were all rejected scored half the equilibrium fitness by waiting for the optimum to come back).
* Learners — populations of independent genomes under jump × sigmoid acceptance (4.1)/(4.5) at selection
  strength β_s. Flat: σ = s² I. Memory: an EMA (time constant τ) κ̂ of the fluctuations of the selection gradient
  the learners experienced, and σ ∝ f(κ̂)⁻¹ with f = κ̂^{1/2} (6.2) or the three-regime law ε + κ̂^{1/2} + ζκ̂ (6.5)
  (:class:`~geodyn.evolution.MemoryJump`). The memory is pooled over each learner's population (``pooled``);
  a per-genome memory makes a genome's σ depend on its own past positions, which breaks the symmetry (4.2) of
  the jumps and biases the stationary state (measured: −0.015 ± 0.004 in static fitness at quick size).
  Every σ is trace-normalised: all learners spend the same mutational budget E|Δq|² = N s².
* Fairness — each learner gets the same grid of jump scales s on a tuning run and keeps its best; the comparison
  is made on a fresh run (new seed) so that picking the best of a grid does not bias it.
* Measure — population mean fitness e^{−H} over time, and its time average after the first period. Genomes are
  independent chains (no reproduction), so the per-genome time averages give the Monte-Carlo error.
* Controls — the memory time constant τ (from 1 step, an instantaneous fluctuation estimate, to several periods),
  and a static environment, where every learner has the same stationary state e^{−β_s H} (4.4), so no advantage
  may appear there.

The checks state what the run shows, either way.
"""

from __future__ import annotations

import contextlib
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from geodyn.evolution import MeanEnergy, MemoryJump, MovingOptimum, Population, Quadratic, Sigmoid, TimeAverage
from geodyn.experiments.registry import Check, Context, Outcome, experiment
from geodyn.metric import MetricLaw, Power, ThreeRegime

#: |z| of a Gaussian estimate at two-sided level 1e-4 (the Monte-Carlo convention of the test suite).
Z = 3.89


@contextlib.contextmanager
def _threads(n: int):
    """Run with ``n`` intra-op threads (populations of a few thousand genomes step faster on one thread: thread
    start-up costs more than the work); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def learners(p: dict) -> dict[str, MetricLaw]:
    """The compared metric laws: flat (6.3), memory with g ∝ κ̂^{1/2} (6.2), memory with the three-regime law (6.5)."""
    return {
        "flat (α = 0)": Power(0.0),
        "memory, g ∝ κ̂^½": Power(0.5),
        "memory, three-regime": ThreeRegime(p["eps"], p["zeta"]),
    }


def environment(p: dict, seed: int, static: bool = False):
    """The switching fitness peak and its first optimum c₀ (with ``static``: the peak held at c₀).

    Optimum of period j: c_j = a ξ_j / √k with i.i.d. random signs ξ_j ∈ {±1}^N (seeded), so a switch moves every
    trait by 0 or 2a/√k_i and an optimum is almost never revisited (a learner that stops moving gains nothing from
    the environment coming back, as it would between two alternating optima).
    """
    k = torch.logspace(0.0, -math.log10(p["condition"]), p["dim"], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    periods = p["steps"] // p["period"] + 1
    signs = torch.randint(0, 2, (periods, p["dim"]), generator=gen).double() * 2.0 - 1.0
    centers = p["amplitude"] * signs / k.sqrt()
    if static:
        return Quadratic(k, centers[0]), k, centers[0]
    return MovingOptimum.switching(k, centers, p["period"]), k, centers[0]


def run_kinds(
    p: dict,
    laws: list[MetricLaw],
    scales: list[float],
    taus: list[float],
    per: int,
    seed: int,
    static: bool = False,
    record_every: int = 0,
    progress=None,
) -> dict:
    """One population holding ``per`` independent genomes of every kind (law, scale, τ); returns the per-kind
    mean of the per-genome time-averaged fitness, its standard error, and (optionally) the mean fitness trace."""
    land, k, c = environment(p, seed + 7, static)
    n_kinds, dim, beta = len(laws), p["dim"], p["beta_s"]
    kinds = torch.arange(n_kinds).repeat_interleave(per)
    gen = torch.Generator().manual_seed(seed)
    # start in equilibrium around the first optimum: q − c ~ N(0, (β_s K)⁻¹), the Gibbs state (4.4)
    q0 = c + torch.randn(len(kinds), dim, generator=gen, dtype=torch.float64) / (beta * k).sqrt()
    jump = MemoryJump(laws, scales, taus, size=len(kinds), dim=dim, kinds=kinds, moment=p["moment"], pooled=p["pooled"])
    pop = Population(q0, land, jump, Sigmoid(beta), labels=kinds, seed=seed + 1)
    avg = TimeAverage(burn_in=p["period"])
    recs = [avg]
    trace = None
    if record_every:
        trace = MeanEnergy(every=record_every, labels=n_kinds)
        recs.append(trace)
    pop.run(p["steps"], recs, progress=progress)
    f = avg.fitness.reshape(n_kinds, per)
    out = {"mean": f.mean(1).numpy(), "se": (f.std(1) / math.sqrt(per)).numpy(), "per_genome": f.numpy()}
    if trace is not None:
        out["steps"] = np.array(trace.steps)
        out["trace"] = trace.fitness_by_label.numpy()
    return out


def _difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of a minus mean of b (independent genomes) and its standard error."""
    return float(a.mean() - b.mean()), float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


@experiment(
    "survival-of-the-smartest",
    equations=("4.10", "6.2", "6.5"),
    statement="In a changing environment, learners whose mutation covariance is built from a memory of past "
    "fluctuations (g ∝ κ̂^½ or the three-regime law, α > 0) track the optimum better than flat (α = 0) learners "
    "with the same mutational budget, and so reach a higher time-averaged fitness.",
    section="Sec. 6 Complex systems",
    quick={
        "dim": 8,
        "condition": 100.0,
        "amplitude": 0.5,
        "period": 200,
        "steps": 1200,
        "beta_s": 4.0,
        "eps": 0.03,
        "zeta": 3.0,
        "tau": 400.0,
        "taus": (1.0, 10.0, 100.0, 1000.0),
        "moment": "central",
        "pooled": True,
        "scales": (0.2, 0.4, 0.8, 1.6, 3.2, 6.4),
        "tune_genomes": 96,
        "genomes": 256,
        "record_every": 10,
    },
    full={
        "dim": 16,
        "condition": 100.0,
        "amplitude": 0.5,
        "period": 400,
        "steps": 6000,
        "beta_s": 4.0,
        "eps": 0.03,
        "zeta": 3.0,
        "tau": 800.0,
        "taus": (1.0, 10.0, 100.0, 1000.0, 10000.0),
        "moment": "central",
        "pooled": True,
        "scales": (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6),
        "tune_genomes": 192,
        "genomes": 768,
        "record_every": 10,
    },
)
def survival_of_the_smartest(ctx: Context) -> Outcome:
    p = dict(ctx.params)
    names, laws = zip(*learners(p).items(), strict=True)
    scales, tau = list(p["scales"]), p["tau"]
    with _threads(1):
        # 1. tuning: every learner on the same grid of jump scales
        grid_laws = [law for law in laws for _ in scales]
        grid_scales = [s for _ in laws for s in scales]
        tune = run_kinds(
            p,
            grid_laws,
            grid_scales,
            [tau] * len(grid_laws),
            p["tune_genomes"],
            ctx.seed,
            progress=lambda f: ctx.progress(0.4 * f),
        )
        tuned = tune["mean"].reshape(len(laws), len(scales))
        best = [scales[int(i)] for i in tuned.argmax(1)]
        # 2. evaluation on a fresh seed: the three learners at their best scale, plus the α = ½ learner at other τ
        taus = [t for t in p["taus"] if t != tau]
        eval_laws = list(laws) + [laws[1]] * len(taus)
        eval_scales = best + [best[1]] * len(taus)
        eval_taus = [tau] * len(laws) + taus
        ev = run_kinds(
            p,
            eval_laws,
            eval_scales,
            eval_taus,
            p["genomes"],
            ctx.seed + 1000,
            record_every=p["record_every"],
            progress=lambda f: ctx.progress(0.4 + 0.4 * f),
        )
        # 3. control: a static environment, flat against memory (g ∝ κ̂^½) at their best scales
        st = run_kinds(
            p,
            [laws[0], laws[1]],
            [best[0], best[1]],
            [tau, tau],
            p["genomes"],
            ctx.seed + 2000,
            static=True,
            progress=lambda f: ctx.progress(0.8 + 0.2 * f),
        )

    per_genome = ev["per_genome"]
    checks, data = [], {}
    flat = per_genome[0]
    for i in (1, 2):
        diff, se = _difference(per_genome[i], flat)
        checks.append(
            Check(
                f"switching environment: flat − {names[i]} time-averaged fitness (must be < −{Z:g} SE)",
                -diff,
                -Z * se,
                note=f"memory − flat = {diff:+.4f} ± {se:.4f} (SE over {p['genomes']} independent genomes each); "
                f"best jump scales s: flat {best[0]:g}, {names[i]} {best[i]:g}",
            )
        )
    edge = [n for n, b in zip(names, best, strict=True) if b in (scales[0], scales[-1])]
    checks.append(
        Check(
            "learners whose best jump scale lies on the edge of the tuning grid (fair tuning needs none)",
            float(len(edge)),
            0.0,
            note=", ".join(edge) if edge else "every learner's optimum is inside the grid",
        )
    )
    diff_static, se_static = _difference(st["per_genome"][1], st["per_genome"][0])
    checks.append(
        Check(
            f"static environment: {names[1]} − flat time-averaged fitness (no advantage, |Δ| ≤ {Z:g} SE)",
            diff_static,
            Z * se_static,
            expected=0.0,
            note="both learners share the Gibbs state e^{−β_s H} (4.4); an advantage here would be a bug",
        )
    )
    data.update(
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()},
        learners=list(names),
        tuning={"scales": scales, "fitness": tuned.tolist(), "se": tune["se"].reshape(tuned.shape).tolist()},
        best_scales=dict(zip(names, best, strict=True)),
        time_averaged_fitness={n: float(ev["mean"][i]) for i, n in enumerate(names)},
        time_averaged_fitness_se={n: float(ev["se"][i]) for i, n in enumerate(names)},
        tau_sweep={
            "taus": [tau, *taus],
            "fitness": [float(ev["mean"][1])] + [float(x) for x in ev["mean"][len(laws) :]],
            "se": [float(ev["se"][1])] + [float(x) for x in ev["se"][len(laws) :]],
        },
        static={
            "flat": float(st["mean"][0]),
            "memory": float(st["mean"][1]),
            "difference": diff_static,
            "se": se_static,
        },
        trace_steps=ev["steps"].tolist(),
        trace={n: ev["trace"][:, i].tolist() for i, n in enumerate(names)},
    )
    figures = _figures(p, names, ev, scales, tuned, tune, data)
    adv = [data["time_averaged_fitness"][n] - data["time_averaged_fitness"][names[0]] for n in names[1:]]
    summary = (
        f"Time-averaged fitness in a switching environment (period {p['period']}, N = {p['dim']}, curvature ratio "
        f"{p['condition']:g}), each learner at its best jump scale: "
        + ", ".join(
            f"{n} {data['time_averaged_fitness'][n]:.4f} ± {data['time_averaged_fitness_se'][n]:.4f}" for n in names
        )
        + f". Memory advantage over flat: {adv[0]:+.4f} (κ̂^½), {adv[1]:+.4f} (three-regime). "
        f"Static control: memory − flat = {diff_static:+.4f} ± {se_static:.4f}. τ sweep (κ̂^½): "
        + ", ".join(
            f"τ={t:g}: {f:.4f}" for t, f in zip(data["tau_sweep"]["taus"], data["tau_sweep"]["fitness"], strict=True)
        )
        + "."
    )
    return Outcome(checks=checks, figures=figures, data=data, summary=summary)


def _figures(p, names, ev, scales, tuned, tune, data) -> dict:
    colors = ["tab:gray", "tab:blue", "tab:red"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, n in enumerate(names):
        ax.plot(
            ev["steps"],
            ev["trace"][:, i],
            color=colors[i],
            lw=1.0,
            label=f"{n} (s = {data['best_scales'][n]:g}): ⟨F⟩ = {data['time_averaged_fitness'][n]:.3f}",
        )
    for t in range(p["period"], p["steps"] + 1, p["period"]):
        ax.axvline(t, color="k", lw=0.4, alpha=0.3)
    ax.set(
        xlabel="step",
        ylabel="population mean fitness exp(−H)",
        title=f"switching optimum (period {p['period']}): flat vs memory learners",
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()

    fig2, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    se = tune["se"].reshape(tuned.shape)
    for i, n in enumerate(names):
        ax1.errorbar(scales, tuned[i], yerr=se[i], color=colors[i], marker="o", ms=3, capsize=2, label=n)
    ax1.set(
        xscale="log",
        xlabel="jump scale s (tr σ = N s²)",
        ylabel="time-averaged fitness",
        title="tuning: same grid for every learner",
    )
    ax1.set_xticks(scales, [f"{s:g}" for s in scales])
    ax1.minorticks_off()
    ax1.legend(fontsize=8)
    sweep = data["tau_sweep"]
    order = np.argsort(sweep["taus"])
    ax2.errorbar(
        np.array(sweep["taus"])[order],
        np.array(sweep["fitness"])[order],
        yerr=np.array(sweep["se"])[order],
        marker="o",
        color=colors[1],
        capsize=2,
        label=names[1],
    )
    flat = data["time_averaged_fitness"][names[0]]
    ax2.axhline(flat, color=colors[0], ls="--", label=f"{names[0]}")
    ax2.set(
        xscale="log",
        xlabel="memory time constant τ (steps)",
        ylabel="time-averaged fitness",
        title=f"memory length (period {p['period']})",
    )
    ax2.legend(fontsize=8)
    fig2.tight_layout()
    return {"fitness_vs_time": fig, "tuning_and_memory": fig2}

"""The εζ phase transition of the three-regime metric, measured on a real network ((6.5)–(6.9)).

The digits MLP is trained briefly and held at fixed parameters; the three-regime optimizer (g = ε + √K̂ + ζK̂, the
default centred moment) runs there at stationarity (≥ 5τ₂ steps), with the mean gradient of the data pool
subtracted so that it steps by the noise of (2.6). Its noise moment estimates K̂ ≈ ρ κ/b with ρ = 2β₁²/(1 + β₁)
(EQUATIONS.md §7, central noise moment bias); κ/b comes from per-example gradients, without the optimizer.

1. Per regime. A law with ε² and ζ⁻² at the 10th and 90th percentiles of ρκ/b labels every variable slow,
   intermediate or fast by the dominant term of g(ρκ_ii/b) (the §5 convention). Within each group the slope of
   log Var(Δq_i) on log κ_ii/b gives a measured exponent with its interval. Checks: each group within ⅛ of what
   the law predicts for it (λ/g(λ)² fitted over the same λ, numpy closed form); the intermediate group within ⅛
   of ½; the slow group below ¼; the three intervals ordered slow < intermediate < fast without overlap. A group
   labelled by its dominant term reaches from its band edge, where α_eff is ¼ or ¾ (for εζ → 0), outwards: on a
   spectrum whose tails span one or two decades the slow and fast groups sit near 0.1–0.2 and 0.7–0.8, which the
   law predicts and the checks hold it to.
2. Across εζ, with λ* = ε/ζ at the median of ρκ/b: a variable is *measured* intermediate when its step standard
   deviation is at least half the α = ½ plateau (the √λ term then carries ≥ ½ of its metric). The plateau,
   γ√((1 − β₁)/(1 + β₁)/ρ) for white noise, is calibrated on the run at the smallest εζ (median of std_i over the
   law's √λ-share of each variable there), which removes the common second-order bias of K̂'s fluctuations; its
   ratio to the white-noise value is reported. The measured share must match the share predicted from κ/b, vanish
   for εζ ≥ 1 (a share ≥ ½ needs εζ ≤ ¼) and fall as εζ grows.

Controls: labels from a κ that is not the variables' own (randomly permuted across variables; rescaled by 10²).
"""

from __future__ import annotations

import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from geodyn.analysis import estimate_alpha
from geodyn.analysis.stationary import seed_interval
from geodyn.experiments.alpha_of_optimizers import digits_probe
from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment, torch_threads
from geodyn.optim import presets

REGIMES = ("slow", "intermediate", "fast")
NOMINAL = {"slow": 0.0, "intermediate": 0.5, "fast": 1.0}
CELL = 0.25  # the regime convention's cut points ¼ and ¾: half-width of each regime's cell
RESOLUTION = 0.125  # the law's own group prediction: closer to it than to ¼ away
BETA1 = 0.9
RHO = 2 * BETA1**2 / (1 + BETA1)  # K̂/(κ/b) of the centred moment for white noise
LR = 1e-3
BLOCKS = 8
MIN_GROUP = 20


def dominant_regime(lam: np.ndarray, eps: float, zeta: float) -> np.ndarray:
    """0/1/2 by the largest of ε, √λ, ζλ (numpy; the §5 convention, independent of geodyn.metric)."""
    return np.argmax(np.stack([np.full_like(lam, eps), np.sqrt(lam), zeta * lam]), axis=0)


def law_slope_exponent(lam: np.ndarray, eps: float, zeta: float) -> float:
    """α predicted for a group: (1 − s)/2 with s the OLS slope of log(λ/g(λ)²) on log λ over the group (6.8)."""
    x = np.log(lam)
    y = x - 2 * np.log(eps + np.sqrt(lam) + zeta * lam)
    s = float(np.polyfit(x, y, 1)[0])
    return (1 - s) / 2


def _run(probe, eps, zeta, beta2, steps, seed):
    opt = presets.three_regime(probe.params, lr=LR, eps=eps, zeta=zeta, betas=(BETA1, beta2), scale_free=False)
    return probe.measure(opt, math.ceil(5 / (1 - beta2)), steps, seed, blocks=BLOCKS)


def _group_fits(var, kappa, labels):
    """Per regime: AlphaEstimate of the group (None when it has fewer than MIN_GROUP variables)."""
    out = {}
    for r, name in enumerate(REGIMES):
        sel = labels == r
        out[name] = estimate_alpha(var[sel], kappa[sel]) if int(sel.sum()) >= MIN_GROUP else None
    return out


def _interval(fits):
    """Mean over seeds and 95 % half-width (Student-t over seeds; with one seed the fit's own interval)."""
    mean, half = seed_interval([f.alpha for f in fits])
    if math.isnan(half):
        return mean, (fits[0].interval[1] - fits[0].interval[0]) / 2, "one seed: the fit's interval"
    return mean, half, f"t-interval over {len(fits)} seeds"


def _regime_checks(label, per_seed, predicted):
    """The per-regime checks from per-seed group fits ``per_seed`` [{regime: fit}] and the law's predictions
    ``predicted`` [{regime: α}]: each group against the law, the intermediate group at ½, the slow group in its
    cell, and the three intervals separated in the order slow < intermediate < fast."""
    checks, est = [], {}
    for name in REGIMES:
        fits = [f[name] for f in per_seed]
        if any(f is None for f in fits):
            checks.append(Check(f"{label}{name}: measured α", math.nan, RESOLUTION,
                                note=f"fewer than {MIN_GROUP} variables in the group"))  # fmt: skip
            continue
        mean, half, source = _interval(fits)
        est[name] = (mean, half)
        law = float(np.mean([p[name] for p in predicted]))
        checks.append(Check(f"{label}{name}: |α̂ − law's group prediction| + 95 % half-width", abs(mean - law) + half,
                            RESOLUTION, note=f"α̂ = {mean:.3f} ± {half:.3f} ({source}; {fits[0].n} variables); law "
                            f"(6.8) fitted over the group's own ρκ/b: α = {law:.3f}"))  # fmt: skip
    if "intermediate" in est:
        mean, half = est["intermediate"]
        checks.append(Check(f"{label}intermediate: |α̂ − ½| + 95 % half-width", abs(mean - 0.5) + half, RESOLUTION,
                            note="inside the band (6.9) every variable is an efficient learner (5.5)"))  # fmt: skip
    if "slow" in est:
        mean, half = est["slow"]
        checks.append(Check(f"{label}slow: α̂ + 95 % half-width", mean + half, CELL,
                            note="nearest to α = 0 of the three regimes (the convention's cut point ¼)"))  # fmt: skip
    if len(est) == 3:
        gaps = [(est[b][0] - est[b][1]) - (est[a][0] + est[a][1]) for a, b in zip(REGIMES, REGIMES[1:])]
        checks.append(Check(f"{label}order: −min gap between the intervals slow < intermediate < fast", -min(gaps),
                            0.0, note=f"gaps {gaps[0]:.3f}, {gaps[1]:.3f}: each regime's interval above the "
                            "previous one's"))  # fmt: skip
    else:
        checks.append(Check(f"{label}order of the three regimes", math.nan, 0.0, note="a regime has no variables"))
    return checks


def white_noise_plateau() -> float:
    """Step std of an α = ½ law at fixed parameters: γ√((1 − β₁)/(1 + β₁)) √(κ/b)/√(ρκ/b) (EMA of white noise)."""
    return LR * math.sqrt((1 - BETA1) / (1 + BETA1) / RHO)


def _share(blocks, plateau):
    """Measured intermediate share and its Monte-Carlo se (over blocks); per-variable relative se of the std."""
    ratio = blocks.mean(0).sqrt() / plateau
    per_block = [float(((b.sqrt() / plateau) >= 0.5).double().mean()) for b in blocks]
    se = float(np.std(per_block, ddof=1)) / math.sqrt(len(per_block))
    rel = float((blocks.sqrt().std(0) / blocks.sqrt().mean(0)).median()) / math.sqrt(len(blocks))
    return float((ratio >= 0.5).double().mean()), se, rel


@experiment(
    "phase-transition",
    equations=("6.5", "6.6", "6.7", "6.8", "6.9"),
    statement="Under g = ε + √κ + ζκ the variables the law labels slow, intermediate and fast step with measured "
    "exponents near 0, ½ and 1, and the share of intermediate variables falls to zero as εζ grows through 1.",
    section="Sec. 6 Complex systems",
    quick={"seeds": 1, "hidden": 32, "train_steps": 200, "beta2": 0.98, "steps": 320,
           "eps_zeta": [1e-3, 1e-2, 1e-1, 1.0]},
    full={"seeds": 5, "hidden": 64, "train_steps": 1500, "beta2": 0.99, "steps": 1000,
          "eps_zeta": [1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 100.0]},
)  # fmt: skip
def phase_transition(ctx: Context) -> Outcome:
    p = ctx.params
    seeds, beta2, steps, sweep = int(p["seeds"]), float(p["beta2"]), int(p["steps"]), sorted(p["eps_zeta"])
    variants = {
        "own κ": lambda lam, rng: lam,
        "permuted κ": lambda lam, rng: lam[rng.permutation(lam.size)],
        "κ × 10²": lambda lam, rng: 100.0 * lam,
    }
    fits = {v: [] for v in variants}
    predicted = {v: [] for v in variants}
    shares = []  # per seed: list over sweep of (measured, se, predicted, flip band)
    laws, plateaus = [], []
    start = time.perf_counter()
    work = seeds * (1 + len(sweep))
    with torch_threads(1):
        for s in range(seeds):
            seed = ctx.seed + s
            probe = digits_probe(int(p["hidden"]), int(p["train_steps"]), seed)
            kap = probe.kappa[probe.mask]
            lam = RHO * kap.numpy()
            lo, hi = np.quantile(lam, [0.1, 0.9])
            eps, zeta = math.sqrt(lo), 1 / math.sqrt(hi)
            laws.append({"eps": eps, "zeta": zeta, "eps_zeta": eps * zeta})
            var = _run(probe, eps, zeta, beta2, steps, 1000 * seed).mean(0)[probe.mask]
            rng = np.random.default_rng(seed)
            for v, make in variants.items():
                labelled = make(lam, rng)
                labels = dominant_regime(labelled, eps, zeta)
                fits[v].append(_group_fits(var, kap, torch.as_tensor(labels)))
                predicted[v].append({
                    name: law_slope_exponent(lam[labels == r], eps, zeta) if (labels == r).sum() >= MIN_GROUP
                    else math.nan for r, name in enumerate(REGIMES)
                })  # fmt: skip
            ctx.progress((s * (1 + len(sweep)) + 1) / work)
            centre = float(np.median(lam))
            row, plateau = [], None
            for j, ez in enumerate(sweep):
                e, z = math.sqrt(ez * centre), math.sqrt(ez / centre)
                blocks = _run(probe, e, z, beta2, steps, 1000 * seed + j + 1)[:, probe.mask]
                share = np.sqrt(lam) / (e + np.sqrt(lam) + z * lam)
                if plateau is None:  # the smallest εζ: calibrate the plateau there
                    plateau = float(np.median(blocks.mean(0).sqrt().numpy() / share))
                    plateaus.append(plateau / white_noise_plateau())
                measured, se, rel = _share(blocks, plateau)
                band = float((np.abs(share - 0.5) <= 0.5 * 3 * rel).mean())  # may flip within 3 se of the cut
                row.append({"eps_zeta": ez, "measured": measured, "se": se, "predicted": float((share >= 0.5).mean()),
                            "flip_band": band})  # fmt: skip
                ctx.progress((s * (1 + len(sweep)) + j + 2) / work)
            shares.append(row)
    runtime = time.perf_counter() - start

    checks = _regime_checks("", fits["own κ"], predicted["own κ"])
    controls = [
        Control(f"labels from {v}", f"regime labels from {v} instead of each variable's own κ_ii/b",
                _regime_checks(f"[{v}] ", fits[v], predicted[v]))
        for v in variants if v != "own κ"
    ]  # fmt: skip
    mean_row = [
        {key: float(np.mean([shares[s][j][key] for s in range(seeds)])) for key in shares[0][j]}
        for j in range(len(sweep))
    ]
    se_row = [math.sqrt(sum(shares[s][j]["se"] ** 2 for s in range(seeds))) / seeds for j in range(len(sweep))]
    worst = max(abs(r["measured"] - r["predicted"]) - (4 * se + r["flip_band"]) for r, se in zip(mean_row, se_row))
    above = [(r["measured"], se) for r, se in zip(mean_row, se_row) if r["eps_zeta"] >= 1.0]
    increases = sum(
        b["measured"] > a["measured"] + 4 * math.hypot(sa, sb)
        for (a, sa), (b, sb) in zip(zip(mean_row, se_row), zip(mean_row[1:], se_row[1:]))
    )
    checks += [
        Check("share: max over εζ of |measured − predicted| − (4 se + flip band)", worst, 0.0,
              note="measured: steps with std ≥ ½ of the α = ½ plateau; predicted from κ/b by the law; flip band: "
              "variables whose predicted share lies within 3 Monte-Carlo se of ½"),
        Check("share at εζ ≥ 1 (6.6): max measured − 4 se", max(m - 4 * se for m, se in above) if above else math.nan,
              0.0, note="a √λ share ≥ ½ needs εζ ≤ ¼"),
        Check("share: rises along increasing εζ beyond 4 se", float(increases), 0.0,
              note="the band (6.9) narrows as εζ grows: the measured share must not rise"),
        Check(f"share at εζ = {sweep[0]:g} (6.7)", mean_row[0]["measured"], 0.5, expected=1.0,
              note="most variables intermediate when εζ ≪ 1"),
    ]  # fmt: skip
    data = {
        "laws": laws,
        "sweep": mean_row,
        "regimes": {
            v: [{name: (None if f[name] is None else {"alpha": f[name].alpha, "interval": list(f[name].interval),
                                                       "n": f[name].n}) for name in REGIMES} for f in fits[v]]
            for v in variants
        },
        "law_prediction": predicted,
        "plateau_over_white_noise_value": plateaus,
        "runtime_s": runtime,
        "seeds": seeds,
    }  # fmt: skip
    notes = [
        f"β₁ = {BETA1}, β₂ = {beta2:g}: {math.ceil(5 / (1 - beta2))} ≥ 5τ₂ equilibration steps at fixed parameters; "
        f"ρ = {RHO:.4f}.",
        "For the per-regime law ε² and ζ⁻² are the 10th and 90th percentiles of ρκ/b, so all three regimes are "
        f"populated (εζ = {laws[0]['eps_zeta']:.3g} for seed {ctx.seed}).",
        f"Measured α = ½ plateau / white-noise value: {', '.join(f'{x:.3f}' for x in plateaus)} (per seed).",
    ]
    if seeds < 5:
        notes.append(f"{ctx.size} size: {seeds} seed(s) (full size: 5); with one seed the interval is the fit's own.")
    fig = _figure(fits["own κ"][0], predicted["own κ"][0], mean_row, se_row, laws[0])
    regime_summary = ", ".join(
        f"{name} α̂ = {np.mean([f[name].alpha for f in fits['own κ'] if f[name] is not None]):.3f}" for name in REGIMES
    )
    return Outcome(
        checks=checks, controls=controls, figures={"phase": fig}, data=data, notes=notes,
        summary=f"Digits MLP under the three-regime optimizer at stationarity: {regime_summary}; measured "
        "intermediate share " + ", ".join(f"{r['measured']:.0%} at εζ = {r['eps_zeta']:g}" for r in mean_row)
        + f" ({runtime:.0f} s).",
    )  # fmt: skip


def _figure(group_fits, predicted, rows, ses, law):
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4.6))
    names = [n for n in REGIMES if group_fits[n] is not None]
    for i, name in enumerate(REGIMES):
        f = group_fits[name]
        if f is None:
            continue
        lo, hi = f.interval
        ax_a.errorbar(i, f.alpha, yerr=[[f.alpha - lo], [hi - f.alpha]], fmt="o", color=f"C{i}", capsize=4,
                      label=f"measured ({f.n} variables)" if i == 0 else None)  # fmt: skip
        ax_a.plot(i + 0.15, predicted[name], "k_", ms=14, label="law (6.8) over the group" if i == 0 else None)
        ax_a.axhspan(NOMINAL[name] - CELL, NOMINAL[name] + CELL, xmin=(i + 0.1) / 3, xmax=(i + 0.9) / 3,
                     color=f"C{i}", alpha=0.12)  # fmt: skip
    ax_a.set_xticks(range(3), REGIMES)
    ax_a.set(ylabel=r"exponent $\hat\alpha$ from $\mathrm{Var}(\Delta q_i)\propto(\kappa_{ii}/b)^{1-2\alpha}$",
             title=rf"per regime, $\varepsilon\zeta$ = {law['eps_zeta']:.2g} (shaded: regime cells)",
             xlim=(-0.5, 2.5), ylim=(-0.3, 1.3))  # fmt: skip
    ax_a.legend(fontsize=8)
    del names
    ez = [r["eps_zeta"] for r in rows]
    ax_b.errorbar(ez, [r["measured"] for r in rows], yerr=[4 * s for s in ses], fmt="o", label="measured (± 4 se)")
    ax_b.semilogx(ez, [r["predicted"] for r in rows], "k-", label=r"law: share of $\sqrt{\lambda}$ term $\geq 1/2$")
    ax_b.axvline(1.0, color="grey", ls=":", lw=1)
    ax_b.set(xscale="log", ylabel="share of intermediate variables",
             xlabel=r"$\varepsilon\zeta$ ($\lambda^*=\varepsilon/\zeta$ at the median $\rho\kappa_{ii}/b$)",
             title=r"the $\varepsilon\zeta$ transition, measured from step fluctuations")  # fmt: skip
    ax_b.legend(fontsize=8)
    fig.tight_layout()
    return fig

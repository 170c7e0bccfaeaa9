"""Do the noise spectra of a trained network follow a power law? (EQUATIONS.md §5; the premise of (6.9))."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import stats
from torch import nn

from geodyn.analysis.spectrum import compare_tail_fits
from geodyn.experiments.registry import Check, Context, Outcome, experiment
from geodyn.noise import gradient_noise
from geodyn.optim import presets
from geodyn.tasks import digits, digits_mlp


def trained_noise(steps: int, samples: int, seed: int):
    """Train the digits MLP with Adam, then measure its per-sample gradient noise on ``samples`` examples."""
    x, y, _, _ = digits(seed)
    model = digits_mlp(seed=seed)
    opt = presets.adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed + 3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return gradient_noise(model, nn.functional.cross_entropy, x[:samples], y[:samples])


@experiment(
    "noise-spectrum",
    equations=("2.8", "6.9"),
    statement="The noise covariance κ of a trained network spreads over many decades with a power-law tail, so "
    "that a band ε² ≪ λ ≪ ζ⁻² holds a finite share of its variables.",
    section="Sec. 6 Complex systems",
    quick={"steps": 300, "samples": 256},
    full={"steps": 3000, "samples": 1024},
)
def noise_spectrum(ctx: Context) -> Outcome:
    noise = trained_noise(ctx.params["steps"], ctx.params["samples"], ctx.seed)
    ctx.progress(0.6)
    eigen = noise.top_eigen()[0].numpy()
    spectra = {"eigenvalues of κ": eigen[eigen > eigen.max() * 1e-12], "diagonal κ_ii": noise.diagonal().numpy()}
    checks, data = [], {}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, (name, values) in zip(axes, spectra.items()):
        values = values[values > 0]
        fit = compare_tail_fits(values)
        decades = math.log10(values.max() / values.min())
        data[name] = {
            "n": int(values.size), "decades": decades, "power_exponent": fit.power_exponent,
            "lognormal_mu": fit.lognormal_mu, "lognormal_sigma": fit.lognormal_sigma, "vuong_z": fit.vuong_z,
            "p_value": fit.p_value, "favoured": fit.favoured,
        }  # fmt: skip
        checks.append(
            Check(f"{name}: Vuong z, lognormal over power law", -fit.vuong_z, 1.96,
                  note=f"tail above the median, n = {fit.n}; passes unless the lognormal is significantly better "
                  f"(favoured: {fit.favoured})")
        )  # fmt: skip
        tail = np.sort(values[values >= fit.x_min])
        ccdf = 1.0 - np.arange(tail.size) / tail.size
        ax.loglog(tail, ccdf, ".", ms=3, label=f"{name} (n = {tail.size})")
        grid = np.logspace(np.log10(fit.x_min), np.log10(tail.max()), 200)
        ax.loglog(grid, (grid / fit.x_min) ** (1 - fit.power_exponent), "k-", lw=1,
                  label=f"power law, a = {fit.power_exponent:.2f}")  # fmt: skip
        z0 = (math.log(fit.x_min) - fit.lognormal_mu) / fit.lognormal_sigma
        ln_ccdf = stats.norm.sf((np.log(grid) - fit.lognormal_mu) / fit.lognormal_sigma) / stats.norm.sf(z0)
        ax.loglog(grid, ln_ccdf, "r--", lw=1, label=f"lognormal, σ = {fit.lognormal_sigma:.2f}")
        ax.set(xlabel="λ", ylabel="P(Λ ≥ λ | Λ ≥ median)", title=f"{name}: Vuong z = {fit.vuong_z:.2f}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.progress(1.0)
    summary = "; ".join(
        f"{name}: {d['n']} values over {d['decades']:.1f} decades, tail exponent {d['power_exponent']:.2f}, "
        f"Vuong z = {d['vuong_z']:.2f} (p = {d['p_value']:.2g}), favoured: {d['favoured']}"
        for name, d in data.items()
    )
    return Outcome(checks=checks, figures={"spectra": fig}, data=data, summary=f"Digits MLP after training: {summary}.")

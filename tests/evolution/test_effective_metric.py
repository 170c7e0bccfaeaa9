"""(4.10): a population's mean step, regressed on the gradient, gives the effective metric γ g⁻¹ = (β_s/4) σ — for
an anisotropic, correlated jump covariance σ that does not commute with the landscape's Hessian.

Set-up: H = ½ qᵀAq in 2-D, genomes started in (and so staying in) the Gibbs state N(0, (β_s A)⁻¹) (4.4); every
step's pair (x = ∇H(q), Δq) enters the least-squares fit Δq ≈ −B x (recorder EffectiveMetric). Without
reproduction genomes are independent chains, so G = 25 genome groups give independent fits and a Student-t
standard error that already contains every correlation between a genome's successive steps.

What B must equal, exactly: OLS converges to B* = −E[m(q) xᵀ] E[x xᵀ]⁻¹ with m(q) = E[Δq | q] the exact mean step.
B* is computed without Monte Carlo — Gauss–Hermite over the Gibbs law of q and over the jumps. It differs from
(β/4)σ by the O(s²) correction of (4.9): with C = E[x xᵀ] = A/β and E[Δq | q] = −(β/4)σx + (β³/16)σx(xᵀσx) + O(s⁶)
(sigmoid expansion; the quadratic part of ΔH adds only odd, vanishing moments at this order), Isserlis gives
B* = (β/4)σ − (β³/16) σ (tr(σC) I + 2Cσ) + O(s⁶), checked to 1e-3 of (β/4)σ.
"""

from __future__ import annotations

import numpy as np
import torch
from evolution_stats import ALPHA
from scipy import stats

from geodyn.evolution import EffectiveMetric, EvolutionModel, GaussianJump, Population, Quadratic, Sigmoid

BETA = 1.0
A = torch.tensor([[2.0, -0.7], [-0.7, 1.0]], dtype=torch.float64)
SHAPE = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
S = 0.1
SIGMA = S * S * SHAPE
M, T, GROUPS = 500_000, 24, 25


def exact_regression_target(model: EvolutionModel, nodes: int = 24) -> torch.Tensor:
    """B* = −E[m(q) xᵀ] E[x xᵀ]⁻¹ over q ~ N(0, (βA)⁻¹), by Gauss–Hermite in q and in the jumps."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    zz = torch.tensor(np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2))
    ww = torch.tensor(np.outer(w, w).reshape(-1) / w.sum() ** 2)
    cov_q = torch.linalg.inv(BETA * A)
    q = zz @ torch.linalg.cholesky(cov_q).mT
    x = model.landscape.grad(q)
    m = model.expected_step(q, nodes=nodes)
    mx = (ww[:, None, None] * m[:, :, None] * x[:, None, :]).sum(0)
    xx = (ww[:, None, None] * x[:, :, None] * x[:, None, :]).sum(0)
    return -mx @ torch.linalg.inv(xx)


def test_fitted_effective_metric_is_quarter_beta_sigma():
    model = EvolutionModel(Quadratic(A), GaussianJump(SIGMA), Sigmoid(BETA))
    gen = torch.Generator().manual_seed(21)
    q0 = torch.randn(M, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(torch.linalg.inv(BETA * A)).mT
    fit = EffectiveMetric(groups=GROUPS)
    Population(q0, model=model, seed=22).run(T, [fit])

    theory = 0.25 * BETA * SIGMA  # (4.10)
    b_star = exact_regression_target(model)
    c = A / BETA
    b_approx = theory - BETA**3 / 16 * SIGMA @ (
        torch.trace(SIGMA @ c) * torch.eye(2, dtype=torch.float64) + 2 * c @ SIGMA
    )
    bias = (b_star - theory).abs()
    t_crit = float(stats.t.isf(ALPHA / (2 * 4), GROUPS - 1))  # two-sided 1e-4, Bonferroni over the 4 entries
    err = (fit.metric - b_star).abs()
    print(
        f"\nfitted γg⁻¹ = {fit.metric.numpy().round(6).tolist()} from {fit.count} steps; (β/4)σ = "
        f"{theory.numpy().round(6).tolist()}; SE = {fit.stderr.numpy().round(6).tolist()}\n"
        f"relative: fit/(β/4)σ − 1 = {(fit.metric / theory - 1).numpy().round(4).tolist()}, exact O(s²) bias "
        f"B*/(β/4)σ − 1 = {(b_star / theory - 1).numpy().round(4).tolist()}, z(fit − B*) = "
        f"{(err / fit.stderr).numpy().round(2).tolist()} (limit {t_crit:.2f})"
    )
    # the quadrature target agrees with the O(s²) expansion of (4.9) to its O(s⁴) remainder
    assert float(((b_star - b_approx).abs() / theory.abs()).max()) <= 1e-3
    # Monte Carlo: the fit equals B* within its error …
    assert bool((err <= t_crit * fit.stderr).all())
    # … hence (4.10): the fit equals (β/4)σ within Monte-Carlo error plus the derived O(s²) bias
    assert bool(((fit.metric - theory).abs() <= t_crit * fit.stderr + bias).all())
    # discriminating: the off-diagonal entry (σ's correlation) is resolved, and Metropolis' ½ is excluded
    assert float(fit.metric[0, 1] / fit.stderr[0, 1]) > 10
    assert bool(((fit.metric - 2 * theory).abs() > 10 * fit.stderr).all())
    # the fitted metric is symmetric, as (β/4)σ is (independent-error bound, conservative)
    assert abs(float(fit.metric[0, 1] - fit.metric[1, 0])) <= t_crit * float(fit.stderr[0, 1].hypot(fit.stderr[1, 0]))

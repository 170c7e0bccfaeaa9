"""The mean step of jump × acceptance: ⟨Δq⟩ = −(β_s/4) σ ∇H (1 + O(s²)) for the sigmoid (4.5), (4.7)–(4.9),
and −(β_s/2) σ ∇H (1 + O(s)) for Metropolis (EQUATIONS.md §3: "a discriminating test").

E[Δq] is computed by quadrature over the jump law (EvolutionModel.expected_step: Gauss–Legendre panels split at
every zero of ΔH, ~1e-14 relative; checked against scipy's adaptive quad below), not by Monte Carlo, so the
convergence orders are clean log–log slopes over jump sizes s = 10⁻⁴ … 10^{−1.5}.

Expected coefficients, from expanding A in ΔH = H₁Δ + H₂Δ²/2 + H₃Δ³/6 (H₁, H₂, H₃ the first three derivatives
of H at q) with Δ ~ N(0, s²), r = E[Δq] divided by the leading term:

* sigmoid: A = ½ − βΔH/4 + β³ΔH³/48 − …, E[Δ·ΔH] = H₁s² + H₃s⁴/2, E[Δ·ΔH³] = 3H₁³s⁴ + O(s⁶), so
  r − 1 = c₂ s² + O(s⁴) with c₂ = H₃/(2H₁) − β²H₁²/4;
* Metropolis: A − 1 = (e^{−βΔH} − 1)·1{ΔH > 0} and the half-line moments E[Δ²; H₁Δ > 0] = s²/2,
  E[|Δ|³; H₁Δ > 0] = s³√(2/π), so r − 1 = c₁ s + O(s²) with c₁ = √(2/π)(H₂/|H₁| − β|H₁|).

Tolerances come from the next order. The local slope of log|r − 1| is p + O(s^p) (sigmoid) or p + O(s)
(Metropolis); across the grid (r − 1)/s^p changes by 0.8 % (sigmoid) and 4 % (Metropolis), which moves a
least-squares slope over 2.5 decades by less than 0.02 — the slope tolerance. At the smallest s = 1e-4 the next
order is (c₄/c₂)s² ~ 1e-8 (sigmoid) and (c₂/c₁)s ~ 1e-4 (Metropolis), so (r − 1)/s^p must equal c₂ (c₁) to
1e-4 (1e-3) relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from geodyn.evolution import DoubleWell, EvolutionModel, GaussianJump, Metropolis, Quadratic, Sigmoid, UniformJump

BETA = 2.0
WELL = DoubleWell(height=1.0, width=1.0)
Q = torch.tensor([[0.5]], dtype=torch.float64)
# H(q) = (q² − 1)² at q = ½: H' = 4q(q² − 1) = −1.5, H'' = 12q² − 4 = −1, H''' = 24q = 12
H1, H2, H3 = -1.5, -1.0, 12.0
SIZES = np.logspace(-4, -1.5, 11)


def ratios(acceptance, sizes=SIZES, jump=lambda s: GaussianJump(s * s)) -> np.ndarray:
    """r(s) = E[Δq] / (−c β σ H'), c the rule's leading coefficient (¼ sigmoid, ½ Metropolis)."""
    out = []
    for s in sizes:
        model = EvolutionModel(WELL, jump(s), acceptance)
        out.append(float(model.expected_step(Q)[0, 0] / model.drift(Q)[0, 0]))
    return np.array(out)


def fitted_slope(s: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(s), np.log(np.abs(err)), 1)
    return float(slope), float(intercept)


def test_sigmoid_mean_step_converges_at_second_order():
    r = ratios(Sigmoid(BETA))
    slope, _ = fitted_slope(SIZES, r - 1)
    c2 = H3 / (2 * H1) - BETA**2 * H1**2 / 4  # −6.25
    coef = (r[0] - 1) / SIZES[0] ** 2
    print(
        f"\nsigmoid: r − 1 = {r[0] - 1:.3e} (s = 1e-4) … {r[-1] - 1:.3e} (s = {SIZES[-1]:.3g}); "
        f"fitted slope {slope:.5f}; (r − 1)/s² = {coef:.6f} vs analytic {c2:.6f}"
    )
    assert abs(slope - 2.0) <= 0.02
    assert abs(coef / c2 - 1) <= 1e-4  # next order: (c₄/c₂) s² ≈ 1e-8 at s = 1e-4, plus quadrature round-off
    assert abs(r[0] - 1) <= 1e-6  # the ratio → 1: (4.9) with the factor ¼


def test_metropolis_mean_step_converges_at_first_order_only():
    r = ratios(Metropolis(BETA))
    slope, _ = fitted_slope(SIZES, r - 1)
    c1 = math.sqrt(2 / math.pi) * (H2 / abs(H1) - BETA * abs(H1))  # −2.9256
    coef = (r[0] - 1) / SIZES[0]
    print(
        f"\nMetropolis: r − 1 = {r[0] - 1:.3e} (s = 1e-4) … {r[-1] - 1:.3e} (s = {SIZES[-1]:.3g}); "
        f"fitted slope {slope:.5f}; (r − 1)/s = {coef:.6f} vs analytic {c1:.6f}"
    )
    assert abs(slope - 1.0) <= 0.02
    assert abs(coef / c1 - 1) <= 1e-3  # next order: relative (c₂/c₁) s ≈ 1e-4 at s = 1e-4
    # against the sigmoid's −(β/4)σ∇H the Metropolis step is twice as large: the ratio → 2, not 1
    model = EvolutionModel(WELL, GaussianJump(1e-8), Metropolis(BETA))
    quarter = -0.25 * BETA * 1e-8 * H1
    assert abs(float(model.expected_step(Q)[0, 0]) / quarter - 2.0) <= 1e-3


def test_quadrature_matches_adaptive_scipy():
    """Independent reference: scipy.integrate.quad (split at the kink Δ = 0) for both rules at s = 0.05."""
    s = 0.05

    def h(x):
        return (x * x - 1) ** 2

    for acc, rule in (
        (Sigmoid(BETA), lambda d: 1 / (1 + math.exp(BETA * d))),
        (Metropolis(BETA), lambda d: min(1.0, math.exp(-BETA * d))),
    ):

        def f(x, rule=rule):
            return x * math.exp(-x * x / (2 * s * s)) / math.sqrt(2 * math.pi * s * s) * rule(h(0.5 + x) - h(0.5))

        ref = sum(integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0] for a, b in ((-20 * s, 0), (0, 20 * s)))
        ours = float(EvolutionModel(WELL, GaussianJump(s * s), acc).expected_step(Q)[0, 0])
        assert abs(ours / ref - 1) <= 1e-11


def test_uniform_jumps_depend_only_on_sigma():
    """A non-Gaussian symmetric law (uniform, σ = a²/3): the same −(β/4)σ∇H, second-order convergence."""
    sizes = np.logspace(-3, -1.5, 7)
    r = ratios(Sigmoid(BETA), sizes, jump=lambda s: UniformJump(math.sqrt(3) * s))
    slope, _ = fitted_slope(sizes, r - 1)
    print(f"\nuniform jumps, sigmoid: fitted slope {slope:.5f}, r − 1 = {r[0] - 1:.3e} at s = 1e-3")
    assert abs(slope - 2.0) <= 0.02
    assert abs(r[0] - 1) <= 1e-4


def test_anisotropic_expected_step_in_two_dimensions():
    """(4.9) with a correlated σ in 2-D, E[Δq] by Gauss–Hermite (spectral for the smooth sigmoid):
    ‖E[Δq] + (β/4)σ∇H‖ / ‖(β/4)σ∇H‖ → 0 as s², and E[Δq] is not parallel to ∇H (σ rotates it)."""
    shape = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    land = Quadratic(torch.tensor([[2.0, -0.7], [-0.7, 1.0]], dtype=torch.float64), center=[0.3, -0.2])
    q = torch.tensor([[1.0, 0.5], [-0.4, 0.9]], dtype=torch.float64)
    sizes = np.logspace(-2.5, -1, 7)
    errs = []
    for s in sizes:
        model = EvolutionModel(land, GaussianJump(s * s * shape), Sigmoid(BETA))
        exact, lead = model.expected_step(q, nodes=30), model.drift(q)
        errs.append(float(((exact - lead).norm(dim=1) / lead.norm(dim=1)).max()))
    slope, _ = fitted_slope(sizes, np.array(errs))
    print(f"\n2-D anisotropic σ: relative error {errs[0]:.2e} … {errs[-1]:.2e}, fitted slope {slope:.4f}")
    assert abs(slope - 2.0) <= 0.02
    g = land.grad(q)
    cosine = (lead * -g).sum(1) / (lead.norm(dim=1) * g.norm(dim=1))
    assert float(cosine.max()) < 0.99  # the step is σ∇H, not ∇H


@pytest.mark.parametrize("acceptance", [Sigmoid(BETA), Metropolis(BETA)], ids=["sigmoid", "metropolis"])
def test_effective_metric_coefficient(acceptance):
    """(4.10): γ g⁻¹ = c β_s σ with c = ¼ (sigmoid) or ½ (Metropolis)."""
    sigma = torch.tensor([[0.04, 0.01], [0.01, 0.02]], dtype=torch.float64)
    model = EvolutionModel(Quadratic(1.0), GaussianJump(sigma), acceptance)
    expected = (0.25 if isinstance(acceptance, Sigmoid) else 0.5) * BETA * sigma
    torch.testing.assert_close(model.effective_metric(2), expected, rtol=1e-15, atol=0)

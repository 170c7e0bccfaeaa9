"""α from step fluctuations: Var(Δq) ∝ κ^{1−2α} (EQUATIONS.md (2.8), (2.9)) on a noisy quadratic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geodyn.analysis import StepStatistics, estimate_alpha
from geodyn.optim import presets

KAPPA = torch.logspace(-4, 0, 40, dtype=torch.float64)  # planted anisotropic noise over 4 decades
CURVATURE = 1.0


def _run(make, steps=3000, warmup=500, seed=0):
    """Noisy quadratic H = ½ h q²: G = h q + √κ ξ. Returns the fitted exponent of the run."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.Parameter(torch.zeros_like(KAPPA))
    opt = make([q])
    stats = StepStatistics()
    for t in range(warmup + steps):
        q.grad = CURVATURE * q.detach() + KAPPA.sqrt() * torch.randn(KAPPA.shape, generator=gen, dtype=KAPPA.dtype)
        before = [q.detach().clone()]
        grads = [q.grad.clone()]
        opt.step()
        if t >= warmup:
            stats.update(before, [q.detach()], grads)
    return stats.estimate_alpha()


@pytest.mark.parametrize(
    ("name", "make", "alpha"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=1e-2), 0.0),
        ("sgd-momentum", lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9), 0.0),
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-3), 0.5),
        ("adabelief", lambda p: presets.adabelief(p, lr=1e-3), 0.5),
        ("natural-gradient", lambda p: presets.natural_gradient(p, lr=1e-5, damping=1e-12), 1.0),
    ],
)
def test_estimated_alpha_of_known_optimizers(name, make, alpha):
    est = _run(make)
    assert abs(est.alpha - alpha) <= 0.05, f"{name}: {est}"
    assert est.interval[0] <= est.alpha <= est.interval[1]
    assert est.n == len(KAPPA)


def test_three_regime_is_intermediate_inside_its_band():
    """ThreeRegime(ε, ζ) with the planted κ inside (ε², ζ⁻²) behaves like α = ½."""
    est = _run(lambda p: presets.three_regime(p, lr=1e-3, eps=1e-5, zeta=1e-1, moment="raw", scale_free=False))
    assert abs(est.alpha - 0.5) <= 0.05, str(est)


def test_fit_recovers_planted_exponent_and_interval_covers_it():
    rng = np.random.default_rng(0)
    kappa = np.logspace(-3, 2, 60)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        var = kappa ** (1 - 2 * alpha) * np.exp(rng.normal(scale=0.05, size=kappa.size))
        est = estimate_alpha(var, kappa)
        assert est.interval[0] <= alpha <= est.interval[1]
        # With log-noise σ = 0.05, SE(slope) = σ/√Sxx and SE(α) = SE(slope)/2.
        sxx = ((np.log(kappa) - np.log(kappa).mean()) ** 2).sum()
        assert est.stderr == pytest.approx(0.05 / math.sqrt(sxx) / 2, rel=0.3)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        estimate_alpha([1.0, 0.0, -1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same for every variable"):
        estimate_alpha([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="differ in size"):
        estimate_alpha([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2 recorded steps"):
        _ = StepStatistics().kappa

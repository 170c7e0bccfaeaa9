"""Stationary step fluctuations at fixed parameters and per-example κ/b (geodyn.analysis.stationary; (2.6), (2.8))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from geodyn.analysis.stationary import per_sample_kappa, seed_interval, stationary_step_variance
from geodyn.optim import presets

KAPPA = torch.logspace(-3, 1, 12, dtype=torch.float64)


def _noise_loss(q, gen, mean=None):
    """A loss whose gradient is mean + √κ ξ, ξ ~ N(0, I): Gaussian white noise of covariance diag κ (2.4), (2.8)."""

    def loss(t):
        g = KAPPA.sqrt() * torch.randn(KAPPA.shape, generator=gen, dtype=KAPPA.dtype)
        if mean is not None:
            g = g + mean
        return (g * q).sum()

    return loss


def test_sgd_step_variance_is_gamma_squared_kappa():
    """Δq = −γG: Var(Δq_i) = γ² κ_i. The sample variance of n Gaussian values has relative sd √(2/(n−1)); the mean
    of the 12 ratios has sd √(2/(n−1))/√12, and 4 of those bound it."""
    q = nn.Parameter(torch.zeros_like(KAPPA))
    gen = torch.Generator().manual_seed(0)
    n, lr = 2000, 0.1
    var = stationary_step_variance([q], torch.optim.SGD([q], lr=lr), _noise_loss(q, gen), warmup=0, steps=n)
    ratio = var / (lr**2 * KAPPA)
    assert abs(float(ratio.mean()) - 1) <= 4 * math.sqrt(2 / (n - 1)) / math.sqrt(len(KAPPA))
    assert torch.count_nonzero(q.detach()) == 0, "the parameters must be back where they started"


def test_tilt_removes_the_mean_gradient():
    """Adam on G = μ + noise: without the tilt its raw moment reads μ² + κ; with the tilt μ it sees κ alone and every
    step has the same std (α = ½): the log-variances are flat in κ up to Monte-Carlo noise."""
    q = nn.Parameter(torch.zeros_like(KAPPA))
    mu = 10 * KAPPA.sqrt()  # the mean dominates the noise by 10×
    tilted = stationary_step_variance([q], presets.adam([q], lr=1e-2, betas=(0.9, 0.95)),
                                      _noise_loss(q, torch.Generator().manual_seed(1), mu), warmup=200, steps=3000,
                                      tilt=[mu])  # fmt: skip
    raw = stationary_step_variance([q], presets.adam([q], lr=1e-2, betas=(0.9, 0.95)),
                                   _noise_loss(q, torch.Generator().manual_seed(1), mu), 200, 3000)  # fmt: skip
    slope_tilted = np.polyfit(np.log(KAPPA.numpy()), np.log(tilted.numpy()), 1)[0]
    # effective sample ≈ n(1−β₁)/(1+β₁) ≈ 160 per variance → log-variance sd ≈ √(2/160) ≈ 0.11; over 4 decades
    # the slope's sd is ≈ 0.11/(sd of ln κ · √12) ≈ 0.01: 0.05 is 5 of those
    assert abs(slope_tilted) <= 0.05
    # without the tilt the step variance is ≈ γ²(1−β₁)/(1+β₁) κ/(μ² + κ) = γ² · 0.0526/101: far below the tilted one
    assert float((raw / tilted).median()) < 0.05


def test_blocks_are_consecutive_variances():
    q = nn.Parameter(torch.zeros_like(KAPPA))
    out = stationary_step_variance([q], torch.optim.SGD([q], lr=1.0), _noise_loss(q, torch.Generator().manual_seed(2)),
                                   warmup=5, steps=400, blocks=4)  # fmt: skip
    assert out.shape == (4, len(KAPPA))
    # each block of 100: ratio to κ within 4·√(2/99) of 1 for the block mean over variables (as above)
    assert torch.all((out / KAPPA).mean(1).sub(1).abs() <= 4 * math.sqrt(2 / 99) / math.sqrt(len(KAPPA)))


BAD = [
    ({"steps": 1}, "steps"),
    ({"warmup": -1}, "warmup"),
    ({"blocks": 0}, "blocks"),
    ({"blocks": 3, "steps": 5}, "blocks"),
]


@pytest.mark.parametrize(("kw", "match"), BAD)
def test_bad_arguments(kw, match):
    q = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    args = {"warmup": 0, "steps": 10} | kw
    with pytest.raises(ValueError, match=match):
        stationary_step_variance([q], torch.optim.SGD([q], lr=1.0), lambda t: q.sum(), **args)


def test_per_sample_kappa_against_closed_form_linear_regression():
    """H = ½ (w·x − y)²: the per-example gradient is (w·x − y) x, so κ_ii/b = Var_examples((w·x − y) x_i)/b."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(200, generator=gen, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 5, generator=gen, dtype=torch.float64))
    per_example = (x @ model.weight.detach().T).squeeze(1) - y
    expected = (per_example[:, None] * x).var(0, unbiased=False) / 8

    def loss(out, target):
        return 0.5 * ((out.squeeze(-1) - target) ** 2).sum()

    for vmap in (True, False):
        got = per_sample_kappa(model, loss, x, y, batch_size=8, vmap=vmap)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)  # float64 round-off of two reductions
    with pytest.raises(ValueError, match="batch_size"):
        per_sample_kappa(model, loss, x, y, batch_size=0)


def test_seed_interval_matches_scipy():
    values = [0.48, 0.52, 0.50, 0.47, 0.51]
    mean, half = seed_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values), abs=1e-15)
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert math.isnan(seed_interval([0.5])[1])
    with pytest.raises(ValueError, match="confidence"):
        seed_interval(values, confidence=1.0)

"""The first CGD step in closed form: the metric law acts on the bias-corrected noise moment (EQUATIONS.md §6)."""

from __future__ import annotations

import pytest
import torch

from geodyn.metric import Custom, Power, ThreeRegime
from geodyn.optim import CGD, presets

G = torch.tensor([1e-5, -3e-3, 0.2, -4.0, 50.0], dtype=torch.float64)


def _first_step(opt_factory) -> torch.Tensor:
    q = torch.nn.Parameter(torch.zeros_like(G))
    opt = opt_factory([q])
    q.grad = G.clone()
    opt.step()
    return q.detach()


def test_natural_gradient_first_step():
    # Raw moment: m̂ = G, K̂ = G², so Δq = −γ G / (G² + damping): an empirical-Fisher natural-gradient step.
    lr, damping = 0.1, 1e-6
    dq = _first_step(lambda p: presets.natural_gradient(p, lr=lr, damping=damping))
    torch.testing.assert_close(dq, -lr * G / (G * G + damping), rtol=1e-13, atol=0)


@pytest.mark.parametrize(("eps", "zeta", "beta1"), [(1e-8, 1.0, 0.9), (1e-3, 10.0, 0.5), (0.0, 0.1, 0.5)])
def test_three_regime_central_first_step(eps, zeta, beta1):
    # Central moment: m = (1−β₁)G, d = G − m = β₁G, K̂ = β₁²G², m̂ = G, so Δq = −γ G / (ε + β₁|G| + ζβ₁²G²).
    lr = 0.05
    dq = _first_step(
        lambda p: presets.three_regime(p, lr=lr, eps=eps, zeta=zeta, betas=(beta1, 0.99), scale_free=False)
    )
    expected = -lr * G / (eps + beta1 * G.abs() + zeta * beta1**2 * G * G)
    torch.testing.assert_close(dq, expected, rtol=1e-13, atol=0)


def test_custom_law_drives_the_optimizer():
    law = Custom(lambda lam: 1.0 + lam.pow(0.25), name="quartic-root")
    lr = 0.1
    dq = _first_step(lambda p: CGD(p, lr=lr, metric=law, moment="raw"))
    torch.testing.assert_close(dq, -lr * G / (1.0 + (G * G).pow(0.25)), rtol=1e-13, atol=0)


def test_regimes_of_the_first_step():
    # Under ThreeRegime each coordinate moves like SGD, Adam or natural gradient by its noise level.
    eps, zeta, lr = 1e-3, 1e2, 1.0
    law = ThreeRegime(eps, zeta)
    dq = _first_step(lambda p: CGD(p, lr=lr, metric=law, moment="raw", betas=(0.0, 0.9)))
    regime = law.regime(G * G)
    assert regime.tolist() == [0, 1, 2, 2, 2]  # band (ε², ζ⁻²) = (1e-6, 1e-4)
    sgd_like = -lr * G / eps
    assert torch.allclose(dq[0], sgd_like[0], rtol=0.02)  # ε dominates: a flat step ∝ G
    assert torch.allclose(dq[4], -lr / (zeta * G[4]), rtol=0.02)  # ζλ dominates: ∝ 1/G (natural gradient)
    assert Power(0).regime(G).unique().tolist() == [0]

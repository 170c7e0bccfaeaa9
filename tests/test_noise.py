"""Noise covariance κ of a model from per-sample gradients (EQUATIONS.md (2.8))."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geodyn.noise import GradientNoise, gradient_noise


def _half_mse(out, y):
    return 0.5 * (out - y).pow(2).sum()


def test_linear_regression_at_its_optimum_has_kappa_sigma2_sigma_x():
    """At w = w*, the per-sample gradient is −σ ξ x, so κ = σ² E[xxᵀ] = σ² Σ_x exactly in expectation."""
    gen = torch.Generator().manual_seed(0)
    d, batch, sigma = 3, 20000, 0.7
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.4]], dtype=torch.float64)
    sigma_x = mix @ mix.T
    x = torch.randn(batch, d, generator=gen, dtype=torch.float64) @ mix.T
    w_star = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    y = x @ w_star.T + sigma * torch.randn(batch, 1, generator=gen, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star)
    noise = gradient_noise(model, _half_mse, x, y)
    kappa = noise.covariance(centred=False)
    # Monte-Carlo standard error of each entry: std of the per-sample products g_i g_j over √B.
    products = noise.samples[:, :, None] * noise.samples[:, None, :]
    se = products.std(dim=0) / batch**0.5
    z = (kappa - sigma**2 * sigma_x).abs() / se
    assert z.max() < 5.0, z
    assert torch.allclose(noise.samples, -(y - x @ w_star.T) * x)


def _mlp_noise(batch=12):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x = torch.randn(batch, 5, dtype=torch.float64)
    y = torch.randn(batch, 3, dtype=torch.float64)
    return model, x, y, gradient_noise(model, _half_mse, x, y, chunk_size=5)


def test_per_sample_gradients_equal_an_autograd_loop():
    model, x, y, noise = _mlp_noise()
    for i in range(len(x)):
        model.zero_grad()
        _half_mse(model(x[i : i + 1]), y[i : i + 1]).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(noise.samples[i], expected, rtol=1e-12, atol=1e-14)
    assert list(noise.slices) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert noise.slices["2.bias"] == slice(5 * 8 + 8 + 8 * 3, 5 * 8 + 8 + 8 * 3 + 3)


def test_centred_and_uncentred_differ_by_mean_outer_product():
    *_, noise = _mlp_noise()
    g = noise.mean
    diff = noise.covariance(centred=False) - noise.covariance(centred=True)
    torch.testing.assert_close(diff, torch.outer(g, g), rtol=0, atol=1e-14)
    torch.testing.assert_close(noise.diagonal(centred=True), noise.covariance(centred=True).diagonal())


@pytest.mark.parametrize("centred", [True, False])
def test_gram_trick_matches_full_eigendecomposition(centred):
    *_, noise = _mlp_noise(batch=12)  # B = 12 ≪ N = 75
    full = torch.linalg.eigvalsh(noise.covariance(centred)).flip(0)
    lam, vecs = noise.top_eigen(k=6, centred=centred)
    torch.testing.assert_close(lam, full[:6], rtol=1e-10, atol=1e-14)
    kappa = noise.covariance(centred)
    torch.testing.assert_close(kappa @ vecs, vecs * lam, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(vecs.T @ vecs, torch.eye(6, dtype=vecs.dtype), rtol=0, atol=1e-10)
    rank = 11 if centred else 12  # centring removes one direction
    assert (noise.top_eigen(centred=centred)[0] > 1e-12).sum() == rank


def test_bad_samples_shape():
    with pytest.raises(ValueError, match="B × N"):
        GradientNoise(torch.zeros(3))

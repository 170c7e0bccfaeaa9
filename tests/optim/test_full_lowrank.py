"""FullCGD(rank=k): κ̂ as tracked top-k eigenpairs plus the diagonal remainder (geodyn.optim.lowrank), in float64.

Exact cases (the dense FullCGD is the reference): k = N, and gradients confined to a subspace of dimension ≤ k
(then K̂ has rank ≤ k and the remainder is 0). The two paths reach the same eigenpairs through different
factorizations (an N×N eigh against a thin QR and a small SVD), so they agree to round-off: with κ̂'s condition
number ≲ 10² in these runs, 1e-12 relative to the step is ~10⁴ ε₆₄ after ~10 steps of accumulation.
Otherwise (k < rank K̂): K_k ≼ K̂, r = diag(K̂ − K_k), and λ_i(K̂) − Σr ≤ σ_i ≤ λ_i(K̂) (Weyl), checked against
κ̂ accumulated independently in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geodyn.metric import Power, ThreeRegime
from geodyn.optim import FullCGD

TOL = 1e-12


def _run(make, grads, n):
    p = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = make([p])
    history = []
    for g in grads:
        p.grad = torch.as_tensor(g)
        opt.step()
        history.append(p.detach().clone())
    return history, opt, p


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert (x - y).abs().max().item() <= TOL * max(1.0, y.abs().max().item())


def _gaussian(n, steps, seed, rank=None):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n, n if rank is None else rank))
    mean = rng.normal(size=n) if rank is None else mix @ rng.normal(size=rank)
    return [mean + mix @ rng.normal(size=mix.shape[1]) for _ in range(steps)]


LAWS = {
    "three-regime": dict(metric=ThreeRegime(1e-4, 3.0)),
    "sqrt-raw": dict(metric=Power(0.5), moment="raw"),
    "natural-damped": dict(metric=Power(1.0), damping=1e-2),
    "sqrt-momentum-graft": dict(metric=Power(0.5), moment="momentum", grafting="adam"),
}


@pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
def test_full_rank_k_equals_dense(law):
    n = 6
    grads = _gaussian(n, 12, seed=1)
    kw = dict(lr=0.1, betas=(0.8, 0.9), **LAWS[law])
    dense, _, _ = _run(lambda p: FullCGD(p, **kw), grads, n)
    low, _, _ = _run(lambda p: FullCGD(p, rank=n, **kw), grads, n)
    _assert_same(low, dense)


@pytest.mark.parametrize("moment", ["central", "raw"])
def test_low_rank_kappa_equals_dense(moment):
    """Gradients in a 3-dimensional subspace of ℝ¹²: K̂ has rank ≤ 3, so rank=3 and rank=5 are exact."""
    n = 12
    grads = _gaussian(n, 10, seed=2, rank=3)
    kw = dict(lr=0.1, betas=(0.8, 0.9), metric=ThreeRegime(1e-4, 3.0), moment=moment)
    dense, _, _ = _run(lambda p: FullCGD(p, **kw), grads, n)
    for k in (3, 5):
        low, opt, p = _run(lambda q, k=k: FullCGD(q, rank=k, **kw), grads, n)
        _assert_same(low, dense)
    assert opt.state[p]["lowrank_basis"].shape == (n, 5)


def test_truncated_kappa_is_below_dense_and_sandwiches_its_spectrum():
    n, k, beta1, beta2 = 10, 3, 0.8, 0.9
    grads = _gaussian(n, 15, seed=3)
    p = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = FullCGD([p], lr=0.0, betas=(beta1, beta2), metric=Power(1.0), rank=k)
    m, kappa = np.zeros(n), np.zeros((n, n))
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        m = beta1 * m + (1 - beta1) * g
        kappa = beta2 * kappa + (1 - beta2) * np.outer(g - m, g - m)
        state = opt.state[p]
        u, sigma = state["lowrank_basis"].numpy(), state["lowrank_eigenvalues"].numpy()
        tracked = u @ np.diag(sigma) @ u.T
        scale = np.abs(kappa).max()
        np.testing.assert_allclose(state["diagonal"].numpy(), np.diag(kappa), atol=TOL * scale, rtol=0)
        remainder = kappa - tracked
        assert np.linalg.eigvalsh(remainder).min() >= -TOL * scale  # K_k ≼ K̂
        r = np.diag(remainder)
        exact = np.linalg.eigvalsh(kappa)[::-1][:k]
        assert np.all(sigma <= exact + TOL * scale)
        assert np.all(sigma >= exact - r.sum() - TOL * scale)
        if t > k:
            assert r.sum() > 1e-3 * scale  # the truncation is real: the sandwich is not trivially tight


def test_hundred_thousand_parameters_in_o_n_k_memory():
    """N = 10⁵, k = 4, gradients of rank 3: the step equals the pseudo-inverse natural-gradient step computed
    from the thin SVD of the weighted deviations (no N×N matrix anywhere). Dot products of length N carry a
    relative round-off ≤ N ε₆₄ ≈ 2e-11, hence 1e-10."""
    n, k, steps, beta1, beta2 = 100_000, 4, 3, 0.0, 0.9
    rng = np.random.default_rng(4)
    basis = rng.normal(size=(n, 3))
    grads = [basis @ rng.normal(size=3) for _ in range(steps)]
    p = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = FullCGD([p], lr=1.0, betas=(beta1, beta2), metric=Power(1.0), moment="raw", rank=k)
    before = p.detach().clone()
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        weights = np.sqrt([(1 - beta2) * beta2 ** (t - s) / (1 - beta2**t) for s in range(1, t + 1)])
        u, s, _ = np.linalg.svd(np.stack(grads[:t], axis=1) * weights, full_matrices=False)
        keep = s > n * np.finfo(float).eps * s[0]
        coeff = (u[:, keep].T @ g) / s[keep] ** 2
        expected = before.numpy() - u[:, keep] @ coeff
        step = p.detach().numpy()
        assert np.abs(step - expected).max() <= 1e-10 * np.abs(expected - before.numpy()).max()
        before = p.detach().clone()
    numel = sum(v.numel() for v in opt.state[p].values() if isinstance(v, torch.Tensor))
    assert numel <= n * (k + 2) + k + 1  # U, diagonal, first moment, σ, step: O(N k), not N²


def test_bad_rank_and_mismatched_state():
    p = [nn.Parameter(torch.zeros(4, dtype=torch.float64))]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rank="):
            FullCGD(p, rank=bad)
    dense = FullCGD(p, lr=0.1)
    p[0].grad = torch.ones(4, dtype=torch.float64)
    dense.step()
    dense.param_groups[0]["rank"] = 2  # the group's settings travel with a state dict; a changed rank is refused
    with pytest.raises(ValueError, match="does not match the saved state"):
        dense.step()


def test_truncated_step_is_the_low_rank_plus_diagonal_law():
    """k < rank K̂: Δq = −γ [U f(σ̂)⁻¹ Uᵀ + (I − P) diag(f(r̂)⁻¹) (I − P)] m̂, rebuilt in numpy from the tracked
    U, σ and the diagonal (the reference takes the state, computes m̂, r̂, the cut and the law itself)."""
    n, k, lr, beta1, beta2 = 10, 3, 0.1, 0.8, 0.9
    law = ThreeRegime(1e-4, 3.0)
    grads = _gaussian(n, 12, seed=5)
    p = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = FullCGD([p], lr=lr, betas=(beta1, beta2), metric=law, rank=k)
    m, q = np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        m = beta1 * m + (1 - beta1) * g
        state = opt.state[p]
        u = state["lowrank_basis"].numpy()
        sigma = state["lowrank_eigenvalues"].numpy() / (1 - beta2**t)
        r = np.clip(state["diagonal"].numpy() / (1 - beta2**t) - (u**2) @ sigma, 0, None)
        lam = np.concatenate([sigma, r])
        lam = np.where(lam > n * np.finfo(float).eps * lam.max(), lam, 0.0)
        inverse = np.where(lam > 0, 1.0 / (1e-4 + np.sqrt(lam) + 3.0 * lam), 0.0)
        uk = u[:, lam[:k] > 0]
        project = np.eye(n) - uk @ uk.T
        operator = u @ np.diag(inverse[:k]) @ u.T + project @ np.diag(inverse[k:]) @ project
        q = q - lr * operator @ (m / (1 - beta1**t))
        assert np.abs(p.detach().numpy() - q).max() <= TOL * max(1.0, np.abs(q).max())

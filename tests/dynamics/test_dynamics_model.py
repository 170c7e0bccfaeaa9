"""Fields of the learning model (EQUATIONS.md (2.2), (2.6)–(2.9)): g⁻¹, the noise factor, D and the Itô drift.

Deterministic identities. Tolerances are float64 round-off bounds (ULP = 2⁻⁵²) or, for finite-difference
checks, the truncation + round-off bound of a central difference, derived next to each use.
"""

from __future__ import annotations

import pytest
import torch

from geodyn.dynamics import LearningModel
from geodyn.dynamics.model import divided_differences, matrix_function_derivative, symmetric_eigh
from geodyn.metric import Custom, Interpolating, Power, ThreeRegime
from geodyn.optim.spectral import clipped_eigh

F64 = torch.float64
ULP = torch.finfo(F64).eps
LAWS = [Power(0.0), Power(0.5), Power(1.0), Interpolating(0.3), ThreeRegime(0.2, 0.7)]


def spd(n: int, m: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, n, n, generator=gen, dtype=F64)
    return x @ x.mT + 0.1 * torch.eye(n, dtype=F64)


def full_kappa(q: torch.Tensor) -> torch.Tensor:
    """κ(q) = ½ I + u uᵀ: a rotating eigenbasis, exactly degenerate (½ I) where u(q) = 0, e.g. at q = 0."""
    u = torch.stack([torch.tanh(q[:, 0] + 0.5 * q[:, 1]), 0.7 * torch.tanh(q[:, 1] - 0.3 * q[:, 0])], -1)
    return 0.5 * torch.eye(2, dtype=q.dtype) + u[:, :, None] * u[:, None, :]


def full_kappa3(q: torch.Tensor) -> torch.Tensor:
    """A 3×3 κ(q) (the LAPACK path of symmetric_eigh)."""
    u = torch.stack([torch.sin(q[:, 0]), torch.tanh(q[:, 1] * q[:, 2]), 0.5 * torch.cos(q[:, 0] - q[:, 2])], -1)
    return torch.diag(torch.tensor([0.4, 0.6, 0.8], dtype=q.dtype)) + u[:, :, None] * u[:, None, :]


def diag_kappa(q: torch.Tensor) -> torch.Tensor:
    return 1.0 + 0.5 * torch.tanh(q) + 0.2 * q.roll(1, dims=-1) ** 2


def quadratic_loss(q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (q**2).sum(-1) + 0.1 * q[:, 0] ** 4


@pytest.mark.parametrize("n", [2, 3])
def test_symmetric_eigh_matches_lapack(n):
    """(2.9) needs κ's eigenbasis: the closed-form 2×2 path agrees with clipped_eigh, clipping included."""
    k = spd(n, 500, seed=1)
    k[0] = torch.eye(n, dtype=F64)  # exactly degenerate
    k[1] = torch.diag(torch.arange(n, dtype=F64))  # a zero eigenvalue
    lam, vecs = symmetric_eigh(k)
    lam_ref, _ = clipped_eigh(k)
    scale = lam_ref.amax(-1, keepdim=True)
    # Eigenvalues of a symmetric matrix are well conditioned: |δλ| ≤ a few ULP·‖K‖ for either algorithm;
    # 16 ULP·λ_max covers the closed form's hypot/atan2 chain and LAPACK's own error.
    assert bool(((lam - lam_ref).abs() <= 16 * ULP * scale).all())
    rebuilt = (vecs * lam.unsqueeze(-2)) @ vecs.mT
    assert bool(((rebuilt - k).abs() <= 16 * ULP * scale.unsqueeze(-1)).all())
    eye = torch.eye(n, dtype=F64)
    assert bool(((vecs.mT @ vecs - eye).abs() <= 16 * ULP).all())


@pytest.mark.parametrize("law", LAWS, ids=repr)
def test_noise_factor_and_diffusion(law):
    """B Bᵀ = g⁻¹κg⁻¹ (2.8), D = (γ²/2) g⁻¹κg⁻¹ (2.7), g = f(κ) in κ's eigenbasis (2.9), non-diagonal κ."""
    gamma = 0.3
    k = spd(3, 1, seed=2)[0]
    model = LearningModel(quadratic_loss, metric=law, kappa=k, gamma=gamma)
    q = torch.zeros(4, 3, dtype=F64)
    lam, vecs = torch.linalg.eigh(k)
    g = vecs @ torch.diag(law(lam)) @ vecs.T
    ginv = torch.linalg.inv(g)
    cov = ginv @ k @ ginv
    b = model.noise_factor(q)
    # Products of 3×3 matrices with entries O(‖κ‖): ≤ ~10 roundings each, the inverse adds cond(g)·ULP
    # (cond(g) < 1e3 here); 1e4·ULP·scale bounds both evaluations' difference.
    tol = 1e4 * ULP * float(cov.abs().max())
    assert torch.allclose(b @ b.T, cov, rtol=0, atol=tol)
    assert torch.allclose(model.diffusion(q)[0], 0.5 * gamma**2 * cov, rtol=0, atol=tol)
    x = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model.factors(q).apply_inverse_metric(x), x @ ginv, rtol=0, atol=1e4 * ULP * 10)


def test_gradient_paths_agree():
    """∇H̄ of (2.2) by batched autograd, by per-sample torch.func and analytically give the same force."""
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(32, 3, generator=gen, dtype=F64)
    kw = dict(metric=Power(0.5), kappa=spd(3, 1, 5)[0], gamma=0.2)
    batched = LearningModel(quadratic_loss, **kw).gradient_drift(q)
    per_sample = LearningModel(lambda x: 0.5 * (x**2).sum() + 0.1 * x[0] ** 4, per_sample=True, **kw)
    analytic = LearningModel(grad=lambda x: x + 0.4 * x[:, :1] ** 3 * torch.eye(3, dtype=F64)[0], **kw)
    # The three gradients are the same few float operations: equal up to a few ULP of |∇H̄| ≈ O(10).
    assert torch.allclose(per_sample.gradient_drift(q), batched, rtol=0, atol=64 * ULP * 10)
    assert torch.allclose(analytic.gradient_drift(q), batched, rtol=0, atol=64 * ULP * 10)


def central_divergence(model: LearningModel, q: torch.Tensor, eps: float) -> torch.Tensor:
    out = torch.zeros_like(q)
    for nu in range(q.shape[1]):
        e = torch.zeros(q.shape[1], dtype=F64)
        e[nu] = eps
        out += ((model.diffusion(q + e) - model.diffusion(q - e)) / (2 * eps))[:, :, nu]
    return out


@pytest.mark.parametrize(
    ("kappa", "n"),
    [(full_kappa, 2), (full_kappa3, 3), (diag_kappa, 3)],
    ids=["full2", "full3", "diagonal"],
)
@pytest.mark.parametrize("law", [Power(1.0), ThreeRegime(0.2, 0.7), Custom(lambda lam: 0.3 + lam**0.75)], ids=repr)
def test_ito_drift_matches_finite_differences(kappa, n, law):
    """∂_ν D^{μν} of (2.7) by autograd (reverse mode for diagonal κ, Daleckii–Krein + forward mode for full κ)
    equals a central difference of D(q), including at q = 0 where κ = ½ I is exactly degenerate."""
    gen = torch.Generator().manual_seed(6)
    q = torch.cat([torch.zeros(1, n, dtype=F64), torch.randn(40, n, generator=gen, dtype=F64)])
    model = LearningModel(quadratic_loss, metric=law, kappa=kappa, gamma=0.7)
    div = model.ito_drift(q)
    # Central difference with step ε: truncation ε²/6·|D'''| (|D'''| = O(10) for these smooth fields) plus
    # round-off ~ ULP·|D|/ε (|D| = O(1)) — at ε = 1e-4: ≤ 2e-8 + 2e-12; 1e-7 bounds it with a factor 5.
    fd = central_divergence(model, q, 1e-4)
    assert float((div - fd).abs().max()) < 1e-7
    # and through the one-pass path used by the integrator
    drift, _ = model.drift_and_factors(q, ito=True)
    assert torch.allclose(drift - model.gradient_drift(q), div, rtol=0, atol=1e3 * ULP)


def test_analytic_divergence_is_used():
    """An analytic ∂_ν D^{μν} callable replaces autograd (and must agree with it, (2.7))."""
    gamma = 0.5

    def kap(q):
        return 1.5 + torch.tanh(2 * q)

    def exact(q):  # D = (γ²/2) h(κ) with h(κ) = 1/κ at α = 1, so ∂_q D = (γ²/2) (−1/κ²) · 2 sech²(2q)
        return 0.5 * gamma**2 * (-1.0 / kap(q) ** 2) * 2 / torch.cosh(2 * q) ** 2

    auto = LearningModel(quadratic_loss, metric=Power(1), kappa=kap, gamma=gamma)
    given = LearningModel(quadratic_loss, metric=Power(1), kappa=kap, gamma=gamma, divergence=exact)
    q = torch.linspace(-2, 2, 41, dtype=F64)[:, None]
    # same formula evaluated two ways: a few ULP of |∂D| ≤ 0.25
    assert torch.allclose(auto.ito_drift(q), exact(q), rtol=0, atol=64 * ULP)
    assert torch.equal(given.ito_drift(q), exact(q))
    assert torch.equal(LearningModel(quadratic_loss, metric=Power(1), kappa=2.0, gamma=gamma).ito_drift(q), 0 * q)


def test_matrix_function_derivative_matches_finite_differences():
    """Daleckii–Krein Fréchet derivative of h(K) = K^{1−2α} (the D of (2.7) for g = κ^α), incl. a degenerate K."""
    k = spd(3, 6, seed=7) + torch.eye(3, dtype=F64)  # eigenvalues >= 1, so |h'''| = (3/8) λ^(-5/2) <= 3/8
    k[0] = torch.eye(3, dtype=F64)
    e = spd(3, 6, seed=8)
    e = e / torch.linalg.matrix_norm(e, ord=2, keepdim=True)  # ‖E‖ = 1
    law = Power(0.25)  # h(λ) = λ^{1/2}

    def h_of(m: torch.Tensor) -> torch.Tensor:
        lam, vecs = torch.linalg.eigh(m)
        return (vecs * lam.sqrt().unsqueeze(-2)) @ vecs.mT

    lam, vecs = torch.linalg.eigh(k)
    hv = lam * (1 / law(lam)) ** 2
    dh = 0.5 / lam.sqrt()
    got = matrix_function_derivative(lam, vecs, hv, dh, e)
    eps = 1e-5
    fd = (h_of(k + eps * e) - h_of(k - eps * e)) / (2 * eps)
    # truncation ε²/6·|h'''|·‖E‖³ ≤ 1e-10/6·3/8 ≈ 6e-12; round-off of the eigh-based h is ~10 ULP·‖h‖ ≈ 1e-14
    # per evaluation, divided by ε: 1e-9. So 1e-8 bounds the difference with a factor ≥ 5.
    assert float((got - fd).abs().max()) < 1e-8
    # divided differences at equal eigenvalues are the derivative
    assert torch.allclose(divided_differences(lam[0], hv[0], dh[0]), dh[0].expand(3, 3), rtol=0, atol=0)

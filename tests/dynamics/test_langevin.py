"""Walker ensembles: the discrete learning process (2.5)/(2.6), the SDE of (2.7), (2.8), (3.1), (5.5), (5.6).

Every Monte-Carlo assertion compares an estimate with an exact value at the two-sided level ALPHA = 1e-4
(|z| < 3.9, or the χ² value exceeded with probability 1e-4); the standard errors are derived from the
distribution of the estimator (Isserlis for sample covariances, multinomial for histograms), never tuned.
Deterministic time-discretisation biases are computed exactly (discrete Lyapunov equations for the linear
schemes) and either compared against or added to the tolerance, as stated at each use. All runs are seeded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from dynamics_stats import Z, covariance_standard_error, pooled_chi2
from scipy import integrate, stats

from geodyn.dynamics import (
    DiscreteLearning,
    EulerMaruyama,
    FokkerPlanck1D,
    Histogram,
    IncrementMoments,
    LangevinEnsemble,
    LearningModel,
    Moments,
    TimeAveragedMoments,
    Trajectories,
)
from geodyn.metric import Power, ThreeRegime

F64 = torch.float64
ULP = torch.finfo(F64).eps

# --------------------------------------------------------------------------------------------------------
# anisotropic Ornstein–Uhlenbeck: H̄ = ½ qᵀAq with A not commuting with κ (hence not with g = f(κ))
# --------------------------------------------------------------------------------------------------------
KAPPA = np.array([[1.0, 0.6], [0.6, 0.5]])
HESS = np.array([[2.0, -0.7], [-0.7, 1.0]])
GAMMA = 0.5
LAW = ThreeRegime(0.3, 0.5)


def ou_ensemble() -> LangevinEnsemble:
    a = torch.tensor(HESS, dtype=F64)
    return LangevinEnsemble(lambda q: 0.5 * ((q @ a) * q).sum(-1), metric=LAW, kappa=torch.tensor(KAPPA), gamma=GAMMA)


def ou_matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F, Q, g⁻¹) of dq = F q dt + noise with Cov(noise per unit time) = Q, computed independently of geodyn:
    F = −γ g⁻¹A, Q = γ² g⁻¹κg⁻¹ = 2D, g = f(κ) in κ's eigenbasis (2.9)."""
    lam, vecs = np.linalg.eigh(KAPPA)
    g_eig = LAW(torch.tensor(lam)).numpy()
    ginv = vecs @ np.diag(1 / g_eig) @ vecs.T
    return -GAMMA * ginv @ HESS, GAMMA**2 * ginv @ KAPPA @ ginv, ginv


def linear_scheme_covariance(phi: np.ndarray, q: np.ndarray, steps: int) -> np.ndarray:
    """Exact covariance after `steps` steps of x ← Φx + ξ, Cov ξ = q, from x = 0: Σ∞ − Φⁿ Σ∞ Φⁿᵀ."""
    sigma = sl.solve_discrete_lyapunov(phi, q)
    phin = np.linalg.matrix_power(phi, steps)
    return sigma - phin @ sigma @ phin.T


def test_ou_setup_is_non_commuting():
    f, _, ginv = ou_matrices()
    assert np.abs(KAPPA @ HESS - HESS @ KAPPA).max() > 0.5
    assert np.abs(ginv @ HESS - HESS @ ginv).max() > 0.1


def test_ou_stationary_covariance_sde():
    """(2.7) for H̄ quadratic: the SDE's stationary covariance solves F Σ + Σ Fᵀ + Q = 0 (Lyapunov)."""
    f, q, _ = ou_matrices()
    m, dt, steps = 20000, 0.02, 1000
    moments = Moments(every=250)
    ou_ensemble().simulate(torch.zeros(m, 2, dtype=F64), steps, EulerMaruyama(dt), [moments], seed=11)
    assert moments.steps == [0, 250, 500, 750, 1000]
    phi = np.eye(2) + dt * f
    sigma_cont = sl.solve_continuous_lyapunov(f, -q)
    iu = np.triu_indices(2)
    for k, cov in zip(moments.steps[1:], moments.cov[1:].numpy(), strict=True):
        # Walkers from q = 0 under the linear EM recursion are exactly Gaussian with covariance Σ_k:
        exact_k = linear_scheme_covariance(phi, q * dt, k)
        se = covariance_standard_error(exact_k, m)
        assert np.abs((cov - exact_k) / se)[iu].max() < Z, f"step {k}"
    final = moments.cov[-1].numpy()
    exact = linear_scheme_covariance(phi, q * dt, steps)
    se = covariance_standard_error(exact, m)
    # The EM scheme's deterministic bias against the continuous Lyapunov solution (O(dt), plus the unrelaxed
    # e^{-2λ_min T} part) is computed exactly; the run is sized so that it is below one standard error, so
    # this compares walkers with solve_continuous_lyapunov at Monte-Carlo precision.
    bias = np.abs(exact - sigma_cont)
    assert (bias < se).all()
    assert (np.abs(final - sigma_cont) <= Z * se + bias).all()
    mean = moments.mean[-1].numpy()
    assert (np.abs(mean) < Z * np.sqrt(np.diag(exact) / m)).all()


def test_ou_stationary_covariance_discrete_mode():
    """(2.5)/(2.6): q ← (I + F) q + η with Cov η = Q = γ² g⁻¹κg⁻¹ (2.8); stationary Σ = Φ Σ Φᵀ + Q."""
    f, q, _ = ou_matrices()
    m, steps = 20000, 200
    moments = Moments(steps=[-1])
    ou_ensemble().simulate(torch.zeros(m, 2, dtype=F64), steps, DiscreteLearning(), [moments], seed=12)
    phi = np.eye(2) + f
    assert np.abs(np.linalg.eigvals(phi)).max() < 1  # γ small enough for the discrete process to be stable
    exact = linear_scheme_covariance(phi, q, steps)
    assert np.allclose(exact, sl.solve_discrete_lyapunov(phi, q), rtol=1e-12)  # relaxed: ρ(Φ)^400 < 1e-30
    se = covariance_standard_error(exact, m)
    assert (np.abs(moments.cov[-1].numpy() - exact) / se).max() < Z


# --------------------------------------------------------------------------------------------------------
# the step noise of the discrete mode: (2.8), (5.5), (5.6)
# --------------------------------------------------------------------------------------------------------
def full_kappa(q: torch.Tensor) -> torch.Tensor:
    """κ(q) = ½ I + u uᵀ: a rotating eigenbasis, degenerate where u(q) = 0."""
    u = torch.stack([torch.tanh(q[:, 0] + 0.5 * q[:, 1]), 0.7 * torch.tanh(q[:, 1] - 0.3 * q[:, 0])], -1)
    return 0.5 * torch.eye(2, dtype=q.dtype) + u[:, :, None] * u[:, None, :]


def _expected_noise(law, kappa: np.ndarray, gamma: float) -> np.ndarray:
    lam, vecs = np.linalg.eigh(kappa)
    ginv = vecs @ np.diag(1 / law(torch.tensor(lam)).numpy()) @ vecs.T
    return gamma**2 * ginv @ kappa @ ginv


@pytest.mark.parametrize(
    "case",
    ["(5.5) alpha=1/2, kappa(q)", "(5.6) alpha=0", "alpha=1", "(2.8) three-regime"],
)
def test_step_noise_covariance(case):
    """Cov(Δq per step) at ∇H̄ = 0 is γ² g⁻¹κg⁻¹ (2.8): γ² I at α = ½ for any κ(q) (5.5), γ² κ at α = 0 (5.6)."""
    gamma = 0.3
    kappa = np.array([[2.0, 0.9], [0.9, 0.6]])
    zero_grad = lambda q: torch.zeros_like(q)  # noqa: E731
    if case.startswith("(5.5)"):
        law, kap, expected = Power(0.5), full_kappa, gamma**2 * np.eye(2)
    elif case.startswith("(5.6)"):
        law, kap, expected = Power(0.0), torch.tensor(kappa), gamma**2 * kappa
    elif case == "alpha=1":
        law, kap, expected = Power(1.0), torch.tensor(kappa), gamma**2 * np.linalg.inv(kappa)
    else:
        law, kap = ThreeRegime(0.2, 0.8), torch.tensor(kappa)
        expected = _expected_noise(law, kappa, gamma)
    ens = LangevinEnsemble(grad=zero_grad, metric=law, kappa=kap, gamma=gamma)
    m, steps = 20000, 5
    q0 = torch.randn(m, 2, dtype=F64, generator=torch.Generator().manual_seed(20))
    inc = IncrementMoments()
    ens.simulate(q0, steps, DiscreteLearning(), [inc], seed=21)
    assert inc.count == m * steps
    # Given the past, each increment is N(0, expected) — at α = ½ whatever κ(q) is — so the m·steps increments
    # are i.i.d. Gaussian and the pooled sample covariance has the Isserlis standard error.
    se = covariance_standard_error(expected, inc.count)
    assert (np.abs(inc.cov.numpy() - expected) / se).max() < Z
    assert (np.abs(inc.mean.numpy()) < Z * np.sqrt(np.diag(expected) / inc.count)).all()


def test_step_formulas():
    """One step of each integrator equals the formula of its equation, written out independently with numpy:
    (2.5)/(2.6) q − γg⁻¹∇H̄ − γ g⁻¹κ^{1/2} z and (2.7)'s EM q + (−γg⁻¹∇H̄ + ∂_νD^{μν}) dt + γ√dt g⁻¹κ^{1/2} z."""
    gamma, dt = 0.4, 0.01
    law = ThreeRegime(0.2, 0.8)
    gen = torch.Generator().manual_seed(30)
    q = torch.randn(5, 2, generator=gen, dtype=F64)
    z = torch.randn(5, 2, generator=gen, dtype=F64)
    loss = lambda x: (x**2).sum(-1) + x[:, 0] * x[:, 1]  # noqa: E731
    grad = torch.stack([2 * q[:, 0] + q[:, 1], 2 * q[:, 1] + q[:, 0]], 1).numpy()
    model = LearningModel(loss, metric=law, kappa=full_kappa, gamma=gamma)
    disc = DiscreteLearning().step(model, q, z).numpy()
    em = EulerMaruyama(dt).step(model, q, z).numpy()
    div = model.ito_drift(q).numpy()  # checked against finite differences in test_dynamics_model.py
    for i in range(5):
        k = full_kappa(q[i : i + 1])[0].numpy()
        lam, vecs = np.linalg.eigh(k)
        g_eig = law(torch.tensor(lam)).numpy()
        ginv = vecs @ np.diag(1 / g_eig) @ vecs.T
        b = vecs @ np.diag(np.sqrt(lam) / g_eig) @ vecs.T
        qi, zi = q[i].numpy(), z[i].numpy()
        # O(1) entries through ~20 float operations each: 1e3 ULP is a generous round-off bound.
        assert np.allclose(disc[i], qi - gamma * ginv @ grad[i] - gamma * b @ zi, rtol=0, atol=1e3 * ULP)
        expect = qi + dt * (-gamma * ginv @ grad[i] + div[i]) + gamma * math.sqrt(dt) * b @ zi
        assert np.allclose(em[i], expect, rtol=0, atol=1e3 * ULP)


# --------------------------------------------------------------------------------------------------------
# (3.1): α = 1 (g = κ) with q-dependent κ — stationary p ∝ exp(−2H̄/γ), and the Itô drift matters
# --------------------------------------------------------------------------------------------------------
G1 = 0.5


def h1(x):
    return x**4 / 4 + x**2 / 2


def kappa1(q):
    return 1.5 + torch.tanh(2 * q)  # κ ∈ (0.5, 2.5): D = γ²/(2κ) varies fivefold


def bin_probabilities(density, edges) -> np.ndarray:
    z = integrate.quad(density, -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    return np.array([integrate.quad(density, a, b, epsabs=0, epsrel=1e-12)[0] for a, b in zip(edges, edges[1:])]) / z


def test_quantum_regime_stationary_density_1d():
    """(3.1) at α = 1 with κ(q): walkers with the Itô drift ∂_q D reach p ∝ exp(−2H̄/γ) and follow the grid
    solution of (2.7) on the way; without it they reach the Itô-form state p ∝ κ exp(−2H̄/γ) instead."""
    m, dt, steps, t_mid = 20000, 0.02, 600, 100
    loss = lambda q: h1(q[:, 0])  # noqa: E731
    ens = LangevinEnsemble(loss, metric=Power(1), kappa=kappa1, gamma=G1)
    q0 = 0.4 * torch.randn(m, 1, dtype=F64, generator=torch.Generator().manual_seed(40))
    edges = np.linspace(-1.5, 1.5, 31)
    hist = Histogram(edges, steps=[t_mid, -1])
    ens.simulate(q0, steps, EulerMaruyama(dt), [hist], seed=41)
    counts = hist.counts.numpy()

    # the grid solution of (2.7) from the same initial density, bins aligned with 4 cells each
    grid = FokkerPlanck1D(loss, metric=Power(1), kappa=kappa1, gamma=G1, domain=(-2.5, 2.5), n=200)
    cdf = stats.norm(0, 0.4).cdf(grid.edges)
    p0 = (cdf[1:] - cdf[:-1]) / grid.h
    sol = grid.evolve(p0, steps * dt, 0.002, scheme="crank_nicolson", save_at=[t_mid * dt, steps * dt])
    first = np.searchsorted(grid.edges, edges[0] - 1e-12)
    masses = (sol.p * grid.h)[:, first : first + 120].reshape(2, 30, 4).sum(-1)

    # mid-way (t = 2, far from stationary): walkers vs grid. The grid's own errors (O(h²) ≈ 1e-5, CN O(dt²))
    # and EM's O(dt) bias are below the multinomial noise of 2e4 walkers (relative ≥ 1e-2 per bin).
    chi2, dof, crit = pooled_chi2(counts[0], masses[0], m)
    assert chi2 < crit, (chi2, dof)

    # end (t = 12): walkers vs the exact stationary density of (3.1).
    target = bin_probabilities(lambda x: np.exp(-2 * h1(x) / G1), edges)
    # The grid says how far from stationary the density still is: its χ² excess at m walkers must be < 1.
    assert m * np.sum((masses[1] - target) ** 2 / target) < 1.0
    chi2, dof, crit = pooled_chi2(counts[1], target, m)
    assert chi2 < crit, (chi2, dof)

    # the same walkers without the Itô drift: not exp(−2H̄/γ), but κ exp(−2H̄/γ) (Itô-form stationary state)
    hist_ito = Histogram(edges, steps=[-1])
    ens.simulate(q0, steps, EulerMaruyama(dt, ito_drift=False), [hist_ito], seed=42)
    chi2_wrong, _, crit = pooled_chi2(hist_ito.counts[0].numpy(), target, m)
    assert chi2_wrong > crit, "dropping the Itô drift must change the stationary state"
    ito_state = bin_probabilities(lambda x: (1.5 + np.tanh(2 * x)) * np.exp(-2 * h1(x) / G1), edges)
    chi2, dof, crit = pooled_chi2(hist_ito.counts[0].numpy(), ito_state, m)
    assert chi2 < crit, (chi2, dof)


A2 = np.array([[1.0, 0.3], [0.3, 0.6]])


def h2(x, y):
    return 0.5 * (A2[0, 0] * x * x + 2 * A2[0, 1] * x * y + A2[1, 1] * y * y) + 0.1 * x**4


def loss2(q):
    return h2(q[:, 0], q[:, 1])


def rectangle_probabilities(density, ex, ey, sub: int = 40) -> np.ndarray:
    """Bin probabilities by the midpoint rule on sub×sub points per bin (relative error ~ (bin/sub)²/24·|∂²log p|
    ≈ 1e-6 here) normalised over a ±8σ box (mass outside < 1e-12)."""
    big_x, big_y = np.linspace(-6, 6, 1201), np.linspace(-8, 8, 1601)
    xm, ym = np.meshgrid((big_x[1:] + big_x[:-1]) / 2, (big_y[1:] + big_y[:-1]) / 2, indexing="ij")
    norm = density(xm, ym).sum() * 0.01 * 0.01
    xs = np.linspace(ex[0], ex[-1], (len(ex) - 1) * sub + 1)
    ys = np.linspace(ey[0], ey[-1], (len(ey) - 1) * sub + 1)
    xm, ym = np.meshgrid((xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2, indexing="ij")
    cells = density(xm, ym) * (xs[1] - xs[0]) * (ys[1] - ys[0])
    return cells.reshape(len(ex) - 1, sub, len(ey) - 1, sub).sum((1, 3)) / norm


def test_quantum_regime_stationary_density_2d_full_kappa():
    """(3.1) in 2-D with a full, rotating, sometimes degenerate κ(q): the Daleckii–Krein Itô drift gives
    p ∝ exp(−2H̄/γ); without it the 2-D histogram is far from it."""
    dt, steps = 0.025, 400  # T = 10: the grid solution from N(0, ¼I) is then 2e-4 from stationary in L1
    ens = LangevinEnsemble(loss2, metric=Power(1), kappa=full_kappa, gamma=G1)
    ex, ey = np.linspace(-1.6, 1.6, 17), np.linspace(-2.0, 2.0, 21)
    target = rectangle_probabilities(lambda x, y: np.exp(-2 * h2(x, y) / G1), ex, ey)
    gen = torch.Generator().manual_seed(50)
    # EM's O(dt) bias shifts the χ² expectation by ∝ m·dt²: measured with 5e4 walkers at dt = 0.02 as χ² = 93 on
    # 80 dof (excess ≈ 13), so ≈ 13 · (8e3/5e4) · (0.025/0.02)² ≈ 3 here, well inside the spread √(2·dof) ≈ 13.
    m = 8000
    hist = Histogram([ex, ey], steps=[-1])
    ens.simulate(0.5 * torch.randn(m, 2, dtype=F64, generator=gen), steps, EulerMaruyama(dt), [hist], seed=51)
    chi2, dof, crit = pooled_chi2(hist.counts[0].numpy(), target, m)
    assert chi2 < crit, (chi2, dof)
    m_wrong = 3000
    hist = Histogram([ex, ey], steps=[-1])
    q0 = 0.5 * torch.randn(m_wrong, 2, dtype=F64, generator=gen)
    ens.simulate(q0, steps, EulerMaruyama(dt, ito_drift=False), [hist], seed=52)
    chi2, dof, crit = pooled_chi2(hist.counts[0].numpy(), target, m_wrong)
    assert chi2 > crit, "dropping the Itô drift must change the stationary state"


# --------------------------------------------------------------------------------------------------------
# recorders and plumbing
# --------------------------------------------------------------------------------------------------------
def test_recorders_store_only_what_is_asked():
    ens = ou_ensemble()
    m, steps = 300, 40
    q0 = torch.randn(m, 2, dtype=F64, generator=torch.Generator().manual_seed(60))
    ex, ey = np.linspace(-1, 1, 6), np.linspace(-0.5, 0.7, 4)
    h1d = Histogram(ex, dims=[1], steps=[0, 17, -1])
    h2d = Histogram([ex, ey], every=20)
    traj = Trajectories(every=8, walkers=[3, 5, 7])
    traj_first = Trajectories(steps=[-1])
    mom = Moments(every=10)
    avg = TimeAveragedMoments(burn_in=30)
    sol = ens.simulate(q0, steps, EulerMaruyama(0.05), [h1d, h2d, traj, traj_first, mom, avg], seed=61)
    assert h1d.steps == [0, 17, 40] and h2d.steps == [0, 20, 40]
    assert traj.steps == [0, 8, 16, 24, 32, 40] and traj.q.shape == (6, 3, 2)
    assert torch.equal(traj.q[-1], sol.q[[3, 5, 7]]) and torch.equal(traj.q[0], q0[[3, 5, 7]])
    assert torch.equal(traj_first.q[0], sol.q[:16])
    assert mom.mean.shape == (5, 2) and mom.cov.shape == (5, 2, 2)
    assert torch.allclose(mom.times, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0], dtype=F64))
    assert avg.count == 11 * m and avg.steps == list(range(30, 41))
    # histograms against numpy (walkers outside the edges are in the total, not in a bin)
    ref1, _ = np.histogram(sol.q[:, 1].numpy(), bins=ex)
    ref2, _, _ = np.histogram2d(sol.q[:, 0].numpy(), sol.q[:, 1].numpy(), bins=[ex, ey])
    assert np.array_equal(h1d.counts[-1].numpy(), ref1) and np.array_equal(h2d.counts[-1].numpy(), ref2)
    assert h2d.density().shape == (3, 5, 3)
    assert torch.allclose(h1d.density()[0].sum() * 0.4, h1d.counts[0].sum().double() / m)
    with pytest.raises(ValueError, match="outside"):
        ens.simulate(q0, 5, EulerMaruyama(0.1), [Moments(steps=[9])])


def test_seeded_runs_are_reproducible_and_noise_can_be_supplied():
    ens = ou_ensemble()
    q0 = torch.zeros(50, 2, dtype=F64)
    a = ens.simulate(q0, 10, EulerMaruyama(0.1), seed=1).q
    b = ens.simulate(q0, 10, EulerMaruyama(0.1), seed=1).q
    c = ens.simulate(q0, 10, EulerMaruyama(0.1), seed=2).q
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = torch.randn(10, 50, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    d = ens.simulate(q0, 10, EulerMaruyama(0.1), noise=z).q
    e = ens.simulate(q0, 10, EulerMaruyama(0.1), noise=lambda k: z[k]).q
    assert torch.equal(d, e)


def test_divergence_is_reported():
    ens = LangevinEnsemble(lambda q: (q**4).sum(-1), metric=Power(0), kappa=1.0, gamma=1.0)
    with pytest.raises(FloatingPointError):
        ens.simulate(torch.full((4, 1), 10.0, dtype=F64), 5, DiscreteLearning())

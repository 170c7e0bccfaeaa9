"""Finite-volume Fokker–Planck solvers of (2.7) (and (3.1), (4.12)): exact stationary states, orders, conservation.

Deterministic. Accuracy claims are checked as convergence orders under grid or step refinement (the scheme is
second order in space, backward Euler first and Crank–Nicolson second order in time): the observed order
log₂(e_h / e_{h/2}) between successive refinements must equal the design order up to the pre-asymptotic drift
of the local order, bounded by ±0.5 on these grids (the measured orders are in the report). Conservation and
positivity are exact properties of the scheme: mass to 1e-12 absolute (≈ 10⁴ roundings of O(1) values) and
p ≥ 0 with no tolerance at all.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from scipy import integrate, stats

from geodyn.dynamics import FokkerPlanck1D, FokkerPlanck2D
from geodyn.dynamics.fokker_planck import bernoulli, scharfetter_gummel
from geodyn.metric import Power, ThreeRegime

F64 = torch.float64
ORDER_SLACK = 0.5


def observed_orders(errors) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    return np.log2(e[:-1] / e[1:])


def test_scharfetter_gummel_flux():
    """J = a_L p_L − a_R p_R with a_L − a_R = v, a_L, a_R ≥ 0; central for Pe → 0, upwind for |Pe| → ∞ or D = 0."""
    v = np.array([-50.0, -1.0, 0.0, 1e-9, 2.0, 800.0, 3.0, -3.0])
    d = np.array([0.1, 1.0, 1.0, 1.0, 0.5, 0.01, 0.0, 0.0])
    a_left, a_right = scharfetter_gummel(v, d, 0.1)
    assert (a_left >= 0).all() and (a_right >= 0).all()
    # a_L − a_R = (D/h)(B(−Pe) − B(Pe)) = v exactly in exact arithmetic: a few ULP of max(a_L, a_R)
    assert np.allclose(a_left - a_right, v, rtol=0, atol=8 * np.finfo(float).eps * np.maximum(a_left, a_right).max())
    assert a_left[2] == a_right[2] == 10.0  # pure diffusion: D/h
    assert a_right[5] == 0.0 and a_left[6] == 3.0 and a_right[6] == 0.0 and a_right[7] == 3.0
    assert bernoulli(np.array([0.0]))[0] == 1.0
    assert abs(bernoulli(np.array([1e-3]))[0] - 1e-3 / math.expm1(1e-3)) < 1e-15


# --------------------------------------------------------------------------------------------------------
# stationary states with known closed forms
# --------------------------------------------------------------------------------------------------------
KAPPA = np.array([[1.0, 0.6], [0.6, 0.5]])
HESS = np.array([[2.0, -0.7], [-0.7, 1.0]])
GAMMA = 0.5
LAW = ThreeRegime(0.3, 0.5)


def test_ou_grid_stationary_covariance_matches_lyapunov():
    """(2.7) with constant full D and linear drift (κ, H̄, g non-commuting): the grid's stationary covariance
    converges at second order to the solution of the Lyapunov equation F Σ + Σ Fᵀ + 2D = 0."""
    lam, vecs = np.linalg.eigh(KAPPA)
    ginv = vecs @ np.diag(1 / LAW(torch.tensor(lam)).numpy()) @ vecs.T
    f, q = -GAMMA * ginv @ HESS, GAMMA**2 * ginv @ KAPPA @ ginv
    sigma = sl.solve_continuous_lyapunov(f, -q)
    sd = np.sqrt(np.diag(sigma))
    a = torch.tensor(HESS)
    errors = []
    for n in (24, 48, 96):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no inconsistent (aspect-ratio) faces, no positivity warning
            grid = FokkerPlanck2D(
                lambda x: 0.5 * ((x @ a) * x).sum(-1),
                metric=LAW,
                kappa=torch.tensor(KAPPA),
                gamma=GAMMA,
                domain=((-7 * sd[0], 7 * sd[0]), (-7 * sd[1], 7 * sd[1])),  # truncation e^{-24.5}: negligible
                shape=(n, n),
            )
        assert grid.monotone and grid.inconsistent_faces == 0
        p = grid.stationary()
        assert p.min() >= 0 and abs(grid.mass(p) - 1) < 1e-12
        mean, cov = grid.moments(p)
        assert np.abs(mean).max() < 1e-12  # the scheme is symmetric under q → −q
        errors.append(np.abs(cov - sigma).max())
    assert abs(observed_orders(errors)[-1] - 2) < ORDER_SLACK, errors
    assert errors[-1] < 1e-3 * np.abs(sigma).max()


G1 = 0.5


def h1(x):
    return x**4 / 4 + x**2 / 2


def kappa1(q):
    return 1.5 + torch.tanh(2 * q)


def test_grid_stationary_density_quantum_regime_1d():
    """(3.1): with g = κ(q) the stationary density of (2.7) is exp(−2H̄/γ)/Z, whatever κ(q)."""
    errors = []
    for n in (100, 200, 400):
        grid = FokkerPlanck1D(lambda q: h1(q[:, 0]), metric=Power(1), kappa=kappa1, gamma=G1, domain=(-2.5, 2.5), n=n)
        p = grid.stationary()
        target = np.exp(-2 * h1(grid.centres) / G1)
        target /= target.sum() * grid.h
        assert p.min() > 0 and abs(grid.mass(p) - 1) < 1e-12 and grid.residual(p) < 1e-12
        errors.append(np.abs(p - target).max() / target.max())
    assert np.all(np.abs(observed_orders(errors) - 2) < ORDER_SLACK), errors
    # with a constant κ the same state is reached: the stationary density of (3.1) does not depend on κ
    flat = FokkerPlanck1D(lambda q: h1(q[:, 0]), metric=Power(1), kappa=0.7, gamma=G1, domain=(-2.5, 2.5), n=400)
    assert np.abs(flat.stationary() - p).max() / p.max() < 2 * errors[-1]


A2 = np.array([[1.0, 0.3], [0.3, 0.6]])


def h2(x, y):
    return 0.5 * (A2[0, 0] * x * x + 2 * A2[0, 1] * x * y + A2[1, 1] * y * y) + 0.1 * x**4


def full_kappa(q):
    u = torch.stack([torch.tanh(q[:, 0] + 0.5 * q[:, 1]), 0.7 * torch.tanh(q[:, 1] - 0.3 * q[:, 0])], -1)
    return 0.5 * torch.eye(2, dtype=q.dtype) + u[:, :, None] * u[:, None, :]


def test_grid_stationary_density_quantum_regime_2d_full_tensor():
    """(3.1) in 2-D with a full, q-dependent D = (γ²/2) κ(q)⁻¹ (off-diagonal terms included)."""
    errors = []
    for n in (20, 40, 80):
        grid = FokkerPlanck2D(
            lambda q: h2(q[:, 0], q[:, 1]),
            metric=Power(1),
            kappa=full_kappa,
            gamma=G1,
            domain=((-3.2, 3.2), (-4.0, 4.0)),
            shape=(n, n),
        )
        assert grid.monotone and grid.inconsistent_faces == 0
        p = grid.stationary()
        target = np.exp(-2 * h2(*grid.centres) / G1)
        target /= target.sum() * grid.cell_volume
        assert p.min() > 0 and abs(grid.mass(p) - 1) < 1e-12
        errors.append(np.abs(p - target).max() / target.max())
    assert np.all(np.abs(observed_orders(errors) - 2) < ORDER_SLACK), errors


def test_periodic_tilted_washboard_current():
    """(4.12) (α = 0, constant κ) on a ring with a tilted periodic loss: the non-equilibrium stationary density
    p(x) ∝ e^{−ψ(x)} ∫_x^{x+L} e^{ψ(y)} dy, ψ = γH̄/D (Risken), carries a constant current."""
    gamma, kappa, tilt, depth, length = 1.0, 0.8, 0.6, 1.0, 2 * np.pi
    d = 0.5 * gamma**2 * kappa

    def loss(q):
        return -tilt * q[:, 0] + depth * torch.cos(q[:, 0])

    def psi(x):
        return gamma * (-tilt * x + depth * np.cos(x)) / d

    errors = []
    for n in (50, 100, 200):
        grid = FokkerPlanck1D(
            loss, metric=Power(0), kappa=kappa, gamma=gamma, domain=(0.0, length), n=n, boundary="periodic"
        )
        p = grid.stationary()
        exact = np.array(
            [np.exp(-psi(x)) * integrate.quad(lambda y: np.exp(psi(y)), x, x + length)[0] for x in grid.centres]
        )
        exact /= exact.sum() * grid.h
        errors.append(np.abs(p - exact).max() / exact.max())
    assert np.all(np.abs(observed_orders(errors) - 2) < ORDER_SLACK), errors
    # a current flows: the density is not the (non-normalisable) Boltzmann factor e^{−ψ}
    assert np.abs(p - np.exp(-psi(grid.centres)) / (np.exp(-psi(grid.centres)).sum() * grid.h)).max() > 0.1


# --------------------------------------------------------------------------------------------------------
# time stepping
# --------------------------------------------------------------------------------------------------------
def ou_grid_1d(n: int = 100) -> FokkerPlanck1D:
    return FokkerPlanck1D(lambda q: 0.5 * q[:, 0] ** 2, metric=Power(0), kappa=1.0, gamma=1.0, domain=(-6, 6), n=n)


def gaussian_cells(grid: FokkerPlanck1D, mean: float, sd: float) -> np.ndarray:
    cdf = stats.norm(mean, sd).cdf(grid.edges)
    return (cdf[1:] - cdf[:-1]) / grid.h


@pytest.mark.parametrize(("scheme", "order"), [("backward_euler", 1), ("crank_nicolson", 2)])
def test_time_stepping_order(scheme, order):
    """Temporal order on a fixed grid against a 64× finer Crank–Nicolson reference."""
    grid = ou_grid_1d()
    p0 = gaussian_cells(grid, 1.0, 0.3)
    steps = [0.01, 0.005, 0.0025]
    assert steps[0] * np.abs(grid.generator.diagonal()).max() <= 2  # CN in its positivity range
    ref = grid.evolve(p0, 1.0, steps[-1] / 64, scheme="crank_nicolson").p[-1]
    errors = [np.abs(grid.evolve(p0, 1.0, dt, scheme=scheme).p[-1] - ref).sum() * grid.h for dt in steps]
    assert np.all(np.abs(observed_orders(errors) - order) < ORDER_SLACK), errors


def test_transient_matches_exact_ornstein_uhlenbeck():
    """(4.12) for H̄ = q²/2, κ = 1, γ = 1: a Gaussian stays Gaussian, mean e^{−t} m₀, variance
    ½ + (s₀² − ½) e^{−2t}; the grid's moments converge to these at second order in h (CN, dt ∝ h)."""
    t, m0, s0 = 0.7, 1.0, 0.3
    mean_t, var_t = m0 * math.exp(-t), 0.5 + (s0**2 - 0.5) * math.exp(-2 * t)
    errors = []
    for n in (60, 120, 240):
        grid = ou_grid_1d(n)
        p = grid.evolve(gaussian_cells(grid, m0, s0), t, 0.4 / n, scheme="crank_nicolson").p[-1]
        mean, var = grid.moments(p)
        errors.append(max(abs(mean - mean_t), abs(var - var_t)))
    assert np.all(np.abs(observed_orders(errors) - 2) < ORDER_SLACK), errors


# --------------------------------------------------------------------------------------------------------
# conservation and positivity
# --------------------------------------------------------------------------------------------------------
def periodic_kappa(q):
    """A full κ(q), 2π-periodic in both coordinates, with a rotating eigenbasis."""
    u = torch.stack([0.9 * torch.sin(q[:, 0] + q[:, 1]), 0.6 * torch.cos(q[:, 1] - q[:, 0])], -1)
    return 0.5 * torch.eye(2, dtype=q.dtype) + u[:, :, None] * u[:, None, :]


@pytest.mark.parametrize("boundary", ["no-flux", "periodic"])
def test_mass_conservation_and_positivity_2d(boundary):
    """A point mass under strong drift (Pe ≫ 1 in the tails) and a full, q-dependent D: mass to 1e-12 and p ≥ 0
    at every saved step, for backward Euler with huge steps and for Crank–Nicolson within its range."""
    if boundary == "no-flux":
        loss, kappa, box = (lambda q: 3 * h2(q[:, 0], q[:, 1]) - 0.8 * q[:, 0]), full_kappa, (-3.0, 3.0)
    else:  # periodic fields on the torus, tilted so that a current circulates
        loss = lambda q: 2 * torch.cos(q[:, 0]) * torch.cos(2 * q[:, 1]) - 0.5 * q[:, 0] - 0.3 * q[:, 1]  # noqa: E731
        kappa, box = periodic_kappa, (0.0, 2 * np.pi)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = FokkerPlanck2D(
            loss, metric=Power(1), kappa=kappa, gamma=0.3, domain=(box, box), shape=(48, 48), boundary=boundary
        )
    assert grid.monotone
    p0 = np.zeros(grid.shape)
    p0[10, 37] = 1 / grid.cell_volume
    be = grid.evolve(p0, 50.0, 2.0, scheme="backward_euler", save_at=np.arange(0, 51, 2.0))
    dt_cn = 2.0 / np.abs(grid.generator.diagonal()).max()
    cn = grid.evolve(p0, 200 * dt_cn, dt_cn, scheme="crank_nicolson", save_at=np.arange(201) * dt_cn)
    for sol in (be, cn):
        masses = sol.p.sum(axis=(1, 2)) * grid.cell_volume
        assert np.abs(masses - 1).max() < 1e-12
        assert sol.p.min() >= 0.0
    assert len(be.times) == 26 and len(cn.times) == 201
    stationary = grid.stationary()
    assert stationary.min() >= 0 and abs(grid.mass(stationary) - 1) < 1e-12 and grid.residual(stationary) < 1e-12


def test_mass_conservation_and_positivity_1d_stiff():
    """A deep double well at small γ (Péclet numbers ~ 10³): backward Euler stays positive and conservative."""
    grid = FokkerPlanck1D(
        lambda q: 20 * (q[:, 0] ** 2 - 1) ** 2, metric=Power(0.5), kappa=kappa1, gamma=0.05, domain=(-2, 2), n=400
    )
    assert grid.monotone
    p0 = np.zeros(grid.n)
    p0[3] = 1 / grid.h
    sol = grid.evolve(p0, 100.0, 5.0, save_at=np.arange(0, 101, 5.0))
    assert np.abs(sol.p.sum(1) * grid.h - 1).max() < 1e-12 and sol.p.min() >= 0.0
    assert abs(grid.mass(grid.stationary()) - 1) < 1e-12


def test_bad_arguments():
    with pytest.raises(ValueError, match="boundary"):
        ou_grid_1d().__class__(lambda q: q[:, 0], metric=Power(0), gamma=1.0, domain=(0, 1), n=4, boundary="open")
    with pytest.raises(ValueError, match="scheme"):
        ou_grid_1d().evolve(np.ones(100), 1.0, 0.1, scheme="rk4")
    with pytest.raises(ValueError, match="density"):
        ou_grid_1d().normalize(-np.ones(100))


# --------------------------------------------------------------------------------------------------------
# independent cross-check against fplanck (diagonal case)
# --------------------------------------------------------------------------------------------------------
def test_cross_check_against_fplanck(monkeypatch):
    """(4.12) with diagonal κ (α = 0): ∂_t p = γ∂_μ(p ∂_μH̄) + (γ²/2) κ_μμ ∂²_μ p, against fplanck's independent
    master-equation discretisation (square-root approximation, node grid) with per-axis temperatures
    T_μ = γκ_μμ/(2k_B) and drag 1/γ (so D_μ = k_B T_μ/drag and β_μ D_μ = γ). The two second-order schemes must
    converge to each other at second order."""
    fplanck = pytest.importorskip("fplanck")
    if not hasattr(np, "product"):  # fplanck 0.2.2 calls np.product, removed in NumPy 2
        monkeypatch.setattr(np, "product", np.prod, raising=False)
    from scipy import constants

    gamma, kappa = 0.8, np.array([0.6, 1.5])

    def potential(x, y):
        return 0.5 * x**2 + 0.1 * y**4 - 0.5 * y**2 + 0.3 * x * y

    def initial(x, y):
        return np.exp(-((x - 0.8) ** 2 + (y + 0.5) ** 2) / (2 * 0.4**2))

    extent, t_final = 6.0, 1.0
    diffs, stationary_diffs = [], []
    for h in (0.3, 0.15, 0.075):
        ref = fplanck.fokker_planck(
            temperature=gamma * kappa / (2 * constants.k),
            drag=1 / gamma,
            extent=[extent, extent],
            resolution=h,
            potential=potential,
            boundary=fplanck.boundary.reflecting,
        )
        n = ref.Ngrid
        half = n * h / 2
        ours = FokkerPlanck2D(
            lambda q: potential(q[:, 0], q[:, 1]),
            metric=Power(0),
            kappa=torch.tensor(kappa),
            gamma=gamma,
            domain=((-half[0], half[0]), (-half[1], half[1])),
            shape=tuple(n),
        )
        assert np.allclose(ours.axes[0], ref.axes[0]) and np.allclose(ours.axes[1], ref.axes[1])
        theirs = ref.propagate(initial, t_final)  # probabilities per node, exact in time (expm_multiply)
        p0 = ours.normalize(initial)
        mine = ours.evolve(p0, t_final, h**2 / 8, scheme="crank_nicolson").p[-1] * ours.cell_volume
        diffs.append(np.abs(mine - theirs).sum())
        stationary_diffs.append(np.abs(ours.stationary() * ours.cell_volume - ref.steady_state()).sum())
    assert np.all(np.abs(observed_orders(diffs) - 2) < ORDER_SLACK), diffs
    assert np.all(np.abs(observed_orders(stationary_diffs) - 2) < ORDER_SLACK), stationary_diffs

"""Madelung map, ħ and m, the effective potential (3.6), the quantum potential (3.9) and V + Q = E, the neural
potential (5.3)–(5.4), on 1-D and 2-D grids with q-dependent metrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from geodyn.metric import Power
from geodyn.quantum import (
    CrankNicolsonSchrodinger,
    Grid,
    Hamiltonian,
    Madelung,
    MadelungFields,
    SplitStepSchrodinger,
    TensorField,
    VariantBWarning,
    effective_potential,
    from_learning,
    ground_state,
    mass,
    metric_from_law,
    neural_potential,
    planck_constant,
    quantum_potential,
)

EPS = np.finfo(np.float64).eps


def _sin2(x):
    return torch.sin(x) ** 2 if isinstance(x, torch.Tensor) else np.sin(x) ** 2


def metric_1d(x):
    """g(q) = 1 + ½ sin²(πq/10): smooth, periodic on [−10, 10), written for numpy and torch (autograd of V)."""
    return 1.0 + 0.5 * _sin2(math.pi * x / 10.0)


def metric_2d(x, y):
    """A diagonal q-dependent metric on [−8, 8)²."""
    return [1.0 + 0.4 * _sin2(math.pi * (x + y) / 16.0), 1.5 - 0.5 * _sin2(math.pi * y / 16.0)]


def quadratic(*xs):
    return 0.5 * sum(x * x for x in xs)


def roundoff_bound(coefficient, grid, p, floor):
    """Bound on the round-off part of −c Δ√p/√p computed spectrally where p ≥ floor·max p: a rounding of relative
    size ε in the spectrum of √p, multiplied by k² ≤ Σk_max², is an absolute error ε·max√p·Σk_max² in Δ√p, divided
    by √p ≥ √floor·max√p. The spectral Laplacian applies four FFTs (a forward and an inverse one per derivative pass),
    and the rms relative error of a floating-point FFT grows like ε√log₂N, so independent errors of four transforms
    add up to √(4 log₂N) such units (5.3 for N = 128, 7.5 for N = 128²). Measured: 0.25–0.3 units against closed
    forms (:func:`test_neural_potential_identities`)."""
    kmax2 = sum((math.pi / h) ** 2 for h in grid.spacing)
    return coefficient * EPS * kmax2 / math.sqrt(floor) * math.sqrt(4 * math.log2(grid.size))


# ---------------------------------------------------------------------------------------------------------------
# constants and the map ψ ↔ (p, θ)
# ---------------------------------------------------------------------------------------------------------------
def test_planck_constant_and_mass():
    assert planck_constant(0.25, 4.0) == pytest.approx(0.5, abs=1e-16)  # 2√(γ/β)
    assert planck_constant(0.25, 4.0, "B") == pytest.approx(math.sqrt(0.125), abs=1e-16)  # √(2γ/β)
    assert mass(0.25) == 4.0 and mass(0.25, "B") == 2.0
    with pytest.raises(ValueError):
        planck_constant(0.1, 1.0, "C")
    with pytest.raises(ValueError):
        mass(-1.0)
    m = Madelung(1.0, 4.0)
    assert (m.hbar, m.mass) == (1.0, 1.0)
    assert m.quantum_coefficient == pytest.approx(m.hbar**2 / (2 * m.mass))  # ħ²/(2m) = 2γ²/β
    mb = Madelung(1.0, 4.0, "B")
    assert mb.quantum_coefficient == pytest.approx(mb.hbar**2 / (2 * mb.mass))  # holds for B too


def test_psi_p_theta_round_trip_and_sign_convention():
    """(3.10): ψ = √p e^{−iθ/ħ}; back: p = |ψ|², θ = −ħ arg ψ modulo 2πħ (unwrapped: exactly, when the phase
    changes by less than πħ between nodes)."""
    mad = Madelung(0.3, 1.7)
    grid = Grid((0.0, 2 * math.pi), 128)
    x = grid.axes[0]
    p = (1.2 + np.cos(x)) / (2.4 * math.pi)
    theta = mad.hbar * (1.3 * np.sin(x) + 0.4 * np.cos(2 * x))
    psi = mad.psi(p, theta)
    assert np.allclose(np.angle(psi[10]), -theta[10] / mad.hbar)
    p2, theta2 = mad.p_theta(psi, unwrap_axis=0)
    np.testing.assert_allclose(p2, p, rtol=1e-14)
    shift = theta2[0] - theta[0]
    assert abs(shift / (2 * math.pi * mad.hbar) - round(shift / (2 * math.pi * mad.hbar))) < 1e-12
    np.testing.assert_allclose(theta2 - shift, theta, atol=1e-13)
    # the current velocity (ħ/m) ∂ Im log ψ equals −γ ∂θ (the flow of (3.7))
    dpsi = np.gradient(psi, x)
    v_psi = mad.hbar / mad.mass * np.imag(np.conj(psi) * dpsi / np.abs(psi) ** 2)
    v_theta = -mad.gamma * np.gradient(theta, x)
    np.testing.assert_allclose(v_psi, v_theta, atol=5e-3)  # both second-order differences: O(h²) ≈ 2e-3


# ---------------------------------------------------------------------------------------------------------------
# the effective potential (3.6)
# ---------------------------------------------------------------------------------------------------------------
def test_effective_potential_of_quadratic_loss_and_ground_energy():
    """H̄ = ½kq², flat: V = (γ/2)k²q² − γk/β exactly (both derivative modes; central differences are exact on
    quadratics). With ħ, m of (3.12)–(3.13) this is an oscillator of ω = γk (½mω² = (γ/2)k²) shifted by −γk/β, so
    E₀ = ħω/2 − γk/β = γk√(γ/β) − γk/β, reached by imaginary time to O(dτ⁴) (see the solver tests): bound 1e-9."""
    gamma, beta, k = 0.4, 2.5, 1.5
    grid = Grid((-10.0, 10.0), 256)
    x = grid.axes[0]
    exact = 0.5 * gamma * k * k * x * x - gamma * k / beta
    for mode in ("autograd", "fd2"):
        v = effective_potential(lambda q: 0.5 * k * q * q, grid, gamma, beta, derivatives=mode)
        np.testing.assert_allclose(v, exact, atol=1e-12 * np.abs(exact).max())
    ham = from_learning(gamma, beta, lambda q: 0.5 * k * q * q, grid)
    assert (ham.hbar, ham.mass) == (planck_constant(gamma, beta), mass(gamma))
    gs = ground_state(ham, SplitStepSchrodinger(0.01), tol=1e-12)
    assert abs(gs.energy - (gamma * k * math.sqrt(gamma / beta) - gamma * k / beta)) <= 1e-9


def test_effective_potential_with_q_dependent_metric():
    """Autograd V against the closed form for g(q) = 1 + ½sin²(πq/10), H̄ = ½q²:
    V = (γ/2) q²/g − (γ/β)(1/√g)∂(q/√g) = (γ/2) q²/g − (γ/β)(1/g − q g'/(2g²)).
    The fd2 mode is second order: halving h divides its error by 4 (order within ±0.15 of 2; its next term is
    relative O(h²) ≈ 1e-2), measured away from the two edge nodes where the one-sided stencils, also second order
    but with larger constants, are still pre-asymptotic on the coarse grid."""
    gamma, beta = 0.5, 3.0
    errs = []
    for n in (128, 256):
        grid = Grid((-10.0, 10.0), n)
        x = grid.axes[0]
        g = metric_1d(x)
        dg = 0.5 * 2 * np.sin(np.pi * x / 10) * np.cos(np.pi * x / 10) * np.pi / 10
        exact = 0.5 * gamma * x * x / g - gamma / beta * (1 / g - x * dg / (2 * g * g))
        v = effective_potential(quadratic, grid, gamma, beta, metric_1d)
        np.testing.assert_allclose(v, exact, atol=1e-13 * np.abs(exact).max())
        fd2 = effective_potential(quadratic, grid, gamma, beta, metric_1d, derivatives="fd2")
        errs.append(np.abs(fd2 - exact)[2:-2].max())  # the one-sided edge stencils have larger constants
    assert abs(math.log2(errs[0] / errs[1]) - 2.0) <= 0.15
    with pytest.raises(TypeError):  # a numpy-only metric cannot be differentiated by autograd
        effective_potential(quadratic, Grid((-10.0, 10.0), 64), gamma, beta, lambda x: 1.0 + np.sin(x) ** 2)


def conformal_2d(x, y):
    """One scalar field c(q) (an array of the grid shape): the conformal metric g = c(q)·I of the grid module."""
    return 1.0 + 0.3 * _sin2(math.pi * x / 8.0) + 0.2 * _sin2(math.pi * y / 16.0)


def potential_bound(kinetic, divergence, gamma, beta, flux, h, sqrt_g):
    """Round-off bound on V = K − D computed from exact inputs: each term is a chain of ≤ 8 correctly rounded
    operations (torch's and numpy's sin agree to an ulp), so 8ε(|K| + |D|) pointwise. fd2 also differentiates the
    flux √g g^{μμ}∂_μH̄, whose node values carry a relative rounding ≤ 4ε: its centred difference loses
    4ε·max|flux|/h, times γ/(β√g)."""
    return 8 * EPS * (np.abs(kinetic) + np.abs(divergence)) + gamma / beta * 4 * EPS * flux / h / sqrt_g


def test_effective_potential_conformal_2d_metric():
    """A metric given as one array of the grid shape in 2-D is c(q)·I (grid module convention). Then √g = c and
    √g g^{μμ} = 1, so for H̄ = ½(x² + y²): V = (γ/2)(x² + y²)/c − (γ/β)·2/c exactly. Autograd and fd2 (exact on the
    quadratic H̄ and the linear flux up to rounding) must both give it to :func:`potential_bound`."""
    gamma, beta = 0.5, 3.0
    grid = Grid(((-8.0, 8.0), (-8.0, 8.0)), (64, 64))
    x, y = grid.coords
    c = conformal_2d(x, y)
    kinetic = 0.5 * gamma * (x * x + y * y) / c
    divergence = gamma / beta * 2.0 / c
    bound = potential_bound(kinetic, divergence, gamma, beta, 8.0, grid.spacing[0], c)
    for mode in ("autograd", "fd2"):
        v = effective_potential(quadratic, grid, gamma, beta, conformal_2d, derivatives=mode)
        assert np.all(np.abs(v - (kinetic - divergence)) <= bound), mode
    # the other readings of the grid module: a constant diagonal of shape (N,) and N components
    diag = effective_potential(quadratic, grid, gamma, beta, lambda x, y: torch.tensor([2.0, 0.5], dtype=torch.float64))
    exact = 0.5 * gamma * (x * x / 2.0 + y * y / 0.5) - gamma / beta * (1 / 2.0 + 1 / 0.5)
    np.testing.assert_allclose(diag, exact, rtol=0, atol=8 * EPS * np.abs(exact).max())
    two = effective_potential(quadratic, grid, gamma, beta, lambda x, y: [conformal_2d(x, y), conformal_2d(x, y)])
    np.testing.assert_allclose(two, kinetic - divergence, rtol=0, atol=np.max(bound))
    with pytest.raises(ValueError, match="diagonal"):  # a full tensor is not supported by (3.6) here
        effective_potential(quadratic, grid, gamma, beta, lambda x, y: torch.eye(2, dtype=torch.float64))


def test_effective_potential_autograd_accepts_any_torch_loss():
    """H̄ need not use every coordinate (∂_μH̄ = 0 there) and may be linear or constant (a flux without a graph has no
    divergence). Closed forms: flat, H̄ = ½kx² in 2-D: V = (γ/2)k²x² − γk/β; H̄ = ax + by: V = (γ/2)(a² + b²)/c for
    the conformal metric c (√g g^{μμ} = 1: the flux a is constant); constant H̄: V = 0; 1-D linear H̄ = aq with g(q):
    V = (γ/2)a²/g + (γ/β)a g'/(2g²). Bounds: 8ε of the terms (:func:`potential_bound`)."""
    gamma, beta, k, a, b = 0.4, 2.5, 1.5, 0.7, -1.2
    grid = Grid(((-8.0, 8.0), (-8.0, 8.0)), (32, 32))
    x, y = grid.coords
    v = effective_potential(lambda x, y: 0.5 * k * x * x, grid, gamma, beta)
    kinetic, divergence = 0.5 * gamma * k * k * x * x, gamma * k / beta
    assert np.all(np.abs(v - (kinetic - divergence)) <= potential_bound(kinetic, divergence, gamma, beta, 0, 1, 1))
    v = effective_potential(lambda x, y: a * x + b * y, grid, gamma, beta)
    kinetic = 0.5 * gamma * (a * a + b * b)
    assert np.all(np.abs(v - kinetic) <= potential_bound(kinetic, 0.0, gamma, beta, 0, 1, 1))
    v = effective_potential(lambda x, y: a * x + b * y, grid, gamma, beta, conformal_2d)
    c = conformal_2d(x, y)
    kinetic = 0.5 * gamma * (a * a + b * b) / c
    assert np.all(np.abs(v - kinetic) <= potential_bound(kinetic, 0.0, gamma, beta, abs(b), grid.spacing[0], c))
    for constant in (lambda x, y: torch.full_like(x, 3.0), lambda x, y: 3.0 + 0.0 * x, lambda x, y: 3.0):
        assert np.all(effective_potential(constant, grid, gamma, beta, conformal_2d) == 0.0)
    grid1 = Grid((-10.0, 10.0), 64)
    q = grid1.axes[0]
    g = metric_1d(q)
    dg = 0.5 * np.sin(2 * np.pi * q / 10) * np.pi / 10
    kinetic, divergence = 0.5 * gamma * a * a / g, -gamma / beta * a * dg / (2 * g * g)
    v = effective_potential(lambda q: a * q, grid1, gamma, beta, metric_1d)
    assert np.all(np.abs(v - (kinetic - divergence)) <= potential_bound(kinetic, divergence, gamma, beta, 0, 1, 1))
    # errors inside a torch-written H̄ are not reported as "numpy function"
    with pytest.raises(RuntimeError, match="size"):
        effective_potential(lambda q: q[:3] + q, grid1, gamma, beta)


# ---------------------------------------------------------------------------------------------------------------
# V + Q = E
# ---------------------------------------------------------------------------------------------------------------
def test_v_plus_q_equals_e_on_split_step_ground_state():
    """HO (ħ = m = ω = 1, γ = 1, β = 4). On an eigenstate, −(ħ²/2m)Δψ/ψ + V = E, i.e. V + Q = E with Q of (3.9)
    (ħ²/(2m) = 2γ²/β). The split-step fixed point is exactly the Gaussian e^{−a*x²/2} with a* = √(1 + dτ²/4)
    (kick a += dτ/2, drift 1/a += dτ, kick), so V + Q − E = ½(1 − a*²)x² + ½(a* − 1): the measured profile must
    equal that to the round-off of the spectral Q (:func:`roundoff_bound`), and |V + Q − E| itself is O(dτ²)."""
    grid = Grid((-10.0, 10.0), 256)
    x = grid.axes[0]
    ham = Hamiltonian(grid, 1.0, 1.0, 0.5 * x * x)
    floor = 1e-6
    for dtau in (0.05, 0.01):
        gs = ground_state(ham, SplitStepSchrodinger(dtau), tol=1e-13)
        q = quantum_potential(np.abs(gs.psi) ** 2, grid, 1.0, 4.0, scheme="spectral", floor=floor)
        residual = ham.potential + q - 0.5
        a = math.sqrt(1 + dtau**2 / 4)
        predicted = 0.5 * (1 - a * a) * x * x + 0.5 * (a - 1)
        ok = ~np.isnan(q)
        assert ok.sum() > 40  # the region p > 1e-6 max p: |x| < 3.7
        assert np.max(np.abs(residual - predicted)[ok]) <= roundoff_bound(0.5, grid, None, floor) + 1e-12
        assert np.max(np.abs(residual[ok])) <= dtau**2 / 8 * (1 + np.max(x[ok] ** 2))


def test_v_plus_q_vanishes_on_exact_state_with_q_dependent_metric_1d_and_2d():
    """βγ = 1: √p = e^{−H̄/(2γ)} has V + Q ≡ 0 for every H̄ and g(q) (proved symbolically). Spectral Q on the exact p
    must give |V + Q| within the round-off bound; the fd2 stencil has an O(h²) error (order within ±0.15 of 2)."""
    gamma = 0.5
    beta = 1 / gamma
    mad = Madelung(gamma, beta)
    floor = 1e-8
    fd_errs = []
    for n in (128, 256):
        grid = Grid((-10.0, 10.0), n)
        p = np.exp(-quadratic(grid.axes[0]) / gamma)
        v = mad.effective_potential(quadratic, grid, metric_1d)
        q = mad.quantum_potential(p, grid, metric_1d, scheme="spectral", floor=floor)
        assert np.nanmax(np.abs(v + q)) <= roundoff_bound(mad.quantum_coefficient, grid, p, floor)
        fd_errs.append(np.nanmax(np.abs(v + mad.quantum_potential(p, grid, metric_1d, floor=floor))))
    assert abs(math.log2(fd_errs[0] / fd_errs[1]) - 2.0) <= 0.15

    grid2 = Grid(((-8.0, 8.0), (-8.0, 8.0)), (64, 64))
    x, y = grid2.coords
    # stiff enough that √p ≤ e^{−32} on the box edge in every direction (periodic to round-off)
    loss = lambda x, y: 0.5 * (x * x + y * y) + 0.25 * (x + y) ** 2  # noqa: E731
    p2 = np.exp(-loss(x, y) / gamma)
    v2 = mad.effective_potential(loss, grid2, metric_2d)
    q2 = mad.quantum_potential(p2, grid2, metric_2d, scheme="spectral", floor=floor)
    assert np.isnan(q2).sum() > 0 and (~np.isnan(q2)).sum() > 500
    assert np.nanmax(np.abs(v2 + q2)) <= roundoff_bound(mad.quantum_coefficient, grid2, p2, floor)


def test_crank_nicolson_ground_state_with_q_dependent_metric():
    """The same exact state as the ground state of (3.11) with g(q), found by CN imaginary time (backward Euler):
    its fixed point is the exact eigenvector of the discrete H, so V + Q_fd2 = E_h to the convergence tolerance
    (~1e-12 relative), and E_h → 0, p → e^{−H̄/γ}/Z at second order in h (observed order within ±0.15 of 2)."""
    gamma = 0.5
    mad = Madelung(gamma, 1 / gamma)
    energies, p_errs = [], []
    for n in (128, 256):
        grid = Grid((-10.0, 10.0), n)
        ham = mad.hamiltonian(quadratic, grid, metric_1d)
        gs = ground_state(ham, CrankNicolsonSchrodinger(0.05), tol=1e-13)
        assert gs.converged
        p = np.abs(gs.psi) ** 2
        q = mad.quantum_potential(p, grid, metric_1d, floor=1e-8)
        assert np.nanmax(np.abs(ham.potential + q - gs.energy)) <= 1e-10
        exact = np.exp(-quadratic(grid.axes[0]) / gamma)
        exact /= grid.integrate(ham.weight * exact)
        energies.append(abs(gs.energy))
        p_errs.append(np.abs(p - exact).max() / exact.max())
    assert abs(math.log2(energies[0] / energies[1]) - 2.0) <= 0.15
    assert abs(math.log2(p_errs[0] / p_errs[1]) - 2.0) <= 0.15


def test_quantum_potential_is_nan_at_nodes():
    """Q is singular at a node of ψ; the code returns NaN where p ≤ floor·max p rather than a regularised value."""
    grid = Grid((0.0, 2 * math.pi), 64)
    x = grid.axes[0]
    p = np.sin(x) ** 2  # nodes at 0 and π, both on the grid
    q = quantum_potential(p, grid, 1.0, 4.0)
    assert np.isnan(q[0]) and np.isnan(q[32])
    inside = ~np.isnan(q)
    # |sin x| away from its nodes: Δ√p/√p = −1 (exact), fd2 gives −(2 − 2cos h)/h² = −1 + h²/12 + …
    h = grid.spacing[0]
    np.testing.assert_allclose(q[inside][1:-1], 0.5 * (2 - 2 * math.cos(h)) / h**2, rtol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# the neural potential (5.3)–(5.4)
# ---------------------------------------------------------------------------------------------------------------
def kappa_1d(x):
    return 0.6 + 0.5 * np.cos(2 * math.pi * x / 8.0) ** 2


def kappa_2d(x, y):
    return [0.6 + 0.5 * np.cos(2 * math.pi * x / 8.0) ** 2, 0.8 + 0.3 * np.sin(2 * math.pi * (x - y) / 8.0)]


def analytic_state(grid):
    """√p = e^{−|q|²/2}(1.5 + sin Σq) and −Δ√p/√p in closed form: with G = e^{−|q|²/2}, S = 1.5 + sin s, s = Σq,
    Δ(GS) = S ΔG + 2∇G·∇S + G ΔS, ΔG = (|q|² − N)G, ∇G·∇S = −s G cos s, ΔS = −N sin s, so
    Δ√p/√p = |q|² − N − 2s cos s/S − N sin s/S. √p is entire (its spectrum decays faster than exponentially; a
    factor √(1.1 + sin x) instead, with branch points 0.44 from the real axis, leaves 1e-5 aliasing errors that Q
    divides by √p) and ≤ 2.5e^{−32} at the box edge [−8, 8): the jump of its periodic extension changes Δ√p by
    ≲ 1e-14/d² at distance d ≥ 3.7 from the edge (where p ≥ 1e-8 max p), below the round-off bound."""
    coords = grid.coords
    n = grid.ndim
    r2, s = sum(c * c for c in coords), sum(coords)
    big_s = 1.5 + np.sin(s)
    sqrt_p = np.exp(-r2 / 2) * big_s
    lap_over = r2 - n - 2 * s * np.cos(s) / big_s - n * np.sin(s) / big_s
    return sqrt_p**2, lap_over


@pytest.mark.parametrize("ndim", [1, 2])
def test_neural_potential_identities(ndim):
    """(5.4): at g = κ^{1/2} (the metric law Power(½) applied to κ), (5.3) is the flat form −(2γ²/β)Δ√p/√p. Checked
    against the closed form of Δ√p/√p (:func:`analytic_state`): spectrally to the round-off bound, and with the fd2
    stencil at second order in h (observed order 2 ± 0.1 between 128 and 256 nodes per axis on the common nodes; the
    next term is relative O(h²)). (5.3) → (3.9) at g = κ holds with the covariant divergence (same coefficient
    √g g⁻¹ up to rounding); with the printed plain divergence the difference is (2γ²/β)(1/√p) g^{μν}∂_μ(log√g)∂_ν√p,
    checked spectrally."""
    gamma, beta = 0.7, 1.3
    c = 2 * gamma**2 / beta
    kappa = kappa_1d if ndim == 1 else kappa_2d

    def grid_of(n):
        # 1/κ has poles 1.2 from the real axis: its spectrum falls like e^{−1.2k}, so k_max = π/h must be ≳ 25
        return Grid((-8.0, 8.0), n) if ndim == 1 else Grid(((-8.0, 8.0), (-8.0, 8.0)), (n, n))

    grid = grid_of(128)
    p, lap_over = analytic_state(grid)
    closed = -c * lap_over
    floor = 1e-8
    half = metric_from_law(Power(0.5), kappa)
    bound = roundoff_bound(c, grid, p, floor)
    qk = neural_potential(p, grid, gamma, beta, kappa, metric=half, scheme="spectral", floor=floor)
    ok = ~np.isnan(qk)
    assert ok.sum() > 20 * ndim
    assert np.max(np.abs(qk - closed)[ok]) <= bound
    fd_errs = []
    for n in (128, 256):
        g_n = grid_of(n)
        p_n, lap_n = analytic_state(g_n)
        q_n = neural_potential(p_n, g_n, gamma, beta, kappa, metric=half, scheme="fd2", floor=floor)
        common = (slice(None, None, n // 128),) * ndim
        fd_errs.append(np.abs(q_n + c * lap_n)[common])
    both = ~(np.isnan(fd_errs[0]) | np.isnan(fd_errs[1]))
    assert abs(math.log2(np.max(fd_errs[0][both]) / np.max(fd_errs[1][both])) - 2.0) <= 0.1
    # a rounding of the coefficient (√g κ/g² vs √g/g) changes −cΔ√p/√p by ≲ the same round-off bound
    for scheme in ("spectral", "fd2"):
        q39 = quantum_potential(p, grid, gamma, beta, metric=kappa, scheme=scheme, floor=floor)
        cov = neural_potential(p, grid, gamma, beta, kappa, divergence="covariant", scheme=scheme, floor=floor)
        np.testing.assert_allclose(cov, q39, atol=bound, rtol=0, equal_nan=True)
    # (5.3) as printed at g = κ: differs from (3.9) by the √g-gradient term
    q39 = quantum_potential(p, grid, gamma, beta, metric=kappa, scheme="spectral", floor=floor)
    part = neural_potential(p, grid, gamma, beta, kappa, scheme="spectral", floor=floor)
    g = TensorField(grid, kappa)
    from geodyn.quantum.grid import spectral_gradient

    r = np.sqrt(p)
    dlog = spectral_gradient(np.log(g.sqrt_det()), grid)
    dr = spectral_gradient(r, grid)
    ginv = g.inverse_components()
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = c / r * sum(ginv[m] * dlog[m] * dr[m] for m in range(ndim))
    ok = ~np.isnan(q39)
    # three independently rounded spectral quantities (5.3), (3.9) and the predicted term, each within the bound
    assert np.max(np.abs(part - q39 - expected)[ok]) <= 3 * bound
    assert np.max(np.abs(expected[ok])) > 1e-2 * np.max(np.abs(closed[ok]))  # the discrepancy is real, not round-off


def test_power_one_metric_law_gives_quantum_potential():
    """The metric law object drives the quantum module: g = Power(1)(κ) = κ with the covariant (5.3) is (3.9)."""
    grid = Grid((-4.0, 4.0), 128)
    x = grid.axes[0]
    p = np.exp(-x * x)
    g1 = metric_from_law(Power(1.0), kappa_1d)
    a = neural_potential(p, grid, 1.0, 2.0, kappa_1d, metric=g1, divergence="covariant", floor=1e-8)
    b = quantum_potential(p, grid, 1.0, 2.0, metric=kappa_1d, floor=1e-8)
    np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_variant_b_warns_when_used_for_dynamics():
    """Variant B's ψ obeys (3.11) only with 2γ in (3.7)–(3.8), while the Madelung equations here use γ: every dynamic
    use of variant B warns; variant A and the static maps (ħ, m, ψ ↔ (p, θ), potentials) do not."""
    grid = Grid((0.0, 2 * math.pi), 32)
    q = grid.axes[0]
    fields = MadelungFields((1 + 0.3 * np.cos(q)) / (2 * math.pi), 0.2 * np.sin(q), (0.0,))
    grad = [0.2 * np.cos(q)]
    for variant, expect in (("A", False), ("B", True)):
        mad = Madelung(1.0, 4.0, variant)
        calls = {
            "hamiltonian": (mad.hamiltonian, (quadratic, grid)),
            "from_learning": (lambda *a, v=variant: from_learning(*a, variant=v), (1.0, 4.0, quadratic, grid)),
            "rhs": (mad.rhs, (fields, grid)),
            "evolve_fields": (mad.evolve_fields, (fields, grid, 1e-3, 1e-3)),
            "current_velocity": (mad.current_velocity, (grad, TensorField(grid, None))),
        }
        for name, (fn, args) in calls.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fn(*args)
            assert any(issubclass(w.category, VariantBWarning) for w in caught) == expect, (variant, name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mad.p_theta(mad.psi(fields.p, fields.theta))
            mad.quantum_potential(fields.p, grid)

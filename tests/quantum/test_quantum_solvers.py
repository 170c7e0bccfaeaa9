"""The Schrödinger solvers of (3.11): conservation, convergence order, exact solutions, ground states.

Units: ħ = m = ω = 1 unless stated (γ = 1, β = 4 gives ħ = 2√(γ/β) = 1, m = 1/γ = 1 by (3.12)–(3.13)).
Every tolerance is derived next to its assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodyn.quantum import (
    CrankNicolsonSchrodinger,
    Grid,
    Hamiltonian,
    SaveAt,
    SplitStepSchrodinger,
    evolve,
    gaussian,
    ground_state,
)

EPS = np.finfo(np.float64).eps


def metric_1d(x):
    """A smooth q-dependent 1-D metric on the box [−12, 12), 1 ≤ g ≤ 1.6, periodic with the box."""
    return 1.0 + 0.6 * np.sin(np.pi * x / 12.0) ** 2


def ho(grid, metric=None, omega=1.0):
    return Hamiltonian(grid, 1.0, 1.0, lambda *xs: 0.5 * omega**2 * sum(x * x for x in xs), metric)


# ---------------------------------------------------------------------------------------------------------------
# conservation and order
# ---------------------------------------------------------------------------------------------------------------
# Round-off model of the norm. One rounding has a relative error uniform on ±ε/2, standard deviation ε/(2√3). If a
# step leaves a relative error of rms s = √k·ε/(2√3) on every entry of ψ (k roundings per entry, independent from
# entry to entry and from step to step), ‖ψ‖² = Σ √g h |ψ|² changes by 2 Re Σ √g h ψ̄ δψ, of standard deviation
# ≤ 2 s P with P = (Σ (√g h |ψ|²)²)^{1/2} ≤ 1 for a normalised ψ (P² is the inverse participation number of the nodes
# the density covers). Over n steps the changes add up to a random walk, whose maximum over the saved times exceeds
# 4 standard deviations with probability ≤ 2·P(|Z| > 4) ≈ 1.3e-4 (reflection principle).
ROUNDING = EPS / (2 * math.sqrt(3))
NORM_STEPS = 10_000


def random_walk_bound(n, roundings, participation):
    """4 standard deviations of the round-off random walk of ‖ψ‖² over n steps (the model above)."""
    return 4.0 * 2.0 * participation * math.sqrt(roundings) * ROUNDING * math.sqrt(n)


def participation(ham, states):
    """max over the states of P = (Σ (√g h |ψ|²)²)^{1/2} / Σ √g h |ψ|²."""
    out = 0.0
    for psi in states:
        w = ham.weight * np.abs(psi) ** 2 * ham.grid.cell_volume
        out = max(out, float(np.sqrt(np.sum(w * w)) / np.sum(w)))
    return out


def norm_run(solver, metric):
    """10⁴ steps of the HO with a moving packet; ‖ψ‖² saved every 10³ steps."""
    grid = Grid((-12.0, 12.0), 256)
    ham = ho(grid, metric)
    psi0 = ham.normalize(gaussian(grid, 2.0, 0.6, momentum=0.5))
    dt = 0.005
    sol = evolve(ham, psi0, NORM_STEPS * dt, solver(dt), SaveAt(ts=np.linspace(0.0, NORM_STEPS * dt, 11)))
    assert sol.steps == NORM_STEPS
    norms = np.array([ham.norm(psi) ** 2 for psi in sol.psi])
    return ham, sol, norms


def trend_t(norms):
    """Student t of the mean of the increments of ‖ψ‖² between saved times: a random walk has independent
    increments of mean 0, so |t| ≤ 6 except with probability ≈ 2e-4 (t with 9 degrees of freedom); a drift linear
    in the number of steps makes every increment the same and |t| large."""
    inc = np.diff(norms)
    return float(inc.mean() / (inc.std(ddof=1) / math.sqrt(len(inc))))


# Crank–Nicolson with refinement: per entry, the three-term stencil product of the right-hand side (≈ 5 roundings)
# and the refinement residual b − (W + iεK)ψ (≈ 10) leave the error of the refined solve, plus 1 for the update:
# k = 16. The Cayley factor (W + iεK)⁻¹ does not amplify errors in the √g norm, and keeps them where ψ is (P from
# the states, ≈ 0.21 here: the packet covers 1/P² ≈ 22 nodes). Bound ≈ 4.3e-14.
CN_ROUNDINGS = 16


# Split-step is not a pure random walk: every step multiplies by the same rounded unimodular numbers (the phase
# arrays e^{−iV dt/2ħ}, e^{−iT dt/ħ} and the FFT's twiddle factors), whose moduli differ from 1 by up to ε (each
# component rounded to ±ε/2 relative), so part of the round-off is a fixed bias per step and accumulates linearly in n
# (measured: the numpy FFT pair alone changes ‖ψ‖² by +0.2ε (N = 256) to +0.9ε (64²) per application on average).
# Worst case per step: one such factor per FFT stage (log₂N stages, two transforms) and per phase multiplication
# (two): (2 log₂N + 2)ε. The remaining roundings are unbiased and add a random walk (k = 8 log₂N + 8: ≈ 4 per
# stage for the complex multiply-add, 4 per phase multiplication; spread over the FFT's intermediate arrays, so P ≤ 1).
def split_step_bound(n, grid):
    stages = math.log2(grid.size)
    return n * (2 * stages + 2) * EPS + random_walk_bound(n, 8 * stages + 8, 1.0)


@pytest.mark.parametrize("metric", [None, metric_1d], ids=["flat", "g(q)"])
def test_crank_nicolson_norm_is_a_round_off_random_walk(metric):
    """CN is exactly unitary in the √g inner product, so only round-off changes ∫√g|ψ|²: with one step of
    iterative refinement the per-step error is unbiased, ‖ψ‖² performs a random walk of size ~√n·ε and stays within
    :func:`random_walk_bound` (measured 5.8e-15 flat, 8.4e-15 with g(q), against 4.3e-14 and 4.5e-14), with
    increments between saved times that show no trend (:func:`trend_t`). An error in the scheme (a non-symmetric K)
    gives O(dt) drift."""
    ham, sol, norms = norm_run(CrankNicolsonSchrodinger, metric)
    bound = random_walk_bound(NORM_STEPS, CN_ROUNDINGS, participation(ham, sol.psi))
    assert sol.norm_drift() <= bound
    assert abs(trend_t(norms)) <= 6.0


@pytest.mark.parametrize("metric", [None, metric_1d], ids=["flat", "g(q)"])
def test_norm_test_rejects_unrefined_crank_nicolson(metric):
    """Without refinement the SuperLU rounding is biased: ‖ψ‖² drifts linearly in n (measured 6.9e-13 flat,
    2.4e-13 with g(q)), which both criteria of the test above reject."""
    ham, sol, norms = norm_run(lambda dt: CrankNicolsonSchrodinger(dt, refine=False), metric)
    bound = random_walk_bound(NORM_STEPS, CN_ROUNDINGS, participation(ham, sol.psi))
    assert sol.norm_drift() > 2 * bound
    assert abs(trend_t(norms)) > 6.0


def test_split_step_norm_within_round_off_bound():
    """Split-step multiplies by unimodular phases in q and k space, so only round-off changes ∫|ψ|²: over 10⁴ steps
    it must stay within :func:`split_step_bound` (measured 1.0e-13, bound 4.0e-11; a non-unimodular factor, e.g. a
    wrong imaginary unit in a phase, changes the norm by O(dt) per step)."""
    ham, sol, _ = norm_run(SplitStepSchrodinger, None)
    assert sol.norm_drift() <= split_step_bound(NORM_STEPS, ham.grid)


def test_split_step_2d_real_time_norm_and_order():
    """2-D anisotropic oscillator (ω = 1, 2) with a moving, squeezed packet, in real time: ∫|ψ|² within the round-off
    bound of :func:`split_step_bound` over 2000 steps (measured 3.0e-13, bound 1.2e-11), and Richardson order
    2 ± 0.1 in dt (the next error term is relative O((ω_max dt)²) ≤ 2e-3, which moves the observed order by less
    than 0.01). The box holds |ψ|² to e^{−30} and k_max = π/h ≥ 12.6 exceeds its momenta by 12 standard
    deviations, so the spatial error is below round-off."""
    grid = Grid(((-8.0, 8.0), (-6.0, 6.0)), (64, 64))
    ham = Hamiltonian(grid, 1.0, 1.0, lambda x, y: 0.5 * (x * x + 4.0 * y * y))
    psi0 = ham.normalize(gaussian(grid, (1.5, -0.8), (0.6, 0.4), momentum=(0.3, 0.5)))
    n, dt = 2000, 0.005
    sol = evolve(ham, psi0, n * dt, SplitStepSchrodinger(dt), SaveAt(ts=np.linspace(0.0, n * dt, 11)))
    assert sol.steps == n
    assert sol.norm_drift() <= split_step_bound(n, grid)
    states = [evolve(ham, psi0, 1.0, SplitStepSchrodinger(d)).psi[-1] for d in (0.02, 0.01, 0.005)]
    e1 = ham.norm(states[0] - states[1])
    e2 = ham.norm(states[1] - states[2])
    assert e2 > 1e3 * math.sqrt(200) * EPS  # far above round-off, so the ratio measures truncation error
    assert abs(math.log2(e1 / e2) - 2.0) <= 0.1


@pytest.mark.parametrize(
    "solver, metric",
    [(SplitStepSchrodinger, None), (CrankNicolsonSchrodinger, None), (CrankNicolsonSchrodinger, metric_1d)],
    ids=["split-step", "crank-nicolson", "crank-nicolson g(q)"],
)
def test_second_order_in_time(solver, metric):
    """Richardson halving: e(dt) = ‖ψ_dt − ψ_dt/2‖ ≈ C dt² (1 − 2⁻²), so log₂ e(dt)/e(dt/2) → 2. The next term of
    the error is O(dt⁴) for these symmetric methods, so the observed order differs from 2 by O(dt²): with the
    errors at ~1e-4 here it is within 1e-2 of 2; the ±0.1 bound is ten times that."""
    grid = Grid((-12.0, 12.0), 256)
    ham = ho(grid, metric)
    psi0 = ham.normalize(gaussian(grid, 2.0, 0.6))
    dt = 0.02
    states = [evolve(ham, psi0, 2.0, solver(d)).psi[-1] for d in (dt, dt / 2, dt / 4)]
    e1 = ham.norm(states[0] - states[1])
    e2 = ham.norm(states[1] - states[2])
    assert e2 > 1e3 * math.sqrt(2e4) * EPS  # far above round-off, so the ratio measures truncation error
    assert abs(math.log2(e1 / e2) - 2.0) <= 0.1


def test_crank_nicolson_second_order_in_space():
    """CN's spatial stencil is second order: the HO ground energy error against ħω/2 falls by 4 per halving of h
    (order within ±0.1 of 2; the next term is O(h⁴), relative h² ≈ 1e-2 here)."""
    errs = []
    for n in (128, 256):
        grid = Grid((-10.0, 10.0), n)
        gs = ground_state(ho(grid), CrankNicolsonSchrodinger(0.05), tol=1e-13)
        errs.append(abs(gs.energy - 0.5))
    assert abs(math.log2(errs[0] / errs[1]) - 2.0) <= 0.1


# ---------------------------------------------------------------------------------------------------------------
# ground states
# ---------------------------------------------------------------------------------------------------------------
def test_split_step_ground_energy_of_harmonic_oscillator_1d_and_2d():
    """Imaginary time with split-step: the fixed point differs from the exact ground state by O(dτ²) (Strang's
    error term), so the Rayleigh quotient ⟨H⟩ (spectral H) is off by O(dτ⁴): with dτ = 0.01 the state error is
    ≈ dτ²/24·‖[T,[T,V]]‖ ~ 1e-5·… and the energy error ≲ 1e-9 ħω. Spectral space error: the box holds the ground
    state to e^{−x²} ≈ e^{−100} and k_max = π/h ≈ 40 ≫ 1, so it is below round-off (n ε ħω ~ 1e-13). Convergence in
    τ: the remaining excited amplitude after the stopping rule is ≲ 1e-12/(1 − e^{−Δ·100 dτ}) ≈ 2e-12."""
    grid = Grid((-10.0, 10.0), 256)
    gs = ground_state(ho(grid), SplitStepSchrodinger(0.01), tol=1e-12)
    assert gs.converged
    assert abs(gs.energy - 0.5) <= 1e-9

    omegas = (1.0, 2.0)
    grid2 = Grid(((-10.0, 10.0), (-8.0, 8.0)), (96, 96))
    ham2 = Hamiltonian(grid2, 1.0, 1.0, lambda x, y: 0.5 * (omegas[0] ** 2 * x * x + omegas[1] ** 2 * y * y))
    gs2 = ground_state(ham2, SplitStepSchrodinger(0.01), tol=1e-12)
    # dτ ω_max = 0.02: the O(dτ⁴) energy error scales with ω⁵ dτ⁴ ≲ 1e-7·… → 1e-8 bound
    assert abs(gs2.energy - 0.5 * sum(omegas)) <= 1e-8


def test_crank_nicolson_ground_energy_matches_the_stencil_error():
    """The backward-Euler fixed point is the exact ground state of the second-order stencil, whose symbol is
    (2/h²)(1 − cos kh) = k² − k⁴h²/12 + O(h⁴): first-order perturbation gives E_h − ħω/2 = −(ħ²/2m)(h²/12)⟨k⁴⟩
    with ⟨k⁴⟩ = 3/4 in the HO ground state (k ~ N(0, 1/2)). The relative size of the next term is O(h²) ≈ 6e-3 at
    h = 20/256, so measured/predicted must be within 2 % of 1."""
    grid = Grid((-10.0, 10.0), 256)
    gs = ground_state(ho(grid), CrankNicolsonSchrodinger(0.05), tol=1e-13)
    h = grid.spacing[0]
    predicted = -0.5 * h * h / 12.0 * 0.75
    assert abs((gs.energy - 0.5) / predicted - 1.0) <= 0.02


# ---------------------------------------------------------------------------------------------------------------
# exact solutions
# ---------------------------------------------------------------------------------------------------------------
def _leapfrog_fidelity(x0, sigma, dt, n, omega=1.0):
    """|⟨ψ0|ψ_n⟩|² predicted for Strang split-step on the harmonic oscillator (ħ = m = 1).

    For a quadratic H each factor e^{−iV dt/2}, e^{−iT dt} is a metaplectic operator, so the split step maps a
    Gaussian state to the Gaussian whose Wigner mean and covariance are moved by the classical kick–drift–kick
    matrix M = K D K. After n steps: μ_n = Mⁿμ₀, Σ_n = Mⁿ Σ₀ Mⁿᵀ, and the overlap of two pure Gaussians is
    F = ħ/√det(Σ₀ + Σ_n) · exp(−½ Δμᵀ(Σ₀ + Σ_n)⁻¹Δμ).
    """
    kick = np.array([[1.0, 0.0], [-(omega**2) * dt / 2, 1.0]])
    drift = np.array([[1.0, dt], [0.0, 1.0]])
    mn = np.linalg.matrix_power(kick @ drift @ kick, n)
    mu0 = np.array([x0, 0.0])
    cov0 = np.diag([sigma**2, 1.0 / (4 * sigma**2)])
    mu, cov = mn @ mu0, mn @ cov0 @ mn.T
    s = cov0 + cov
    d = mu - mu0
    return 1.0 / math.sqrt(np.linalg.det(s)) * math.exp(-0.5 * d @ np.linalg.solve(s, d))


@pytest.mark.parametrize("sigma", [1 / math.sqrt(2), 0.5], ids=["coherent", "squeezed"])
def test_coherent_state_revival_after_one_period(sigma):
    """After T = 2π/ω the exact state is e^{−iωT/2}ψ0 = −ψ0. Split-step's infidelity comes from the classical leapfrog
    phase error 2π(ωdt)²/24 per period and its O(dt²) distortion of the Gaussian, and :func:`_leapfrog_fidelity`
    predicts it exactly (not to leading order: the metaplectic correspondence is exact for quadratic H). Only
    round-off (absolute ≲ 200 steps · ε ≈ 1e-13 in F) and the grid's spectral error (< 1e-15: the box holds the
    packet to e^{−50}) separate measurement and prediction: relative 1e-5 of 1 − F ≈ 1e-7 is 1e-12 absolute."""
    grid = Grid((-12.0, 12.0), 256)
    ham = ho(grid)
    x0, dt = 2.0, 2 * math.pi / 200
    psi0 = ham.normalize(gaussian(grid, x0, sigma))
    psi_t = evolve(ham, psi0, 2 * math.pi, SplitStepSchrodinger(dt)).psi[-1]
    fidelity = abs(ham.inner(psi0, psi_t)) ** 2
    predicted = _leapfrog_fidelity(x0, sigma, dt, 200)
    assert predicted < 1 - 1e-8  # the predicted infidelity is large enough for a relative comparison
    assert abs((1 - fidelity) / (1 - predicted) - 1.0) <= 1e-5
    # the revival itself, ψ(T) ≈ −ψ0: ‖ψ(T) + ψ0‖² ≈ (1 − F) + φ², with the centre displaced along its orbit by
    # x0·δφ, δφ = 2π(ωdt)²/24 (≤ x0 δφ/σ in units of the packet width) and a global phase error φ ≲ δφ
    dphi = 2 * math.pi * dt**2 / 24
    assert ham.norm(psi_t + psi0) <= dphi * (1 + x0 / sigma)


def _width(p, grid):
    x = grid.axes[0]
    w = p * grid.spacing[0]
    m1 = np.sum(w * x) / np.sum(w)
    return math.sqrt(np.sum(w * (x - m1) ** 2) / np.sum(w))


def test_free_gaussian_spreading_split_step_is_exact():
    """V = 0: the split step is exactly the kinetic propagator in Fourier space, so σ(t) = σ₀√(1 + (ħt/(2mσ₀²))²)
    holds to spectral accuracy. The box keeps |ψ|² ≤ e^{−(L/2)²/(2σ(t)²)} ≈ e^{−70} at its edge and k_max = π/h
    ≈ 13/σ₀, so the only error is round-off, ~ steps·ε ≈ 1e-14 relative (bound 1e-11)."""
    hbar, m, s0 = 1.0, 1.0, 0.5
    grid = Grid((-40.0, 40.0), 1024)
    ham = Hamiltonian(grid, hbar, m, 0.0)
    ts = [0.0, 1.0, 2.5, 5.0]
    sol = evolve(ham, ham.normalize(gaussian(grid, 0.0, s0)), 5.0, SplitStepSchrodinger(0.05), SaveAt(ts=ts))
    for t, p in zip(ts, sol.density()):
        exact = s0 * math.sqrt(1 + (hbar * t / (2 * m * s0**2)) ** 2)
        assert abs(_width(p, grid) / exact - 1.0) <= 1e-11


def test_free_gaussian_spreading_crank_nicolson_matches_its_dispersion():
    """CN on the second-order stencil evolves each Fourier mode with the phase 2 arctan(E(k)dt/(2ħ)) per step,
    E(k) = (ħ²/2m)(2 − 2cos kh)/h². For an unchirped Gaussian, ⟨x²⟩(t) = σ₀² + t²⟨ω'(k)²⟩ exactly (x = i∂_k), with
    ω(k) = (2/dt) arctan(E dt/(2ħ)) and k ~ N(0, 1/(4σ₀²)). This predicts the width to quadrature accuracy; the
    analytic continuum width differs from it by O(h² + dt²) (≈ 1e-2 here), which the measured width must reproduce
    within 1e-9 relative."""
    hbar, m, s0, dt = 1.0, 1.0, 0.5, 0.01
    grid = Grid((-40.0, 40.0), 512)
    h = grid.spacing[0]
    ham = Hamiltonian(grid, hbar, m, 0.0)
    ts = [1.0, 2.5, 5.0]
    sol = evolve(ham, ham.normalize(gaussian(grid, 0.0, s0)), 5.0, CrankNicolsonSchrodinger(dt), SaveAt(ts=ts))
    k = np.linspace(-math.pi / h, math.pi / h, 200_001)
    weight = np.exp(-2 * s0**2 * k**2)
    energy = hbar**2 / (2 * m) * (2 - 2 * np.cos(k * h)) / h**2
    group = (hbar / m) * np.sin(k * h) / h / (1 + (energy * dt / (2 * hbar)) ** 2)
    mean_sq = np.sum(weight * group**2) / np.sum(weight)
    for t, p in zip(ts, sol.density()):
        predicted = math.sqrt(s0**2 + t**2 * mean_sq)
        continuum = s0 * math.sqrt(1 + (hbar * t / (2 * m * s0**2)) ** 2)
        assert abs(_width(p, grid) / predicted - 1.0) <= 1e-9
        assert abs(predicted / continuum - 1.0) > 1e-4  # the discretisation error is visible …
        assert abs(predicted / continuum - 1.0) <= (2 * (h / s0) ** 2 + (dt * hbar / (m * s0**2)) ** 2)  # … O(h², dt²)


def test_solution_saves_times_and_observables():
    grid = Grid((-10.0, 10.0), 128)
    ham = ho(grid)
    psi0 = ham.normalize(gaussian(grid, 1.0, 0.7))
    x = grid.axes[0]
    sol = evolve(
        ham,
        psi0,
        math.pi,
        SplitStepSchrodinger(0.01),
        SaveAt(
            ts=[0.0, 0.5 * math.pi, math.pi],
            states=False,
            fn={"mean": lambda t, psi: grid.integrate(x * abs(psi) ** 2)},
        ),
    )
    assert sol.psi is None
    np.testing.assert_allclose(sol.observables["mean"], [1.0, 0.0, -1.0], atol=1e-3)  # ⟨x⟩ = cos t (Ehrenfest)
    with pytest.raises(ValueError):
        evolve(ham, psi0, 1.0, SplitStepSchrodinger(0.01), SaveAt(ts=[2.0]))
    with pytest.raises(ValueError):
        SplitStepSchrodinger(0.01).step(Hamiltonian(grid, 1.0, 1.0, 0.0, metric_1d), psi0)

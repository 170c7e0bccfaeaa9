"""Nelson walkers driven by ψ(t) from the split-step solver reproduce |ψ(t)|² ((3.7), (3.10), (3.11)).

State: a displaced, squeezed Gaussian in the harmonic oscillator (ħ = m = ω = 1, σ₀ = 0.5 against the ground
width 0.71, centre 1.5): over half a period its centre swings from 1.5 to −1.5 and its width breathes 0.5 → 1 →
0.5, so the density moves and changes shape.

Tolerances (M walkers, K = 4 compared times, family-wise level δ = 1e-4):

* W1 = ∫|F_M − F| dx. Its mean at the sampling floor is E W1 = √(2/(π n)) ∫√(F(1 − F)) dx
  (:func:`~geodyn.quantum.wasserstein_floor`; 1/n = 1/M + 1/M_ref against a reference sample of M_ref exact
  draws). √n·W1 → ∫|B(F(x))| dx, the L1 norm of a Brownian bridge in F, and by the Borell–TIS inequality
  P(W1 ≥ E W1 + u) ≤ exp(−n u²/(2σ*²)) with σ*² = sup_{|f|≤1} Var ∫f B(F) dx = ∫∫ (min(F, F') − F F') dx dx' = σ_x²,
  the variance of the density. Hence W1 ≤ E W1 + σ_x √(2 ln(K/δ)/n).
* W1 z-score: Borell–TIS uses σ*, the largest standard deviation of a linear functional of the bridge; the actual
  sd of W1 (:func:`~geodyn.quantum.wasserstein_floor`, ≈ 0.46 σ_x/√n here) is smaller, so z_k = (W1 − E W1)/sd at
  each time is a sharper (normal-approximation) check. Pooled across times: z̄ = mean_k z_k. The W1 at different
  times share the walkers, so their correlations ρ are unknown but |ρ| ≤ 1 gives sd(z̄) ≤ 1 (1/√K = ½ if they were
  independent): |z̄| ≤ 4.4 bounds the average W1 by E W1 + 4.4 sd ≈ 2.5 E W1.
* Moments: the walkers' mean and variance against ⟨x⟩, Var x of |ψ|² (grid quadrature), with the sampling
  standard errors σ/√M and σ²√(2/M) (Gaussian state: excess kurtosis 0). With the pooled W1 z-score that is a
  family of 2K + 1 = 9 two-sided normal tests at level δ: |z| ≤ 4.4 (δ/9 per test → 4.39).
* Time stepping: stochastic Heun is weak order 2 for this additive noise; its bias ~ (|∂b| dt)² t with
  |∂b| ~ ν/s² ≤ 2 and dt = 4e-3 is ≲ 2e-4 relative, below a tenth of the sampling errors (≈ 1/√(2M) = 5e-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from geodyn.quantum import (
    Grid,
    Hamiltonian,
    NelsonWalkers,
    SplitStepSchrodinger,
    gaussian,
    nelson_velocities,
    sample_density,
    wasserstein_floor,
)

M, M_REF, K, DELTA = 20_000, 400_000, 4, 1e-4
Z = 4.4  # two-sided normal quantile for 2K + 1 tests at family level δ: 1.1e-5 per test → 4.39
TIMES = [0.5, 1.0, 2.0, math.pi]


def setup():
    grid = Grid((-10.0, 10.0), 256)
    x = grid.axes[0]
    ham = Hamiltonian(grid, 1.0, 1.0, 0.5 * x * x)
    psi0 = ham.normalize(gaussian(grid, 1.5, 0.5))
    return grid, ham, psi0


def moments(p, grid):
    x = grid.axes[0]
    mu = grid.integrate(x * p).real
    return mu, grid.integrate((x - mu) ** 2 * p).real


def test_nelson_velocities_match_madelung_fields():
    """v = (ħ/m)∂ Im log ψ = −γ∂θ and u = (ħ/2m)∂ log p on a state with known p and θ (spectral derivatives:
    errors at round-off, bounded by ε·k_max/√p_min over the compared region)."""
    grid, ham, _ = setup()
    x = grid.axes[0]
    p = np.exp(-((x - 1.0) ** 2)) / math.sqrt(math.pi)
    theta = 0.3 * x**2 - 0.5 * x  # γ = 1/m = 1 here
    psi = np.sqrt(p) * np.exp(-1j * theta / ham.hbar)
    v, u = nelson_velocities(psi, ham)
    inside = p > 1e-6 * p.max()
    np.testing.assert_allclose(v[inside], -(0.6 * x - 0.5)[inside], atol=1e-9)
    np.testing.assert_allclose(u[inside], (0.5 * (-2 * (x - 1.0)))[inside], atol=1e-9)


def test_walkers_reproduce_density_over_time():
    grid, ham, psi0 = setup()
    rng = np.random.default_rng(0)
    x0 = sample_density(np.abs(psi0) ** 2, grid, M, rng)
    run = NelsonWalkers(ham, SplitStepSchrodinger(4e-3)).run(psi0, x0, math.pi, TIMES, seed=1)
    n_eff = 1.0 / (1.0 / M + 1.0 / M_REF)
    widths, z_w1 = [], []
    for k, t in enumerate(TIMES):
        p = np.abs(run.psi[k]) ** 2
        mu, var = moments(p, grid)
        widths.append(math.sqrt(var))
        ref = sample_density(p, grid, M_REF, rng)
        w1 = wasserstein_distance(run.x[k], ref)
        mean, sd = wasserstein_floor(p, grid, M, M_REF)
        bound = mean + math.sqrt(var) * math.sqrt(2 * math.log(K / DELTA) / n_eff)
        assert w1 <= bound, (t, w1, mean, bound)
        z_w1.append((w1 - mean) / sd)
        walkers = run.x[k]
        assert abs(walkers.mean() - mu) / math.sqrt(var / M) <= Z, t
        assert abs(walkers.var() - var) / (var * math.sqrt(2 / M)) <= Z, t
    assert abs(np.mean(z_w1)) <= Z, z_w1
    assert max(widths) > 1.5 * min(widths)  # the density really changes shape over the run


def test_record_times_are_the_step_times():
    """Requested times are rounded to the step grid k·dt and reported as such; two requests on the same step, or a
    time outside [0, t1], are refused before anything runs."""
    grid, ham, psi0 = setup()
    x0 = sample_density(np.abs(psi0) ** 2, grid, 100, np.random.default_rng(0))
    walkers = NelsonWalkers(ham, SplitStepSchrodinger(0.1))
    run = walkers.run(psi0, x0, 1.0, [1.0, 0.0, 0.33])  # dt = 0.1
    np.testing.assert_allclose(run.times, [1.0, 0.0, 0.3], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(run.x[1], x0)
    with pytest.raises(ValueError, match="both round to step 5"):
        walkers.run(psi0, x0, 1.0, [0.48, 0.52])
    with pytest.raises(ValueError, match="outside"):
        walkers.run(psi0, x0, 1.0, [0.5, 1.2])
    with pytest.raises(ValueError, match="velocity"):
        walkers.run(psi0, x0, 1.0, velocity="osmotic")


def test_walkers_without_osmotic_velocity_fail():
    """Control: following the current velocity v alone (plus the same noise) does not reproduce |ψ|² — the same
    bounds reject it, so the test above can fail."""
    grid, ham, psi0 = setup()
    rng = np.random.default_rng(0)
    x0 = sample_density(np.abs(psi0) ** 2, grid, M, rng)
    run = NelsonWalkers(ham, SplitStepSchrodinger(4e-3)).run(psi0, x0, 1.0, [1.0], seed=1, velocity="current")
    p = np.abs(run.psi[0]) ** 2
    _, var = moments(p, grid)
    mean, _ = wasserstein_floor(p, grid, M, M_REF)
    n_eff = 1.0 / (1.0 / M + 1.0 / M_REF)
    bound = mean + math.sqrt(var) * math.sqrt(2 * math.log(K / DELTA) / n_eff)
    assert wasserstein_distance(run.x[0], sample_density(p, grid, M_REF, rng)) > 3 * bound


def test_wasserstein_floor_matches_exact_samples():
    """The analytic floor against the W1 of independent exact samples (R = 100 draws): the mean agrees within the
    Monte-Carlo error 4·sd/√R plus the O(1/n) finite-size bias of the asymptotic formula (a few % at n = 2000)."""
    grid, _, psi0 = setup()
    p = np.abs(psi0) ** 2
    rng = np.random.default_rng(3)
    n = 2000
    mean, sd = wasserstein_floor(p, grid, n, 20 * n)
    draws = [
        wasserstein_distance(sample_density(p, grid, n, rng), sample_density(p, grid, 20 * n, rng)) for _ in range(100)
    ]
    assert abs(np.mean(draws) - mean) <= 4 * sd / 10 + 0.05 * mean
    assert 0.7 <= np.std(draws) / sd <= 1.3  # sd of an sd estimate from 100 draws ≈ 7 %, 4σ

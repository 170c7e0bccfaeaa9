"""Grids, tensor fields and the Laplace–Beltrami operator of (3.9)/(3.11); Crank–Nicolson in 2-D."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodyn.quantum import (
    CrankNicolsonSchrodinger,
    Grid,
    Hamiltonian,
    SaveAt,
    TensorField,
    evolve,
    gaussian,
    ground_state,
    laplace_beltrami,
)


def test_grid_geometry_and_validation():
    grid = Grid(((0.0, 2.0), (-1.0, 1.0)), (8, 4))
    assert grid.spacing == (0.25, 0.5) and grid.cell_volume == 0.125 and grid.size == 32
    assert grid.coords[0].shape == (8, 4)
    np.testing.assert_allclose(grid.face_coords(0)[0][:, 0], grid.axes[0] + 0.125)
    assert grid.integrate(np.ones(grid.shape)) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        Grid((1.0, 0.0), 16)
    with pytest.raises(ValueError):
        Grid(((0.0, 1.0), (0.0, 1.0)), 16)
    with pytest.raises(ValueError):
        TensorField(grid, np.ones((3, 8, 4)))


def test_laplace_beltrami_full_tensor_against_closed_form():
    """A constant full metric G (rotated anisotropic): ∇_μ(g^{μν}∂_ν f) = G^{-1}_{μν}∂_μ∂_ν f. For the Gaussian
    f = exp(−|q|²/2): Δ_G f = (qᵀG⁻¹q − tr G⁻¹) f. Spectral accuracy on a box that holds f to e^{−50}:
    error at round-off, ≲ ε·k_max² ≈ 1e-12 (bound 1e-10)."""
    grid = Grid(((-10.0, 10.0), (-10.0, 10.0)), (64, 64))
    x, y = grid.coords
    c, s = math.cos(0.4), math.sin(0.4)
    rot = np.array([[c, -s], [s, c]])
    g = rot @ np.diag([1.5, 0.6]) @ rot.T
    ginv = np.linalg.inv(g)
    f = np.exp(-(x * x + y * y) / 2)
    exact = (ginv[0, 0] * x * x + 2 * ginv[0, 1] * x * y + ginv[1, 1] * y * y - np.trace(ginv)) * f
    field = TensorField(grid, g)
    assert field.kind == "full"
    np.testing.assert_allclose(laplace_beltrami(f, field, "spectral"), exact, atol=1e-10)
    with pytest.raises(ValueError):
        laplace_beltrami(f, field, "fd2")
    # a full tensor with zero off-diagonal part is the diagonal one
    diag = TensorField(grid, [np.full(grid.shape, 1.5), np.full(grid.shape, 0.6)])
    full = TensorField(grid, np.diag([1.5, 0.6]))
    np.testing.assert_allclose(laplace_beltrami(f, full, "spectral"), laplace_beltrami(f, diag, "spectral"), atol=1e-14)


def _metric_2d(x, y):
    return [1.0 + 0.3 * np.sin(np.pi * (x + y) / 8.0) ** 2, 1.2 - 0.3 * np.sin(np.pi * y / 8.0) ** 2]


def test_crank_nicolson_2d_conserves_norm_and_is_second_order():
    """2-D CN with a q-dependent diagonal metric: ∫√g|ψ|² conserved to round-off over 500 steps (random walk,
    ~√n·ε ≈ 1e-14; bound 1e-12) and the Richardson order in time within ±0.1 of 2 (as in 1-D)."""
    grid = Grid(((-8.0, 8.0), (-8.0, 8.0)), (32, 32))
    ham = Hamiltonian(grid, 1.0, 1.0, lambda x, y: 0.5 * (x * x + y * y), _metric_2d)
    psi0 = ham.normalize(gaussian(grid, (1.0, -0.5), (0.8, 0.7), momentum=(0.5, 0.0)))
    sol = evolve(ham, psi0, 500 * 0.01, CrankNicolsonSchrodinger(0.01), SaveAt(ts=[0.0, 2.5, 5.0]))
    assert sol.norm_drift() <= 1e-12
    states = [evolve(ham, psi0, 1.0, CrankNicolsonSchrodinger(d)).psi[-1] for d in (0.04, 0.02, 0.01)]
    e1, e2 = ham.norm(states[0] - states[1]), ham.norm(states[1] - states[2])
    assert abs(math.log2(e1 / e2) - 2.0) <= 0.1


def test_crank_nicolson_2d_ground_energy_is_sum_of_1d():
    """Flat, separable V: the 2-D stencil H is the Kronecker sum of the 1-D ones, so its ground energy is the sum of
    the 1-D ground energies exactly (to the convergence tolerance of imaginary time, ~1e-12)."""
    grid2 = Grid(((-8.0, 8.0), (-6.0, 6.0)), (64, 48))
    ham2 = Hamiltonian(grid2, 1.0, 1.0, lambda x, y: 0.5 * (x * x + 4.0 * y * y))
    e2 = ground_state(ham2, CrankNicolsonSchrodinger(0.05), tol=1e-13).energy
    ex = ground_state(
        Hamiltonian(Grid((-8.0, 8.0), 64), 1.0, 1.0, lambda x: 0.5 * x * x), CrankNicolsonSchrodinger(0.05), tol=1e-13
    ).energy
    ey = ground_state(
        Hamiltonian(Grid((-6.0, 6.0), 48), 1.0, 1.0, lambda y: 2.0 * y * y), CrankNicolsonSchrodinger(0.05), tol=1e-13
    ).energy
    assert abs(e2 - (ex + ey)) <= 1e-10
    assert abs(e2 - 1.5) <= 0.05  # ħ(ω_x + ω_y)/2 up to the O(h²) stencil error

"""Cross-check against QuTiP's ``sesolve`` on the same discretised Hamiltonian of (3.11).

QuTiP's ``"diag"`` method evolves with the eigen-decomposition of H, i.e. exactly in time; the difference from
geodyn is then the time-discretisation error of geodyn's method alone, which theory predicts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodyn.quantum import CrankNicolsonSchrodinger, Grid, Hamiltonian, SplitStepSchrodinger, evolve, gaussian

qutip = pytest.importorskip("qutip")

OPTIONS = {"method": "diag", "normalize_output": False, "store_final_state": True}


def metric_1d(x):
    return 1.0 + 0.6 * np.sin(np.pi * x / 10.0) ** 2


def test_crank_nicolson_against_qutip_with_q_dependent_metric():
    """CN's discrete H = W⁻¹K (g(q), second-order stencil) is self-adjoint in the √g inner product; QuTiP gets the
    unitarily equivalent symmetric H_s = W^{−1/2} K W^{−1/2} acting on φ = W^{1/2}ψ. CN advances each eigenmode by
    the phase 2 arctan(λdt/(2ħ)) instead of λdt/ħ, an error t λ³dt²/(12ħ³) after time t; for small phase errors
    ‖ψ_CN − ψ_exact‖ = (t dt²/(12ħ³)) ‖H³ψ0‖ (1 + O((λdt)²)). Measured/predicted must be 1 within 3 %: the next
    term of arctan's series is (12/80)(λdt/ħ)² ≤ 1 % for the modes that carry ψ0, and the quadratic term of
    |e^{iδ} − 1| another δ²/24 ≲ 1e-4."""
    hbar, m, t1, dt = 1.0, 1.0, 2.0, 0.01
    grid = Grid((-10.0, 10.0), 128)
    ham = Hamiltonian(grid, hbar, m, lambda x: 0.5 * x * x + 0.3 * np.sin(x), metric_1d)
    psi0 = ham.normalize(gaussian(grid, 1.5, 0.7, momentum=0.8))
    psi_cn = evolve(ham, psi0, t1, CrankNicolsonSchrodinger(dt)).psi[-1]

    k_mat, w_mat = CrankNicolsonSchrodinger.matrices(ham)
    w_half = np.sqrt(ham.weight)
    h_sym = (k_mat.toarray() / w_half[:, None]) / w_half[None, :]
    assert np.abs(h_sym - h_sym.T).max() <= 4 * np.finfo(float).eps * np.abs(h_sym).max()  # K symmetric
    h_sym = 0.5 * (h_sym + h_sym.T)  # remove the rounding of the two divisions
    h_q = qutip.Qobj(h_sym)
    phi0 = qutip.Qobj((w_half * psi0)[:, None])
    res = qutip.sesolve(h_q / hbar, phi0, [0.0, t1], options=OPTIONS)  # sesolve solves i dφ/dt = (H/ħ) φ
    psi_qt = res.final_state.full().ravel() / w_half

    h_psi = psi0
    for _ in range(3):
        h_psi = ham.apply(h_psi, "fd2")
    predicted = t1 * dt**2 / (12 * hbar**3) * ham.norm(h_psi)
    measured = ham.norm(psi_cn - psi_qt)
    assert predicted > 1e-6  # far above QuTiP's diag round-off (~1e-13)
    assert abs(measured / predicted - 1.0) <= 0.03


def test_split_step_converges_to_qutip_on_the_spectral_hamiltonian():
    """Split-step evolves with the spectral H = F⁻¹ T(k) F + V; QuTiP evolves the same H (dense) exactly. The
    split-step error is C dt² + O(dt⁴): e(dt)/e(dt/2) = 4 within ±7 % (order 2 ± 0.1), and the Richardson estimate
    ‖ψ_dt − ψ_dt/2‖/3 of e(dt/2) must hold within 10 % (its relative error is O(dt²) ≈ 1e-3 plus the O(dt²) change
    of the error's direction)."""
    hbar, m, t1 = 1.0, 1.0, 2.0
    grid = Grid((-10.0, 10.0), 128)
    ham = Hamiltonian(grid, hbar, m, lambda x: 0.5 * x * x + 0.3 * np.sin(x))
    psi0 = ham.normalize(gaussian(grid, 1.5, 0.7, momentum=0.8))
    (k,) = grid.wavenumbers
    t_k = hbar**2 * k**2 / (2 * m)
    eye = np.eye(grid.size)
    kinetic = np.fft.ifft(t_k[:, None] * np.fft.fft(eye, axis=0), axis=0)
    h_dense = kinetic + np.diag(ham.potential)
    h_dense = 0.5 * (h_dense + h_dense.conj().T)  # Hermitian up to the FFT's rounding
    res = qutip.sesolve(qutip.Qobj(h_dense) / hbar, qutip.Qobj(psi0[:, None]), [0.0, t1], options=OPTIONS)
    psi_qt = res.final_state.full().ravel()
    dt = 0.02
    psi_a = evolve(ham, psi0, t1, SplitStepSchrodinger(dt)).psi[-1]
    psi_b = evolve(ham, psi0, t1, SplitStepSchrodinger(dt / 2)).psi[-1]
    e_a, e_b = ham.norm(psi_a - psi_qt), ham.norm(psi_b - psi_qt)
    assert abs(math.log2(e_a / e_b) - 2.0) <= 0.1
    assert abs(ham.norm(psi_a - psi_b) / 3 / e_b - 1.0) <= 0.1

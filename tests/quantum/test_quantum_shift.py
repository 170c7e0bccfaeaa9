"""The discrete shift symmetry (3.14) on a ring: θ ≃ θ + 2πħn. A winding w = ∮∂θ dq of θ gives a single-valued
ψ = √p e^{−iθ/ħ} (3.10) iff w ∈ 2πħℤ; the Madelung equations (3.7)–(3.9) evolve every winding, (3.11) only the
quantised ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodyn.quantum import Grid, Hamiltonian, Madelung, MadelungFields, SaveAt, SplitStepSchrodinger, evolve

L = 2 * math.pi


def ring(n=64):
    return Grid((0.0, L), n)


def bloch_split_step(phi0, potential, grid, hbar, mass, k_twist, t1, dt):
    """Strang split-step for a quasi-periodic ψ = e^{−i k_w (q − a)} φ with φ periodic (twisted boundary condition
    ψ(q + L) = e^{−i k_w L} ψ(q)): ∂ψ = e^{−i k_w (q − a)}(∂ − i k_w)φ, so φ evolves with the kinetic symbol
    (ħ²/2m)(k − k_w)² instead of (ħ²/2m)k². Returns φ(t1)."""
    n = max(1, math.ceil(t1 / dt * (1 - 1e-12)))
    h = t1 / n
    (k,) = grid.wavenumbers
    kinetic = np.exp(-1j * hbar / (2 * mass) * (k - k_twist) ** 2 * h)
    half = np.exp(-0.5j * potential * h / hbar)
    phi = half * phi0
    for i in range(n):
        phi = np.fft.ifft(kinetic * np.fft.fft(phi))
        phi = phi * (half * half if i < n - 1 else half)
    return phi


def test_quantised_winding_psi_evolution_equals_madelung_evolution():
    """Winding 2πħ with a non-uniform density in a potential: the Madelung equations integrated directly (RK4,
    spectral) and ψ evolved by split-step must describe the same (p, θ). The split-step error is C dt² (RK4's
    is O(dt⁴) ≪ that), so ‖ψ_Madelung − ψ_dt‖ must fall by 4 per halving (order 2 ± 0.1) and equal the
    Richardson estimate ‖ψ_dt − ψ_dt/2‖ · 4/3 within 10 %. The winding read back from ψ(t) stays 2πħ·1."""
    mad = Madelung(1.0, 4.0)  # ħ = m = 1
    grid = ring()
    q = grid.axes[0]
    v = 0.5 * np.cos(q)
    ham = Hamiltonian(grid, mad.hbar, mad.mass, v)
    w = 2 * math.pi * mad.hbar
    f0 = MadelungFields((1 + 0.3 * np.cos(q)) / L, 0.2 * np.sin(q), (w,))
    assert mad.is_single_valued(w)
    (f1,) = mad.evolve_fields(f0, grid, 1.0, 2.5e-3, v)
    psi_m = mad.psi_of_fields(f1, grid)
    psi0 = mad.psi_of_fields(f0, grid)
    dt = 2e-3
    psi_a, psi_b = (evolve(ham, psi0, 1.0, SplitStepSchrodinger(d)).psi[-1] for d in (dt, dt / 2))
    e_a, e_b = ham.norm(psi_m - psi_a), ham.norm(psi_m - psi_b)
    assert abs(math.log2(e_a / e_b) - 2.0) <= 0.1
    assert abs(ham.norm(psi_a - psi_b) * 4 / 3 / e_a - 1.0) <= 0.1
    back = mad.fields(psi_b, grid)
    assert abs(back.winding[0] / w - 1.0) <= 1e-12
    # p and θ themselves: |δp| ≤ (2|ψ| + |δψ|)|δψ| and |δθ| ≤ ħ·arcsin(|δψ|/|ψ|) pointwise, θ modulo 2πħ
    dpsi = np.abs(psi_m - psi_b)
    assert np.all(np.abs(back.p - f1.p) <= (2 * np.abs(psi_m) + dpsi) * dpsi + 1e-15)
    n = round((back.theta[0] - f1.theta[0]) / w)
    dtheta = np.abs(back.theta - n * w - f1.theta)
    assert np.all(dtheta <= mad.hbar * np.arcsin(np.minimum(1.0, dpsi / np.abs(psi_m))) * (1 + 1e-6) + 1e-14)


def test_non_quantised_winding_has_no_single_valued_psi():
    """Plane-wave state p = 1/L, θ = w q/L. The Madelung equations keep p uniform for every w (∂θ is constant, so
    the current is divergence-free) and θ(t) = wq/L + (γ/2)(w/L)²t. For w = 2πħ(n + δ):

    * δ = 0: ψ = e^{−iwq/(ħL)} is single valued and (3.11) keeps |ψ|² uniform to round-off;
    * δ = ½: ψ on [0, L) jumps by the factor e^{−iw/ħ} = −1 across the seam, |ψ(L⁻) − ψ(0)| = 2√p; the best overlap
      with any single-valued plane wave e^{2πimq/L} is the discrete Fejér value (sin πδ / (N sin(πδ/N)))²
      (→ sinc² πδ = 4/π²), and evolving the single-valued (periodic) ψ does not follow the Madelung solution:
      its density develops O(1) ripples from the seam.

    RK4 step: dt·(ħ/2m)·k_max² = 1e-3·½·64² = 2.05, inside RK4's stability limit 2√2 on the imaginary axis."""
    mad = Madelung(1.0, 4.0)
    grid = ring(128)
    n_nodes = grid.shape[0]
    q = grid.axes[0]
    ham = Hamiltonian(grid, mad.hbar, mad.mass, 0.0)
    for delta in (0.0, 0.5):
        w = 2 * math.pi * mad.hbar * (1 + delta)
        f0 = MadelungFields(np.full(n_nodes, 1 / L), np.zeros(n_nodes), (w,))
        (f1,) = mad.evolve_fields(f0, grid, 0.5, 1e-3)
        np.testing.assert_allclose(f1.p, 1 / L, rtol=1e-13)  # Madelung: uniform for every winding
        np.testing.assert_allclose(f1.theta, 0.5 * mad.gamma * (w / L) ** 2 * 0.5, rtol=1e-12)
        psi = mad.psi_of_fields(f0, grid)
        plane = np.exp(2j * math.pi * np.outer(np.arange(-4, 5), q) / L) / math.sqrt(L)
        overlaps = np.abs(plane.conj() @ psi * grid.spacing[0]) ** 2
        fejer = (
            1.0 if delta == 0 else (math.sin(math.pi * delta) / (n_nodes * math.sin(math.pi * delta / n_nodes))) ** 2
        )
        assert abs(overlaps.max() - fejer) <= 1e-12
        seam = abs(psi[-1] * np.exp(-1j * w * grid.spacing[0] / (mad.hbar * L)) - psi[0])
        sol = evolve(ham, psi, 0.5, SplitStepSchrodinger(1e-3), SaveAt(ts=[0.1, 0.5]))
        ripple = np.max(np.abs(sol.density() * L - 1.0))
        assert mad.is_single_valued(w) == (delta == 0)
        if delta == 0:
            assert seam <= 1e-13 and ripple <= 1e-12
        else:
            assert abs(seam - 2 / math.sqrt(L)) <= 1e-12
            assert abs(overlaps.max() - 4 / math.pi**2) <= 1e-4  # Fejér → sinc² at N = 128: O(1/N²)
            assert ripple >= 0.1


def test_half_integer_winding_is_the_twisted_boundary_evolution():
    """A non-quantised winding w = 2πħ·3/2 with a non-uniform density in a potential: the Madelung fields are the
    quasi-periodic ψ = √p e^{−iθ/ħ} = e^{−i k_w (q − a)} φ, k_w = w/(ħL), with φ = √p e^{−iθ̃/ħ} periodic, i.e.
    (3.11) with the twisted boundary condition ψ(q + L) = −ψ(q). RK4 on (3.7)–(3.9) (error O(dt⁴)) and the
    twisted split-step (error C dt²) must agree to split-step's error: order 2 ± 0.1 under halving and the Richardson
    estimate within 10 % (as for the quantised winding). The untwisted (single-valued) ψ with the same initial
    values is O(1) away."""
    mad = Madelung(1.0, 4.0)  # ħ = m = 1
    grid = ring()
    q = grid.axes[0]
    v = 0.5 * np.cos(q)
    w = 2 * math.pi * mad.hbar * 1.5
    assert not mad.is_single_valued(w)
    f0 = MadelungFields((1 + 0.3 * np.cos(q)) / L, 0.2 * np.sin(q), (w,))
    (f1,) = mad.evolve_fields(f0, grid, 1.0, 2.5e-3, v)
    assert f1.p.min() > 0.05  # the hydrodynamic description stays valid (no node)
    phi_m = mad.psi(f1.p, f1.theta)
    phi0 = mad.psi(f0.p, f0.theta)
    k_w = w / (mad.hbar * L)
    dt = 2e-3
    phi_a, phi_b = (bloch_split_step(phi0, v, grid, mad.hbar, mad.mass, k_w, 1.0, d) for d in (dt, dt / 2))
    ham = Hamiltonian(grid, mad.hbar, mad.mass, v)
    e_a, e_b = ham.norm(phi_m - phi_a), ham.norm(phi_m - phi_b)
    assert abs(math.log2(e_a / e_b) - 2.0) <= 0.1
    assert abs(ham.norm(phi_a - phi_b) * 4 / 3 / e_a - 1.0) <= 0.1
    periodic = evolve(ham, mad.psi_of_fields(f0, grid), 1.0, SplitStepSchrodinger(dt)).psi[-1]
    assert ham.norm(periodic - mad.psi_of_fields(f1, grid)) > 0.1


def test_evolve_fields_refuses_unstable_rk4_steps():
    """Linearised about a uniform p the Madelung equations have ω = γ√(γ/β) g⁻¹k² (= (ħ/2m)k², variant A); RK4 is
    stable on the imaginary axis for |ω dt| ≤ 2√2. On ring(128), ħ/2m = ½: dt = 2.5e-3 gives ½·64²·2.5e-3 = 5.12."""
    mad = Madelung(1.0, 4.0)
    grid = ring(128)
    f0 = MadelungFields(np.full(128, 1 / L), np.zeros(128), (2 * math.pi * mad.hbar * 1.5,))
    assert mad.stability_number(grid, None, 2.5e-3) == pytest.approx(5.12, rel=1e-12)
    with pytest.raises(ValueError, match="stability"):
        mad.evolve_fields(f0, grid, 0.5, 2.5e-3)
    # a metric g < 1 raises g^{μμ} and with it the stiffness: g = ½ doubles it
    assert mad.stability_number(grid, 0.5, 1e-3) == pytest.approx(2 * mad.stability_number(grid, None, 1e-3))
    with pytest.raises(ValueError, match="stability"):
        mad.evolve_fields(f0, grid, 0.5, 1.5e-3, metric=0.5)
    (f1,) = mad.evolve_fields(f0, grid, 0.01, 1e-3)  # 2.05: accepted
    np.testing.assert_allclose(f1.p, 1 / L, rtol=1e-13)

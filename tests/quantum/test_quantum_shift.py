"""The discrete shift symmetry (3.14) on a ring: θ ≃ θ + 2πħn. A winding w = ∮∂θ dq of θ gives a single-valued
ψ = √p e^{−iθ/ħ} (3.10) iff w ∈ 2πħℤ; the Madelung equations (3.7)–(3.9) evolve every winding, (3.11) only the
quantised ones."""

from __future__ import annotations

import math

import numpy as np

from geodyn.quantum import Grid, Hamiltonian, Madelung, MadelungFields, SaveAt, SplitStepSchrodinger, evolve

L = 2 * math.pi


def ring(n=64):
    return Grid((0.0, L), n)


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
      its density develops O(1) ripples from the seam."""
    mad = Madelung(1.0, 4.0)
    grid = ring(128)
    n_nodes = grid.shape[0]
    q = grid.axes[0]
    ham = Hamiltonian(grid, mad.hbar, mad.mass, 0.0)
    for delta in (0.0, 0.5):
        w = 2 * math.pi * mad.hbar * (1 + delta)
        f0 = MadelungFields(np.full(n_nodes, 1 / L), np.zeros(n_nodes), (w,))
        (f1,) = mad.evolve_fields(f0, grid, 0.5, 2.5e-3)
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

"""The sympy oracles of the quantum experiments against the numerical code they judge, and the spec findings."""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from geodyn.experiments import quantum_symbolic as sym
from geodyn.experiments.quantum_learning import _RING_KAPPA, _RING_LOSS, ring_kappa, ring_loss
from geodyn.quantum import Grid, effective_potential, planck_constant


def test_closed_form_effective_potential_matches_autograd():
    """(3.6) from sympy vs the package's autograd V on the ring, g = κ(q): two derivations of the same formula agree
    to round-off (|V| ≲ 1, a few operations each: 1e-13 is ~500 ulp of margin)."""
    gamma, beta = 0.4, 2.5
    grid = Grid((0.0, 2 * math.pi), 64)
    q = grid.axes[0]
    closed = sym.numeric(sym.effective_potential_1d(_RING_LOSS, _RING_KAPPA, gamma, beta), sym.q)(q)
    numeric = effective_potential(ring_loss, grid, gamma, beta, ring_kappa)
    assert np.max(np.abs(closed - numeric)) < 1e-13
    # the comparison can fail: the sympy form with β halved (the divergence term doubled) is far off
    wrong = sym.numeric(sym.effective_potential_1d(_RING_LOSS, _RING_KAPPA, gamma, beta / 2), sym.q)(q)
    assert np.max(np.abs(wrong - numeric)) > 0.1


def test_unique_hbar_mass_is_variant_a():
    h, m, n = sym.unique_hbar_mass()
    assert n == 1
    value = float(h.subs({sym.gam: 0.3, sym.beta: 3.5}))
    assert abs(value / planck_constant(0.3, 3.5) - 1) < 4e-16
    assert abs(value / planck_constant(0.3, 3.5, "B") - 1) > 0.1


def test_findings_are_established_with_their_derivations():
    for finding in (sym.finding_variant_b(), sym.finding_zero_energy(), sym.finding_neural_measure()):
        assert finding.established, [c.as_dict() for c in finding.checks if not c.passed]
        assert finding.derivation and finding.statement


def test_quantum_potential_2d_reduces_to_flat_for_constant_kappa():
    """With κ = I the closed form (3.9) is −c Δ√p/√p; for √p = e^{−r²/2}, Δ√p/√p = r² − 2."""
    x, y = sp.symbols("x y", real=True)
    q = sym.quantum_potential_2d(sp.exp(-(x**2 + y**2) / 2), (sp.Integer(1), sp.Integer(1)), x, y, 2.0)
    assert sp.simplify(q + 2.0 * (x**2 + y**2 - 2)) == 0

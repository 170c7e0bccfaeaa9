"""Fault injection for the quantum experiments: each reproduces at a test size, and a fault injected into the
science it checks (ħ off by 2, a term of (3.6) dropped, the measure √g of the Laplace–Beltrami operator dropped, the
sign of the phase in (3.10), the osmotic velocity doubled, a factor 2 in the neural potential, the plain ∂ where the
covariant divergence is claimed) takes its verdict off "reproduced"."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

import geodyn.quantum.grid as grid_mod
import geodyn.quantum.madelung as madelung_mod
import geodyn.quantum.nelson as nelson_mod
import geodyn.quantum.schrodinger as schrodinger_mod
from geodyn.experiments import REGISTRY, quantum_neural
from geodyn.experiments.registry import Context, Verdict
from geodyn.quantum.grid import TensorField

# test sizes: smaller than quick where the checks stay in their asymptotic range (orders within their tolerances)
SIZES = {
    "schrodinger-from-learning": {
        "ring": 48,
        "ring_dt": 0.025,
        "t_final": 1.0,
        "grid": 192,
        "box": 12.0,
        "gamma": 0.5,
        "beta": 2.0,
    },
    "quantum-shift-symmetry": {"grid": 32, "t_final": 0.5, "dt": 4e-3, "rk4_dt": 8e-3, "steps_per_quantum": 2},
    "nelson-walkers": {"walkers": 6000, "dt": 5e-3, "grid": 256, "reference": 120000, "seeds": 1},
    "neural-potential": {"grid": 128},  # the quick size: 1/κ needs k_max = π/h ≳ 25
}


def run(name: str):
    return REGISTRY[name].run(Context(size="test", params=dict(SIZES[name]), seed=3))


@pytest.mark.parametrize("name", list(SIZES))
def test_reproduces_at_test_size(name):
    outcome = run(name)
    assert outcome.verdict == Verdict.REPRODUCED, outcome.failed()
    assert outcome.controls and all(c.rejected for c in outcome.controls)


# -- schrodinger-from-learning -----------------------------------------------------------------------------------
def _double_hbar(monkeypatch):
    orig = madelung_mod.planck_constant
    monkeypatch.setattr(madelung_mod, "planck_constant", lambda g, b, variant="A": 2 * orig(g, b, variant))


def _drop_divergence_term_of_v(monkeypatch):
    orig = madelung_mod.effective_potential

    def v_without_divergence(loss, grid, gamma, beta, metric=None, derivatives="autograd"):
        return orig(loss, grid, gamma, 1e300, metric, derivatives)  # (γ/β)∇(g⁻¹∂H̄) → 0

    monkeypatch.setattr(madelung_mod, "effective_potential", v_without_divergence)


def _drop_sqrt_g_in_laplace_beltrami(monkeypatch):
    def coefficient(metric):  # g^{μν} in place of √g g^{μν}: ∂(g⁻¹∂ψ)/√g is not the Laplace–Beltrami operator
        faces = {ax: metric.inverse_components(ax) for ax in range(metric.grid.ndim)}
        return TensorField.from_components(metric.grid, metric.inverse_components(), faces, metric.constant)

    # in the kinetic term of (3.11) and in Q of (3.9) alike: the two sides share the wrong operator, and still the
    # continuity equation (3.7), with its own √g, tells them apart
    monkeypatch.setattr(schrodinger_mod, "laplace_beltrami_coefficient", coefficient)
    monkeypatch.setattr(grid_mod, "laplace_beltrami_coefficient", coefficient)


@pytest.mark.parametrize("fault", [_double_hbar, _drop_divergence_term_of_v, _drop_sqrt_g_in_laplace_beltrami])
def test_schrodinger_from_learning_detects(fault, monkeypatch):
    fault(monkeypatch)
    assert run("schrodinger-from-learning").verdict != Verdict.REPRODUCED


# -- quantum-shift-symmetry --------------------------------------------------------------------------------------
def _plus_phase(monkeypatch):
    def psi(self, p, theta):  # ψ = √p e^{+iθ/ħ}: the opposite sign of (3.10)
        return np.sqrt(np.maximum(p, 0.0)) * np.exp(1j * np.asarray(theta) / self.hbar)

    monkeypatch.setattr(madelung_mod.Madelung, "psi", psi)


@pytest.mark.parametrize("fault", [_double_hbar, _plus_phase])
def test_shift_symmetry_detects(fault, monkeypatch):
    fault(monkeypatch)
    assert run("quantum-shift-symmetry").verdict != Verdict.REPRODUCED


# -- nelson-walkers ----------------------------------------------------------------------------------------------
def _velocities(scale_v: float, scale_u: float):
    orig = nelson_mod.nelson_velocities

    def wrong(psi, ham, floor=1e-14):
        v, u = orig(psi, ham, floor)
        return scale_v * v, scale_u * u

    return wrong


@pytest.mark.parametrize("scales", [(1.0, 2.0), (-1.0, 1.0)], ids=["osmotic-doubled", "current-reversed"])
def test_nelson_walkers_detects(scales, monkeypatch):
    monkeypatch.setattr(nelson_mod, "nelson_velocities", _velocities(*scales))
    assert run("nelson-walkers").verdict != Verdict.REPRODUCED


# -- neural-potential --------------------------------------------------------------------------------------------
def _double_operator(monkeypatch):
    orig = madelung_mod.div_grad
    monkeypatch.setattr(madelung_mod, "div_grad", lambda f, c, scheme="fd2": 2 * orig(f, c, scheme))


def _covariant_is_plain(monkeypatch):
    orig = quantum_neural.neural_potential

    def plain(*args, divergence="partial", **kwargs):
        return orig(*args, divergence="partial", **kwargs)

    monkeypatch.setattr(quantum_neural, "neural_potential", plain)


@pytest.mark.parametrize("fault", [_double_operator, _covariant_is_plain])
def test_neural_potential_detects(fault, monkeypatch):
    fault(monkeypatch)
    assert run("neural-potential").verdict != Verdict.REPRODUCED


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")

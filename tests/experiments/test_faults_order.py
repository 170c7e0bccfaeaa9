"""Fault injection for optimizer-ordering and noise-spectrum: a fault in the science they check must turn a passing
check into a failing one (and the verdict away from "reproduced"), so the experiments can tell right from wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geodyn.experiments import REGISTRY
from geodyn.experiments import noise_spectrum as ns
from geodyn.experiments import optimizer_ordering as oo
from geodyn.experiments.registry import Context, Outcome, Verdict
from geodyn.metric import ThreeRegime
from quick_outcomes import group, quick_outcome


def run(name: str, **params) -> Outcome:
    exp = REGISTRY[name]
    return exp.run(Context(size="quick", params=exp.sizes["quick"] | params, seed=0))


def check(outcome: Outcome, fragment: str):
    (found,) = [c for c in outcome.checks if fragment in c.name]
    return found


# ------------------------------------------------------------------------------------------------ noise-spectrum


@pytest.mark.slow
@pytest.mark.xdist_group(group("noise-spectrum"))
def test_noise_spectrum_reproduces_at_quick_size():
    outcome, _ = quick_outcome("noise-spectrum")
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    assert {c.name for c in outcome.controls} == {"isotropic noise", "shuffled gradients", "rescaled κ"}


@pytest.mark.slow
def test_noise_spectrum_fault_eps_and_zeta_swapped(monkeypatch):
    """ε and ζ exchanged in the optimizer's law: the band becomes (ζ², ε⁻²) = (1, 10¹⁶), above every κ/b."""
    monkeypatch.setattr(ns, "ThreeRegime", lambda eps, zeta: ThreeRegime(zeta, eps))
    outcome = run("noise-spectrum", bootstrap=4)
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not check(outcome, "eigenvalues of κ/b: lower 95% bound of the share").passed
    assert not check(outcome, "diagonal κ_ii/b: lower 95% bound of the share").passed


@pytest.mark.slow
def test_noise_spectrum_fault_standard_deviations_for_variances(monkeypatch):
    """A wrong exponent: √λ (standard deviations) reported as the noise eigenvalues halves every decade count."""
    real = ns.resample

    def sqrt_resample(rows, n_boot, seed):
        r = real(rows, n_boot, seed)
        boot_e, boot_d = [np.sqrt(v) for v in r.boot_eigenvalues], [np.sqrt(v) for v in r.boot_diagonals]
        return ns.Resamples(np.sqrt(r.eigenvalues), np.sqrt(r.diagonal), r.zero_diagonal, boot_e, boot_d)

    monkeypatch.setattr(ns, "resample", sqrt_resample)
    outcome = run("noise-spectrum", bootstrap=4)
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not check(outcome, "eigenvalues of κ/b: 3 − lower").passed
    assert not check(outcome, "diagonal κ_ii/b: 3 − lower").passed


def test_shuffled_rows_keep_each_examples_values():
    rows = torch.arange(12.0).reshape(3, 4)
    shuffled = ns.shuffled_rows(rows, seed=0)
    assert torch.equal(shuffled.sort(dim=1).values, rows)
    assert not torch.equal(shuffled, rows)


# --------------------------------------------------------------------------------------------- optimizer-ordering

MULT = {"tasks": ["multiplication MLP"], "optimizers": [oo.FULL, oo.DIAGONAL]}


@pytest.mark.slow
def test_ordering_fault_eigenbasis_dropped(monkeypatch):
    """Full CGD's eigenvalues applied along the coordinate axes instead of κ̂'s eigenvectors."""
    import geodyn.optim.kron as kron

    real = kron.clipped_eigh

    def no_basis(moment, rcond=None):
        lam, vecs = real(moment, rcond)
        return lam, torch.eye(vecs.shape[-1], dtype=vecs.dtype)

    monkeypatch.setattr(kron, "clipped_eigh", no_basis)
    outcome = run("optimizer-ordering", **MULT)
    assert not check(outcome, "CGD full needs").passed
    assert outcome.verdict is not Verdict.REPRODUCED


def test_shuffled_eigenbasis_is_a_derangement():
    law = ThreeRegime(1e-8, 1.0)
    for n in (2, 3, 151):
        lam = torch.arange(1.0, n + 1, dtype=torch.float64)[:, None]
        control = oo.shuffled_eigenbasis(law, n)
        g = control(lam)
        assert sorted(g[:, 0].tolist()) == pytest.approx(sorted(law(lam)[:, 0].tolist()), rel=1e-15)
        assert not torch.any(g == law(lam)), "no eigen-direction may keep its own eigenvalue"


def test_paired_test_margin():
    """Ten seeds that all need 20 % fewer steps pass a 10 % margin (exact p = 2⁻¹⁰); 5 % fewer do not."""
    b = np.array([100.0, 120, 140, 160, 180, 200, 220, 240, 260, 280])
    assert oo.paired_test(0.8 * b, b) == pytest.approx(2.0**-10)
    assert oo.paired_test(0.95 * b, b) == pytest.approx(1.0)

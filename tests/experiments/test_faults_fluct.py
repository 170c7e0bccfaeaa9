"""Fault injection for the step-fluctuation experiments: fluctuation-exponent, alpha-of-optimizers, phase-transition.

Each experiment must reproduce at a small test size, and a fault injected into the science it checks (a wrong
exponent in the metric law, a factor in the step, κ without its 1/b, swapped regime labels) must take its verdict
away from "reproduced". The test sizes keep every run to a few seconds on one core; they use one seed, so the
intervals are the fits' own (as at quick size).
"""

from __future__ import annotations

import pytest
import torch

import geodyn.experiments.alpha_of_optimizers as alpha_exp
import geodyn.experiments.fluctuations as fluct
import geodyn.experiments.phase_transition as phase
import geodyn.optim.presets as presets
from geodyn.experiments.registry import REGISTRY, Context, Verdict
from geodyn.metric import Power, PowerSum
from geodyn.optim import CGD

TEST_SIZES = {
    "fluctuation-exponent": {"seeds": 1, "hidden": 16, "beta2": 0.95, "steps": 240},
    "alpha-of-optimizers": {"seeds": 1, "hidden": 16, "train_steps": 100, "beta2": 0.95, "steps": 240,
                            "transformer": False},
    "phase-transition": {"seeds": 1, "hidden": 16, "train_steps": 100, "beta2": 0.98, "steps": 240,
                         "eps_zeta": [1e-3, 1e-1, 10.0]},
}  # fmt: skip


def _run(name, seed=0):
    return REGISTRY[name].run(Context(size="test", params=dict(TEST_SIZES[name]), seed=seed))


@pytest.mark.parametrize("name", list(TEST_SIZES))
def test_reproduces_at_test_size(name):
    outcome = _run(name)
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    assert outcome.controls and all(c.rejected for c in outcome.controls)
    assert any("1 seed" in n for n in outcome.notes), "a run with fewer than 5 seeds must say so"


# ------------------------------------------------------------------------------------------ fluctuation-exponent
def test_fluctuations_fault_exponent_shifted(monkeypatch):
    """The metric law's exponent off by ¼: Var(Δq) no longer scales as κ^{1−2α}."""
    monkeypatch.setattr(fluct, "Power", lambda alpha: Power(alpha + 0.25))
    outcome = _run("fluctuation-exponent")
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not any(c.passed for c in outcome.checks if "|α̂" in c.name)


def test_fluctuations_fault_factor_two_in_the_step(monkeypatch):
    """Every step √2 too long (γ² off by 2): the slopes survive, the levels (5.5), (5.6) do not."""

    def longer(params, lr, **kw):
        return CGD(params, lr=lr * 2**0.5, **kw)

    monkeypatch.setattr(fluct, "CGD", longer)
    outcome = _run("fluctuation-exponent")
    assert outcome.verdict is not Verdict.REPRODUCED
    levels = [c for c in outcome.checks if "median Var" in c.name]
    assert levels and not any(c.passed for c in levels), [c.value for c in levels]


def test_fluctuations_fault_noise_without_batch_factor(monkeypatch):
    """κ without its 1/b (the per-example instead of the minibatch noise, (2.8)): the level at α = 0 is off by b."""
    real = alpha_exp.digits_probe

    def per_example(*args, **kw):
        probe = real(*args, **kw)
        probe.kappa = probe.kappa * probe.batch
        return probe

    monkeypatch.setattr(fluct, "digits_probe", per_example)
    outcome = _run("fluctuation-exponent")
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not next(c for c in outcome.checks if c.name.startswith("α = 0: median")).passed


# ------------------------------------------------------------------------------------------- alpha-of-optimizers
def test_alpha_fault_adam_law_with_wrong_exponent(monkeypatch):
    """Adam's and AdaBelief's √v + ε replaced by v^{1/4} + ε: their exponent is ¼, not ½."""
    monkeypatch.setattr(presets, "Interpolating", lambda eps: PowerSum([(eps, 0.0), (1.0, 0.25)]))
    outcome = _run("alpha-of-optimizers")
    assert outcome.verdict is not Verdict.REPRODUCED
    failed = {c.name.split(" on ")[0] for c in outcome.checks if not c.passed}
    assert failed == {"Adam", "AdaBelief"}, outcome.failed()


def test_alpha_fault_natural_gradient_as_square_root(monkeypatch):
    """Natural gradient's g = K̂ replaced by √K̂: its exponent is ½, not 1."""
    monkeypatch.setattr(presets, "Power", lambda alpha: Power(alpha / 2))
    outcome = _run("alpha-of-optimizers")
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not next(c for c in outcome.checks if c.name.startswith("natural gradient")).passed


# ------------------------------------------------------------------------------------------------ phase-transition
def test_phase_fault_three_regime_middle_term_exponent(monkeypatch):
    """The three-regime law's middle term λ^{0.3} instead of √λ: the intermediate variables are not at ½."""

    def wrong(params, lr, eps, zeta, betas, **kw):
        law = PowerSum([(eps, 0.0), (1.0, 0.3), (zeta, 1.0)])
        return CGD(params, lr=lr, metric=law, moment="central", betas=betas)

    monkeypatch.setattr(phase.presets, "three_regime", wrong)
    outcome = _run("phase-transition")
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not next(c for c in outcome.checks if c.name.startswith("intermediate: |α̂ − ½|")).passed


def test_phase_fault_labels_by_smallest_term(monkeypatch):
    """Regime labels by the smallest instead of the largest term of g: slow and fast swap, the order breaks."""
    real = phase.dominant_regime
    monkeypatch.setattr(phase, "dominant_regime", lambda lam, eps, zeta: 2 - real(lam, eps, zeta))
    outcome = _run("phase-transition")
    assert outcome.verdict is not Verdict.REPRODUCED
    assert not next(c for c in outcome.checks if "order" in c.name).passed


def test_phase_fault_plateau_off_by_two(monkeypatch):
    """The α = ½ plateau calibrated a factor 2 too high: the measured intermediate share collapses."""
    real = phase._share
    monkeypatch.setattr(phase, "_share", lambda blocks, plateau: real(blocks, 2 * plateau))
    outcome = _run("phase-transition")
    assert outcome.verdict is not Verdict.REPRODUCED


def test_stationary_measurement_restores_parameters():
    """The parameters are where they were after any number of measured steps (fixed-q stationarity)."""
    probe = alpha_exp.digits_probe(8, 0, seed=3)
    before = [p.detach().clone() for p in probe.params]
    probe.measure(presets.adam(probe.params, lr=1e-2), warmup=3, steps=5, seed=0)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, probe.params, strict=True))


def test_transformer_probe_builds_on_the_bench_text():
    """The full size of alpha-of-optimizers probes the bench's character transformer: build it at a toy size, so a
    change of the bench's data layout fails here and not only in a full run."""
    from geodyn.experiments.alpha_of_optimizers import transformer_probe

    probe = transformer_probe(train_steps=1, windows=8, seed=0, batch=4)
    assert probe.kappa.ndim == 1 and probe.kappa.numel() == sum(p.numel() for p in probe.params)
    assert bool(probe.mask.any()) and not bool(probe.mask.all())  # blocks only: embeddings and head left out
    assert torch.isfinite(probe.kappa).all()

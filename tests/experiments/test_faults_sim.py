"""Fault injection for exact-limits, walkers-vs-fokker-planck and survival-of-the-smartest.

Each test breaks the science an experiment checks (a dropped bias correction, a sign, the Itô drift reversed, the
walker noise off by √2, a memory exponent of the wrong sign) and asserts that the verdict is no longer
"reproduced"; the unbroken experiment at the same size must reproduce, so the difference is the fault's. Sizes are
small "test" parameter sets (each run a few seconds on one core), or the quick size where that is small enough
(survival: its unbroken reproduction at quick size is in test_survival.py).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

import geodyn.experiments.exact_limits as el
import geodyn.optim.cgd as cgd
from geodyn.dynamics import EulerMaruyama, LearningModel
from geodyn.evolution import MemoryJump
from geodyn.experiments.registry import REGISTRY, Context, Verdict
from geodyn.experiments.runner import _run_one

EXACT = {"steps": 40, "batch": 16, "seeds": 1}
WALKERS = {"walkers": 4000, "seeds": 2, "grid": 48, "bins": 8, "dt": 0.02, "times": (0.5, 2.5)}
SURVIVAL = REGISTRY["survival-of-the-smartest"].sizes["quick"]  # its reproduction: test_survival.py


def _run(name: str, params: dict, seed: int = 0):
    return REGISTRY[name].run(Context(size="quick", params=dict(params), seed=seed))


def _failed_checks(outcome) -> list[str]:
    return [c.name for c in outcome.checks if not c.passed]


# ---------------------------------------------------------------------------------------------------------------
# exact-limits
# ---------------------------------------------------------------------------------------------------------------
def test_exact_limits_reproduces_at_test_size():
    outcome = _run("exact-limits", EXACT)
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    assert len(outcome.controls) == 5 and all(c.checks[0].value > 1e-6 for c in outcome.controls)


def test_exact_limits_sees_a_dropped_bias_correction(monkeypatch):
    """Fault: g(K̂) evaluated on the raw K instead of K/(1 − β₂ᵗ) (the optimizer's multi-tensor step folds the bias
    correction into the metric law's constants, :func:`geodyn.optim.cgd._normalised_law`)."""
    normalised = cgd._normalised_law
    monkeypatch.setattr(cgd, "_normalised_law", lambda metric, scale: normalised(metric, 1.0))
    outcome = _run("exact-limits", EXACT)
    assert outcome.verdict is not Verdict.REPRODUCED
    failed = {name.split(":")[0] for name in _failed_checks(outcome)}
    assert {"adam", "adamw", "adabelief", "adabelief (decoupled)"} <= failed
    assert "rmsprop" not in failed  # RMSprop has no bias correction: the fault must not touch it


def test_exact_limits_sees_a_sign_in_the_central_moment(monkeypatch):
    """Fault: AdaBelief's deviation G − m computed as G + m."""
    deviation = cgd.noise_deviation_foreach

    def wrong(grads, first_moments, moment):
        if moment == "central":
            return torch._foreach_add(list(grads), list(first_moments))
        return deviation(grads, first_moments, moment)

    monkeypatch.setattr(cgd, "noise_deviation_foreach", wrong)
    outcome = _run("exact-limits", EXACT)
    assert outcome.verdict is not Verdict.REPRODUCED
    assert {name.split(":")[0] for name in _failed_checks(outcome)} == {"adabelief", "adabelief (decoupled)"}


def test_exact_limits_without_the_reference_is_an_error_not_a_silent_drop(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        el.importlib.util, "find_spec", lambda name, *a: None if name == "adabelief_pytorch" else find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="adabelief-pytorch"):
        _run("exact-limits", EXACT)
    result, figures = _run_one(REGISTRY["exact-limits"], "quick", 0, lambda f: None, None)
    assert result.verdict == Verdict.ERROR.value and result.status == "error"
    assert result.error.startswith("missing dependency") and not figures


# ---------------------------------------------------------------------------------------------------------------
# walkers-vs-fokker-planck
# ---------------------------------------------------------------------------------------------------------------
def test_walkers_reproduce_at_test_size_with_every_control_rejected():
    outcome = _run("walkers-vs-fokker-planck", WALKERS | {"alphas": (0.5, 1.0)})
    assert outcome.verdict is Verdict.REPRODUCED, outcome.failed()
    names = [c.name for c in outcome.controls]
    # no Itô-drift control at α = ½ (D constant there), one at α = 1; a doubled-D control at both
    assert names == ["Fokker–Planck with D doubled, α = 0.5", "walkers without the Itô drift, α = 1",
                     "Fokker–Planck with D doubled, α = 1"]  # fmt: skip
    assert outcome.data["alpha=0.5"]["max_ito_drift_on_grid"] < 1e-12 < outcome.data["alpha=1"]["max_ito_drift_on_grid"]


def test_walkers_see_the_ito_drift_reversed(monkeypatch):
    """Fault: the walkers step with −∂_ν D^{μν} instead of +∂_ν D^{μν}."""
    factors_and_ito = LearningModel._factors_and_ito

    def reversed_drift(self, q):
        f, div = factors_and_ito(self, q)
        return f, -div

    monkeypatch.setattr(LearningModel, "_factors_and_ito", reversed_drift)
    outcome = _run("walkers-vs-fokker-planck", WALKERS | {"alphas": (1.0,)})
    assert outcome.verdict is not Verdict.REPRODUCED
    assert _failed_checks(outcome) == ["α = 1: L1(walker histogram, Fokker–Planck) at t = 2.5"]


def test_walkers_see_noise_off_by_root_two(monkeypatch):
    """Fault: the walker noise γ g⁻¹κ^{1/2} dW scaled by √2, i.e. walkers of D = γ² g⁻¹κg⁻¹ (at α = ½, where
    the Itô drift cannot tell)."""

    step = EulerMaruyama.step
    monkeypatch.setattr(EulerMaruyama, "step", lambda self, model, q, z: step(self, model, q, 2.0**0.5 * z))
    outcome = _run("walkers-vs-fokker-planck", WALKERS | {"alphas": (0.5,)})
    assert outcome.verdict is not Verdict.REPRODUCED
    assert _failed_checks(outcome) == ["α = 0.5: L1(walker histogram, Fokker–Planck) at t = 2.5"]


# ---------------------------------------------------------------------------------------------------------------
# survival-of-the-smartest
# ---------------------------------------------------------------------------------------------------------------
def test_survival_sees_a_memory_exponent_of_the_wrong_sign(monkeypatch):
    """Fault: jumps σ ∝ f(κ̂) instead of f(κ̂)⁻¹ (the metric of (4.10) inverted: large jumps where the
    fluctuations are large)."""
    variances = MemoryJump.variances

    def inverted(self):
        v = variances(self)
        w = v.reciprocal()
        return w / w.sum(-1, keepdim=True) * v.sum(-1, keepdim=True)  # same trace: the same mutational budget

    monkeypatch.setattr(MemoryJump, "variances", inverted)
    outcome = _run("survival-of-the-smartest", SURVIVAL)
    assert outcome.verdict is not Verdict.REPRODUCED
    assert any("switching environment: flat − memory" in name for name in _failed_checks(outcome))

"""The diagonal CGD fast paths against the per-tensor reference loop, in float64 (EQUATIONS.md §6, (2.2)).

- ``cgd_foreach`` folds 1/(1−β₂ᵗ) and the leading coefficient of a PowerSum law into the law's constants and the
  step size (g(sλ) = c·h(λ)); it must still equal ``cgd_reference``.
- ``cgd_compiled(check=True)`` decides "all gradients finite" on device inside the program that updates and
  writes back the old values when it is not (a masked update); a refused step must leave every tensor bit for bit
  unchanged, and the following steps must continue exactly as the reference that never saw the bad gradient.

Tolerance: float64 round-off. Each step is O(20) operations per element, each with relative error ≤ 2⁻⁵³ ≈ 1.1e-16;
the two paths associate differently (e.g. c·h(λ) against g(sλ)), so they differ by a few ulp of the step per step.
Over ≤ 20 steps on parameters of size O(1) that accumulates to ≲ 20 · 20 · 1.1e-16 ≈ 5e-14 (the EMA and metric
are contractions in these differences); 1e-12 leaves a margin of 20 while an algorithmic slip (a dropped factor
1/(1−β₂ᵗ), a missing ulp-level mask) shows at ≥ 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch

import geodyn.optim.cgd as cgd_module
from geodyn.metric import Custom, Interpolating, Power, ThreeRegime
from geodyn.optim import CGD, NonFiniteGradientError
from geodyn.optim.cgd import cgd_foreach, cgd_reference
from geodyn.optim.compiled import cgd_compiled, compiled_step_source

from helpers import cgd_options, small_mlp, train_pair

TOL = 1e-12
SHAPES = [(7, 5), (7,), (3, 7), (), (3,)]


def _sqrt_plus_floor(lam: torch.Tensor) -> torch.Tensor:
    return lam.sqrt() + 1e-6


def _state(start_steps: list[float], flat: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES]
    first = [torch.zeros(shape, dtype=torch.float64) for shape in SHAPES]
    noise = [None] * len(SHAPES) if flat else [torch.zeros(shape, dtype=torch.float64) for shape in SHAPES]
    steps = [torch.tensor(s, dtype=torch.float32) for s in start_steps]
    return params, first, noise, steps


def _tensors(state) -> list[torch.Tensor]:
    return [t for part in state for t in part if t is not None]


def _max_difference(ours, ref) -> float:
    return max((a - b).abs().max().item() for a, b in zip(_tensors(ours[:3]), _tensors(ref[:3]), strict=True))


def _grads(gen: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for shape in SHAPES]


# Laws: leading coefficient 1 (Interpolating, ThreeRegime), ≠ 1 (2·√λ: a factor to fold even without bias
# correction), g(0) = 0 (Power(1): the no-step-where-g-vanishes convention), fractional powers, a custom law
# (not a PowerSum: passed through with its scale).
FOREACH_CASES = {
    "three-regime-central-decoupled": (ThreeRegime(1e-8, 1.0), dict(weight_decay=0.05)),
    "interpolating-raw-coupled-maximize": (
        Interpolating(1e-8),
        dict(moment="raw", weight_decay=0.05, decoupled_weight_decay=False, maximize=True),
    ),
    "scaled-sqrt-no-bias-correction": (2.0 * Power(0.5) + 1e-6, dict(bias_correction=False)),
    "power1-vanishing-momentum": (Power(1), dict(moment="momentum", beta2=0.9)),
    "powers-0.25-and-1.5-eps-inside": (Power(0.25) + 0.5 * Power(1.5) + 1e-8, dict(eps_inside=1e-12)),
    "custom-law": (Custom(_sqrt_plus_floor), dict(moment="raw")),
}


@pytest.mark.parametrize("start", ["equal", "staggered"])
@pytest.mark.parametrize("case", list(FOREACH_CASES))
def test_foreach_equals_reference_loop_float64(case, start):
    """Equal step counts take the folded-law branch, staggered ones (a parameter that got gradients later) the
    branch that scales K per tensor."""
    metric, overrides = FOREACH_CASES[case]
    options = cgd_options(metric, **overrides)
    start_steps = [0.0] * len(SHAPES) if start == "equal" else [0.0, 2.0, 0.0, 5.0, 1.0]
    ours, ref = _state(start_steps, metric.is_flat), _state(start_steps, metric.is_flat)
    initial = [p.clone() for p in ref[0]]
    gen = torch.Generator().manual_seed(11)
    for _ in range(20):
        grads = _grads(gen)
        cgd_reference(ref[0], grads, ref[1], ref[2], ref[3], **options)
        cgd_foreach(ours[0], grads, ours[1], ours[2], ours[3], **options)
    assert _max_difference(ours, ref) <= TOL
    assert [s.item() for s in ours[3]] == [s.item() for s in ref[3]] == [s + 20 for s in start_steps]
    assert max((p - p0).abs().max().item() for p, p0 in zip(ours[0], initial, strict=True)) > 1e-3  # it moved


COMPILED_CASES = {
    "three-regime-central-decoupled": (ThreeRegime(1e-8, 1.0), dict(weight_decay=0.05)),
    "power1-raw-coupled-maximize": (
        Power(1) + 1e-8,
        dict(moment="raw", weight_decay=0.05, decoupled_weight_decay=False, maximize=True),
    ),
    "flat-power0-decoupled": (Power(0), dict(weight_decay=0.05)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(COMPILED_CASES))
def test_checked_compiled_step_equals_reference_and_refuses_a_nan_step_untouched(case):
    metric, overrides = COMPILED_CASES[case]
    options = cgd_options(metric, **overrides)
    start_steps = [0.0, 2.0, 0.0, 5.0, 1.0]
    ours, ref = _state(start_steps, metric.is_flat), _state(start_steps, metric.is_flat)
    gen = torch.Generator().manual_seed(5)
    refused = []
    for step in range(12):
        grads = _grads(gen)
        if step in (3, 7):
            grads[-1 if step == 3 else 0].view(-1)[0] = math.nan if step == 3 else -math.inf
            before = [t.clone() for t in _tensors(ours)]
            refused.append(not cgd_compiled(ours[0], grads, ours[1], ours[2], ours[3], **options, check=True))
            # Bit for bit: parameters, both moments and the step counters (no bias-correction drift later).
            assert all(torch.equal(a, b) for a, b in zip(_tensors(ours), before, strict=True))
            continue  # the reference never sees the bad gradient
        assert cgd_compiled(ours[0], grads, ours[1], ours[2], ours[3], **options, check=True)
        cgd_reference(ref[0], grads, ref[1], ref[2], ref[3], **options)
    assert refused == [True, True]
    assert _max_difference(ours, ref) <= TOL
    assert [s.item() for s in ours[3]] == [s.item() for s in ref[3]] == [s + 10 for s in start_steps]


def test_checked_source_reduces_the_flag_and_masks_every_store():
    source = compiled_step_source(ThreeRegime(1e-8, 1.0), check=True)
    assert "isfinite().all()" in source and "return finite" in source
    for store in ("k.copy_(torch.where(finite,", "first_moments[i].copy_(torch.where(finite,", "p.copy_(torch.where("):
        assert store in source
    assert "steps[i].add_" not in source  # counters advance on the host, only for an applied step
    assert "isfinite" not in compiled_step_source(ThreeRegime(1e-8, 1.0))  # nonfinite="ignore": no check


def _model_params(dtypes: tuple[torch.dtype, ...] | None = None) -> list[torch.nn.Parameter]:
    """The parameters of helpers.small_mlp (the shapes the default-step test compiles for), optionally re-typed."""
    params = list(small_mlp().parameters())
    if dtypes is None:
        return params
    return [torch.nn.Parameter(p.detach().to(d)) for p, d in zip(params, dtypes, strict=False)]


def _feed(params, gen: torch.Generator, bad: float | None = None) -> None:
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
    if bad is not None:
        params[-1].grad.view(-1)[-1] = bad


LAW = ThreeRegime(1e-6, 2.0)  # with weight_decay=1e-3: one compiled program shared by the slow tests below


@pytest.mark.slow
def test_cgd_compiled_raise_is_immediate_and_skip_continues_like_the_reference():
    """``nonfinite="raise"`` raises from the step() that received the bad gradient, with nothing changed; "skip"
    counts it and then steps exactly as the loop reference that skipped it too."""
    ours = _model_params()
    raising = CGD(ours, lr=1e-2, metric=LAW, weight_decay=1e-3, compiled=True)
    gen = torch.Generator().manual_seed(1)
    _feed(ours, gen)
    raising.step()
    before = [p.detach().clone() for p in ours] + [v.clone() for s in raising.state.values() for v in s.values()]
    _feed(ours, gen, bad=math.nan)
    with pytest.raises(NonFiniteGradientError, match="parameter group 0"):
        raising.step()
    after = [p.detach() for p in ours] + [v for s in raising.state.values() for v in s.values()]
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))

    mine, theirs = _model_params(), _model_params()
    skipping = CGD(mine, lr=1e-2, metric=LAW, weight_decay=1e-3, compiled=True, nonfinite="skip")
    reference = CGD(theirs, lr=1e-2, metric=LAW, weight_decay=1e-3, foreach=False, nonfinite="skip")
    gens = [torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)]
    for step in range(6):
        for params, opt, g in ((mine, skipping, gens[0]), (theirs, reference, gens[1])):
            _feed(params, g, bad=math.inf if step == 2 else None)
            opt.step()
    assert skipping.skipped_steps == reference.skipped_steps == 1
    assert skipping.state[mine[0]]["step"].item() == 5
    assert max((a - b).abs().max().item() for a, b in zip(mine, theirs, strict=True)) <= TOL
    assert max((a - b).abs().max().item() for a, b in zip(mine, _model_params(), strict=True)) > 1e-3


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_two_dtypes_are_decided_before_either_is_updated(monkeypatch, policy):
    """Two buckets (float64, float32) are two programs: the flag is then decided before the first one runs, so a
    NaN in the second bucket leaves the first untouched (and nothing is compiled for a refused step)."""
    calls = _count_compiled_calls(monkeypatch)
    params = _model_params((torch.float64, torch.float32) * 3)
    opt = CGD(params, lr=1e-2, metric=LAW, compiled=True, nonfinite=policy)
    before = [p.detach().clone() for p in params]
    _feed(params, torch.Generator().manual_seed(3), bad=math.nan)  # the last parameter is float32
    if policy == "raise":
        with pytest.raises(NonFiniteGradientError):
            opt.step()
    else:
        opt.step()
        assert opt.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(params, before, strict=True)) and calls == []
    assert all(not state or state["step"].item() == 0 for state in opt.state.values())


# -- the default step: compiled for large groups after AUTO_COMPILE_AFTER steps ---------------------------------


def _count_compiled_calls(monkeypatch, fail: bool = False) -> list[int]:
    import geodyn.optim.compiled as compiled_module

    calls: list[int] = []
    real = compiled_module.cgd_compiled

    def counting(*args, **kwargs):
        calls.append(1)
        if fail:
            raise RuntimeError("no C++ compiler\nsecond line")
        return real(*args, **kwargs)

    monkeypatch.setattr(compiled_module, "cgd_compiled", counting)
    monkeypatch.setattr(cgd_module, "_auto_compile_failure", [])
    return calls


@pytest.mark.parametrize("flags", [dict(foreach=True), dict(compiled=False), dict()], ids=["foreach", "eager", "small"])
def test_default_step_stays_eager_when_asked_or_small(monkeypatch, flags):
    calls = _count_compiled_calls(monkeypatch)
    monkeypatch.setattr(cgd_module, "AUTO_COMPILE_AFTER", 2)
    if flags:  # explicit choices win over the size rule
        monkeypatch.setattr(cgd_module, "AUTO_COMPILE_NUMEL", 1)
    train_pair(lambda p: CGD(p, lr=1e-2, **flags), lambda p: CGD(p, lr=1e-2, foreach=False), steps=5)
    assert calls == []


@pytest.mark.slow
def test_default_step_switches_to_the_compiled_program_and_equals_the_reference(monkeypatch):
    calls = _count_compiled_calls(monkeypatch)
    monkeypatch.setattr(cgd_module, "AUTO_COMPILE_NUMEL", 1)
    monkeypatch.setattr(cgd_module, "AUTO_COMPILE_AFTER", 3)
    deviation = train_pair(
        lambda p: CGD(p, lr=1e-2, metric=LAW, weight_decay=1e-3),
        lambda p: CGD(p, lr=1e-2, metric=LAW, weight_decay=1e-3, foreach=False),
        steps=10,
    )
    assert len(calls) == 7  # steps 4..10: after three eager steps
    assert deviation <= TOL


def test_a_failed_compile_warns_once_and_the_default_step_stays_eager(monkeypatch):
    calls = _count_compiled_calls(monkeypatch, fail=True)
    monkeypatch.setattr(cgd_module, "AUTO_COMPILE_NUMEL", 1)
    monkeypatch.setattr(cgd_module, "AUTO_COMPILE_AFTER", 2)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler\\); the multi-tensor step") as caught:
        deviation = train_pair(lambda p: CGD(p, lr=1e-2), lambda p: CGD(p, lr=1e-2, foreach=False), steps=6)
    assert len(calls) == 1 and len([w for w in caught if "compiling the default step" in str(w.message)]) == 1
    assert deviation <= TOL  # the failed attempt changed nothing; the step was taken by the multi-tensor path

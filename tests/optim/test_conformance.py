"""Conformance matrix: every optimizer and preset through the torch.optim contract (in the spirit of torch's
OptimizerInfo): checkpoints under ``weights_only=True``, copies, hooks, schedulers, tensor lr, ``zero_grad``,
``None`` grads, frozen and 0-dim parameters, complex parameters, no-op steps, ``maximize``, groups added later,
descent on a least-squares problem, and foreach / for-loop / compiled parity.

Each case runs in float32 and float64 on tiny tensors: a 3×2 weight, a bias and a 0-dim scale.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
from collections.abc import Callable

import pytest
import torch

from geodyn.metric import ThreeRegime
from geodyn.optim import CGD, FullCGD, KronCGD, presets

Factory = Callable[..., torch.optim.Optimizer]

# Learning rates: each optimizer's defaults except where a default lr does not fit the tiny problem in a few
# steps; the structured optimizers take small steps (their stability at default settings is another issue's work).
OPTIMIZERS: dict[str, tuple[Factory, dict]] = {
    "CGD": (CGD, {"lr": 1e-2, "metric": ThreeRegime(1e-8, 1.0)}),
    "KronCGD": (KronCGD, {"lr": 1e-3, "precondition_every": 2}),
    "FullCGD": (FullCGD, {"lr": 1e-4}),
    **{name: (getattr(presets, name), {"lr": 1e-2}) for name in ("sgd", "rmsprop", "adam", "adamw", "adabelief")},
    "natural_gradient": (presets.natural_gradient, {"lr": 1e-3}),
    "three_regime": (presets.three_regime, {"lr": 1e-2}),
    "shampoo": (presets.shampoo, {"lr": 1e-4, "precondition_every": 2}),
    "soap_like": (presets.soap_like, {"lr": 1e-3, "precondition_every": 2}),
    "muon_exact": (presets.muon_exact, {"lr": 1e-3}),
    "natural_gradient_full": (presets.natural_gradient_full, {"lr": 1e-4}),
    "three_regime_kron": (presets.three_regime_kron, {"lr": 1e-3, "precondition_every": 2}),
}
assert {n for n in OPTIMIZERS if n[0].islower()} == set(presets.__all__), "every preset is in the matrix"


def _makes_cgd(name: str) -> bool:
    factory, kwargs = OPTIMIZERS[name]
    return isinstance(factory([torch.nn.Parameter(torch.zeros(1))], **kwargs), CGD)


DIAGONAL = [n for n in OPTIMIZERS if _makes_cgd(n)]  # the ones that offer foreach=False and compiled=True
STRUCTURED = [n for n in OPTIMIZERS if n not in DIAGONAL]
# (name, variant): foreach (the default), the per-tensor loop, and the structured optimizers' one implementation.
CASES = [(n, "foreach") for n in DIAGONAL] + [(n, "loop") for n in DIAGONAL] + [(n, "default") for n in STRUCTURED]
DTYPES = [torch.float32, torch.float64]
VARIANT = {"foreach": {}, "loop": {"foreach": False}, "default": {}, "compiled": {"compiled": True}}


def make(name: str, variant: str, params, **overrides) -> torch.optim.Optimizer:
    factory, kwargs = OPTIMIZERS[name]
    return factory(params, **(kwargs | VARIANT[variant] | overrides))


def tiny_params(dtype: torch.dtype, seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(3, 2, generator=gen, dtype=dtype)),
        torch.nn.Parameter(torch.randn(3, generator=gen, dtype=dtype)),
        torch.nn.Parameter(torch.tensor(0.5, dtype=dtype)),
    ]


def _data(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(42)
    x = torch.randn(8, 2, generator=gen, dtype=dtype)
    y = torch.randn(8, 3, generator=gen, dtype=dtype)
    return x, y


def loss_of(params, dtype: torch.dtype) -> torch.Tensor:
    """A least-squares loss, (scale·(x Wᵀ + b) − y)² summed, with a minimum the optimizers can move towards."""
    w, b, s = params
    x, y = _data(dtype)
    return ((s * (x @ w.T + b)) - y).pow(2).mean()


def train(opt: torch.optim.Optimizer, params, steps: int, sign: float = 1.0) -> None:
    for _ in range(steps):
        opt.zero_grad()
        (sign * loss_of(params, params[0].dtype)).backward()
        opt.step()


def clone_params(params) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(p.detach().clone()) for p in params]


def assert_same(a, b) -> None:
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q), (p - q).abs().max()


matrix = pytest.mark.parametrize(("name", "variant"), CASES, ids=[f"{n}-{v}" for n, v in CASES])
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])


@matrix
@dtypes
def test_state_dict_round_trip_under_weights_only(name, variant, dtype):
    params = tiny_params(dtype)
    opt = make(name, variant, params)
    train(opt, params, 3)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)  # torch's defaults: weights_only=True refuses anything but tensors and plain data
    twins = clone_params(params)
    resumed = make(name, variant, twins)
    resumed.load_state_dict(saved)
    train(opt, params, 3)
    train(resumed, twins, 3)
    assert_same(params, twins)
    assert json.loads(saved["param_groups"][0]["metric"]) == opt.param_groups[0]["metric"].spec()


@matrix
@dtypes
@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_step_like_the_original(name, variant, dtype, how):
    params = tiny_params(dtype)
    opt = make(name, variant, params, nonfinite="skip")
    train(opt, params, 2)
    params[0].grad[0, 0] = float("nan")
    opt.step()  # skipped: the count is part of the optimizer and travels with its copies
    if how == "deepcopy":
        twin = copy.deepcopy(opt)
    elif how == "pickle":
        twin = pickle.loads(pickle.dumps(opt))
    else:
        buffer = io.BytesIO()
        torch.save(opt, buffer)
        buffer.seek(0)
        twin = torch.load(buffer, weights_only=False)  # a whole optimizer object is not weights-only data
    twin_params = twin.param_groups[0]["params"]
    assert all(p is not q for p, q in zip(params, twin_params))
    train(opt, params, 3)
    train(twin, twin_params, 3)
    assert_same(params, twin_params)
    assert twin.skipped_steps == opt.skipped_steps == 1 and twin.nonfinite_group is None


@matrix
def test_step_and_state_dict_hooks_run(name, variant):
    params = tiny_params(torch.float64)
    opt = make(name, variant, params)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    opt.register_state_dict_pre_hook(lambda o: calls.append("sd-pre"))

    def halve_lr(o, state_dict):
        calls.append("sd-post")
        state_dict["param_groups"][0]["lr"] = 0.5 * state_dict["param_groups"][0]["lr"]
        return state_dict

    opt.register_state_dict_post_hook(halve_lr)
    twin = make(name, variant, clone_params(params))
    twin.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load-pre"))
    twin.register_load_state_dict_post_hook(lambda o: calls.append("load-post"))
    train(opt, params, 1)
    twin.load_state_dict(opt.state_dict())
    assert calls == ["pre", "post", "sd-pre", "sd-post", "load-pre", "load-post"]
    assert twin.param_groups[0]["lr"] == 0.5 * opt.param_groups[0]["lr"]


@matrix
@dtypes
def test_scheduler_with_tensor_lr_steps_like_float_lr(name, variant, dtype):
    lr = OPTIMIZERS[name][1]["lr"]
    runs = []
    for value in (lr, torch.tensor(lr, dtype=torch.float64)):
        params = tiny_params(dtype)
        opt = make(name, variant, params, lr=value)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        for _ in range(5):
            train(opt, params, 1)
            sched.step()
        assert isinstance(opt.param_groups[0]["lr"], torch.Tensor) == isinstance(value, torch.Tensor)
        assert float(opt.param_groups[0]["lr"]) == lr * 0.5**2
        runs.append(params)
    manual = tiny_params(dtype)  # the schedule set by hand: the scheduled lr must be the one that steps
    opt = make(name, variant, manual, lr=lr)
    for i in range(5):
        opt.param_groups[0]["lr"] = lr * 0.5 ** (i // 2)
        train(opt, manual, 1)
    assert_same(runs[0], manual)
    assert_same(*runs)  # a float64 0-dim tensor holds the same double as the float lr


@matrix
def test_zero_grad_none_grads_and_noop_step_touch_nothing(name, variant):
    params = tiny_params(torch.float64)
    before = clone_params(params)
    opt = make(name, variant, params)
    opt.step()  # no gradients at all: a no-op
    assert_same(params, before)
    assert not opt.state
    loss_of(params, torch.float64).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()
    assert_same(params, before)
    assert not opt.state


@matrix
@dtypes
def test_frozen_and_gradless_params_stay_put_and_0dim_params_move(name, variant, dtype):
    params = tiny_params(dtype)
    frozen = torch.nn.Parameter(torch.randn(2, dtype=dtype), requires_grad=False)
    gradless = torch.nn.Parameter(torch.randn(2, dtype=dtype))  # requires grad, but the loss never uses it
    kept = [frozen.detach().clone(), gradless.detach().clone()]
    scale_before = params[2].detach().clone()
    opt = make(name, variant, [*params, frozen, gradless])
    train(opt, params, 3)
    assert torch.equal(frozen, kept[0]) and torch.equal(gradless, kept[1])
    assert frozen.grad is None and gradless.grad is None
    assert params[2].dim() == 0 and not torch.equal(params[2], scale_before)
    assert all(torch.isfinite(p).all() for p in params)


@matrix
@dtypes
def test_maximize_of_minus_loss_equals_minimize(name, variant, dtype):
    params, twins = tiny_params(dtype), tiny_params(dtype)
    train(make(name, variant, params), params, 4)
    train(make(name, variant, twins, maximize=True), twins, 4, sign=-1.0)  # ∇(−L) = −∇L exactly
    assert_same(params, twins)


@matrix
@dtypes
def test_param_group_added_later_steps_like_its_own_optimizer(name, variant, dtype):
    params, twins = tiny_params(dtype), tiny_params(dtype)
    first, later = params[:1], params[1:]
    opt = make(name, variant, first)
    train(opt, params, 2)  # gradients reach every parameter, only the first group steps
    assert torch.equal(later[0], twins[1])
    lr = OPTIMIZERS[name][1]["lr"] / 2
    opt.add_param_group({"params": later, "lr": lr})
    alone = make(name, variant, twins[1:], lr=lr)
    for _ in range(3):
        with torch.no_grad():
            twins[0].copy_(params[0])  # the same first-group parameter, so the same gradients reach the new group
        for opt_, ps in ((opt, params), (alone, twins)):
            opt_.zero_grad()
            loss_of(ps, dtype).backward()
            opt_.step()
    assert_same(later, twins[1:])


@matrix
@dtypes
def test_descends_on_least_squares(name, variant, dtype):
    params = tiny_params(dtype)
    start = loss_of(params, dtype).item()
    opt = make(name, variant, params)
    train(opt, params, 20)
    assert loss_of(params, dtype).item() < start


@matrix
def test_complex_params_step_as_view_as_real_or_are_refused(name, variant):
    gen = torch.Generator().manual_seed(3)
    z = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex128, generator=gen))
    r = torch.nn.Parameter(torch.view_as_real(z).detach().clone())
    if name in STRUCTURED:
        with pytest.raises(ValueError, match=r"complex parameters: parameter 0 of group 0 has dtype torch.complex128"):
            make(name, variant, [z])
        return
    opt_z, opt_r = make(name, variant, [z]), make(name, variant, [r])
    for _ in range(3):
        z.grad = torch.randn(3, 2, dtype=torch.complex128, generator=gen)
        r.grad = torch.view_as_real(z.grad).clone()
        opt_z.step()
        opt_r.step()
    assert torch.equal(torch.view_as_real(z), r)
    assert not torch.equal(r, torch.view_as_real(torch.randn(3, 2, dtype=torch.complex128, generator=gen)))


def _parity_bound(params, steps: int, dtype: torch.dtype) -> float:
    """Round-off bound between two implementations of one update: each step may differ by a few ulps of q
    (the final add) plus a few ulps of the update (≈ 5 operations, each ≤ ½ ulp, folded differently); 16 ulps
    of max|q| per step covers both, accumulated linearly over the steps."""
    scale = max(p.abs().max().item() for p in params) + 1.0
    return steps * 16 * torch.finfo(dtype).eps * scale


@pytest.mark.parametrize("name", DIAGONAL)
@dtypes
def test_foreach_and_loop_agree(name, dtype):
    runs = []
    for variant in ("foreach", "loop"):
        params = tiny_params(dtype)
        train(make(name, variant, params), params, 5)
        runs.append(params)
    bound = _parity_bound(runs[0], 5, dtype)
    for p, q in zip(*runs, strict=True):
        assert (p - q).abs().max().item() <= bound


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CGD", "sgd", "adabelief"])  # generic law, flat law, eps_inside: three kernels
@dtypes
def test_compiled_agrees_with_foreach(name, dtype):
    # Each kernel compiles for seconds; every other preset's settings are held to foreach in test_compiled.py.
    runs = []
    for variant in ("foreach", "compiled"):
        params = tiny_params(dtype)
        opt = make(name, variant, params)
        train(opt, params, 3)
        runs.append(params)
        if variant == "compiled":  # and its checkpoint loads under weights_only
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            buffer.seek(0)
            assert torch.load(buffer)["param_groups"][0]["compiled"] is True
    bound = _parity_bound(runs[0], 3, dtype)
    for p, q in zip(*runs, strict=True):
        assert (p - q).abs().max().item() <= bound

"""The torch.optim contract for CGD: state_dict, param groups, closures, schedulers, foreach, bad input."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

from geodyn.metric import Interpolating, Power, ThreeRegime
from geodyn.optim import CGD, NonFiniteGradientError, presets

from helpers import minibatches, parameters_moved, small_mlp, train_pair


def _step(model, opt, x, y):
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def test_state_dict_resume_is_bit_identical():
    model = small_mlp()
    opt = presets.three_regime(model.parameters(), lr=1e-2, zeta=2.0, weight_decay=1e-3)
    batches = list(minibatches(40))
    for x, y in batches[:20]:
        _step(model, opt, x, y)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)

    for x, y in batches[20:]:
        _step(model, opt, x, y)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = small_mlp(seed=123)
    resumed.load_state_dict(saved["model"])
    fresh = presets.three_regime(resumed.parameters(), lr=1e-2, zeta=2.0, weight_decay=1e-3)
    fresh.load_state_dict(saved["opt"])
    for x, y in batches[20:]:
        _step(resumed, fresh, x, y)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_param_groups_with_different_metrics_match_separate_optimizers():
    model = small_mlp()
    twin = copy.deepcopy(model)
    layers = [m for m in model if isinstance(m, nn.Linear)]
    twin_layers = [m for m in twin if isinstance(m, nn.Linear)]
    grouped = CGD(
        [
            {"params": layers[0].parameters(), "metric": Power(1.0) + 1e-6, "moment": "raw"},
            {"params": layers[1].parameters(), "metric": Power(0.0), "lr": 0.05},
            {"params": layers[2].parameters()},
        ],
        lr=1e-2,
        metric=ThreeRegime(1e-8, 3.0),
    )
    separate = [
        CGD(twin_layers[0].parameters(), lr=1e-2, metric=Power(1.0) + 1e-6, moment="raw"),
        CGD(twin_layers[1].parameters(), lr=0.05, metric=Power(0.0)),
        CGD(twin_layers[2].parameters(), lr=1e-2, metric=ThreeRegime(1e-8, 3.0)),
    ]
    for x, y in minibatches(30):
        _step(model, grouped, x, y)
        for opt in separate:
            opt.zero_grad()
        nn.functional.mse_loss(twin(x), y).backward()
        for opt in separate:
            opt.step()
    assert parameters_moved(model, twin) == 0.0
    flat_param = layers[1].weight
    assert "noise_moment" not in grouped.state[flat_param]  # α = 0 needs no κ estimate


def test_closure_is_called_and_its_loss_returned():
    model = small_mlp()
    twin = copy.deepcopy(model)
    opt = presets.adam(model.parameters(), lr=1e-2)
    ref = presets.adam(twin.parameters(), lr=1e-2)
    calls = 0
    for x, y in minibatches(5):

        def closure(x=x, y=y):
            nonlocal calls
            calls += 1
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        loss = opt.step(closure)
        _step(twin, ref, x, y)
        assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    assert calls == 5
    assert parameters_moved(model, twin) == 0.0


@pytest.mark.parametrize("tensor_lr", [False, True], ids=["float-lr", "tensor-lr"])
def test_lr_scheduler_drives_the_step(tensor_lr):
    model = small_mlp()
    twin = copy.deepcopy(model)
    lr = torch.tensor(0.01, dtype=torch.float64) if tensor_lr else 0.01
    opt = presets.three_regime(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    manual = presets.three_regime(twin.parameters(), lr=0.01)
    for i, (x, y) in enumerate(minibatches(15)):
        for group in manual.param_groups:
            group["lr"] = 0.01 * 0.5 ** (i // 5)
        _step(model, opt, x, y)
        _step(twin, manual, x, y)
        sched.step()
    assert math.isclose(float(opt.param_groups[0]["lr"]), 0.01 * 0.5**3)
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor) == tensor_lr
    assert parameters_moved(model, twin) <= 1e-15


def test_params_without_grad_are_skipped():
    model = small_mlp()
    frozen = model[0].weight
    frozen.requires_grad_(False)
    before = frozen.clone()
    opt = presets.adam(model.parameters(), lr=1e-2)
    for x, y in minibatches(3):
        _step(model, opt, x, y)
    assert torch.equal(frozen, before)
    assert frozen not in opt.state
    assert model[2].weight in opt.state


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"lr": -1e-3}, "lr=-0.001"),
        ({"lr": float("nan")}, "lr=nan"),
        ({"betas": (1.0, 0.999)}, "betas[0]=1.0"),
        ({"betas": (0.9, -0.1)}, "betas[1]=-0.1"),
        ({"moment": "centered"}, "moment='centered'"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1"),
        ({"metric": "adam"}, "metric='adam'"),
        ({"nonfinite": "warn"}, "nonfinite='warn'"),
        ({"eps_inside": -1.0}, "eps_inside=-1.0"),
    ],
)
def test_bad_hyperparameters_raise_value_error_naming_the_value(kwargs, named):
    with pytest.raises(ValueError) as info:
        CGD(small_mlp().parameters(), **kwargs)
    assert named in str(info.value)


def test_compiled_and_reference_loop_exclude_each_other():
    with pytest.raises(ValueError, match="compiled=True and foreach=False"):
        CGD(small_mlp().parameters(), compiled=True, foreach=False)


def test_bad_param_group_added_later_is_refused():
    model = small_mlp()
    opt = CGD(model[0].parameters())
    with pytest.raises(ValueError, match="moment='bogus'"):
        opt.add_param_group({"params": model[2].parameters(), "moment": "bogus"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_raises_and_leaves_everything_untouched(bad):
    model = small_mlp()
    opt = presets.three_regime(model.parameters(), lr=1e-2)
    for x, y in minibatches(3):
        _step(model, opt, x, y)
    params_before = [p.clone() for p in model.parameters()]
    state_before = copy.deepcopy(opt.state_dict())
    opt.zero_grad()
    x, y = next(minibatches(1, seed=9))
    nn.functional.mse_loss(model(x), y).backward()
    model[4].bias.grad[0] = bad  # the last parameter: earlier ones would be updated by a naive loop
    with pytest.raises(NonFiniteGradientError, match="non-finite gradient"):
        opt.step()
    for a, b in zip(model.parameters(), params_before):
        assert torch.equal(a, b)
    after = opt.state_dict()
    for key, value in state_before["state"].items():
        for name, tensor in value.items():
            assert torch.equal(after["state"][key][name], tensor)


def test_nonfinite_gradient_can_be_skipped():
    model = small_mlp()
    opt = presets.adam(model.parameters(), lr=1e-2, nonfinite="skip")
    x, y = next(minibatches(1))
    nn.functional.mse_loss(model(x), y).backward()
    model[0].weight.grad[0, 0] = float("nan")
    before = [p.clone() for p in model.parameters()]
    opt.step()
    assert opt.skipped_steps == 1
    assert not opt.state  # nothing was initialised either
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


@pytest.mark.parametrize(
    "make",
    [
        lambda p, fe: presets.three_regime(p, lr=1e-2, zeta=5.0, weight_decay=1e-2, foreach=fe),
        lambda p, fe: presets.natural_gradient(p, lr=1e-3, damping=1e-6, foreach=fe),
        lambda p, fe: CGD(p, lr=1e-2, metric=Power(0.3) + 0.1 * Power(1.5), maximize=True, foreach=fe),
        lambda p, fe: CGD(p, lr=1e-2, metric=Interpolating(1e-6), bias_correction=False, foreach=fe),
        lambda p, fe: presets.sgd(p, lr=1e-2, momentum=0.5, foreach=fe),
    ],
    ids=["three-regime", "natural-gradient", "odd-powers-maximize", "no-bias-correction", "sgd"],
)
def test_foreach_equals_reference_loop(make):
    deviation = train_pair(lambda p: make(p, True), lambda p: make(p, False), steps=100)
    assert deviation <= 1e-13


def test_foreach_handles_mixed_dtypes():
    def make_params():
        torch.manual_seed(0)
        return [nn.Parameter(torch.randn(5, dtype=torch.float64)), nn.Parameter(torch.randn(4))]

    fast_params, slow_params = make_params(), make_params()
    fast = presets.three_regime(fast_params, lr=1e-2, foreach=True)
    slow = presets.three_regime(slow_params, lr=1e-2, foreach=False)
    for step in range(10):
        for params, opt in ((fast_params, fast), (slow_params, slow)):
            opt.zero_grad()
            (params[0].sin().sum() * step + params[1].double().pow(2).sum()).backward()
            opt.step()
    assert fast_params[1].dtype == torch.float32
    assert torch.equal(fast_params[0], slow_params[0])
    assert torch.allclose(fast_params[1], slow_params[1], rtol=0, atol=1e-6)  # float32 round-off
    assert not torch.equal(fast_params[1], make_params()[1])


def test_maximize_ascends():
    param = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = CGD([param], lr=0.1, metric=Power(0.0), maximize=True)
    for _ in range(10):
        opt.zero_grad()
        (-(param - 1.0).pow(2).sum()).backward()  # maximum at 1
        opt.step()
    assert torch.all(param > 0.5)


@pytest.mark.slow
def test_compiled_step_matches_eager():
    model = small_mlp()
    twin = copy.deepcopy(model)
    opt = presets.three_regime(model.parameters(), lr=1e-2, zeta=2.0)
    ref = presets.three_regime(twin.parameters(), lr=1e-2, zeta=2.0)

    @torch.compile(fullgraph=False)
    def compiled_step():
        opt.step()

    for x, y in minibatches(8):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        compiled_step()
        _step(twin, ref, x, y)
    assert parameters_moved(model, twin) <= 1e-12


def test_huge_but_finite_gradients_are_not_refused():
    """The fast finiteness test (an L2 norm) overflows on huge finite values; they must still be accepted."""
    param = nn.Parameter(torch.zeros(1000))
    opt = CGD([param], lr=1e-3)
    param.grad = torch.full((1000,), 3e37)  # Σg² overflows float32
    opt.step()  # must not raise
    assert opt.state[param]["step"].item() == 1 and opt.skipped_steps == 0
    assert torch.isfinite(opt.state[param]["first_moment"]).all()


@pytest.mark.slow
def test_compiled_option_steps_like_foreach():
    deviation = train_pair(
        lambda p: presets.three_regime(p, lr=1e-2, zeta=2.0, weight_decay=1e-3, compiled=True),
        lambda p: presets.three_regime(p, lr=1e-2, zeta=2.0, weight_decay=1e-3),
        steps=30,
    )
    assert deviation <= 1e-12

"""The optimizer contract beyond the matrix: metric specs, checkpoints of earlier releases, loaded values,
no-step coordinates of floor-less laws, ``torch.compile(opt.step)`` without recompiles, and the compiled=True
fallback at dynamo's recompile limit."""

from __future__ import annotations

import copy
import io
import json
import math
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from geodyn.metric import Custom, Interpolating, Power, ThreeRegime, metric_from_spec
from geodyn.optim import CGD, KronCGD, presets
from geodyn.optim.compiled import compiled_step_cache_clear

LAWS = [Power(0.0), Power(0.5), Power(1.0), Interpolating(1e-8), ThreeRegime(1e-3, 7.0), Power(1.0) + 1e-6,
        0.3 * Power(0.25) + Power(1.5)]  # fmt: skip


@pytest.mark.parametrize("law", LAWS, ids=repr)
def test_spec_rebuilds_an_equal_law_of_the_same_type(law):
    spec = law.spec()
    buffer = io.BytesIO()
    torch.save(spec, buffer)
    buffer.seek(0)
    rebuilt = metric_from_spec(torch.load(buffer))
    assert type(rebuilt) is type(law) and rebuilt.terms == law.terms
    lam = torch.logspace(-12, 4, 33, dtype=torch.float64)
    assert torch.equal(rebuilt(lam), law(lam))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"kind": "power", "alpha": "half"}, "alpha='half'"),
        ({"kind": "cubic"}, "kind='cubic'"),
        ({"alpha": 1.0}, "{'alpha': 1.0}"),
        ({"kind": "power_sum", "terms": [1.0, 0.5]}, "terms=[1.0, 0.5]"),
        ({"kind": "power", "alpha": 3.0}, "3.0"),
        ({"kind": "custom", "name": "Custom(f)"}, "custom law"),
    ],
)
def test_bad_specs_raise_value_error_naming_them(spec, named):
    with pytest.raises(ValueError) as info:
        metric_from_spec(spec)
    assert named in str(info.value)


def _grads(param: torch.Tensor, steps: int, seed: int = 5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(param.shape, generator=gen, dtype=param.dtype) for _ in range(steps)]


def _run(opt, param, grads):
    for g in grads:
        param.grad = g.clone()
        opt.step()


def _save_load(obj, weights_only: bool = True):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=weights_only)


@pytest.mark.parametrize("kind", ["CGD", "KronCGD"])
def test_state_dict_of_the_earlier_release_with_law_objects_still_loads(kind):
    make = {"CGD": lambda p: presets.three_regime([p], lr=1e-2, zeta=3.0), "KronCGD": lambda p: KronCGD([p])}[kind]
    param = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    opt = make(param)
    _run(opt, param, _grads(param, 3))
    old = torch.optim.Optimizer.state_dict(opt)  # the format written before specs: law objects in param_groups
    assert not isinstance(old["param_groups"][0]["metric"], dict)
    with pytest.raises(Exception, match="Unsupported global"):
        _save_load(old)  # why specs are needed: torch's default loader refuses the objects
    twin = torch.nn.Parameter(param.detach().clone())
    resumed = make(twin)
    resumed.load_state_dict(_save_load(old, weights_only=False))
    more = _grads(param, 3, seed=6)
    _run(opt, param, more)
    _run(resumed, twin, more)
    assert torch.equal(param, twin)
    assert isinstance(resumed.state_dict()["param_groups"][0]["metric"], str)


def test_python_number_step_in_a_loaded_state_loads_and_steps_identically():
    param = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = presets.adam([param], lr=1e-2)
    _run(opt, param, _grads(param, 4))
    saved = copy.deepcopy(opt.state_dict())  # torch's state_dict shares the per-parameter dicts with opt.state
    saved["state"][0]["step"] = 4  # as torch < 1.12 and some converters write it
    twin = torch.nn.Parameter(param.detach().clone())
    resumed = presets.adam([twin], lr=1e-2)
    resumed.load_state_dict(saved)
    assert torch.is_tensor(resumed.state[twin]["step"]) and resumed.state[twin]["step"].item() == 4
    more = _grads(param, 3, seed=8)
    _run(opt, param, more)
    _run(resumed, twin, more)
    assert torch.equal(param, twin)


def _saved_state():
    param = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = CGD([param])
    _run(opt, param, _grads(param, 1))
    return opt.state_dict()


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda sd: sd["state"][0].update(step=-1), "step=-1"),
        (lambda sd: sd["state"][0].update(step=2.5), "step=2.5"),
        (lambda sd: sd["state"][0].update(step="3"), "step (state of parameter 0)='3'"),
        (lambda sd: sd["param_groups"][0].update(lr=torch.tensor([1e-3, 1e-3])), "lr=tensor([0.0010, 0.0010])"),
        (lambda sd: sd["param_groups"][0].update(lr="fast"), "lr='fast'"),
        (lambda sd: sd["param_groups"][0].update(metric={"kind": "cubic"}), "kind='cubic'"),
        (lambda sd: sd["param_groups"][0].update(metric="Power(1)"), "spec 'Power(1)': not JSON"),
        (lambda sd: sd["param_groups"][0].update(maximize="yes"), "maximize='yes'"),
        (lambda sd: sd.update(param_groups=None), "param_groups=None"),
    ],
)
def test_bad_loaded_values_raise_value_error_naming_them(edit, named):
    saved = _saved_state()
    edit(saved)
    param = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = CGD([param])
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(saved)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"lr": torch.tensor([1e-3, 1e-3])}, "lr=tensor([0.0010, 0.0010])"),
        ({"lr": torch.tensor(1e-3j)}, "Tensor lr must be 1-element, real and 0-dim"),
        ({"lr": "1e-3"}, "lr='1e-3'"),
        ({"betas": (0.9, "x")}, "betas[1]='x'"),
        ({"betas": 0.9}, "betas=0.9"),
        ({"foreach": "yes"}, "foreach='yes'"),
        ({"bias_correction": 1}, "bias_correction=1"),
    ],
)
def test_bad_constructor_values_raise_value_error_naming_them(kwargs, named):
    with pytest.raises(ValueError) as info:
        CGD([torch.nn.Parameter(torch.zeros(2))], **kwargs)
    assert named in str(info.value)


def test_custom_law_is_matched_by_name_on_load():
    def law(lam):
        return lam.sqrt() + 1e-3

    param = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = CGD([param], metric=Custom(law, name="sqrt-floor"))
    _run(opt, param, _grads(param, 2))
    saved = _save_load(opt.state_dict())
    assert json.loads(saved["param_groups"][0]["metric"]) == {"kind": "custom", "name": "Custom(sqrt-floor)"}
    same = CGD([torch.nn.Parameter(param.detach().clone())], metric=Custom(law, name="sqrt-floor"))
    same.load_state_dict(saved)
    other = CGD([torch.nn.Parameter(param.detach().clone())], metric=Custom(law, name="other"))
    with pytest.raises(ValueError, match=r"custom law.*Custom\(other\)"):
        other.load_state_dict(saved)


@pytest.mark.parametrize("path", ["foreach", "loop", pytest.param("compiled", marks=pytest.mark.slow)])
@pytest.mark.parametrize("moment", ["raw", "central"])
def test_floorless_law_takes_no_step_where_no_gradient_was_seen(path, moment):
    """Power(1) (natural gradient, (6.1)): g = K̂ = 0 for a coordinate whose gradients were all zero; m̂ = 0 too,
    and 0/0 would be NaN. Such a coordinate takes no step; the others step as m̂/K̂."""
    param = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    flags = {"foreach": {}, "loop": {"foreach": False}, "compiled": {"compiled": True}}[path]
    opt = CGD([param], lr=0.1, metric=Power(1.0), moment=moment, **flags)
    for g in ([0.5, 0.0, -1.0], [0.25, 0.0, -2.0], [1.0, 0.0, 0.5]):
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        assert torch.isfinite(param).all(), param
        assert param[1].item() == 2.0
    assert param[0].item() != 1.0 and param[2].item() != 3.0


def _mlp_and_data(dtype=torch.float64):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)
    x, y = torch.randn(16, 4, dtype=dtype), torch.randn(16, 1, dtype=dtype)
    return model, x, y


def test_compiled_opt_step_compiles_once_over_20_scheduled_steps():
    torch._dynamo.reset()
    model, x, y = _mlp_and_data()
    twin, _, _ = _mlp_and_data()
    make = lambda m, lr: presets.three_regime(m.parameters(), lr=lr, zeta=2.0, weight_decay=1e-3)  # noqa: E731
    opt, ref = make(model, torch.tensor(1e-2, dtype=torch.float64)), make(twin, 1e-2)
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9) for o in (opt, ref)]
    step = torch.compile(opt.step)
    counters.clear()
    for _ in range(20):
        for m, o, s in ((model, opt, step), (twin, ref, ref.step)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            s()
        for sched in scheds:
            sched.step()
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    # Traced and eager steps fold the bias corrections differently: a few ulps of q per step, over 20 steps.
    bound = 20 * 16 * torch.finfo(torch.float64).eps * 2.0
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert (a - b).abs().max().item() <= bound
    assert opt.state[next(model.parameters())]["step"].item() == 20


@pytest.mark.parametrize("foreach", [None, False], ids=["foreach", "loop"])
def test_compiled_opt_step_masks_a_nonfinite_gradient_without_recompiling(foreach):
    torch._dynamo.reset()
    param = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt = CGD([param], lr=torch.tensor(0.1, dtype=torch.float64), foreach=foreach)
    step = torch.compile(opt.step)
    counters.clear()
    param.grad = torch.ones(4, dtype=torch.float64)
    step()
    kept = param.detach().clone()
    state = {k: v.clone() for k, v in opt.state[param].items()}
    param.grad = torch.tensor([1.0, math.nan, 0.0, 1.0], dtype=torch.float64)
    step()  # no host sync to raise on: the update is masked out
    assert torch.equal(param, kept)
    assert all(torch.equal(opt.state[param][k], v) for k, v in state.items())
    param.grad = torch.ones(4, dtype=torch.float64)
    step()
    assert not torch.equal(param, kept) and opt.state[param]["step"].item() == 2
    assert counters["stats"]["unique_graphs"] == 1 and not counters["recompiles"], dict(counters["stats"])


def test_structured_step_runs_eagerly_inside_torch_compile():
    torch._dynamo.reset()
    params = [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)) for _ in range(2)]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt, ref = KronCGD([params[0]], lr=1e-3), KronCGD([twins[0]], lr=1e-3)
    step = torch.compile(opt.step)
    for g in _grads(params[0], 5):
        params[0].grad, twins[0].grad = g.clone(), g.clone()
        step()
        ref.step()
    assert torch.equal(params[0], twins[0])  # the same eager code, bit for bit


@pytest.mark.slow
def test_compiled_option_falls_back_to_foreach_with_one_warning_at_the_recompile_limit():
    compiled_step_cache_clear()
    law = ThreeRegime(1e-7, 3.0)  # a key no other test compiles
    shapes = [(2,), (3,), (2, 2)]
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = CGD([{"params": [p]} for p in params], lr=1e-2, metric=law, compiled=True)
    ref = CGD([{"params": [p]} for p in twins], lr=1e-2, metric=law)
    with torch._dynamo.config.patch(recompile_limit=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            for p, q in zip(params, twins, strict=True):
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                q.grad = p.grad.clone()
            opt.step()  # group 0 compiles; groups 1 and 2 would be recompiles past the limit
            ref.step()
    ours = [w for w in caught if "recompile limit" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    for p, q in zip(params, twins, strict=True):
        assert (p - q).abs().max().item() <= 2 * 16 * torch.finfo(torch.float64).eps * 4.0


def test_loading_keeps_the_optimizers_own_attributes_and_fills_settings_an_older_dict_lacks():
    param = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
    opt = CGD([param], lr=1e-2, nonfinite="skip")
    param.grad = torch.full((3,), math.nan, dtype=torch.float64)
    opt.step()
    _run(opt, param, _grads(param, 2))
    saved = copy.deepcopy(opt.state_dict())
    for key in ("maximize", "foreach", "compiled", "nonfinite", "eps_inside"):
        del saved["param_groups"][0][key]  # settings that later releases added
    twin = torch.nn.Parameter(param.detach().clone())
    resumed = CGD([twin], lr=1e-2)
    resumed.skipped_steps = 7
    resumed.load_state_dict(saved)
    assert resumed.skipped_steps == 7  # torch's load_state_dict calls __setstate__ with state and groups only
    assert resumed.param_groups[0]["nonfinite"] == "raise" and resumed.param_groups[0]["maximize"] is False
    more = _grads(param, 2, seed=9)
    _run(opt, param, more)
    _run(resumed, twin, more)
    assert torch.equal(param, twin)

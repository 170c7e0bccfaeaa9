"""The benchmark tasks: each trains under Adam, its target is not met at the start, and its data are fixed."""

import math

import pytest
import torch

from geodyn.bench import OPTIMIZERS, TASKS, available
from geodyn.bench.runner import applies

ADAM_LR = {"rosenbrock-2d": 1e-2, "rosenbrock-64d": 1e-2, "noisy-quadratic": 1e-2}


@pytest.mark.parametrize("name", list(TASKS))
def test_loss_falls_under_adam(name):
    """40 Adam steps lower the training loss (mean of the last 8 minibatch losses below the first 8, by more than
    their spread) and leave the evaluated metric better than at the start."""
    task = TASKS[name]
    problem = task.build(0)
    before = problem.evaluate()
    for size in ("quick", "full"):
        assert not task.reached(before, size), f"{name}: the {size} target is met before training"
    opt = torch.optim.Adam(problem.params, lr=ADAM_LR.get(name, 3e-3))
    losses = []
    for t in range(1, 41):
        opt.zero_grad()
        loss = problem.loss(t)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = torch.tensor(losses[:8]), torch.tensor(losses[-8:])
    assert last.mean() < first.mean() - (first.std() + last.std()) / math.sqrt(8), (name, losses)
    after = problem.evaluate()
    assert (after < before) if task.goal == "min" else (after > before), (name, before, after)


@pytest.mark.parametrize("name", ["logreg-digits", "mlp-digits", "multiplication", "char-transformer", "byte-lm"])
def test_seeds_change_the_start_but_not_the_data(name):
    a, b = TASKS[name].build(1), TASKS[name].build(2)
    assert any(not torch.equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    c = TASKS[name].build(1)
    assert all(torch.equal(p, q) for p, q in zip(a.params, c.params, strict=True))
    assert torch.equal(a.loss(1), c.loss(1))  # same seed: same minibatch order
    with torch.no_grad():  # same parameters under two seeds: the same evaluation, so the held-out data are shared
        for p, q in zip(a.params, b.params, strict=True):
            q.copy_(p)
    assert a.evaluate() == b.evaluate()
    assert a.evaluate("test") == b.evaluate("test")
    assert a.evaluate("test") != a.evaluate("validation")  # two held-out sets, not one


def test_muon_applies_only_where_there_are_hidden_matrices():
    assert not applies("rosenbrock-64d", "muon") and not applies("logreg-digits", "muon")
    assert not applies("cnn-digits", "muon")  # its hidden layers are convolutions; torch's Muon takes 2-D only
    assert applies("mlp-digits", "muon") and applies("char-transformer", "muon")
    problem = TASKS["char-transformer"].build(0)
    opt = OPTIMIZERS["muon"].build(problem.params, problem.hidden, 1e-3)
    muon_params = {id(p) for p in opt.optimizers[0].param_groups[0]["params"]}
    embed, head = problem.module.embed.weight, problem.module.head.weight
    assert id(embed) not in muon_params and id(head) not in muon_params  # embeddings and head go to AdamW
    assert muon_params == {id(h) for h in problem.hidden} and len(muon_params) == 8


def test_targets_and_budgets_are_declared_for_both_sizes():
    for task in TASKS.values():
        assert set(task.steps) == set(task.eval_every) == {"quick", "full"}
        assert task.goal in ("min", "max") and math.isfinite(task.target)
        assert task.steps["quick"] <= task.steps["full"]


def test_every_optimizer_builds_on_every_task_it_fits():
    for name in available():
        spec = OPTIMIZERS[name]
        for task_name in ("rosenbrock-2d", "cnn-digits", "mlp-digits"):
            if not applies(task_name, name):
                continue
            for h in spec.values:  # every value of its tuned hyperparameter
                problem = TASKS[task_name].build(0)
                opt = spec.build(problem.params, problem.hidden, 1e-3, h)
                before = [p.detach().clone() for p in problem.params]
                for t in (1, 2):  # SOAP spends its first step on setting up the preconditioner
                    opt.zero_grad()
                    problem.loss(t).backward()
                    opt.step()
                assert any(not torch.equal(p, q) for p, q in zip(problem.params, before, strict=True)), (name, h)


def test_geodyn_adam_row_steps_like_torch_adam():
    """The sanity row of the table: presets.adam must give torch.optim.Adam's curve on a real task (float32, so
    equal to a few ULPs of the loss, which the evaluation rounds away only if the steps agree)."""
    from geodyn.bench.cell import Cell, run_cell

    a = run_cell(Cell("logreg-digits", "adam", 3e-3, 0, "quick"))
    b = run_cell(Cell("logreg-digits", "geodyn-adam", 3e-3, 0, "quick"))
    assert a.steps == b.steps
    assert max(abs(x - y) for x, y in zip(a.values, b.values, strict=True)) <= 1 / 359 + 1e-12  # one of 359


def test_noisy_quadratic_minimum_is_not_where_weight_decay_pulls():
    from geodyn.bench.tasks import noisy_quadratic_start

    x0, x_star = noisy_quadratic_start()
    # x* = x₀ − 1 rounds once: |Δ| ≤ ulp(|x₀| + 1)
    ulp = torch.finfo(torch.float64).eps * (x0.abs().max() + 1.0)
    torch.testing.assert_close(x0 - x_star, torch.ones_like(x0), rtol=0.0, atol=float(ulp))
    assert abs(float(x0 @ (x0 - x_star))) < 1e-9 * len(x0)  # decay towards 0 gains nothing at first order
    problem = TASKS["noisy-quadratic"].build(1)
    (x,) = problem.params
    assert torch.equal(x.detach(), x0)
    with torch.no_grad():
        x.copy_(x_star)
    assert problem.evaluate() == 0.0
    with torch.no_grad():
        x.zero_()
    assert problem.evaluate() > TASKS["noisy-quadratic"].target  # the origin is not a solution

"""Shared test fixtures: a small float64 MLP and a reproducible stream of minibatches."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def small_mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


def minibatches(steps: int, seed: int = 1, batch: int = 16, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.randn(256, 6, generator=gen, dtype=dtype)
    y_all = torch.stack([x_all[:, 0] * x_all[:, 1], torch.sin(x_all[:, 2])], dim=1)
    for _ in range(steps):
        idx = torch.randint(0, 256, (batch,), generator=gen)
        yield x_all[idx], y_all[idx]


def train_pair(
    make_ours: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
    make_reference: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
    steps: int = 200,
    seed: int = 0,
) -> float:
    """Train two copies of one MLP on the same minibatches; return max |Δθ| over all steps."""
    ours_model = small_mlp(seed)
    ref_model = copy.deepcopy(ours_model)
    ours, ref = make_ours(list(ours_model.parameters())), make_reference(list(ref_model.parameters()))
    worst = 0.0
    for x, y in minibatches(steps, seed=seed + 1):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        worst = max(
            worst,
            max((a - b).abs().max().item() for a, b in zip(ours_model.parameters(), ref_model.parameters())),
        )
    return worst


def parameters_moved(model_a: nn.Module, model_b: nn.Module) -> float:
    return max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters()))


def cgd_options(metric, **overrides) -> dict:
    """Keyword arguments of the functional CGD steps (cgd_reference, cgd_foreach, cgd_compiled): a central-moment
    Adam-like setting with bias correction, decoupled decay off, ``overrides`` on top."""
    options = dict(
        lr=1e-2,
        beta1=0.9,
        beta2=0.99,
        metric=metric,
        moment="central",
        weight_decay=0.0,
        decoupled_weight_decay=True,
        bias_correction=True,
        eps_inside=0.0,
        maximize=False,
    )
    options.update(overrides)
    return options

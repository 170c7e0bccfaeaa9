"""The compared optimizers: peers people use today and geodyn's metric laws, each built from (params, lr).

Every optimizer is tuned over the same learning-rate grid (:mod:`geodyn.bench.protocol`); every other
hyperparameter is its library's default, fixed here before any comparison. Peers that need the ``bench`` extra
(adabelief-pytorch, pytorch-optimizer) or a newer torch (Muon) are listed only where they import.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from geodyn.optim import presets

__all__ = ["OptimizerSpec", "OPTIMIZERS", "optimizer_names", "available", "CombinedOptimizer"]


@dataclass(frozen=True)
class OptimizerSpec:
    """``make(params, lr)`` builds the optimizer; an optimizer that treats hidden matrices apart (Muon) has
    ``split(hidden, others, lr)`` instead and applies only to tasks with hidden matrices. ``family`` is "peer" or
    "geodyn"; ``max_params`` excludes tasks too large for the method (full-covariance κ is N×N); ``needs`` is the
    module it imports (None: always there)."""

    name: str
    make: Callable[[list[Tensor], float], torch.optim.Optimizer]
    family: str
    description: str
    max_params: int | None = None
    needs: str | None = None
    split: Callable[[list[Tensor], list[Tensor], float], torch.optim.Optimizer] | None = None

    def available(self) -> bool:
        if self.needs is None:
            return True
        if self.needs == "torch.optim.Muon":
            return hasattr(torch.optim, "Muon")
        return importlib.util.find_spec(self.needs) is not None

    def fits(self, n_params: int, n_hidden: int = 0) -> bool:
        if self.split is not None and n_hidden == 0:
            return False
        return self.max_params is None or n_params <= self.max_params

    def build(self, params: list[Tensor], hidden: list[Tensor], lr: float) -> torch.optim.Optimizer:
        if self.split is None:
            return self.make(params, lr)
        ids = {id(h) for h in hidden}
        return self.split(hidden, [p for p in params if id(p) not in ids], lr)


class CombinedOptimizer(torch.optim.Optimizer):
    """Several optimizers stepping disjoint parameter sets as one (Muon takes matrices only; the rest of the
    parameters go to AdamW, as Muon's authors recommend)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        groups = [g for opt in optimizers for g in opt.param_groups]
        self.param_groups = groups
        self.defaults = {}
        self.state = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for opt, sd in zip(self.optimizers, state_dict["optimizers"], strict=True):
            opt.load_state_dict(sd)


def _muon(hidden: list[Tensor], others: list[Tensor], lr: float) -> torch.optim.Optimizer:
    # Muon orthogonalises the hidden matrices; input layers, embeddings, heads, biases and norms go to AdamW, as
    # Muon's authors advise. adjust_lr_fn="match_rms_adamw" scales Muon's update to AdamW's RMS, so one
    # learning-rate grid serves both parts. Weight decay 0.01 on both, as AdamW's default.
    muon = torch.optim.Muon(hidden, lr=lr, weight_decay=0.01, adjust_lr_fn="match_rms_adamw")
    return CombinedOptimizer([muon, torch.optim.AdamW(others, lr=lr)]) if others else muon


def _adabelief(params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    from adabelief_pytorch import AdaBelief

    # The package's own defaults for version 0.2.x (eps=1e-16, decoupled decay, rectification on). It prints its
    # settings on construction, which would cut through the progress bar.
    with contextlib.redirect_stdout(io.StringIO()):
        return AdaBelief(params, lr=lr, eps=1e-16, weight_decouple=True, rectify=True, print_change_log=False)


def _soap(params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import SOAP

    return SOAP(params, lr=lr)


def _schedule_free(params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import ScheduleFreeAdamW

    return ScheduleFreeAdamW(params, lr=lr)


_SPECS = [
    OptimizerSpec("sgd", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9), "peer",
                  "torch.optim.SGD, momentum 0.9"),
    OptimizerSpec("adam", lambda p, lr: torch.optim.Adam(p, lr=lr), "peer", "torch.optim.Adam"),
    OptimizerSpec("adamw", lambda p, lr: torch.optim.AdamW(p, lr=lr), "peer",
                  "torch.optim.AdamW, weight decay 0.01 (the anchor of the ratios)"),
    OptimizerSpec("rmsprop", lambda p, lr: torch.optim.RMSprop(p, lr=lr), "peer", "torch.optim.RMSprop"),
    OptimizerSpec("muon", lambda p, lr: None, "peer",
                  "torch.optim.Muon on the hidden matrices (RMS matched to AdamW, weight decay 0.01), AdamW on the "
                  "rest; only for tasks with hidden 2-D layers", needs="torch.optim.Muon", split=_muon),
    OptimizerSpec("adabelief", _adabelief, "peer", "adabelief-pytorch 0.2 defaults", needs="adabelief_pytorch"),
    OptimizerSpec("soap", _soap, "peer", "pytorch-optimizer SOAP defaults", needs="pytorch_optimizer"),
    OptimizerSpec("schedule-free-adamw", _schedule_free, "peer", "pytorch-optimizer ScheduleFreeAdamW",
                  needs="pytorch_optimizer"),
    OptimizerSpec("geodyn-adam", lambda p, lr: presets.adam(p, lr=lr), "geodyn",
                  "presets.adam: CGD stepping exactly like torch.optim.Adam (a sanity row)"),
    OptimizerSpec("geodyn-three-regime", lambda p, lr: presets.three_regime(p, lr=lr), "geodyn",
                  "presets.three_regime: diagonal g = ε + √κ + ζκ, ε = 1e-8, ζ = 1, central moment (6.5)"),
    OptimizerSpec("geodyn-three-regime-z100", lambda p, lr: presets.three_regime(p, lr=lr, zeta=100.0), "geodyn",
                  "presets.three_regime with ζ = 100: noise variances above 1e-4 move in the fast (α = 1) regime"),
    OptimizerSpec("geodyn-natural-gradient", lambda p, lr: presets.natural_gradient(p, lr=lr), "geodyn",
                  "presets.natural_gradient: diagonal empirical Fisher, g = κ + 1e-8 (6.1)"),
    OptimizerSpec("geodyn-three-regime-kron", lambda p, lr: presets.three_regime_kron(p, lr=lr), "geodyn",
                  "presets.three_regime_kron: Kronecker-factored κ, g = ε + √κ + ζκ, refreshed every 10 steps"),
    OptimizerSpec("geodyn-shampoo", lambda p, lr: presets.shampoo(p, lr=lr), "geodyn",
                  "presets.shampoo: KronCGD in Shampoo's limit L^{-1/4} M R^{-1/4}"),
    OptimizerSpec("geodyn-natural-gradient-full", lambda p, lr: presets.natural_gradient_full(
                      p, lr=lr, damping=1e-4, precondition_every=10),
                  "geodyn",
                  "presets.natural_gradient_full: full N×N empirical Fisher + 1e-4 I, eigenbasis every 10 steps",
                  max_params=1000),
]  # fmt: skip

OPTIMIZERS: dict[str, OptimizerSpec] = {s.name: s for s in _SPECS}


def optimizer_names() -> list[str]:
    return list(OPTIMIZERS)


def available() -> list[str]:
    """The optimizers whose libraries import here."""
    return [n for n, s in OPTIMIZERS.items() if s.available()]

"""The compared optimizers: peers people use today and geodyn's metric laws, each built from (params, lr, h).

Equal tuning budget (:mod:`geodyn.bench.protocol`): every optimizer is tuned over the same learning-rate grid times
two values of *one* hyperparameter of its own, declared here (``hyper``, ``values``; the first value is the library's
default) before any comparison; every other hyperparameter is its library's default. Peers that need the ``bench``
extra (adabelief-pytorch, pytorch-optimizer, heavyball, lion-pytorch) or a newer torch (Muon) are listed only where
they import. heavyball compiles its steps with torch.compile by default; here it runs eager (its documented switch
``heavyball.utils.compile_mode = None``), so that its rows run on any CPU without a compiler toolchain.
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

__all__ = ["OptimizerSpec", "OPTIMIZERS", "optimizer_names", "available", "quick_selection", "QUICK_OPTIMIZERS",
           "CombinedOptimizer", "DEFAULT_EPS", "DEFAULT_ZETA"]  # fmt: skip

#: ε̃ and ζ̃ of the scale-free three-regime rows, frozen from the tuning-split sweep in docs/bench.md.
DEFAULT_EPS, DEFAULT_ZETA = 0.1, 1.0


@dataclass(frozen=True)
class OptimizerSpec:
    """``make(params, lr, h)`` builds the optimizer with its tuned hyperparameter ``hyper`` = h, one of ``values``
    (the first is the library's default); an optimizer that treats hidden matrices apart (Muon) has
    ``split(hidden, others, lr, h)`` instead and applies only to tasks with hidden matrices. ``family`` is "peer" or
    "geodyn"; ``max_params`` excludes tasks too large for the method (full-covariance κ is N×N); ``needs`` is the
    module it imports (None: always there)."""

    name: str
    make: Callable[[list[Tensor], float, float], torch.optim.Optimizer]
    family: str
    description: str
    hyper: str
    values: tuple[float, ...]
    max_params: int | None = None
    needs: str | None = None
    split: Callable[[list[Tensor], list[Tensor], float, float], torch.optim.Optimizer] | None = None

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

    def build(
        self, params: list[Tensor], hidden: list[Tensor], lr: float, h: float | None = None
    ) -> torch.optim.Optimizer:
        """The optimizer at learning rate ``lr`` and tuned hyperparameter ``h`` (None: its default, values[0])."""
        h = self.values[0] if h is None else h
        if self.split is None:
            return self.make(params, lr, h)
        ids = {id(x) for x in hidden}
        return self.split(hidden, [p for p in params if id(p) not in ids], lr, h)


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


def _muon(hidden: list[Tensor], others: list[Tensor], lr: float, momentum: float) -> torch.optim.Optimizer:
    # Muon orthogonalises the hidden matrices; input layers, embeddings, heads, biases and norms go to AdamW, as
    # Muon's authors advise. adjust_lr_fn="match_rms_adamw" scales Muon's update to AdamW's RMS, so one
    # learning-rate grid serves both parts. Weight decay 0.01 on both, as AdamW's default.
    muon = torch.optim.Muon(hidden, lr=lr, momentum=momentum, weight_decay=0.01, adjust_lr_fn="match_rms_adamw")
    return CombinedOptimizer([muon, torch.optim.AdamW(others, lr=lr)]) if others else muon


def _adabelief(params: list[Tensor], lr: float, eps: float) -> torch.optim.Optimizer:
    from adabelief_pytorch import AdaBelief

    # The package's own defaults for version 0.2.x (eps=1e-16, decoupled decay, rectification on). It prints its
    # settings on construction, which would cut through the progress bar.
    with contextlib.redirect_stdout(io.StringIO()):
        return AdaBelief(params, lr=lr, eps=eps, weight_decouple=True, rectify=True, print_change_log=False)


def _soap(params: list[Tensor], lr: float, beta2: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import SOAP

    return SOAP(params, lr=lr, betas=(0.95, beta2))


def _schedule_free(params: list[Tensor], lr: float, warmup: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import ScheduleFreeAdamW

    return ScheduleFreeAdamW(params, lr=lr, warmup_steps=int(warmup))


def _heavyball(name: str) -> Callable[..., torch.optim.Optimizer]:
    def make(params: list[Tensor], lr: float, **kw: Any) -> torch.optim.Optimizer:
        import heavyball
        import heavyball.utils

        heavyball.utils.compile_mode = None  # eager: no inductor/C++ toolchain needed on CPU
        return getattr(heavyball, name)(params, lr=lr, **kw)

    return make


def _lion(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    from lion_pytorch import Lion

    return Lion(params, lr=lr, weight_decay=weight_decay)


def _three_regime(params: list[Tensor], lr: float, eps: float = DEFAULT_EPS, zeta: float = DEFAULT_ZETA):
    return presets.three_regime(params, lr=lr, eps=eps, zeta=zeta)


_PSGD, _HB_SOAP = _heavyball("PSGDKron"), _heavyball("SOAP")

_SPECS = [
    OptimizerSpec("sgd", lambda p, lr, h: torch.optim.SGD(p, lr=lr, momentum=h), "peer",
                  "torch.optim.SGD with momentum", "momentum", (0.9, 0.99)),
    OptimizerSpec("adam", lambda p, lr, h: torch.optim.Adam(p, lr=lr, betas=(0.9, h)), "peer", "torch.optim.Adam",
                  "beta2", (0.999, 0.99)),
    OptimizerSpec("adamw", lambda p, lr, h: torch.optim.AdamW(p, lr=lr, weight_decay=h), "peer",
                  "torch.optim.AdamW (the anchor of the ratios)", "weight_decay", (0.01, 0.1)),
    OptimizerSpec("rmsprop", lambda p, lr, h: torch.optim.RMSprop(p, lr=lr, alpha=h), "peer", "torch.optim.RMSprop",
                  "alpha", (0.99, 0.9)),
    OptimizerSpec("muon", lambda p, lr, h: None, "peer",
                  "torch.optim.Muon on the hidden matrices (RMS matched to AdamW, weight decay 0.01), AdamW on the "
                  "rest; only for tasks with hidden 2-D layers", "momentum", (0.95, 0.9), needs="torch.optim.Muon",
                  split=_muon),
    OptimizerSpec("adabelief", _adabelief, "peer", "adabelief-pytorch 0.2 defaults", "eps", (1e-16, 1e-8),
                  needs="adabelief_pytorch"),
    OptimizerSpec("soap", _soap, "peer", "pytorch-optimizer SOAP defaults", "beta2", (0.95, 0.99),
                  needs="pytorch_optimizer"),
    OptimizerSpec("schedule-free-adamw", _schedule_free, "peer", "pytorch-optimizer ScheduleFreeAdamW",
                  "warmup_steps", (0.0, 50.0), needs="pytorch_optimizer"),
    OptimizerSpec("psgd-kron", lambda p, lr, h: _PSGD(p, lr, betas=(h, 0.999)), "peer",
                  "heavyball 3.2 PSGDKron (eager), its defaults", "beta1", (0.9, 0.95), needs="heavyball"),
    OptimizerSpec("heavyball-soap", lambda p, lr, h: _HB_SOAP(p, lr, betas=(0.9, h)), "peer",
                  "heavyball 3.2 SOAP (eager), its defaults", "beta2", (0.95, 0.99), needs="heavyball"),
    OptimizerSpec("lion", _lion, "peer", "lion-pytorch 0.2 Lion, betas (0.9, 0.99)", "weight_decay", (0.0, 0.1),
                  needs="lion_pytorch"),
    OptimizerSpec("geodyn-adam", lambda p, lr, h: presets.adam(p, lr=lr, betas=(0.9, h)), "geodyn",
                  "presets.adam: CGD stepping exactly like torch.optim.Adam (a sanity row)", "beta2", (0.999, 0.99)),
    OptimizerSpec("geodyn-three-regime", lambda p, lr, h: _three_regime(p, lr, zeta=h), "geodyn",
                  f"presets.three_regime: scale-free g = s·(ε̃ + √(κ/s²) + ζ̃ κ/s²), s = RMS of √K̂ per tensor, "
                  f"ε̃ = {DEFAULT_EPS:g}, central moment (6.5)", "zeta", (DEFAULT_ZETA, 10 * DEFAULT_ZETA)),
    OptimizerSpec("geodyn-three-regime-zeta0", lambda p, lr, h: _three_regime(p, lr, eps=h, zeta=0.0), "geodyn",
                  "ablation: scale-free law with ζ̃ = 0 (interpolating ε̃ s + √κ, AdaBelief-like)", "eps",
                  (DEFAULT_EPS, DEFAULT_EPS / 10)),
    OptimizerSpec("geodyn-three-regime-eps0", lambda p, lr, h: _three_regime(p, lr, eps=1e-12, zeta=h), "geodyn",
                  "ablation: scale-free law with ε̃ → 0 (1e-12): no slow regime", "zeta",
                  (DEFAULT_ZETA, 10 * DEFAULT_ZETA)),
    OptimizerSpec("geodyn-three-regime-raw", lambda p, lr, h: presets.three_regime(
                      p, lr=lr, eps=1e-8, zeta=h, scale_free=False), "geodyn",
                  "the dimensionful law g = 1e-8 + √κ + ζκ (ζ in 1/gradient units; the former default)", "zeta",
                  (1.0, 100.0)),
    OptimizerSpec("geodyn-natural-gradient", lambda p, lr, h: presets.natural_gradient(p, lr=lr, damping=h),
                  "geodyn", "presets.natural_gradient: diagonal empirical Fisher, g = κ + damping (6.1)", "damping",
                  (1e-8, 1e-4)),
    OptimizerSpec("geodyn-three-regime-kron",
                  lambda p, lr, h: presets.three_regime_kron(p, lr=lr, eps=DEFAULT_EPS, zeta=h), "geodyn",
                  f"presets.three_regime_kron: scale-free law on the Kronecker-factored κ (ε̃ = {DEFAULT_EPS:g}), "
                  "refreshed every 10 steps", "zeta", (DEFAULT_ZETA, 10 * DEFAULT_ZETA)),
    OptimizerSpec("geodyn-shampoo", lambda p, lr, h: presets.shampoo(p, lr=lr, precondition_every=int(h)), "geodyn",
                  "presets.shampoo (its defaults)", "precondition_every", (10.0, 2.0)),
    OptimizerSpec("geodyn-natural-gradient-full", lambda p, lr, h: presets.natural_gradient_full(
                      p, lr=lr, damping=h, precondition_every=10),
                  "geodyn",
                  "presets.natural_gradient_full: full N×N empirical Fisher + damping, eigenbasis every 10 steps",
                  "damping", (1e-4, 1e-2), max_params=1000),
]  # fmt: skip

OPTIMIZERS: dict[str, OptimizerSpec] = {s.name: s for s in _SPECS}


def optimizer_names() -> list[str]:
    return list(OPTIMIZERS)


def available() -> list[str]:
    """The optimizers whose libraries import here."""
    return [n for n, s in OPTIMIZERS.items() if s.available()]


#: What ``geodyn bench --quick`` compares unless told otherwise: the reference, the strongest peers of the full run
#: (Adam, Muon, SOAP) and geodyn's three-regime and Shampoo rows. All twenty at quick size take 1–2 hours on 2 cores,
#: mostly in heavyball's eager steps; this set takes minutes.
QUICK_OPTIMIZERS = (
    "adamw",
    "adam",
    "muon",
    "soap",
    "geodyn-three-regime",
    "geodyn-three-regime-kron",
    "geodyn-shampoo",
)


def quick_selection() -> list[str]:
    """``QUICK_OPTIMIZERS`` that are installed here, in that order."""
    return [n for n in QUICK_OPTIMIZERS if OPTIMIZERS[n].available()]

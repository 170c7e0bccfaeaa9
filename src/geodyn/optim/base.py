"""What every covariant-gradient-descent optimizer shares: the torch.optim contract around one group step.

Subclasses implement :meth:`CovariantOptimizer._step_group` and, for extra settings, :meth:`_validate`. The base
evaluates the closure, refuses or skips non-finite gradients before anything is touched, and validates every
parameter group (also those added later).

Under torch.distributed the non-finite decision is the same on every rank (:mod:`geodyn.optim.distributed`):
flags of DTensor gradients are all-reduced over their device meshes, those of plain tensors over
``nonfinite_group`` when one is given; otherwise (one process, or DistributedDataParallel, whose all-reduced
gradients carry a NaN of any rank to all) each rank decides alone and nothing is communicated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from geodyn.metric import Interpolating, MetricLaw
from geodyn.noise import MOMENTS
from geodyn.optim.distributed import any_across_ranks, device_meshes, has_dtensor, local_tensor

__all__ = [
    "CovariantOptimizer",
    "NonFiniteGradientError",
    "all_finite",
    "effective_gradient",
    "group_options",
    "validate_hyperparameters",
]

NONFINITE_POLICIES = ("raise", "skip", "ignore")


class NonFiniteGradientError(FloatingPointError):
    """A gradient held NaN or inf; the optimizer left parameters and state untouched."""


def _as_float(value: Any) -> float:
    return value.item() if isinstance(value, Tensor) else float(value)


def validate_hyperparameters(group: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad hyperparameter of a parameter group."""
    lr = _as_float(group["lr"])
    if not (math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"invalid learning rate lr={lr!r}: must be a finite number >= 0")
    betas = group["betas"]
    if len(betas) != 2:
        raise ValueError(f"invalid betas={betas!r}: need two values (beta1, beta2)")
    for i, beta in enumerate(betas):
        b = _as_float(beta)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"invalid betas[{i}]={b!r}: must be in [0, 1)")
    wd = _as_float(group["weight_decay"])
    if not (math.isfinite(wd) and wd >= 0.0):
        raise ValueError(f"invalid weight_decay={wd!r}: must be a finite number >= 0")
    eps_inside = _as_float(group.get("eps_inside", 0.0))
    if not (math.isfinite(eps_inside) and eps_inside >= 0.0):
        raise ValueError(f"invalid eps_inside={eps_inside!r}: must be a finite number >= 0")
    if group["moment"] not in MOMENTS:
        raise ValueError(f"unknown moment={group['moment']!r}: expected one of {', '.join(MOMENTS)}")
    if not isinstance(group["metric"], MetricLaw):
        raise ValueError(f"invalid metric={group['metric']!r}: expected a geodyn.metric.MetricLaw")
    if group["nonfinite"] not in NONFINITE_POLICIES:
        raise ValueError(f"unknown nonfinite={group['nonfinite']!r}: expected one of {', '.join(NONFINITE_POLICIES)}")


def all_finite(grads: Sequence[Tensor]) -> bool:
    """True when no gradient holds NaN or inf, with a single host sync.

    The fast test is the L2 norm of each tensor (the cheapest multi-tensor reduction here: ~0.4 ms for 1 M
    float32 values against ~2–15 ms for the inf-norm); NaN and inf propagate into it. A norm that overflows on
    huge but finite values is confirmed elementwise before it is reported.
    """
    if not grads:
        return True
    grads = list(grads)
    norms = torch._foreach_norm(grads, 2)
    if bool(torch.stack([n.to(norms[0].device, torch.float32) for n in norms]).isfinite().all()):
        return True
    return all(bool(g.isfinite().all()) for g in grads)


def effective_gradient(
    param: Tensor, grad: Tensor, *, lr: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool
) -> Tensor:
    """−∇ for ``maximize``; L2 decay added to the gradient, or decoupled decay applied to ``param`` in place."""
    if maximize:
        grad = -grad
    if weight_decay:
        if decoupled_weight_decay:
            param.mul_(1.0 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    return grad


def group_options(group: dict[str, Any]) -> dict[str, Any]:
    """The settings of a group as plain Python values, as the step functions take them."""
    beta1, beta2 = group["betas"]
    return dict(
        lr=_as_float(group["lr"]),
        beta1=_as_float(beta1),
        beta2=_as_float(beta2),
        metric=group["metric"],
        moment=group["moment"],
        weight_decay=_as_float(group["weight_decay"]),
        decoupled_weight_decay=group["decoupled_weight_decay"],
        bias_correction=group["bias_correction"],
        maximize=group["maximize"],
    )


class CovariantOptimizer(Optimizer):
    """Base of :class:`CGD`, :class:`KronCGD` and :class:`FullCGD`."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]):
        defaults = dict(defaults)
        # A process group is runtime wiring, not a hyperparameter: kept out of param_groups (and state_dict).
        self.nonfinite_group = defaults.pop("nonfinite_group", None)
        if defaults.get("metric") is None:
            defaults["metric"] = Interpolating(1e-8)
        defaults["betas"] = tuple(defaults["betas"])
        self._validate(defaults)
        self.skipped_steps = 0
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        validate_hyperparameters(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._validate(self.param_groups[-1])

    def _step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        candidates = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            candidates.append((index, group, params, grads))
        checked = [grads for _, group, _, grads in candidates if group["nonfinite"] != "ignore"]
        flags = iter(self._nonfinite_flags(checked))
        work = []
        for index, group, params, grads in candidates:
            if group["nonfinite"] != "ignore" and next(flags):
                if group["nonfinite"] == "raise":
                    raise NonFiniteGradientError(
                        f"non-finite gradient (NaN or inf) in parameter group {index}; parameters and optimizer "
                        "state were left unchanged (pass nonfinite='skip' to skip such steps)"
                    )
                self.skipped_steps += 1
                continue
            work.append((group, params, grads))
        for group, params, grads in work:
            self._step_group(group, params, grads)
        return loss

    def _nonfinite_flags(self, grad_lists: list[list[Tensor]]) -> list[bool]:
        """Per gradient list: does it hold NaN or inf on any rank that shares its parameters?

        Each rank tests its local shards; the flags are then all-reduced over the device meshes of DTensor
        gradients (a NaN in one shard stops all ranks) and over ``nonfinite_group`` if set. Without either no
        collective is issued, so the single-process step pays only a type check.
        """
        flags: list[bool] = []
        meshes: list[Any] = []
        device = None
        for grads in grad_lists:
            if has_dtensor(grads):
                meshes += [m for m in device_meshes(grads) if not any(m is k or m == k for k in meshes)]
                grads = [local_tensor(g) for g in grads]
            if device is None:
                device = grads[0].device
            flags.append(not all_finite(grads))
        if meshes or (flags and self.nonfinite_group is not None):
            flags = any_across_ranks(flags, meshes=meshes, group=self.nonfinite_group, device=device)
        return flags

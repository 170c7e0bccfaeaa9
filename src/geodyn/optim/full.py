"""Covariant gradient descent with the full N×N noise covariance (EQUATIONS.md (2.2), (2.9), §6).

All parameters of a group form one vector q ∈ ℝᴺ; κ̂ is the EMA of d dᵀ (d = G − m, G or m), and the step is
q ← q − γ Q diag(1/f(λ)) Qᵀ m̂ with (λ, Q) = eigh(κ̂), refreshed every ``precondition_every`` steps (1 = exact).

Cost: N² numbers of state (8 MB at N = 1000 in float64), O(N²) per step and O(N³) per refresh — for models up to
a few thousand parameters. The step is :func:`geodyn.optim.kron.matrix_step` on the N×1 matrix with its left
factor only, so every metric law, moment and the pseudo-inverse convention carry over unchanged. With ``rank=k``
κ̂ is held as its top-k eigenpairs plus the diagonal of the remainder (:mod:`geodyn.optim.lowrank`): O(N k) state
and O(N k²) per step, for N up to ~10⁵ and beyond.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw
from geodyn.optim.base import CovariantOptimizer, group_options, validate_hyperparameters
from geodyn.optim.distributed import refuse_dtensors
from geodyn.optim.kron import (
    LEGACY_STRUCTURE_SETTINGS,
    _graft_adam,
    matrix_step,
    structure_options,
    validate_spectral,
)
from geodyn.optim.lowrank import init_lowrank_state, lowrank_step

__all__ = ["FullCGD"]

#: Default damping δ of κ̂: none. FullCGD refreshes its eigendecomposition every step by default, so the law acts
#: on current eigenvalues and the cut-off alone keeps rank-deficient κ̂ finite. Damping guards against stale
#: eigenvalues (KronCGD refreshes every 10 steps and damps by 1e-6): set it with ``precondition_every > 1``.
DEFAULT_DAMPING = 0.0


class FullCGD(CovariantOptimizer):
    """Covariant gradient descent with g = f(κ̂) for the full noise covariance of each parameter group.

    Arguments as :class:`~geodyn.optim.CGD`, plus ``precondition_every`` (eigendecomposition period, default 1 =
    exact), ``rcond`` (relative eigenvalue cutoff of the pseudo-inverse: directions below it have no gradient
    history and take no step), ``damping`` and ``relative_damping`` (κ̂ + δ·λ_max(κ̂) I, or κ̂ + δI; default δ = 0,
    see ``DEFAULT_DAMPING``), and
    ``grafting`` (None or "adam": the group's step gets the norm of Adam's step on the whole group vector), as
    :class:`~geodyn.optim.KronCGD`, and ``refresh`` ("eigh", or "qr": one power-iteration step from the cached
    basis; default "eigh"), and ``rank`` (None: the dense N×N κ̂; an integer k: the top-k eigenpairs of κ̂ tracked
    step by step plus the diagonal of the remainder, :mod:`geodyn.optim.lowrank`; ``precondition_every`` and
    ``refresh`` then do not apply). A parameter of the group without a gradient counts as a zero gradient and
    is not moved. The group's state is stored under its first parameter.

    Runs in one process or under DistributedDataParallel; DTensor parameters (FSDP2, tensor parallel) are refused
    with a TypeError, since κ̂ couples every element of the group.
    """

    legacy_settings = {**LEGACY_STRUCTURE_SETTINGS, "rank": None}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        metric: MetricLaw | None = None,
        moment: str = "central",
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = True,
        bias_correction: bool = True,
        maximize: bool = False,
        precondition_every: int = 1,
        rcond: float | None = None,
        damping: float = DEFAULT_DAMPING,
        relative_damping: bool = True,
        grafting: str | None = None,
        grafting_eps: float = 1e-8,
        refresh: str | None = "eigh",
        rank: int | None = None,
        nonfinite: str = "raise",
        nonfinite_group: Any = None,
    ):
        defaults = dict(
            lr=lr,
            metric=metric,
            moment=moment,
            betas=tuple(betas),
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            bias_correction=bias_correction,
            maximize=maximize,
            precondition_every=precondition_every,
            rcond=rcond,
            damping=damping,
            relative_damping=relative_damping,
            grafting=grafting,
            grafting_eps=grafting_eps,
            refresh=refresh,
            rank=rank,
            nonfinite=nonfinite,
            nonfinite_group=nonfinite_group,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        refuse_dtensors(type(self).__name__, group["params"])
        dtypes = {p.dtype for p in group["params"]}
        devices = {p.device for p in group["params"]}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(f"FullCGD needs one dtype and device per group, got {sorted(map(str, dtypes | devices))}")

    def _validate(self, group: dict[str, Any]) -> None:
        validate_hyperparameters(group)
        k = group["precondition_every"]
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"invalid precondition_every={k!r}: must be an integer >= 1")
        validate_spectral(group)
        rank = group.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"invalid rank={rank!r}: must be None or an integer >= 1")

    def _step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        options = group_options(group)
        lr, wd = options["lr"], options["weight_decay"]
        params = group["params"]  # the whole vector, including parameters without a gradient (zero)
        flat = torch.cat([p.reshape(-1) for p in params])
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        if options["maximize"]:
            grad = -grad
        if wd and not options["decoupled_weight_decay"]:
            grad = grad + wd * flat
        state = self.state[params[0]]
        rank = group.get("rank")
        if not state:
            if rank is not None:
                init_lowrank_state(state, flat, rank)
            else:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["first_moment"] = torch.zeros_like(flat)
                state["left"] = flat.new_zeros(flat.numel(), flat.numel())
        if ("left" in state) == (rank is not None):
            raise ValueError(
                f"rank={rank!r} does not match the saved state of this group ({'dense' if rank else 'low-rank'})"
            )
        if rank is not None:
            direction = self._lowrank_direction(grad, state, options, group)
        else:
            direction = self._dense_direction(grad, state, options, group)
        offset = 0
        for p in params:
            n = p.numel()
            if p.grad is not None:
                if wd and options["decoupled_weight_decay"]:
                    p.mul_(1.0 - lr * wd)
                p.add_(direction[offset : offset + n].view_as(p), alpha=-lr)
            offset += n

    @staticmethod
    def _lowrank_direction(grad: Tensor, state: dict[str, Any], options: dict[str, Any], group: dict[str, Any]):
        spectral = structure_options(group)
        direction = lowrank_step(
            grad, state, beta1=options["beta1"], beta2=options["beta2"], metric=options["metric"],
            moment=options["moment"], bias_correction=options["bias_correction"], rcond=spectral["rcond"],
            damping=spectral["damping"], relative_damping=spectral["relative_damping"],
        )  # fmt: skip
        if spectral["grafting"] == "adam":
            if "graft_moment" not in state:
                state["graft_moment"] = torch.zeros_like(grad)
            t = state["step"].item()
            bc1 = 1.0 - options["beta1"] ** t if options["bias_correction"] else 1.0
            bc2 = 1.0 - options["beta2"] ** t if options["bias_correction"] else 1.0
            direction = _graft_adam(direction, grad, state["first_moment"] / bc1, state["graft_moment"],
                                    options["beta2"], bc2, spectral["grafting_eps"])  # fmt: skip
        return direction

    @staticmethod
    def _dense_direction(grad: Tensor, state: dict[str, Any], options: dict[str, Any], group: dict[str, Any]):
        return matrix_step(
            grad[:, None], state["first_moment"][:, None], state,
            beta1=options["beta1"], beta2=options["beta2"], metric=options["metric"], moment=options["moment"],
            bias_correction=options["bias_correction"], spectrum="kron", sides="left", trace_normalize=False,
            precondition_every=group["precondition_every"], **structure_options(group),
        )[:, 0]  # fmt: skip

"""Noise-covariance (κ) estimators from minibatch gradients.

κ_{μν} = ⟨∂_μφ ∂_νφ⟩ (EQUATIONS.md (2.8)) is the covariance of the fluctuating part of the gradient. Optimizers
estimate it online with exponential moving averages (the time averages of EQUATIONS.md §6,
⟨f⟩_t = f_t/(1+τ) + τ/(1+τ)⟨f⟩_{t−1}, β = τ/(1+τ)):

- the first moment m (the force F = m̂), and
- the noise moment K of the deviation d = G − m ("central", AdaBelief-style, the default), of d = G ("raw",
  Adam-style), or of the force itself, d = m ("momentum": with β₂ = 0 this is the instantaneous κ = M Mᵀ whose
  α = ½ metric orthogonalises the update, the Muon limit; on the diagonal it gives sign descent).

Each estimator has a one-tensor form (the reference path) and a list form on multi-tensor kernels (the fast
path); both update their state in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

Moment = Literal["central", "raw", "momentum"]
MOMENTS: tuple[str, ...] = ("central", "raw", "momentum")

__all__ = [
    "Moment",
    "MOMENTS",
    "ema_update",
    "ema_update_foreach",
    "noise_deviation",
    "noise_deviation_foreach",
    "diagonal_moment_update",
    "diagonal_moment_update_foreach",
    "tau_of_beta",
]


def tau_of_beta(beta: float) -> float:
    """τ = β/(1−β): the memory (in steps) of an EMA with decay β (EQUATIONS.md §6)."""
    return beta / (1.0 - beta)


def ema_update(avg: Tensor, value: Tensor, beta: float) -> None:
    """avg ← β avg + (1−β) value, in place (first moment of §6)."""
    avg.lerp_(value, 1.0 - beta)


def ema_update_foreach(avgs: Sequence[Tensor], values: Sequence[Tensor], beta: float) -> None:
    """:func:`ema_update` over lists."""
    torch._foreach_lerp_(list(avgs), list(values), 1.0 - beta)


def noise_deviation(grad: Tensor, first_moment: Tensor, moment: Moment) -> Tensor:
    """d = G − m (central), d = G (raw) or d = m (momentum): the sample whose second moment estimates κ (2.8)."""
    if moment == "central":
        return grad - first_moment
    return first_moment if moment == "momentum" else grad


def noise_deviation_foreach(grads: Sequence[Tensor], first_moments: Sequence[Tensor], moment: Moment) -> list[Tensor]:
    """:func:`noise_deviation` over lists."""
    if moment == "central":
        return torch._foreach_sub(list(grads), list(first_moments))
    return list(first_moments) if moment == "momentum" else list(grads)


def diagonal_moment_update(noise: Tensor, deviation: Tensor, beta: float, eps_inside: float = 0.0) -> None:
    """K ← β K + (1−β) d∘d [+ eps_inside], in place: the diagonal of κ (2.8) as an EMA.

    ``eps_inside`` is added to the stored moment after each update; it exists only to reproduce AdaBelief,
    which keeps ε inside its second moment.
    """
    noise.mul_(beta).addcmul_(deviation, deviation, value=1.0 - beta)
    if eps_inside:
        noise.add_(eps_inside)


def diagonal_moment_update_foreach(
    noise: Sequence[Tensor], deviations: Sequence[Tensor], beta: float, eps_inside: float = 0.0
) -> None:
    """:func:`diagonal_moment_update` over lists."""
    noise = list(noise)
    deviations = list(deviations)
    torch._foreach_mul_(noise, beta)
    torch._foreach_addcmul_(noise, deviations, deviations, value=1.0 - beta)
    if eps_inside:
        torch._foreach_add_(noise, eps_inside)

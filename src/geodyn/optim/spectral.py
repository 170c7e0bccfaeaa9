"""Metric laws on matrices: f(κ̂) through the eigendecomposition of a symmetric noise moment (EQUATIONS.md (2.9)).

g = f(κ) is f applied to the eigenvalues of κ in its eigenbasis. Eigenvalues are clipped at 0 (a moment is
positive semi-definite; negative values are round-off) and those below ``rcond``·λ_max are treated as exactly 0,
as a pseudo-inverse does, so that rank-deficient moments give finite steps. Where g vanishes (a pure power law
at λ = 0) the inverse metric is taken as 0: a direction with neither noise nor a metric floor gets no step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geodyn.metric import MetricLaw

__all__ = ["clipped_eigh", "inverse_metric", "default_rcond"]


def default_rcond(n: int, dtype: torch.dtype) -> float:
    """Relative cutoff below which an eigenvalue counts as 0: n·machine-epsilon, as numpy.linalg.pinv uses."""
    return n * torch.finfo(dtype).eps


def clipped_eigh(moment: Tensor, rcond: float | None = None) -> tuple[Tensor, Tensor]:
    """(λ, Q) of a symmetric PSD moment with λ ≥ 0 and λ < rcond·λ_max set to 0. Computed in float64."""
    work = moment.to(torch.float64)
    work = 0.5 * (work + work.mT)  # EMA round-off can break exact symmetry
    lam, vecs = torch.linalg.eigh(work)
    lam = lam.clamp_min(0.0)
    cutoff = (default_rcond(moment.shape[-1], moment.dtype) if rcond is None else rcond) * lam.amax(-1, keepdim=True)
    lam = torch.where(lam > cutoff, lam, torch.zeros_like(lam))
    return lam, vecs


def inverse_metric(metric: MetricLaw, lam: Tensor) -> Tensor:
    """g(λ)⁻¹ elementwise, with 0 where g(λ) = 0 (the pseudo-inverse convention above)."""
    g = metric(lam)
    positive = g > 0
    return torch.where(positive, 1.0 / torch.where(positive, g, torch.ones_like(g)), torch.zeros_like(g))

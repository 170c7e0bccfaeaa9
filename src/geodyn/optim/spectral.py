"""Metric laws on matrices: f(κ̂) through the eigendecomposition of a symmetric noise moment (EQUATIONS.md (2.9)).

g = f(κ) is f applied to the eigenvalues of κ in its eigenbasis. Three conventions keep rank-deficient moments
(every Kronecker factor in its first steps) finite and independent of round-off:

- **Cut-off, relative.** Eigenvalues are clipped at 0 (a moment is positive semi-definite; negative values are
  round-off) and those at or below ``rcond``·λ_max are set to exactly 0, as a pseudo-inverse does. The default
  rcond = n·machine-ε of the moment's dtype bounds the rounding error of a moment accumulated in that dtype:
  the eigenvalues of a null space come out at ≤ 0.8·ε·λ_max (measured over random rank-deficient float32 EMA
  factors), so n·ε, n ≥ 2, separates them from the range.
- **No step without a history.** An eigen-direction whose eigenvalue was cut carries no gradient history; the
  force along it is round-off (exactly 0 in exact arithmetic while the basis is fresh), so it takes no step,
  whatever floor the metric law has. A bare absolute floor (g(0) = ε = 1e-12) would instead multiply that
  round-off by 1/ε: 10⁵ × the intended step in float32.
- **Damping, relative.** ``damping`` δ adds δ·λ_max to every kept eigenvalue (the Tikhonov/Shampoo ε of
  L + εI, but in the units of the moment), which bounds the amplification of weakly excited directions by the
  ratio of scales rather than by 1/ε. ``relative_damping=False`` adds the bare δ instead (the textbook
  forms). docs/structured-numerics.md gives the defaults, the reasons and measurements.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geodyn.metric import MetricLaw

__all__ = ["clipped_eigh", "power_qr", "damp", "inverse_metric", "default_rcond", "PseudoInverseLaw"]


def default_rcond(n: int, dtype: torch.dtype) -> float:
    """Relative cutoff below which an eigenvalue counts as 0: n·machine-epsilon, as numpy.linalg.pinv uses."""
    return n * torch.finfo(dtype).eps


def clipped_eigh(moment: Tensor, rcond: float | None = None) -> tuple[Tensor, Tensor]:
    """(λ, Q) of a symmetric PSD moment with λ ≥ 0 and λ ≤ rcond·λ_max set to 0. Computed in float64."""
    work = moment.to(torch.float64)
    work = 0.5 * (work + work.mT)  # EMA round-off can break exact symmetry
    lam, vecs = torch.linalg.eigh(work)
    return _cut(lam, moment.shape[-1], moment.dtype, rcond), vecs


def _cut(lam: Tensor, n: int, dtype: torch.dtype, rcond: float | None) -> Tensor:
    lam = lam.clamp_min(0.0)
    cutoff = (default_rcond(n, dtype) if rcond is None else rcond) * lam.amax(-1, keepdim=True)
    return torch.where(lam > cutoff, lam, torch.zeros_like(lam))


def power_qr(moment: Tensor, basis: Tensor, rcond: float | None = None) -> tuple[Tensor, Tensor]:
    """(λ, Q) after one step of subspace iteration from a previous eigenbasis: SOAP's refresh, Q ← qr(F Q).

    The columns of Z = F Q are put in the order of their Rayleigh quotients λ = diag(Qᵀ F Q) (largest first, so
    that the leading columns converge to the dominant subspace), orthonormalised by a Householder QR and
    returned to the positions of the columns they came from, so that a column keeps following the same
    eigen-direction between refreshes (the adaptive spectrum's rotated moment stays aligned). λ, cut as in
    :func:`clipped_eigh`, are the Rayleigh quotients of the previous basis (SOAP's estimate; they cost nothing
    beyond Z). Works on batches (…, n, n) in the dtype of ``basis``: one product and one QR per factor, no
    eigendecomposition.

    Accuracy: if Q diagonalises F₀ and F = F₀ + E, the off-diagonal part of Qᵀ F Q is that of QᵀEQ, and one step
    multiplies its (i, j) entry (λ_i < λ_j) by λ_i/λ_j to first order in E: the off-diagonal mass does not grow,
    so on drifting factors it stays below the sum of the drifts ‖E‖_F since the last ``eigh`` (to first order;
    tests/optim/test_kron_refresh.py checks the bound). With E = 0 it returns Q up to column signs and λ exactly.
    """
    work = moment.to(basis.dtype)
    z = work @ basis
    lam = (basis * z).sum(-2)
    order = lam.argsort(dim=-1, descending=True)
    back = order.argsort(dim=-1)
    n = z.shape[-1]
    new = [
        torch.linalg.householder_product(*torch.geqrf(zi.index_select(-1, oi))).index_select(-1, bi)
        for zi, oi, bi in zip(z.reshape(-1, n, n), order.reshape(-1, n), back.reshape(-1, n))
    ]
    return _cut(lam, n, moment.dtype, rcond), torch.stack(new).reshape(z.shape)


def damp(lam: Tensor, damping: float, relative: bool = True) -> Tensor:
    """λ + δ·λ_max (``relative``) or λ + δ on the kept eigenvalues λ > 0; cut ones (λ = 0) stay 0."""
    if not damping:
        return lam
    shift = damping * lam.amax(-1, keepdim=True) if relative else torch.full_like(lam[..., :1], damping)
    return torch.where(lam > 0, lam + shift, lam)


def inverse_metric(metric: MetricLaw, lam: Tensor, kept: Tensor | None = None) -> Tensor:
    """g(λ)⁻¹ elementwise, with 0 where g(λ) = 0 or where ``kept`` is False (no history: no step)."""
    g = metric(lam)
    positive = g > 0 if kept is None else (g > 0) & kept
    return torch.where(positive, 1.0 / torch.where(positive, g, torch.ones_like(g)), torch.zeros_like(g))


class PseudoInverseLaw(MetricLaw):
    """A law read with the pseudo-inverse convention for diagonal steps: g = 0 becomes g = ∞ (no step).

    Diagonal CGD divides the force by g(K̂); where g vanishes (Power(α) at K̂ = 0: a coordinate with no gradient
    history, or Muon's sign descent at a zero momentum entry) that is 0/0. Reading g = 0 as ∞ makes the step
    exactly 0 there (finite/∞ = 0) and leaves every other step bit-identical.
    """

    def __init__(self, law: MetricLaw):
        self.law = law
        self.is_flat = law.is_flat

    def __call__(self, lam: Tensor) -> Tensor:
        g = self.law(lam)
        return torch.where(g > 0, g, torch.full_like(g, math.inf))

    def __repr__(self) -> str:
        return f"PseudoInverseLaw({self.law!r})"

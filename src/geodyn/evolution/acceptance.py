"""Acceptance rules A(q → q') of EQUATIONS.md (4.1): the selection half of "jump × acceptance".

Both rules depend only on ΔH = H(q') − H(q) and satisfy A(ΔH) / A(−ΔH) = e^{−β_s ΔH}, which with a symmetric
jump law is detailed balance (4.3) for the Gibbs state p_eq ∝ e^{−β_s H} (4.4):

* :class:`Sigmoid` — A = 1 / (1 + e^{β_s ΔH}) (4.5), (4.6). It is smooth in ΔH, so the mean step is
  ⟨Δq⟩ = −(β_s/4) σ ∇H with relative corrections O(σ) = O(s²) in the jump size s ((4.7)–(4.9)).
* :class:`Metropolis` — A = min(1, e^{−β_s ΔH}), the comparison. Its kink at ΔH = 0 gives
  ⟨Δq⟩ = −(β_s/2) σ ∇H for every symmetric jump law, with relative corrections only O(s).

``drift_coefficient`` c is that leading factor: γ g⁻¹ = c β_s σ ((4.10); c = ¼ for the sigmoid).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Acceptance", "Sigmoid", "Metropolis"]


class Acceptance:
    """An acceptance rule A(q → q') of (4.1) as a function of ΔH, selection strength β_s; subclasses implement
    :meth:`__call__`."""

    #: c of ⟨Δq⟩ = −c β_s σ ∇H to leading order in the jump size.
    drift_coefficient: float

    def __init__(self, beta_s: float = 1.0):
        beta_s = float(beta_s)
        if not beta_s >= 0 or beta_s == float("inf"):
            raise ValueError(f"beta_s must be a finite number >= 0, got {beta_s!r}")
        self.beta_s = beta_s

    def __call__(self, dH: Tensor) -> Tensor:  # pragma: no cover - abstract
        """A as a function of ΔH = H(q') − H(q), elementwise, in [0, 1]."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_s={self.beta_s:g})"


class Sigmoid(Acceptance):
    """A(q → q') = 1 / (1 + exp(β_s [H(q') − H(q)])) (4.5); it satisfies detailed balance (4.3) with (4.4) (4.6).

    Computed as the logistic function σ(−β_s ΔH), which neither overflows nor loses accuracy for large |ΔH|.
    For ΔH → 0 it tends to ½ − β_s ΔH / 4, the origin of the ¼ in (4.9).
    """

    drift_coefficient = 0.25

    def __call__(self, dH: Tensor) -> Tensor:
        return torch.sigmoid(-self.beta_s * dH)


class Metropolis(Acceptance):
    """A(q → q') = min(1, exp(−β_s [H(q') − H(q)])): detailed balance (4.3) with (4.4), but a kink at ΔH = 0,
    so the mean step is −(β_s/2) σ ∇H (1 + O(s)) — only first order in the jump size s (EQUATIONS.md §3)."""

    drift_coefficient = 0.5

    def __call__(self, dH: Tensor) -> Tensor:
        return torch.exp(-self.beta_s * dH.clamp_min(0.0))

"""The metric exponent α of a learning run, read off its step fluctuations (EQUATIONS.md (2.8), (2.9)).

With g = κ^α the per-step covariance is Cov(Δq) = γ² g⁻¹ κ g⁻¹ = γ² κ^{1−2α}, so across variables
log Var(Δq_i) = const + s log κ_ii with s = 1 − 2α, and α = (1 − s)/2. The fit is ordinary least squares on the
logarithms; the confidence interval uses Student's t with n − 2 degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import Tensor

__all__ = ["AlphaEstimate", "estimate_alpha", "StepStatistics"]


@dataclass(frozen=True)
class AlphaEstimate:
    """α = (1 − s)/2 from the slope s of log Var(Δq) against log κ, with its standard error and interval."""

    alpha: float
    stderr: float
    interval: tuple[float, float]
    slope: float
    intercept: float
    n: int
    r_squared: float

    def __str__(self) -> str:
        lo, hi = self.interval
        return (
            f"α = {self.alpha:.3f} ± {self.stderr:.3f} (CI [{lo:.3f}, {hi:.3f}], n = {self.n}, "
            f"R² = {self.r_squared:.3f})"
        )


def _as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy().ravel() if isinstance(x, Tensor) else np.asarray(x, float).ravel()


def estimate_alpha(
    step_variance: Tensor | np.ndarray, kappa: Tensor | np.ndarray, confidence: float = 0.95
) -> AlphaEstimate:
    """Fit Var(Δq) ∝ κ^{1−2α} across variables ((2.8) with (2.9)) and return α with a confidence interval.

    Variables with a non-positive or non-finite variance or κ are left out. At least three must remain, with
    κ spanning a range (a fit over equal κ has no slope).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    var, kap = _as_numpy(step_variance), _as_numpy(kappa)
    if var.shape != kap.shape:
        raise ValueError(f"step_variance and kappa differ in size: {var.size} vs {kap.size}")
    keep = np.isfinite(var) & np.isfinite(kap) & (var > 0) & (kap > 0)
    x, y = np.log(kap[keep]), np.log(var[keep])
    n = int(keep.sum())
    if n < 3:
        raise ValueError(f"need at least 3 variables with positive, finite variance and κ, got {n}")
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx <= 0.0:
        raise ValueError("κ is the same for every variable: its exponent cannot be fitted")
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x.mean())
    resid = y - (intercept + slope * x)
    sse = float(resid @ resid)
    sst = float(((y - y.mean()) ** 2).sum())
    slope_se = math.sqrt(sse / (n - 2) / sxx)
    alpha = (1.0 - slope) / 2.0
    stderr = slope_se / 2.0
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 2)) * stderr
    return AlphaEstimate(
        alpha=alpha, stderr=stderr, interval=(alpha - half, alpha + half), slope=slope, intercept=intercept, n=n,
        r_squared=1.0 - sse / sst if sst > 0 else 1.0,
    )  # fmt: skip


class StepStatistics:
    """Per-variable statistics of a training run: Var(Δq) of the steps and κ from the gradient stream.

    Call :meth:`update` after each optimizer step with the parameters before and after the step and the
    minibatch gradients of that step. κ_ii is the variance of the minibatch gradient over the recorded steps
    (the noise of (2.8) once the mean gradient changes slowly); Welford's algorithm keeps it in O(N) memory.
    """

    def __init__(self) -> None:
        self.count = 0
        self._dq_mean: Tensor | None = None
        self._dq_m2: Tensor | None = None
        self._g_mean: Tensor | None = None
        self._g_m2: Tensor | None = None

    @staticmethod
    def _flat(tensors: list[Tensor]) -> Tensor:
        return torch.cat([t.detach().reshape(-1).double() for t in tensors])

    def update(self, before: list[Tensor], after: list[Tensor], grads: list[Tensor]) -> None:
        """Add one step: parameters before and after it, and the gradients it used."""
        dq = self._flat(after) - self._flat(before)
        g = self._flat(grads)
        self.count += 1
        if self._dq_mean is None:
            self._dq_mean, self._dq_m2 = torch.zeros_like(dq), torch.zeros_like(dq)
            self._g_mean, self._g_m2 = torch.zeros_like(g), torch.zeros_like(g)
        for value, mean, m2 in ((dq, self._dq_mean, self._dq_m2), (g, self._g_mean, self._g_m2)):
            delta = value - mean
            mean.add_(delta / self.count)
            m2.add_(delta * (value - mean))

    def _variance(self, m2: Tensor | None) -> Tensor:
        if m2 is None or self.count < 2:
            raise ValueError(f"need at least 2 recorded steps, have {self.count}")
        return m2 / (self.count - 1)

    @property
    def step_variance(self) -> Tensor:
        """Var(Δq_i) over the recorded steps."""
        return self._variance(self._dq_m2)

    @property
    def kappa(self) -> Tensor:
        """κ_ii: the variance of the minibatch gradient over the recorded steps."""
        return self._variance(self._g_m2)

    def estimate_alpha(self, confidence: float = 0.95) -> AlphaEstimate:
        """:func:`estimate_alpha` on the recorded statistics."""
        return estimate_alpha(self.step_variance, self.kappa, confidence)

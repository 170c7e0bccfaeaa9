"""From a validated config to the library's objects: loss H̄ (a :class:`~geodyn.evolution.Landscape`), metric law
f of (2.9), (6.4), (6.5) and the noise covariance κ(q) — one loss object serves all four simulators."""

from __future__ import annotations

import numpy as np
import torch

from geodyn.evolution.landscape import DoubleWell, Landscape, Quadratic
from geodyn.metric import Interpolating, MetricLaw, Power, ThreeRegime

__all__ = ["landscape", "metric_law", "kappa", "per_axis", "grid_loss", "grid_kappa"]


def per_axis(value: float | list[float], dim: int) -> np.ndarray:
    """A number or an N-list as an (N,) float64 array."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (dim,)).copy()


def landscape(loss, dim: int) -> Landscape:
    """H̄ of ``[loss]`` as a batched landscape (M, N) ↦ (M,), with its analytic gradient."""
    if loss.kind == "quadratic":
        return Quadratic(torch.from_numpy(per_axis(loss.curvature, dim)), torch.from_numpy(per_axis(loss.center, dim)))
    return DoubleWell(loss.height, loss.width, loss.tilt)


def metric_law(learning) -> MetricLaw:
    """g = f(κ): ``power`` κ^α (2.9), ``interpolating`` ε + κ^{1/2} (6.4), ``three-regime`` ε + κ^{1/2} + ζκ (6.5)."""
    if learning.law == "power":
        return Power(learning.alpha)
    if learning.law == "interpolating":
        return Interpolating(learning.eps)
    return ThreeRegime(learning.eps, learning.zeta)


def kappa(learning, dim: int):
    """κ for :class:`~geodyn.dynamics.LearningModel`: an (N,) diagonal, or q ↦ κ_i (1 + c q_i²) (P, N) when c > 0."""
    base = torch.from_numpy(per_axis(learning.kappa, dim))
    c = learning.kappa_growth
    if c == 0:
        return base
    return lambda q: base.to(q.dtype) * (1.0 + c * q * q)


def grid_loss(land: Landscape, dim: int):
    """H̄ as a callable of grid coordinates ``H(x)`` / ``H(x, y)`` (torch in, torch out) for (3.6)."""

    def loss(*xs):
        q = torch.stack([torch.as_tensor(x, dtype=torch.float64) for x in xs], dim=-1)
        return land.energy(q.reshape(-1, dim)).reshape(q.shape[:-1])

    return loss


def grid_kappa(learning, dim: int):
    """κ(q) on grid coordinates for :func:`geodyn.quantum.metric_from_law`: the metric itself in 1-D, the list of
    diagonal components in N-D (numpy or torch, as the caller passes)."""
    base = per_axis(learning.kappa, dim)
    c = learning.kappa_growth

    def k(*xs):
        comps = [float(base[i]) * (1.0 + c * x * x) for i, x in enumerate(xs)]
        return comps[0] if dim == 1 else comps

    return k

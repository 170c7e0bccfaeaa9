"""The full noise covariance in low-rank-plus-diagonal form, for FullCGD at large N (EQUATIONS.md (2.9), §6).

κ̂ = EMA of d dᵀ (N×N) is never formed. Its state is the exact diagonal D = EMA of d∘d and a tracked rank-k part
K_k = U diag(σ) Uᵀ: each step K_k ← β₂ K_k + (1−β₂) d dᵀ is a rank-(k+1) matrix B Bᵀ with
B = [U √(β₂σ), √(1−β₂) d], whose eigenpairs come from a thin QR of B (N×(k+1)) and an SVD of its (k+1)×(k+1)
factor; the top k are kept. Memory O(N k), time O(N k²) per step.

Each truncation drops a positive semi-definite part, and the EMA is linear, so K_k ≼ K̂ at every step: the
remainder K̂ − K_k is PSD with diagonal r = D − diag(K_k) ≥ 0 and trace Σ r. Hence (Weyl) the tracked eigenvalues
satisfy λ_i(K̂) − Σ r ≤ σ_i ≤ λ_i(K̂), and K_k = K̂ exactly (r = 0) while K̂ has rank ≤ k, in particular for k = N.

The step applies the metric law to the spectrum {σ_i} ∪ {r_j} (cut, damped and read as in
:mod:`geodyn.optim.spectral`): the force component in span(U) moves as f(σ)⁻¹ along U, the rest as the
diagonal law f(r)⁻¹, projected back off span(U):

    Δq = −γ [U f(σ)⁻¹ Uᵀ + (I − P) diag(f(r)⁻¹) (I − P)] m̂,   P = U Uᵀ (over the kept σ).

Where r = 0 this is f(κ̂)⁻¹ m̂ of the dense FullCGD (tests/optim/test_full_lowrank.py holds them equal) for
laws applied eigenvalue by eigenvalue. A law with a statistic of the whole spectrum
(:class:`~geodyn.metric.ScaleFreeThreeRegime`) takes it over the k + N numbers {σ, r}, not over N eigenvalues.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw
from geodyn.noise import ema_update, noise_deviation
from geodyn.optim.spectral import damp, default_rcond, inverse_metric

__all__ = ["lowrank_step", "init_lowrank_state"]


def init_lowrank_state(state: dict[str, Any], flat: Tensor, rank: int) -> None:
    """Zero state for an N-vector: first moment, diagonal, basis U (N × min(k, N)) and eigenvalues σ."""
    k = min(rank, flat.numel())
    state["step"] = torch.zeros((), dtype=torch.float32)
    state["first_moment"] = torch.zeros_like(flat)
    state["diagonal"] = torch.zeros_like(flat)
    state["lowrank_basis"] = flat.new_zeros(flat.numel(), k)
    state["lowrank_eigenvalues"] = flat.new_zeros(k)


def lowrank_step(
    grad: Tensor,
    state: dict[str, Any],
    *,
    beta1: float,
    beta2: float,
    metric: MetricLaw,
    moment: str,
    bias_correction: bool,
    rcond: float | None,
    damping: float,
    relative_damping: bool,
) -> Tensor:
    """Update the state from the flat gradient (N) and return the direction f(κ̂)⁻¹ m̂ (N) of the module docstring."""
    state["step"].add_(1)
    t = state["step"].item()
    m = state["first_moment"]
    ema_update(m, grad, beta1)
    d = noise_deviation(grad, m, moment)
    state["diagonal"].mul_(beta2).addcmul_(d, d, value=1.0 - beta2)
    _track(state, d, beta2)
    bc1 = 1.0 - beta1**t if bias_correction else 1.0
    bc2 = 1.0 - beta2**t if bias_correction else 1.0

    basis, sigma = state["lowrank_basis"], state["lowrank_eigenvalues"] / bc2
    rest = (state["diagonal"] / bc2 - (basis * basis) @ sigma).clamp_min(0.0)
    lam = torch.cat([sigma, rest])
    cut = (default_rcond(grad.numel(), grad.dtype) if rcond is None else rcond) * lam.amax()
    lam = damp(torch.where(lam > cut, lam, torch.zeros_like(lam)), damping, relative_damping)
    inverse = inverse_metric(metric, lam, lam > 0)
    k = sigma.numel()
    in_span = (lam[:k] > 0).to(grad.dtype)
    force = m / bc1
    coeff = basis.mT @ force
    off_span = force - basis @ (coeff * in_span)
    diagonal_part = inverse[k:] * off_span
    diagonal_part = diagonal_part - basis @ ((basis.mT @ diagonal_part) * in_span)
    return basis @ (coeff * inverse[:k]) + diagonal_part


def _track(state: dict[str, Any], d: Tensor, beta2: float) -> None:
    """K_k ← top-k eigenpairs of β₂ U diag(σ) Uᵀ + (1−β₂) d dᵀ, through B = Q R and the SVD R = W S Zᵀ (B Bᵀ has
    eigenvectors Q W and eigenvalues S²). The small SVD runs in float64: S² keeps its relative accuracy."""
    basis, sigma = state["lowrank_basis"], state["lowrank_eigenvalues"]
    b = torch.cat([basis * (beta2 * sigma).sqrt(), math.sqrt(1.0 - beta2) * d[:, None]], dim=1)
    q, r = torch.linalg.qr(b)
    w, s, _ = torch.linalg.svd(r.to(torch.float64))
    k = sigma.numel()
    state["lowrank_basis"] = q @ w[:, :k].to(q.dtype)
    state["lowrank_eigenvalues"] = (s[:k] ** 2).to(sigma.dtype)

"""The KronCGD step over all weight matrices of a group at once (EQUATIONS.md (2.9), §6 "Structures").

Same update as :func:`geodyn.optim.kron.matrix_step` (the per-matrix reference, ``KronCGD(foreach=False)``),
organised for speed: the first-moment EMAs and deviations run as multi-tensor kernels, each factor EMA is one
``addmm_``, and the eigenbasis refreshes of all factors of one size are stacked into one batched ``eigh`` or
power-QR call (:func:`geodyn.optim.spectral.power_qr`) whose results are copied into the cached bases in place.
The rotations run in the parameters' dtype (float32 for float32 models). tests/optim/test_kron_foreach.py holds
it equal to the reference in float64.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw
from geodyn.noise import noise_deviation_foreach
from geodyn.optim.spectral import clipped_eigh, damp, default_rcond, inverse_metric, power_qr

__all__ = ["kron_foreach"]


def kron_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    metric: MetricLaw,
    moment: str,
    bias_correction: bool,
    spectrum: str,
    sides: str,
    trace_normalize: bool,
    precondition_every: int,
    rcond: float | None,
    damping: float,
    relative_damping: bool,
    grafting: str | None,
    grafting_eps: float,
    refresh: str,
) -> None:
    """One step of every matrix: ``grads`` are the effective gradients as rows × cols, ``params`` are updated."""
    from geodyn.optim.kron import _coarser, _graft_adam, _kept, _kron_eigenvalues, _resolve_sides

    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    ts = [s.item() for s in steps]
    moments = [s["first_moment"].view(g.shape) for s, g in zip(states, grads)]
    torch._foreach_lerp_(moments, grads, 1.0 - beta1)
    deviations = noise_deviation_foreach(grads, moments, moment)
    used = [_resolve_sides(sides, tuple(g.shape)) for g in grads]
    for state, d, (left, right) in zip(states, deviations, used):
        if left:
            state["left"].addmm_(d, d.mT, beta=beta2, alpha=1.0 - beta2)
        if right:
            state["right"].addmm_(d.mT, d, beta=beta2, alpha=1.0 - beta2)
    bc1s = [1.0 - beta1**t if bias_correction else 1.0 for t in ts]
    bc2s = [1.0 - beta2**t if bias_correction else 1.0 for t in ts]

    due = defaultdict(list)  # factors to refresh, batched by (method, size, dtype)
    for state, t, bc2, (left, right), g in zip(states, ts, bc2s, used, grads):
        if (t - 1) % precondition_every == 0 or "left_basis" not in state and "right_basis" not in state:
            for side, on in (("left", left), ("right", right)):
                if on:
                    method = "qr" if refresh == "qr" and f"{side}_basis" in state else "eigh"
                    due[method, state[side].shape[0], g.dtype].append((state, side, bc2))
    for (method, _, dtype), items in due.items():
        factors = torch.stack([state[side] / bc2 for state, side, bc2 in items])
        if method == "qr":
            lam, bases = power_qr(factors, torch.stack([state[f"{side}_basis"] for state, side, _ in items]), rcond)
        else:
            lam, bases = clipped_eigh(factors, rcond)
        lam = damp(lam, damping, relative_damping).to(dtype)
        bases = bases.to(dtype)
        for (state, side, _), value, basis in zip(items, lam, bases):
            _store(state, f"{side}_eigenvalues", value)
            _store(state, f"{side}_basis", basis)

    for param, g, m, d, state, (left, right), bc1, bc2 in zip(params, grads, moments, deviations, states, used,
                                                             bc1s, bc2s):  # fmt: skip
        ql = state["left_basis"] if left else None
        qr = state["right_basis"] if right else None
        force = _rotate(m, ql, qr)
        kept = _kept(state, g.shape, left, right)
        if spectrum == "kron":
            lam = _kron_eigenvalues(state, g.shape, left, right, trace_normalize)
        else:
            rotated = _rotate(d, ql, qr)
            state["rotated_moment"].mul_(beta2).addcmul_(rotated, rotated, value=1.0 - beta2)
            lam = state["rotated_moment"] / bc2
            cut = default_rcond(sum(g.shape), _coarser(g.dtype, torch.float32)) if rcond is None else rcond
            kept = kept & (lam > cut * lam.amax())
        force.mul_(inverse_metric(metric, lam, kept)).mul_(1.0 / bc1)
        if ql is not None:
            force = ql @ force
        if qr is not None:
            force = force @ qr.mT
        if grafting == "adam":
            if "graft_moment" not in state:
                state["graft_moment"] = torch.zeros_like(g, memory_format=torch.contiguous_format)
            force = _graft_adam(force, g, m / bc1, state["graft_moment"], beta2, bc2, grafting_eps)
        param.add_(force.view(param.shape), alpha=-lr)


def _rotate(x: Tensor, ql: Tensor | None, qr: Tensor | None) -> Tensor:
    """Q_Lᵀ x Q_R, always a new tensor (the caller scales it in place)."""
    if ql is not None:
        x = ql.mT @ x
    if qr is not None:
        x = x @ qr
    return x


def _store(state: dict[str, Any], key: str, value: Tensor) -> None:
    """Copy a refreshed basis or spectrum into its cached tensor (no new allocation), or cache it the first time."""
    old = state.get(key)
    if old is not None and old.shape == value.shape and old.dtype == value.dtype:
        old.copy_(value)
    else:
        state[key] = value.clone()

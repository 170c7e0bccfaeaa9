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

For analysis, :func:`gradient_noise` measures κ of a model on a batch exactly from per-sample gradients
(torch.func), with the diagonal and the top eigenpairs (Gram trick) for models too large for N × N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    "GradientNoise",
    "gradient_noise",
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


class GradientNoise:
    """Per-sample gradients of a model on a batch, and the noise covariance κ they define (EQUATIONS.md (2.8)).

    ``samples`` is B × N (one flattened gradient per example). With ḡ the batch mean,

        uncentred  κ = (1/B) Σ gᵢ gᵢᵀ,        centred  κ = (1/B) Σ (gᵢ − ḡ)(gᵢ − ḡ)ᵀ = uncentred − ḡ ḡᵀ,

    the per-example covariance; the gradient of a minibatch of b examples fluctuates with κ/b. ``slices`` names
    the columns of each parameter (for per-layer analyses).
    """

    def __init__(self, samples: Tensor, slices: dict[str, slice] | None = None):
        if samples.ndim != 2 or samples.shape[0] < 1:
            raise ValueError(f"samples must be a B × N matrix with B >= 1, got shape {tuple(samples.shape)}")
        self.samples = samples
        self.slices = slices if slices is not None else {"all": slice(0, samples.shape[1])}

    @property
    def mean(self) -> Tensor:
        """ḡ, the batch-mean gradient."""
        return self.samples.mean(dim=0)

    def _rows(self, centred: bool) -> Tensor:
        return self.samples - self.mean if centred else self.samples

    def covariance(self, centred: bool = True) -> Tensor:
        """The N × N κ (exact; O(N²) memory — for small models)."""
        rows = self._rows(centred)
        return rows.mT @ rows / rows.shape[0]

    def diagonal(self, centred: bool = True) -> Tensor:
        """diag κ in O(BN)."""
        return self._rows(centred).pow(2).mean(dim=0)

    def top_eigen(
        self, k: int | None = None, centred: bool = True, columns: slice | None = None
    ) -> tuple[Tensor, Tensor]:
        """The k largest eigenpairs (λ descending, N × k vectors) of κ by the Gram trick.

        κ = AᵀA with A = rows/√B (B × N) has the same non-zero eigenvalues as the B × B Gram matrix A Aᵀ; an
        eigenvector u of the Gram matrix gives v = Aᵀu/√λ. Costs O(B²N) instead of O(N³).
        """
        rows = self._rows(centred)
        if columns is not None:
            rows = rows[:, columns]
        a = rows / rows.shape[0] ** 0.5
        lam, u = torch.linalg.eigh(a @ a.mT)
        lam, u = lam.flip(0).clamp_min(0.0), u.flip(1)
        k = lam.numel() if k is None else min(k, lam.numel())
        lam, u = lam[:k], u[:, :k]
        positive = lam > lam.max() * lam.numel() * torch.finfo(lam.dtype).eps if lam.numel() else lam > 0
        vecs = torch.zeros(a.shape[1], k, dtype=a.dtype, device=a.device)
        vecs[:, positive] = a.mT @ u[:, positive] / lam[positive].sqrt()
        return lam, vecs


def gradient_noise(
    model: torch.nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    chunk_size: int | None = None,
) -> GradientNoise:
    """Per-sample gradients of ``loss_fn(model(x), y)`` over a batch with torch.func (vmap of grad) (2.8).

    ``loss_fn`` receives a batch of one example (output and target with a leading dimension of 1).
    ``chunk_size`` bounds the memory of vmap.
    """
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def one(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    grads = vmap(grad(one), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, inputs, targets)
    slices, offset, columns = {}, 0, []
    for name, g in grads.items():
        n = g[0].numel()
        slices[name] = slice(offset, offset + n)
        offset += n
        columns.append(g.reshape(g.shape[0], -1))
    return GradientNoise(torch.cat(columns, dim=1), slices)

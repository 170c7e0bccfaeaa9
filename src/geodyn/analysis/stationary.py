"""Step fluctuations of an optimizer at stationarity and fixed parameters, against the per-sample noise κ/b.

EQUATIONS.md (2.6), (2.8): at fixed parameters q the minibatch gradient is G = ∇H̄(q) + ∂φ with Cov(∂φ) = κ/b for
batches of b examples drawn with replacement (κ the per-example covariance). An optimizer whose state has forgotten
its start (≥ 5 memory times of its slowest EMA) then steps with a stationary covariance; with g = κ^α (2.9) its
diagonal is Var(Δq_i) ∝ (κ_ii/b)^{1−2α}.

Two independent measurements meet here:

- :func:`stationary_step_variance` runs the real optimizer on real minibatch losses (ordinary autograd) while
  putting the parameters back after every step, so the state equilibrates at fixed q; Var(Δq_i) is measured over
  the recorded steps.
- :func:`per_sample_kappa` computes κ_ii/b at the same q from per-example gradients (torch.func, or a plain loop
  for modules vmap cannot trace), without any optimizer.

``tilt`` removes the mean gradient ∇H̄(q) from the optimizer's force, so that what it sees is the noise term η of
(2.6) alone (needed where an uncentred moment would otherwise add ∇H̄ ∇H̄ᵀ to its κ estimate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["stationary_step_variance", "per_sample_kappa", "full_gradient", "seed_interval"]


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.detach().reshape(-1).double() for t in tensors])


def stationary_step_variance(
    params: Sequence[Tensor],
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[int], Tensor],
    warmup: int,
    steps: int,
    tilt: Sequence[Tensor] | None = None,
    blocks: int = 1,
) -> Tensor:
    """Var(Δq_i) of ``optimizer`` at stationarity with the parameters held at their current values (2.6), (2.8).

    Each step evaluates ``batch_loss(t)`` (a fresh minibatch), back-propagates, subtracts ``tilt`` from the
    gradients when given, steps, records Δq and restores the parameters. The first ``warmup`` steps only
    equilibrate the optimizer's state (use ≥ 5 memory times 1/(1−β)); the variance is over the next ``steps``.
    With ``blocks`` > 1 the recorded steps are cut into that many consecutive blocks and a (blocks, N) tensor of
    per-block variances is returned (their spread measures the Monte-Carlo error of the estimate).
    """
    if warmup < 0 or steps < 2:
        raise ValueError(f"need warmup >= 0 and steps >= 2, got warmup={warmup!r}, steps={steps!r}")
    if blocks < 1 or steps // blocks < 2:
        raise ValueError(f"need blocks >= 1 with at least 2 steps each, got blocks={blocks!r} for steps={steps!r}")
    per_block = steps // blocks
    params = list(params)
    if tilt is not None and len(tilt) != len(params):
        raise ValueError(f"tilt has {len(tilt)} tensors for {len(params)} parameters")
    home = [p.detach().clone() for p in params]
    out = []
    for t in range(warmup + per_block * blocks):
        if t >= warmup and (t - warmup) % per_block == 0:
            mean = [torch.zeros_like(p, dtype=torch.float64) for p in params]
            m2 = [torch.zeros_like(p, dtype=torch.float64) for p in params]
        optimizer.zero_grad(set_to_none=False)
        batch_loss(t).backward()
        if tilt is not None:
            torch._foreach_sub_([p.grad for p in params], list(tilt))
        optimizer.step()
        with torch.no_grad():
            dq = [d.double() for d in torch._foreach_sub([p.detach() for p in params], home)]
            for p, h in zip(params, home, strict=True):
                p.copy_(h)
            if t < warmup:
                continue
            k = (t - warmup) % per_block + 1
            delta = torch._foreach_sub(dq, mean)  # Welford: O(N) memory over any number of steps
            torch._foreach_add_(mean, delta, alpha=1.0 / k)
            torch._foreach_addcmul_(m2, delta, torch._foreach_sub(dq, mean))
            if k == per_block:
                out.append(_flat(m2) / (per_block - 1))
    return out[0] if blocks == 1 else torch.stack(out)


def full_gradient(params: Sequence[Tensor], loss: Callable[[], Tensor]) -> list[Tensor]:
    """∇H̄(q) of the whole-data loss (the tilt that leaves only the noise term of (2.6))."""
    params = list(params)
    grads = torch.autograd.grad(loss(), params)
    return [g.detach().clone() for g in grads]


def per_sample_kappa(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    batch_size: int,
    chunk_size: int | None = 256,
    vmap: bool = True,
) -> Tensor:
    """κ_ii/b: the centred per-example gradient variance over ``inputs`` divided by the batch size b (2.8).

    ``loss_fn(output, target)`` is the loss of one example given with a leading dimension of 1. With
    ``vmap=False`` the per-example gradients come from a loop of ordinary backward passes (modules whose
    forward torch.func cannot trace, e.g. fused attention kernels).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if len(inputs) < 2:
        raise ValueError(f"need at least 2 examples for a variance, got {len(inputs)}")
    if vmap:
        from geodyn.noise import gradient_noise

        return gradient_noise(model, loss_fn, inputs, targets, chunk_size=chunk_size).diagonal() / batch_size
    params = [p for p in model.parameters() if p.requires_grad]
    mean = m2 = None
    for k in range(len(inputs)):
        grads = torch.autograd.grad(loss_fn(model(inputs[k : k + 1]), targets[k : k + 1]), params)
        g = _flat(grads)
        if mean is None:
            mean, m2 = torch.zeros_like(g), torch.zeros_like(g)
        delta = g - mean
        mean.add_(delta / (k + 1))
        m2.add_(delta * (g - mean))
    return m2 / len(inputs) / batch_size  # population variance, as GradientNoise.diagonal (centred, 1/B)


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean of per-seed estimates and the half-width of its Student-t confidence interval (n − 1 degrees of freedom).

    With a single seed the half-width is NaN: the caller must fall back on a within-run interval and say so.
    """
    import math

    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("need at least one per-seed value")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)

"""Learners with memory: jump covariances built from a remembered history of fluctuations (EQUATIONS.md §5).

By (4.10) a population with jump covariance σ follows the learning dynamics (2.2) with γ g⁻¹ = (β_s/4) σ. A
*flat* learner (α = 0, (6.3), (4.11)) mutates with the same σ = s² I whatever happened before. A learner with
*memory* keeps, per genome, an exponential moving average κ̂ of the fluctuations of the selection gradient it
experienced, and mutates with σ ∝ g(κ̂)⁻¹ for a metric law g = f(κ̂) — g ∝ κ̂^{1/2} (6.2) or the three-regime
law (6.5) — so that γ g⁻¹ ∝ f(κ̂)⁻¹: the metric is made of the history of fluctuations.

:class:`MemoryJump` is a :class:`~geodyn.evolution.JumpLaw` with that per-genome state; the memory is inherited
with the genome on reproduction, and it can hold several learner kinds side by side (for competitions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from geodyn.evolution.jumps import JumpLaw
from geodyn.metric import MetricLaw

__all__ = ["MemoryJump", "ema_beta"]


def ema_beta(tau: float) -> float:
    """β = τ / (1 + τ): the EMA ⟨f⟩_t = f_t/(1+τ) + τ/(1+τ) ⟨f⟩_{t−1} with time constant τ (EQUATIONS.md §6), the
    memory from which κ̂ and so the metric g = f(κ̂) of (6.2)/(6.5) are built."""
    tau = float(tau)
    if not tau >= 0 or math.isinf(tau):
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}")
    return tau / (1.0 + tau)


class MemoryJump(JumpLaw):
    """Gaussian jumps Δq_m ~ N(0, σ_m) with a diagonal σ_m per genome built from a memory κ̂ (§5, (4.10)).

    Memory, updated after every mutation–selection step from the selection gradient G_m = ∇H(q_m, t) that
    genome m experiences, with β = τ/(1+τ) (EQUATIONS.md §6):

        μ ← β μ + (1 − β) G,   κ̂ ← β κ̂ + (1 − β) d²,   d = G − μ ("central", default) or d = G ("raw"),

    both bias-corrected by 1/(1 − β^t) as in §6. ``pooled=False`` (default): every genome keeps its own μ, κ̂
    (an individual's memory, inherited on reproduction). ``pooled=True``: one μ, κ̂ per learner kind, updated
    with the averages of G and d² over the genomes of that kind (a lineage's shared memory). Jump covariance,
    trace-normalised so every learner spends the same mutational budget E|Δq|² = tr σ = N s²:

        σ_m = N s² diag(f(κ̂_m)⁻¹) / Σ_i f(κ̂_mi)⁻¹.

    With f = Power(0) this is the flat learner σ = s² I (memory kept but unused); Power(0.5) gives g ∝ κ̂^{1/2}
    (6.2); ThreeRegime(ε, ζ) gives (6.5). Before the first observation σ = s² I. Where f(κ̂) = 0 (κ̂ = 0 with
    no constant term) f is floored at 1e-12 of the largest f of that genome, so σ stays finite.

    Caveat (a property of the model, not of the code): an individual memory makes σ_m depend on the genome's own
    past positions, so the jump law is no longer the symmetric J(q → q') of (4.2) and the stationary state is
    not exactly e^{−β_s H} (4.4) (the bias of adaptive Monte Carlo). A pooled memory over many genomes depends on
    each genome only through O(1/M), and in a static landscape it settles to a constant σ.

    Args:
        metric: a law f, or one law per learner kind.
        scale: the jump size s (one per kind, or one for all).
        tau: memory time constant τ (one per kind, or one for all).
        size, dim: M genomes of N coordinates.
        kinds: (M,) kind of each genome (index into ``metric``); inherited on reproduction. Default all 0.
        moment: ``"central"`` or ``"raw"``.
        pooled: one memory per kind instead of per genome.
    """

    def __init__(
        self,
        metric: MetricLaw | Sequence[MetricLaw],
        scale: float | Sequence[float],
        tau: float | Sequence[float],
        size: int,
        dim: int,
        *,
        kinds: Tensor | None = None,
        moment: str = "central",
        pooled: bool = False,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ):
        laws = [metric] if isinstance(metric, MetricLaw) else list(metric)
        if not laws or not all(isinstance(f, MetricLaw) for f in laws):
            raise TypeError("metric must be a MetricLaw or a sequence of them")
        n_kinds = len(laws)

        def per_kind(value, name):
            vals = [float(value)] * n_kinds if isinstance(value, (int, float)) else [float(v) for v in value]
            if len(vals) != n_kinds:
                raise ValueError(f"{name} needs one value per metric law ({n_kinds}), got {len(vals)}")
            return vals

        self.laws = laws
        self.scales = per_kind(scale, "scale")
        if any(not s > 0 for s in self.scales):
            raise ValueError(f"scales must be > 0, got {self.scales}")
        self.taus = per_kind(tau, "tau")
        self.betas = [ema_beta(t) for t in self.taus]
        if moment not in ("central", "raw"):
            raise ValueError(f"moment must be 'central' or 'raw', got {moment!r}")
        self.moment, self.pooled = moment, bool(pooled)
        self.size, self.dim = int(size), int(dim)
        self.kinds = (
            torch.zeros(self.size, dtype=torch.long, device=device)
            if kinds is None
            else torch.as_tensor(kinds, device=device).long().clone()
        )
        if self.kinds.shape != (self.size,) or int(self.kinds.min()) < 0 or int(self.kinds.max()) >= n_kinds:
            raise ValueError(f"kinds must be (M,) = ({self.size},) with values in 0..{n_kinds - 1}")
        rows = n_kinds if self.pooled else self.size  # one memory per kind or per genome
        self.mean = torch.zeros(rows, self.dim, dtype=dtype, device=device)
        self.kappa = torch.zeros_like(self.mean)
        self.count = torch.zeros(rows, dtype=dtype, device=device)  # observations (inherited with the genome)
        self._beta_kind = torch.tensor(self.betas, dtype=dtype, device=device)
        self._scale2 = torch.tensor(self.scales, dtype=dtype, device=device) ** 2
        self._groups: list[tuple[MetricLaw, Tensor]] | None = None

    # -- the memory ------------------------------------------------------------------------------------------
    def _rows(self) -> Tensor:
        """Row of the memory used by each genome (M,)."""
        return self.kinds if self.pooled else torch.arange(self.size, device=self.kinds.device)

    def _row_beta(self) -> Tensor:
        return self._beta_kind if self.pooled else self._beta_kind[self.kinds]

    def kappa_hat(self) -> Tensor:
        """Bias-corrected κ̂ of every genome (M, N) (zeros before the first observation)."""
        corr = 1.0 - self._row_beta() ** self.count
        k = torch.where(corr.unsqueeze(-1) > 0, self.kappa / corr.clamp_min(1e-300).unsqueeze(-1), self.kappa)
        return k[self.kinds] if self.pooled else k

    def variances(self) -> Tensor:
        """Diagonal of σ_m for every genome (M, N), trace-normalised to N s² (see the class docstring)."""
        kappa = self.kappa_hat()
        out = torch.empty_like(kappa)
        for law, sel in self._law_groups():
            g = law(kappa[sel])
            top = g.amax(-1, keepdim=True)
            g = torch.where(top > 0, torch.maximum(g, 1e-12 * top), torch.ones_like(g))
            ginv = g.reciprocal()
            out[sel] = ginv / ginv.sum(-1, keepdim=True)
        return out * (self.dim * self._scale2[self.kinds]).unsqueeze(-1)

    def _law_groups(self) -> list[tuple[MetricLaw, Tensor]]:
        """(law, genome mask) for every distinct law object in use (kinds sharing a law are computed together)."""
        if self._groups is None:
            by_law: dict[int, list[int]] = {}
            for j, law in enumerate(self.laws):
                by_law.setdefault(id(law), []).append(j)
            groups = []
            for kinds in by_law.values():
                sel = torch.isin(self.kinds, torch.tensor(kinds, device=self.kinds.device))
                if bool(sel.any()):
                    groups.append((self.laws[kinds[0]], sel))
            self._groups = groups
        return self._groups

    def sample(self, q: Tensor, generator: torch.Generator) -> Tensor:
        z = torch.randn(q.shape, generator=generator, dtype=q.dtype, device=q.device)
        return q + z * self.variances().sqrt().to(q.dtype)

    def observe(self, population, info) -> None:
        """Update μ and κ̂ with the selection gradient ∇H(q, t) at every genome after selection."""
        g = population.landscape.grad(info.q_selected, info.t).to(self.mean.dtype)
        b = self._row_beta().unsqueeze(-1)
        if not self.pooled:
            self.mean = b * self.mean + (1.0 - b) * g
            d = g - self.mean if self.moment == "central" else g
            self.kappa = b * self.kappa + (1.0 - b) * d * d
            self.count = self.count + 1.0
            return
        n = torch.bincount(self.kinds, minlength=len(self.laws)).to(g.dtype)
        alive = (n > 0).unsqueeze(-1)
        per = n.clamp_min(1.0).unsqueeze(-1)
        g_bar = torch.zeros_like(self.mean).index_add_(0, self.kinds, g) / per
        mean = torch.where(alive, b * self.mean + (1.0 - b) * g_bar, self.mean)
        d = g - mean[self.kinds] if self.moment == "central" else g
        d2_bar = torch.zeros_like(self.kappa).index_add_(0, self.kinds, d * d) / per
        self.mean = mean
        self.kappa = torch.where(alive, b * self.kappa + (1.0 - b) * d2_bar, self.kappa)
        self.count = self.count + alive.squeeze(-1).to(self.count.dtype)

    def reproduce(self, parents: Tensor) -> None:
        """Offspring inherit their parent's kind and (individual) memory."""
        if not self.pooled:
            self.mean, self.kappa, self.count = self.mean[parents], self.kappa[parents], self.count[parents]
        self.kinds = self.kinds[parents]
        self._groups = None

    def covariance(self, dim: int) -> Tensor:
        raise TypeError("MemoryJump has one covariance per genome: see variances()")

    def __repr__(self) -> str:
        return (
            f"MemoryJump(metric={self.laws}, scale={self.scales}, tau={self.taus}, moment={self.moment!r}, "
            f"pooled={self.pooled})"
        )

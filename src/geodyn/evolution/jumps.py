"""Jump laws J(q → q') (EQUATIONS.md (4.1), (4.2)): symmetric, normalised mutation kernels.

Continuous genomes jump by a zero-mean symmetric Δq with covariance σ: :class:`GaussianJump` (σ a number, a
diagonal, a full matrix, or per-genome standard deviations) and :class:`UniformJump` (independent uniform
coordinates). The drift (4.7)–(4.9) depends on the law only through σ; :meth:`JumpLaw.quadrature` gives the
nodes and weights that compute exact expectations over the law, for :meth:`EvolutionModel.expected_step`.

Discrete genomes mutate by bit flips: :class:`BitFlip` (every locus flips independently with probability μ) and
:class:`PointMutation` (exactly k distinct loci flip). Both are symmetric, J(x → y) = J(y → x) as (4.2) requires,
and give their exact kernel on an enumerated genome space with :meth:`matrix`.

Stateful laws (the memory learners of :mod:`geodyn.evolution.memory`) implement :meth:`JumpLaw.observe`, called by
the population after every mutation–selection step, and :meth:`JumpLaw.reproduce`, called with the parent of each
slot after reproduction so that per-genome state is inherited with the genome.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["JumpLaw", "GaussianJump", "UniformJump", "BitFlip", "PointMutation"]


class JumpLaw:
    """A symmetric jump law J(q → q') = J(q' → q) (4.2). Subclasses implement :meth:`sample`."""

    #: True for laws acting on binary genomes.
    discrete: bool = False

    def sample(self, q: Tensor, generator: torch.Generator) -> Tensor:  # pragma: no cover - abstract
        """Proposals q' ~ J(q → ·) for every genome of q (M, N); new tensor, q unchanged."""
        raise NotImplementedError

    def check_genomes(self, q: Tensor) -> None:
        """ValueError unless the law's parameters fit genomes q (M, N); laws without sized parameters accept any."""

    def covariance(self, dim: int) -> Tensor:
        """σ = E[Δq Δqᵀ] (N, N), float64 (4.7)–(4.10). Defined for continuous laws with one shared covariance."""
        raise TypeError(f"{type(self).__name__} has no single jump covariance")

    def observe(self, population, info) -> None:
        """Hook after each mutation–selection step (stateful laws update their memory here)."""

    def reproduce(self, parents: Tensor) -> None:
        """Hook after reproduction: slot m now holds a copy of genome ``parents[m]`` (per-genome state follows)."""


class GaussianJump(JumpLaw):
    """Δq ~ N(0, σ), the Gaussian jump law of (4.2) with covariance σ of (4.7)–(4.10).

    Give exactly one of
        cov: σ as a number (σ = cov · I), an (N,) tensor of variances (diagonal σ) or an (N, N) SPD matrix
             (anisotropic, correlated jumps);
        std: standard deviations — a number, (N,), or (M, N) (a diagonal σ per genome, as memory learners use).
    """

    def __init__(self, cov: float | Tensor | None = None, *, std: float | Tensor | None = None):
        if (cov is None) == (std is None):
            raise ValueError("give exactly one of cov and std")
        self.chol: Tensor | None = None
        if cov is not None:
            c = torch.as_tensor(cov, dtype=torch.float64)
            if c.ndim == 2:
                if c.shape[0] != c.shape[1]:
                    raise ValueError(f"a full covariance must be square, got {tuple(c.shape)}")
                self.chol = torch.linalg.cholesky(0.5 * (c + c.mT))  # raises for a non-SPD σ
                self.std = None
            elif c.ndim <= 1:
                if bool((c < 0).any()):
                    raise ValueError("jump variances must be >= 0")
                self.std = c.sqrt()
            else:
                raise ValueError(f"cov must be a number, (N,) or (N, N), got shape {tuple(c.shape)}")
        else:
            s = torch.as_tensor(std, dtype=torch.float64)
            if s.ndim > 2 or bool((s < 0).any()):
                raise ValueError("std must be >= 0 with shape (), (N,) or (M, N)")
            self.std = s

    @property
    def per_genome(self) -> bool:
        """True when every genome has its own (diagonal) covariance."""
        return self.std is not None and self.std.ndim == 2

    def check_genomes(self, q: Tensor) -> None:
        """ValueError unless the jump's covariance fits genomes q (M, N)."""
        if self.chol is not None and self.chol.shape[0] != q.shape[1]:
            raise ValueError(f"jump covariance is {tuple(self.chol.shape)} but the genomes have length {q.shape[1]}")
        if self.std is not None and self.std.ndim >= 1 and self.std.shape[-1] != q.shape[1]:
            raise ValueError(f"jump std has {self.std.shape[-1]} entries but the genomes have length {q.shape[1]}")
        if self.per_genome and self.std.shape[0] != q.shape[0]:
            raise ValueError(f"per-genome jump std has {self.std.shape[0]} rows for {q.shape[0]} genomes")

    def sample(self, q: Tensor, generator: torch.Generator) -> Tensor:
        """q' = q + Δq with Δq = L z (σ = L Lᵀ) or std ∘ z, z ~ N(0, I)."""
        z = torch.randn(q.shape, generator=generator, dtype=q.dtype, device=q.device)
        if self.chol is not None:
            return torch.addmm(q, z, self.chol.to(dtype=q.dtype, device=q.device).mT)
        return z.mul_(self.std.to(dtype=q.dtype, device=q.device)).add_(q)

    def covariance(self, dim: int) -> Tensor:
        """σ (N, N)."""
        if self.chol is not None:
            return self.chol @ self.chol.mT
        if self.per_genome:
            raise TypeError("per-genome jump covariances have no single σ")
        return torch.diag_embed(self.std.expand(dim) ** 2)

    def quadrature(self, dim: int, nodes: int) -> tuple[Tensor, Tensor]:
        """Gauss–Hermite tensor rule for E[f(Δq)]: nodes Δ (nodes^N, N) and weights (nodes^N,) summing to 1.

        Exact for polynomials of degree ≤ 2·nodes − 1 in each coordinate of z = L⁻¹Δq.
        """
        x, w = np.polynomial.hermite_e.hermegauss(int(nodes))  # weight e^{−x²/2}
        z, weights = _tensor_rule(torch.tensor(x), torch.tensor(w / w.sum()), dim)
        return z @ _factor(self.covariance(dim)).mT, weights

    def pdf_1d(self, x: Tensor) -> Tensor:
        """The density of a 1-D jump (N = 1)."""
        var = self.covariance(1)[0, 0]
        return torch.exp(-0.5 * x * x / var) / torch.sqrt(2 * math.pi * var)

    def support_1d(self, width: float = 14.0) -> tuple[float, float]:
        """An interval holding all but ≈ e^{−width²/2} of a 1-D jump's mass (e^{−98} at the default)."""
        s = float(self.covariance(1)[0, 0].sqrt())
        return (-width * s, width * s)

    def __repr__(self) -> str:
        if self.chol is not None:
            return f"GaussianJump(cov={(self.chol @ self.chol.mT).tolist()})"
        return f"GaussianJump(std={self.std.tolist() if self.std.numel() <= 8 else tuple(self.std.shape)})"


class UniformJump(JumpLaw):
    """Δq_i ~ U(−a_i, a_i) independently: a symmetric non-Gaussian law (4.2) with σ = diag(a²/3)."""

    def __init__(self, half_width: float | Tensor):
        a = torch.as_tensor(half_width, dtype=torch.float64)
        if a.ndim > 1 or bool((a <= 0).any()):
            raise ValueError("half_width must be > 0, a number or (N,)")
        self.half_width = a

    def check_genomes(self, q: Tensor) -> None:
        """ValueError unless the half widths fit genomes q (M, N)."""
        if self.half_width.ndim == 1 and self.half_width.shape[0] != q.shape[1]:
            raise ValueError(
                f"half_width has {self.half_width.shape[0]} entries but the genomes have length {q.shape[1]}"
            )

    def sample(self, q: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(q.shape, generator=generator, dtype=q.dtype, device=q.device)
        return q + (2.0 * u - 1.0) * self.half_width.to(dtype=q.dtype, device=q.device)

    def covariance(self, dim: int) -> Tensor:
        return torch.diag_embed(self.half_width.expand(dim) ** 2 / 3.0)

    def quadrature(self, dim: int, nodes: int) -> tuple[Tensor, Tensor]:
        """Gauss–Legendre tensor rule on the box [−a, a]^N, weights summing to 1."""
        x, w = np.polynomial.legendre.leggauss(int(nodes))
        z, weights = _tensor_rule(torch.tensor(x), torch.tensor(w / w.sum()), dim)
        return z * self.half_width.expand(dim), weights

    def pdf_1d(self, x: Tensor) -> Tensor:
        a = float(self.half_width.reshape(-1)[0])
        return torch.where(x.abs() <= a, torch.full_like(x, 0.5 / a), torch.zeros_like(x))

    def support_1d(self, width: float = 14.0) -> tuple[float, float]:
        a = float(self.half_width.reshape(-1)[0])
        return (-a, a)

    def __repr__(self) -> str:
        return f"UniformJump(half_width={self.half_width.tolist()})"


def _tensor_rule(x: Tensor, w: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    grids = torch.meshgrid(*([x] * dim), indexing="ij")
    wgrids = torch.meshgrid(*([w] * dim), indexing="ij")
    nodes = torch.stack([g.reshape(-1) for g in grids], dim=-1)
    weights = torch.stack([g.reshape(-1) for g in wgrids], dim=-1).prod(-1)
    return nodes.to(torch.float64), weights.to(torch.float64)


def _factor(cov: Tensor) -> Tensor:
    """A square root L of σ = L Lᵀ (symmetric eigen-root, so singular σ is allowed)."""
    lam, vecs = torch.linalg.eigh(0.5 * (cov + cov.mT))
    return vecs * lam.clamp_min(0.0).sqrt()


def _hamming(a: Tensor, b: Tensor) -> Tensor:
    """Hamming distances between every row of a (S, L) and every row of b (T, L): (S, T) long."""
    a, b = a.double(), b.double()
    return (a @ (1 - b).T + (1 - a) @ b.T).round().long()


class BitFlip(JumpLaw):
    """Every locus flips independently with probability μ: J(x → y) = μ^d (1 − μ)^{L−d}, d = Hamming(x, y).

    Symmetric (4.2). With probability (1 − μ)^L nothing flips (the proposal is the genome itself).
    """

    discrete = True

    def __init__(self, rate: float):
        rate = float(rate)
        if not 0.0 < rate <= 0.5:
            raise ValueError(f"flip rate must be in (0, 0.5], got {rate!r}")
        self.rate = rate

    def sample(self, x: Tensor, generator: torch.Generator) -> Tensor:
        flips = torch.rand(x.shape, generator=generator, device=x.device) < self.rate
        return x ^ flips

    def matrix(self, states: Tensor) -> Tensor:
        """J(states_i → states_j), (S, S) float64."""
        d = _hamming(states, states).double()
        length = states.shape[-1]
        return self.rate**d * (1.0 - self.rate) ** (length - d)

    def __repr__(self) -> str:
        return f"BitFlip(rate={self.rate:g})"


class PointMutation(JumpLaw):
    """Exactly k distinct loci, chosen uniformly, flip: J(x → y) = 1 / C(L, k) when Hamming(x, y) = k (4.2)."""

    discrete = True

    def __init__(self, k: int = 1):
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def sample(self, x: Tensor, generator: torch.Generator) -> Tensor:
        m, length = x.shape
        if self.k > length:
            raise ValueError(f"cannot flip {self.k} of {length} loci")
        if self.k == 1:
            loci = torch.randint(length, (m, 1), generator=generator, device=x.device)
        else:  # k distinct loci: the k smallest of L uniform keys
            keys = torch.rand((m, length), generator=generator, device=x.device)
            loci = keys.topk(self.k, dim=-1, largest=False).indices
        flips = torch.zeros_like(x).scatter_(1, loci, True)
        return x ^ flips

    def matrix(self, states: Tensor) -> Tensor:
        """J(states_i → states_j), (S, S) float64."""
        d = _hamming(states, states)
        return (d == self.k).double() / math.comb(states.shape[-1], self.k)

    def __repr__(self) -> str:
        return f"PointMutation(k={self.k})"

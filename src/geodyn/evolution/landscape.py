"""Fitness landscapes H(q) = −log fitness (EQUATIONS.md (4.4)) for continuous and discrete genomes.

A landscape maps a batch of genomes to energies: ``energy(q, t)`` takes q of shape (M, N) — float vectors for
continuous genomes, bool strings for discrete ones — and the step index t (ignored by static landscapes), and
returns H of shape (M,). Continuous landscapes also give ``grad(q, t)`` = ∇H (analytic where written out, else
automatic differentiation), which the drift (4.7)–(4.9) and the memory learners of §5 need.

Conventions (documented defaults):

* H is −log fitness, so the Gibbs weight e^{−β_s H} of (4.4) is fitness^{β_s} and reproduction weights are e^{−H}.
* A discrete genome is a bool tensor (M, L); :func:`all_genomes` enumerates {0,1}^L in the order of
  :func:`genome_index` (bit j of the index is locus j), which the exact transition matrices of (4.1) use.
* Time-dependent landscapes (changing environments, §5 "survival of the smartest") set ``static = False``; the
  population then re-evaluates the energies of its genomes at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "Landscape",
    "Quadratic",
    "DoubleWell",
    "FunctionLandscape",
    "MovingOptimum",
    "NKLandscape",
    "TableLandscape",
    "all_genomes",
    "genome_index",
]


def all_genomes(length: int, device: torch.device | str | None = None) -> Tensor:
    """Every binary genome of ``length`` loci, shape (2^L, L) bool; row i has bit j of i at locus j — the state space
    on which the kernel (4.1) is built in full."""
    length = int(length)
    if not 1 <= length <= 24:
        raise ValueError(f"can enumerate genomes of 1..24 loci, got {length}")
    idx = torch.arange(2**length, device=device)
    return ((idx.unsqueeze(-1) >> torch.arange(length, device=device)) & 1).bool()


def genome_index(x: Tensor) -> Tensor:
    """Integer code Σ_j x_j 2^j of binary genomes x (M, L) — the row of :func:`all_genomes` (states of (4.1))."""
    weights = 2 ** torch.arange(x.shape[-1], device=x.device, dtype=torch.long)
    return (x.long() * weights).sum(-1)


class Landscape:
    """H(q, t): energies (M,) of genomes q (M, N); H = −log fitness (4.4).

    Subclasses implement :meth:`energy`; continuous ones may override :meth:`grad` with an analytic gradient.
    """

    #: False when H depends on the step index t (a changing environment).
    static: bool = True
    #: True for binary genomes (bool tensors), False for real vectors.
    discrete: bool = False
    #: The genome length N (or L) the landscape is defined for; None when any length works.
    dim: int | None = None

    def check_genomes(self, q: Tensor, name: str = "genomes") -> None:
        """ValueError naming ``name`` unless q has shape (M, dim) (any M ≥ 0 here; populations need M ≥ 1)."""
        if q.ndim != 2:
            raise ValueError(f"{name} must have shape (M, N), got {tuple(q.shape)}")
        if self.dim is not None and q.shape[-1] != self.dim:
            raise ValueError(
                f"{name} have length {q.shape[-1]} but {type(self).__name__} is defined for length {self.dim}"
            )

    def energy(self, q: Tensor, t: int = 0) -> Tensor:  # pragma: no cover - abstract
        """H(q, t), shape (M,)."""
        raise NotImplementedError

    def __call__(self, q: Tensor, t: int = 0) -> Tensor:
        return self.energy(q, t)

    def fitness(self, q: Tensor, t: int = 0) -> Tensor:
        """Fitness e^{−H} (4.4)."""
        return torch.exp(-self.energy(q, t))

    def grad(self, q: Tensor, t: int = 0) -> Tensor:
        """∇H(q, t), shape (M, N), by automatic differentiation of Σ_m H(q_m) (rows are independent)."""
        if self.discrete:
            raise TypeError(f"{type(self).__name__} is discrete: it has no gradient")
        x = q.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.energy(x, t).sum(), x)
        return g


def _as_matrix_or_diag(value: float | Tensor | Sequence, name: str) -> Tensor:
    k = torch.as_tensor(value, dtype=torch.float64)
    if k.ndim > 2 or (k.ndim == 2 and k.shape[0] != k.shape[1]):
        raise ValueError(f"{name} must be a number, (N,) or (N, N), got shape {tuple(k.shape)}")
    return k


class Quadratic(Landscape):
    """H = ½ (q − c)ᵀ K (q − c) + h₀ (4.4): a single fitness peak; K a number (K I), (N,) (diagonal) or (N, N).

    Its Gibbs state e^{−β_s H} is Gaussian, N(c, (β_s K)⁻¹), which the tests of (4.10) start from."""

    def __init__(self, curvature: float | Tensor | Sequence = 1.0, center: float | Tensor | Sequence = 0.0, offset=0.0):
        self.curvature = _as_matrix_or_diag(curvature, "curvature")
        self.center = torch.as_tensor(center, dtype=torch.float64)
        if self.center.ndim > 1:
            raise ValueError(f"center must be a number or (N,), got shape {tuple(self.center.shape)}")
        self.offset = float(offset)
        dims = {t.shape[-1] for t in (self.curvature, self.center) if t.ndim >= 1}
        if len(dims) > 1:
            raise ValueError(
                f"curvature {tuple(self.curvature.shape)} and center {tuple(self.center.shape)} disagree on N"
            )
        self.dim = dims.pop() if dims else None

    def _k(self, q: Tensor) -> Tensor:
        return self.curvature.to(dtype=q.dtype, device=q.device)

    def grad(self, q: Tensor, t: int = 0) -> Tensor:
        """∇H = K (q − c)."""
        self._check_last(q)
        x = q - self.center.to(dtype=q.dtype, device=q.device)
        k = self._k(q)
        return x @ k if k.ndim == 2 else k * x  # K symmetric

    def _check_last(self, q: Tensor) -> None:
        if self.dim is not None and q.shape[-1] != self.dim:
            raise ValueError(
                f"genomes have length {q.shape[-1]} but {type(self).__name__} is defined for length {self.dim}"
            )

    def energy(self, q: Tensor, t: int = 0) -> Tensor:
        self._check_last(q)
        x = q - self.center.to(dtype=q.dtype, device=q.device)
        k = self._k(q)
        kx = x @ k if k.ndim == 2 else k * x
        return 0.5 * (x * kx).sum(-1) + self.offset

    def __repr__(self) -> str:
        return f"Quadratic(curvature={self.curvature.tolist()}, center={self.center.tolist()})"


class DoubleWell(Landscape):
    """H = Σ_i [ h ((q_i/w)² − 1)² + b q_i ] (4.4): two fitness peaks per coordinate at q_i ≈ ±w, barrier h, tilt b."""

    def __init__(self, height: float = 1.0, width: float = 1.0, tilt: float = 0.0):
        self.height, self.width, self.tilt = float(height), float(width), float(tilt)
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")

    def energy(self, q: Tensor, t: int = 0) -> Tensor:
        x = q if self.width == 1.0 else q * (1.0 / self.width)
        u = x * x - 1.0
        h = (u * u).sum(-1)
        if self.height != 1.0:
            h = self.height * h
        return h if self.tilt == 0.0 else h + self.tilt * q.sum(-1)

    def grad(self, q: Tensor, t: int = 0) -> Tensor:
        """∂_i H = 4 h q_i ((q_i/w)² − 1)/w² + b."""
        u = (q / self.width) ** 2 - 1.0
        return 4.0 * self.height * q * u / self.width**2 + self.tilt

    def __repr__(self) -> str:
        return f"DoubleWell(height={self.height:g}, width={self.width:g}, tilt={self.tilt:g})"


class FunctionLandscape(Landscape):
    """A landscape H (4.4) from callables: ``energy(q) -> (M,)`` or ``energy(q, t)`` (``static=False``), optional
    analytic ``grad`` (else automatic differentiation)."""

    def __init__(
        self,
        energy: Callable[..., Tensor],
        grad: Callable[..., Tensor] | None = None,
        *,
        static: bool = True,
        discrete: bool = False,
    ):
        self._energy, self._grad = energy, grad
        self.static, self.discrete = bool(static), bool(discrete)

    def energy(self, q: Tensor, t: int = 0) -> Tensor:
        return self._energy(q) if self.static else self._energy(q, t)

    def grad(self, q: Tensor, t: int = 0) -> Tensor:
        if self._grad is None:
            return super().grad(q, t)
        return self._grad(q) if self.static else self._grad(q, t)


class MovingOptimum(Landscape):
    """A changing environment: H(q, t) = ½ (q − c(t))ᵀ K (q − c(t)) (4.4) with the optimum c(t) on a path (§5 memory,
    the setting of "survival of the smartest" with (6.2), (6.5)).

    Build with :meth:`switching` (c jumps between given centres every ``period`` steps) or :meth:`oscillating`
    (c(t) = a sin(2π t / period)), or pass any ``path: t ↦ c(t)`` of shape (N,).
    """

    static = False

    def __init__(self, curvature: float | Tensor | Sequence, path: Callable[[int], Tensor]):
        self.quadratic = Quadratic(curvature)
        self.path = path
        self.dim = self.quadratic.dim

    @classmethod
    def switching(cls, curvature, centers: Tensor | Sequence, period: int) -> MovingOptimum:
        """c(t) = centers[(t // period) mod C]: the optimum switches every ``period`` steps."""
        c = torch.as_tensor(centers, dtype=torch.float64)
        if c.ndim != 2:
            raise ValueError(f"centers must have shape (C, N), got {tuple(c.shape)}")
        period = int(period)
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        out = cls(curvature, lambda t: c[(int(t) // period) % c.shape[0]])
        out.period, out.centers = period, c
        out.dim = c.shape[1]
        return out

    @classmethod
    def oscillating(cls, curvature, amplitude: Tensor | Sequence, period: float) -> MovingOptimum:
        """c(t) = a sin(2π t / period): the optimum moves smoothly and periodically."""
        a = torch.as_tensor(amplitude, dtype=torch.float64)
        period = float(period)
        out = cls(curvature, lambda t: a * math.sin(2.0 * math.pi * t / period))
        out.period, out.amplitude = period, a
        out.dim = a.shape[0] if a.ndim == 1 else out.dim
        return out

    def center(self, t: int) -> Tensor:
        """The optimum c(t)."""
        return torch.as_tensor(self.path(t), dtype=torch.float64)

    def energy(self, q: Tensor, t: int = 0) -> Tensor:
        return self.quadratic.energy(q - self.center(t).to(dtype=q.dtype, device=q.device))

    def grad(self, q: Tensor, t: int = 0) -> Tensor:
        """∇H = K (q − c(t))."""
        return self.quadratic.grad(q - self.center(t).to(dtype=q.dtype, device=q.device))


class NKLandscape(Landscape):
    """Kauffman's NK landscape on binary genomes of ``n`` loci with ``k`` epistatic neighbours per locus.

    Fitness F(x) = (1/n) Σ_i f_i(x_i, x_{j_i1}, …, x_{j_ik}), each table f_i of 2^{k+1} entries drawn i.i.d.
    uniform on (0, 1) from a generator seeded with ``seed``; neighbours are ``"random"`` (k distinct other loci
    per locus, also seeded) or ``"adjacent"`` (the next k loci, cyclically). Energy (4.4): H = −log F
    (``energy="log"``, default) or H = −F (``energy="linear"``), times ``scale``.
    """

    discrete = True

    def __init__(
        self,
        n: int,
        k: int,
        seed: int = 0,
        *,
        neighbours: str = "random",
        energy: str = "log",
        scale: float = 1.0,
        device: torch.device | str | None = None,
    ):
        n, k = int(n), int(k)
        if n < 1 or not 0 <= k < n or k > 14:
            raise ValueError(f"need n >= 1 and 0 <= k < min(n, 15), got n={n}, k={k}")
        if energy not in ("log", "linear"):
            raise ValueError(f"energy must be 'log' or 'linear', got {energy!r}")
        gen = torch.Generator().manual_seed(int(seed))
        if neighbours == "random":
            others = torch.stack(
                [torch.randperm(n - 1, generator=gen)[:k] for _ in range(n)]
            )  # indices among the n−1 other loci
            loci = torch.arange(n).unsqueeze(-1)
            nbrs = others + (others >= loci).long()  # skip the locus itself
        elif neighbours == "adjacent":
            nbrs = (torch.arange(n).unsqueeze(-1) + torch.arange(1, k + 1)) % n
        else:
            raise ValueError(f"neighbours must be 'random' or 'adjacent', got {neighbours!r}")
        self.n, self.k, self.seed, self.mode, self.scale = n, k, int(seed), energy, float(scale)
        self.dim = n
        self.loci = torch.cat([torch.arange(n).unsqueeze(-1), nbrs], dim=1).to(device)  # (n, k+1), own locus first
        self.tables = torch.rand(n, 2 ** (k + 1), generator=gen, dtype=torch.float64).to(device)  # f_i
        if n * 2 ** (k + 1) >= 2**24:
            raise ValueError(f"n·2^(k+1) must be below 2^24 (float32 table indices), got n={n}, k={k}")
        self._offsets = (torch.arange(n) * 2.0 ** (k + 1)).float().to(device)  # row starts in the flat tables
        code = torch.zeros(n, n, dtype=torch.float32)
        code.index_put_(
            (self.loci.cpu(), torch.arange(n).unsqueeze(-1).expand(n, k + 1)),
            (2.0 ** torch.arange(k + 1)).expand(n, k + 1),
            accumulate=True,
        )
        self._code_matrix = code.to(device)

    def to(self, device: torch.device | str) -> NKLandscape:
        """Move the tables to ``device`` (in place); returns self."""
        self.loci, self.tables = self.loci.to(device), self.tables.to(device)
        self._offsets, self._code_matrix = self._offsets.to(device), self._code_matrix.to(device)
        return self

    def contributions(self, x: Tensor) -> Tensor:
        """f_i(x) for every locus, shape (M, n).

        The table entry of locus i is c_i = Σ_j x_{loci[i, j]} 2^j; its index in the flattened tables,
        i·2^{k+1} + c_i, is computed for all loci at once as one float32 matrix product x W plus row offsets
        (W[loci[i, j], i] = 2^j), exact while n·2^{k+1} < 2^24.
        """
        if x.shape[-1] != self.n:
            raise ValueError(f"genomes must have {self.n} loci, got shape {tuple(x.shape)}")
        flat = torch.addmm(self._offsets, x.to(torch.float32), self._code_matrix)
        return self.tables.reshape(-1).index_select(0, flat.reshape(-1).to(torch.int32)).reshape(flat.shape)

    def mean_fitness(self, x: Tensor) -> Tensor:
        """F(x) = (1/n) Σ_i f_i, in (0, 1)."""
        return self.contributions(x).mean(-1)

    def energy(self, x: Tensor, t: int = 0) -> Tensor:
        f = self.mean_fitness(x)
        h = -torch.log(f) if self.mode == "log" else -f
        return self.scale * h

    def __repr__(self) -> str:
        return f"NKLandscape(n={self.n}, k={self.k}, seed={self.seed}, energy={self.mode!r})"


class TableLandscape(Landscape):
    """An explicit energy (4.4) per binary genome: H(x) = values[genome_index(x)] (for enumerated small spaces)."""

    discrete = True

    def __init__(self, values: Tensor | Sequence[float]):
        v = torch.as_tensor(values, dtype=torch.float64)
        length = int(round(math.log2(v.numel()))) if v.numel() > 0 else 0
        if v.ndim != 1 or v.numel() != 2**length or length < 1:
            raise ValueError(f"values must have 2^L entries (L >= 1), got shape {tuple(v.shape)}")
        self.values, self.n = v, length
        self.dim = length

    def energy(self, x: Tensor, t: int = 0) -> Tensor:
        if x.shape[-1] != self.n:  # a shorter genome would silently index the wrong entries
            raise ValueError(f"genomes must have {self.n} loci for a table of {2**self.n} entries, got {x.shape[-1]}")
        return self.values.to(x.device)[genome_index(x)]

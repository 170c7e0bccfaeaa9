"""What a walker simulation records, kept separate from the model and the integrator.

A recorder sees every step (``update``) but stores only what it is asked for — moments, histograms at chosen
steps, a few subsampled trajectories, or running sums — never the whole ensemble at every step. Steps are
counted from 0 (the initial state) to ``n_steps``; negative entries of ``steps`` count from the end (−1 is
the final state). With neither ``every`` nor ``steps`` a recorder records the initial and the final state.

Results are attributes filled in by :meth:`Recorder.finish` (statistics on the walkers' device, times on the CPU):
``steps`` (list of step indices), ``times`` (T,) and the recorder's own fields.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["Recorder", "Moments", "TimeAveragedMoments", "IncrementMoments", "Histogram", "Trajectories"]


class Recorder:
    """Base class of what is recorded from a walker run of (2.5)–(2.7): decides at which steps to record;
    subclasses implement :meth:`_record`.

    Args:
        every: record every ``every``-th step (0, every, 2·every, …; the final step is added).
        steps: explicit step indices (negative: from the end). Mutually exclusive with ``every``.
    """

    def __init__(self, every: int | None = None, steps: Sequence[int] | None = None):
        if every is not None and steps is not None:
            raise ValueError("give either every or steps, not both")
        if every is not None and int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.every = None if every is None else int(every)
        self.requested = None if steps is None else [int(s) for s in steps]

    # -- driven by the simulator --------------------------------------------------------------------------
    def start(self, q: Tensor, t: float, n_steps: int) -> None:
        """Reset and record the initial state if step 0 is wanted."""
        self.n_steps = int(n_steps)
        if self.requested is not None:
            wanted = {s + n_steps + 1 if s < 0 else s for s in self.requested}
            bad = [s for s in wanted if not 0 <= s <= n_steps]
            if bad:
                raise ValueError(f"recording steps {sorted(bad)} are outside 0..{n_steps}")
            self._wanted: set[int] | None = wanted
        elif self.every is None:
            self._wanted = {0, n_steps}
        else:
            self._wanted = None
        self.steps: list[int] = []
        self._times: list[float] = []
        self._reset(q)
        if self.wants(0):
            self._store(0, t, q, None)

    def wants(self, k: int) -> bool:
        """Whether step k is recorded."""
        if self._wanted is not None:
            return k in self._wanted
        return k % self.every == 0 or k == self.n_steps

    def update(self, k: int, t: float, q_old: Tensor, q: Tensor) -> None:
        """Called after step k (q_old → q)."""
        if self.wants(k):
            self._store(k, t, q, q_old)

    def finish(self) -> None:
        """Stack what was recorded into result tensors."""
        self.times = torch.tensor(self._times, dtype=torch.float64)

    # -- for subclasses -----------------------------------------------------------------------------------
    def _store(self, k: int, t: float, q: Tensor, q_old: Tensor | None) -> None:
        if self._record(k, t, q, q_old):
            self.steps.append(k)
            self._times.append(float(t))

    def _reset(self, q: Tensor) -> None:
        pass

    def _record(self, k: int, t: float, q: Tensor, q_old: Tensor | None) -> bool:  # pragma: no cover
        raise NotImplementedError


def _mean_cov(q: Tensor) -> tuple[Tensor, Tensor]:
    mean = q.mean(0)
    x = q - mean
    return mean, x.mT @ x / max(q.shape[0] - 1, 1)


class Moments(Recorder):
    """Ensemble mean (T, N) and unbiased covariance (T, N, N) across walkers at the recorded steps.

    The moments of p(q, t) of (2.7) (SDE mode) or of the learning process (2.5)–(2.6) (discrete mode).
    """

    def _reset(self, q: Tensor) -> None:
        self._means: list[Tensor] = []
        self._covs: list[Tensor] = []

    def _record(self, k, t, q, q_old):
        m, c = _mean_cov(q)
        self._means.append(m)
        self._covs.append(c)
        return True

    def finish(self) -> None:
        super().finish()
        self.mean = torch.stack(self._means)
        self.cov = torch.stack(self._covs)


class TimeAveragedMoments(Recorder):
    """Stationary moments of (2.7) (e.g. the Lyapunov covariance of an Ornstein–Uhlenbeck process, (3.1)'s state):
    mean and covariance pooled over walkers and over the recorded steps with k ≥ ``burn_in``.

    For stationary statistics of (2.7) from few walkers; successive steps are correlated, so the Monte-Carlo
    error is not that of ``count`` independent samples. Results: ``mean`` (N,), ``cov`` (N, N), ``count``.
    """

    def __init__(self, burn_in: int = 0, every: int | None = 1, steps: Sequence[int] | None = None):
        super().__init__(every=None if steps is not None else every, steps=steps)
        self.burn_in = int(burn_in)

    def _reset(self, q: Tensor) -> None:
        self._shift = q.mean(0)  # reduces cancellation in Σxxᵀ − n m mᵀ
        self._s1 = torch.zeros_like(self._shift)
        self._s2 = torch.zeros(q.shape[-1], q.shape[-1], dtype=q.dtype, device=q.device)
        self.count = 0

    def _record(self, k, t, q, q_old):
        if k < self.burn_in:
            return False
        x = q - self._shift
        self._s1 += x.sum(0)
        self._s2 += x.mT @ x
        self.count += q.shape[0]
        return True

    def finish(self) -> None:
        super().finish()
        if self.count < 2:
            raise ValueError("TimeAveragedMoments recorded fewer than 2 samples (burn_in too large?)")
        m = self._s1 / self.count
        self.mean = m + self._shift
        self.cov = (self._s2 - self.count * torch.outer(m, m)) / (self.count - 1)


class IncrementMoments(Recorder):
    """Mean (N,) and covariance (N, N) of the per-step increment Δq = q_{k} − q_{k−1}, pooled over walkers and steps.

    Reads off (2.8) Cov(Δq per step) = γ² g⁻¹κg⁻¹ in the discrete mode, hence (5.5) Cov(η) = γ² I at α = ½ and
    (5.6) γ² κ at α = 0 when ∇H̄ = 0. Records only steps k ≥ 1 (an increment needs a previous state).
    """

    def __init__(self, every: int | None = 1, steps: Sequence[int] | None = None):
        super().__init__(every=None if steps is not None else every, steps=steps)

    def _reset(self, q: Tensor) -> None:
        self._s1 = torch.zeros_like(q[0])
        self._s2 = torch.zeros(q.shape[-1], q.shape[-1], dtype=q.dtype, device=q.device)
        self.count = 0

    def _record(self, k, t, q, q_old):
        if q_old is None:
            return False
        d = q - q_old
        self._s1 += d.sum(0)
        self._s2 += d.mT @ d
        self.count += q.shape[0]
        return True

    def finish(self) -> None:
        super().finish()
        if self.count < 2:
            raise ValueError("IncrementMoments recorded fewer than 2 increments")
        m = self._s1 / self.count
        self.mean = m
        self.cov = (self._s2 - self.count * torch.outer(m, m)) / (self.count - 1)


class Histogram(Recorder):
    """Walker counts in fixed bins at chosen steps: an estimate of p(q, t) to compare with (2.7) / (3.1).

    Args:
        edges: bin edges — one increasing 1-D sequence (with ``dims=(d,)``), or one per entry of ``dims``.
        dims: the coordinates binned (default: the first ``len(edges)`` coordinates).
        every, steps: as :class:`Recorder`.

    Results: ``counts`` (T, B₁, …, B_d) int64, ``total`` (walkers per snapshot); :meth:`density` divides by the
    total and the bin volume (walkers outside the edges count in the total, not in any bin).
    Computed with ``bucketize`` + ``bincount``, so it runs on the walkers' device.
    """

    def __init__(
        self,
        edges: Sequence[float] | Tensor | Sequence[Sequence[float] | Tensor],
        dims: Sequence[int] | None = None,
        every: int | None = None,
        steps: Sequence[int] | None = None,
    ):
        super().__init__(every=every, steps=steps)
        first = edges[0]
        nested = (first.ndim if hasattr(first, "ndim") else np.ndim(first)) == 1
        edge_list = list(edges) if nested else [edges]
        self.edges = [torch.as_tensor(np.asarray(e, dtype=np.float64)) for e in edge_list]
        for e in self.edges:
            if e.ndim != 1 or e.numel() < 2 or not bool((e[1:] > e[:-1]).all()):
                raise ValueError("histogram edges must be increasing 1-D sequences with at least 2 entries")
        self.dims = tuple(range(len(self.edges))) if dims is None else tuple(int(d) for d in dims)
        if len(self.dims) != len(self.edges):
            raise ValueError(f"{len(self.edges)} edge sequences for dims {self.dims}")
        self.shape = tuple(e.numel() - 1 for e in self.edges)

    def _reset(self, q: Tensor) -> None:
        self._counts: list[Tensor] = []
        self._dev_edges = [e.to(dtype=q.dtype, device=q.device) for e in self.edges]
        self.total = q.shape[0]

    def _record(self, k, t, q, q_old):
        flat = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        inside = torch.ones(q.shape[0], dtype=torch.bool, device=q.device)
        for d, e, nb in zip(self.dims, self._dev_edges, self.shape, strict=True):
            x = q[:, d].contiguous()
            idx = torch.bucketize(x, e, right=True) - 1  # e[idx] <= x < e[idx + 1]
            idx = torch.where(x == e[-1], torch.full_like(idx, nb - 1), idx)  # last edge closed, as numpy does
            inside &= (x >= e[0]) & (x <= e[-1])  # NaN is outside
            flat = flat * nb + idx.clamp(0, nb - 1)
        counts = torch.bincount(flat[inside], minlength=int(torch.tensor(self.shape).prod()))
        self._counts.append(counts.reshape(self.shape))
        return True

    def finish(self) -> None:
        super().finish()
        self.counts = torch.stack(self._counts)

    def bin_volumes(self) -> Tensor:
        """Volume of every bin, shape (B₁, …, B_d), float64 on the CPU."""
        vol = torch.ones((), dtype=torch.float64)
        for e in self.edges:
            vol = vol.unsqueeze(-1) * (e[1:] - e[:-1])
        return vol

    def density(self) -> Tensor:
        """counts / (total · bin volume): the histogram estimate of p(q, t), shape (T, B₁, …, B_d)."""
        return self.counts.double().cpu() / (self.total * self.bin_volumes())


class Trajectories(Recorder):
    """Sample paths of (2.5)/(2.7), subsampled: q of a subset of walkers at the recorded steps, ``q`` (T, m, N).
    ``walkers``: an int (the first ones, default 16), indices, or a slice."""

    def __init__(
        self,
        every: int | None = None,
        steps: Sequence[int] | None = None,
        walkers: Sequence[int] | Tensor | slice | int = 16,
    ):
        super().__init__(every=every, steps=steps)
        self.walkers = slice(0, walkers) if isinstance(walkers, int) else walkers

    def _reset(self, q: Tensor) -> None:
        self._qs: list[Tensor] = []
        if not isinstance(self.walkers, slice):
            self._index = torch.as_tensor(self.walkers, dtype=torch.long, device=q.device)

    def _record(self, k, t, q, q_old):
        self._qs.append((q[self.walkers] if isinstance(self.walkers, slice) else q[self._index]).clone())
        return True

    def finish(self) -> None:
        super().finish()
        self.q = torch.stack(self._qs)

"""What a population run records, kept apart from the model and the stepping.

A recorder is fed every step's :class:`~geodyn.evolution.population.StepInfo` and keeps only what it is asked
for: mean energy and fitness over time (:class:`MeanEnergy`), acceptance rates (:class:`AcceptanceRate`),
time-averaged histograms of a coordinate for comparison with e^{−β_s H} (4.4) (:class:`Histogram`), the mean step
regressed on the gradient — the fitted effective metric γ g⁻¹ of (4.10) (:class:`EffectiveMetric`) — and a few
genomes' trajectories (:class:`Trajectories`).

Steps are counted 1..n_steps within a run (step k is the move from the state after k − 1 steps); step 0 is the
initial state, recorded by state recorders (:class:`MeanEnergy`, :class:`Trajectories`) when wanted. A step is
recorded when k ≥ ``burn_in`` and k is a multiple of ``every`` (or the last step). Results are attributes set by
:meth:`Recorder.finish`; ``steps`` lists the recorded step indices.

Group statistics: recorders that take ``groups`` = G assign genome m to group m mod G and keep separate sums per
group. Genomes without reproduction are independent chains, so the G group estimates are independent — their
spread is an honest Monte-Carlo standard error that already contains every autocorrelation in time (batch means).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Recorder",
    "MeanEnergy",
    "TimeAverage",
    "AcceptanceRate",
    "Histogram",
    "EffectiveMetric",
    "Trajectories",
]


class Recorder:
    """Base class: chooses the recorded steps of a run of (4.1); subclasses implement :meth:`_record` (and
    :meth:`_initial`)."""

    #: State recorders also record the initial state (step 0).
    records_initial: bool = False

    def __init__(self, every: int = 1, burn_in: int = 0):
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        if int(burn_in) < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in!r}")
        self.every, self.burn_in = int(every), int(burn_in)

    def wants(self, k: int) -> bool:
        return k >= self.burn_in and (k % self.every == 0 or k == self.n_steps)

    def start(self, population, n_steps: int) -> None:
        self.n_steps = int(n_steps)
        self.steps: list[int] = []
        self._reset(population)
        if self.records_initial and self.wants(0):
            self._initial(population)
            self.steps.append(0)

    def update(self, k: int, info, population) -> None:
        if self.wants(k):
            self._record(k, info, population)
            self.steps.append(k)

    def finish(self) -> None:
        pass

    def _reset(self, population) -> None:
        pass

    def _initial(self, population) -> None:
        pass

    def _record(self, k: int, info, population) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _group_index(m: int, groups: int, device) -> Tensor:
    if not 1 <= groups <= m:
        raise ValueError(f"groups must be in 1..{m}, got {groups}")
    return torch.arange(m, device=device) % groups


class MeanEnergy(Recorder):
    """Population mean of H and of fitness e^{−H} (4.4) over time (initial state included), optionally per label.

    After step k the energies are those of the current genomes at the current time (H(·, t0 + k)), so in a
    changing environment a switch shows at once as a drop in fitness.

    Results: ``energy`` (T,), ``fitness`` (T,) float64 on the CPU; with ``labels=G`` (the population's heritable
    labels 0..G−1) also ``energy_by_label``, ``fitness_by_label`` (T, G) (NaN where a label has died out) and
    ``fraction_by_label`` (T, G).
    """

    records_initial = True

    def __init__(self, every: int = 1, burn_in: int = 0, labels: int | None = None):
        super().__init__(every, burn_in)
        self.n_labels = None if labels is None else int(labels)

    def _reset(self, population) -> None:
        if self.n_labels is not None and population.labels is None:
            raise ValueError("MeanEnergy(labels=...) needs a population with labels")
        self._rows: list[Tensor] = []

    def _state(self, h: Tensor, labels: Tensor | None) -> None:
        h = h.double()
        f = torch.exp(-h)
        row = [h.mean(), f.mean()]
        if self.n_labels is not None:
            one_hot = torch.nn.functional.one_hot(labels, self.n_labels).double()  # (M, G)
            count = one_hot.sum(0)
            row += [(h @ one_hot) / count, (f @ one_hot) / count, count / h.shape[0]]
            row = [row[0].reshape(1), row[1].reshape(1), *row[2:]]
            self._rows.append(torch.cat(row))
        else:
            self._rows.append(torch.stack(row))

    def _initial(self, population) -> None:
        self._state(population.energies, population.labels)

    def _record(self, k, info, population) -> None:
        self._state(population.energies, population.labels)

    def finish(self) -> None:
        data = torch.stack(self._rows).cpu()
        self.energy, self.fitness = data[:, 0], data[:, 1]
        if self.n_labels is not None:
            g = self.n_labels
            self.energy_by_label = data[:, 2 : 2 + g]
            self.fitness_by_label = data[:, 2 + g : 2 + 2 * g]
            self.fraction_by_label = data[:, 2 + 2 * g : 2 + 3 * g]


class TimeAverage(Recorder):
    """Per-slot time averages of H and of fitness e^{−H} (4.4) over the recorded steps (after ``burn_in``).

    Results: ``energy`` (M,) and ``fitness`` (M,) float64 on the CPU, ``count`` (steps averaged). Without
    reproduction slot m is one genome's lineage, an independent chain, so the spread of these M numbers gives the
    Monte-Carlo error of their mean.
    """

    def _reset(self, population) -> None:
        h = population.energies
        self._h = torch.zeros(h.shape, dtype=torch.float64, device=h.device)
        self._f = torch.zeros_like(self._h)
        self.count = 0

    def _record(self, k, info, population) -> None:
        h = population.energies.double()
        self._h += h
        self._f += torch.exp(-h)
        self.count += 1

    def finish(self) -> None:
        n = max(self.count, 1)
        self.energy, self.fitness = (self._h / n).cpu(), (self._f / n).cpu()


class AcceptanceRate(Recorder):
    """Fraction of jumps accepted by A of (4.5) per recorded step (``rate`` (T,)) and overall (``mean``); ≈ ½ for
    small jumps under the sigmoid, the constant term of A = ½ − β_sΔH/4 + …"""

    def _reset(self, population) -> None:
        self._rates: list[Tensor] = []

    def _record(self, k, info, population) -> None:
        self._rates.append(info.accepted.double().mean())

    def finish(self) -> None:
        self.rate = torch.stack(self._rates).cpu() if self._rates else torch.zeros(0, dtype=torch.float64)
        self.mean = float(self.rate.mean()) if self._rates else float("nan")


class Histogram(Recorder):
    """Counts of one coordinate in fixed bins, summed over the recorded steps (after ``burn_in``), per group.

    Estimates the stationary density e^{−β_s H}/Z (4.4) of continuous genomes. Results: ``counts`` (G, B) int64,
    ``samples`` (G,) genome-steps per group (genomes outside the edges count here but in no bin);
    :meth:`probabilities` and :meth:`density` pool the groups.
    """

    def __init__(
        self,
        edges: Sequence[float] | Tensor,
        dim: int = 0,
        *,
        every: int = 1,
        burn_in: int = 0,
        groups: int = 1,
    ):
        super().__init__(every, burn_in)
        self.edges = torch.as_tensor(np.asarray(edges, dtype=np.float64))
        if self.edges.ndim != 1 or self.edges.numel() < 2 or not bool((self.edges[1:] > self.edges[:-1]).all()):
            raise ValueError("edges must be an increasing 1-D sequence of at least 2 numbers")
        self.dim, self.groups = int(dim), int(groups)

    def _reset(self, population) -> None:
        q = population.genomes
        self._edges = self.edges.to(dtype=q.dtype, device=q.device)
        self._group = _group_index(q.shape[0], self.groups, q.device)
        nb = self.edges.numel() - 1
        self._counts = torch.zeros(self.groups * nb, dtype=torch.long, device=q.device)
        self._per_group = torch.bincount(self._group, minlength=self.groups)
        self._steps = 0

    def _record(self, k, info, population) -> None:
        x = info.q[:, self.dim].contiguous()
        nb = self.edges.numel() - 1
        idx = torch.bucketize(x, self._edges, right=True) - 1
        idx = torch.where(x == self._edges[-1], torch.full_like(idx, nb - 1), idx)
        inside = (x >= self._edges[0]) & (x <= self._edges[-1])
        flat = (self._group * nb + idx.clamp(0, nb - 1))[inside]
        self._counts += torch.bincount(flat, minlength=self.groups * nb)
        self._steps += 1

    def finish(self) -> None:
        nb = self.edges.numel() - 1
        self.counts = self._counts.reshape(self.groups, nb).cpu()
        self.samples = (self._per_group * self._steps).cpu()

    def probabilities(self) -> Tensor:
        """Pooled fraction of genome-steps in each bin, (B,) float64."""
        return self.counts.sum(0).double() / float(self.samples.sum())

    def group_probabilities(self) -> Tensor:
        """Per-group fractions (G, B) float64 (independent estimates when genomes are independent)."""
        return self.counts.double() / self.samples.double().unsqueeze(-1)

    def density(self) -> Tensor:
        """Pooled probabilities / bin widths: the estimate of p(q) (B,)."""
        return self.probabilities() / (self.edges[1:] - self.edges[:-1])


class EffectiveMetric(Recorder):
    """Least-squares fit of the mean mutation–selection step to the gradient: Δq ≈ −B ∇H(q), B ≈ γ g⁻¹ (4.10).

    For every recorded step, x = ∇H(q_old, t) and y = q_selected − q_old (the step of (4.1), before any
    reproduction); sums Σxxᵀ and Σxyᵀ are kept per group; B = −(Σxyᵀ)ᵀ (Σxxᵀ)⁻¹. Results: ``metric`` (N, N)
    (pooled fit), ``metric_groups`` (G, N, N), ``stderr`` (N, N) (spread of the group fits / √G), ``count``.
    By (4.9)–(4.10) B → c β_s σ as the jumps shrink (c = ¼ for the sigmoid).
    """

    def __init__(self, groups: int = 20, *, every: int = 1, burn_in: int = 0):
        super().__init__(every, burn_in)
        self.groups = int(groups)

    def _reset(self, population) -> None:
        q = population.genomes
        if population.landscape.discrete:
            raise TypeError("EffectiveMetric needs continuous genomes")
        n = q.shape[1]
        self._group = _group_index(q.shape[0], self.groups, q.device)
        self._xx = torch.zeros(self.groups, n, n, dtype=q.dtype, device=q.device)
        self._xy = torch.zeros_like(self._xx)
        self.count = 0

    def _record(self, k, info, population) -> None:
        x = population.landscape.grad(info.q_old, info.t)
        y = info.q_selected - info.q_old
        self._xx.index_add_(0, self._group, x.unsqueeze(-1) * x.unsqueeze(-2))
        self._xy.index_add_(0, self._group, x.unsqueeze(-1) * y.unsqueeze(-2))
        self.count += x.shape[0]

    def finish(self) -> None:
        xx, xy = self._xx.double().cpu(), self._xy.double().cpu()
        self.metric = -torch.linalg.solve(xx.sum(0), xy.sum(0)).mT
        self.metric_groups = -torch.linalg.solve(xx, xy).mT
        g = self.groups
        self.stderr = self.metric_groups.std(0, correction=1) / g**0.5 if g > 1 else torch.full_like(self.metric, 0)


class Trajectories(Recorder):
    """Genomes (and energies) of a subset of the population at the recorded steps (initial state included): the
    chains of (4.1), e.g. for autocorrelation times of stationary samples of (4.4).

    Results: ``q`` (T, m, N) and ``h`` (T, m) on the CPU. ``genomes``: the first n (an int) or given indices.
    """

    records_initial = True

    def __init__(self, genomes: int | Sequence[int] | Tensor = 16, *, every: int = 1, burn_in: int = 0):
        super().__init__(every, burn_in)
        self.which = genomes

    def _reset(self, population) -> None:
        q = population.genomes
        if isinstance(self.which, int):
            self._index = torch.arange(min(self.which, q.shape[0]), device=q.device)
        else:
            self._index = torch.as_tensor(self.which, dtype=torch.long, device=q.device)
        self._qs: list[Tensor] = []
        self._hs: list[Tensor] = []

    def _store(self, q: Tensor, h: Tensor) -> None:
        self._qs.append(q[self._index].clone())
        self._hs.append(h[self._index].clone())

    def _initial(self, population) -> None:
        self._store(population.genomes, population.energies)

    def _record(self, k, info, population) -> None:
        self._store(info.q, info.h)

    def finish(self) -> None:
        self.q = torch.stack(self._qs).cpu()
        self.h = torch.stack(self._hs).cpu()

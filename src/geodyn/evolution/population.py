"""A population of M genomes stepped by mutation–selection (4.1) and, optionally, reproduction.

Three separate pieces, as in :mod:`geodyn.dynamics`:

* the **model** — :class:`~geodyn.evolution.EvolutionModel` (landscape H, jump law J, acceptance A);
* the **stepping** — :class:`Population`: per step every genome proposes q' ~ J(q → ·) and keeps it with
  probability A(q → q') (one uniform per genome), then an optional :class:`~geodyn.evolution.Moran` /
  :class:`~geodyn.evolution.WrightFisher` reproduction with fitness e^{−w H} acts within demes;
* what is **recorded** — :mod:`geodyn.evolution.recorders`, fed a :class:`StepInfo` after every step.

Everything is vectorised over genomes with torch on the genomes' device (CPU or GPU); randomness comes from one
``torch.Generator`` on that device, seeded with ``seed`` (or supplied), so a run is reproducible.
Continuous genomes are float tensors (M, N) (float64 by default for lists/arrays, ``dtype=`` to choose, e.g.
float32 for speed); discrete ones bool (M, L).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from geodyn.evolution.acceptance import Acceptance
from geodyn.evolution.jumps import JumpLaw
from geodyn.evolution.landscape import Landscape
from geodyn.evolution.model import EvolutionModel
from geodyn.evolution.reproduction import Reproduction

__all__ = ["Population", "StepInfo"]


@dataclass
class StepInfo:
    """What happened in one step t → t + 1 (tensors over the M genomes).

    ``q_old``/``h_old``: genomes and energies H(·, t) before the step; ``proposal``/``h_proposal``: the jumps
    and their energies; ``accepted``: bool (M,); ``q_selected``/``h_selected``: after mutation–selection (4.1);
    ``parents``: the parent of each slot if reproduction ran (else None); ``q``/``h``: the final state (after
    reproduction). ``t`` is the step's time (H was evaluated at t).
    """

    t: int
    q_old: Tensor
    h_old: Tensor
    proposal: Tensor
    h_proposal: Tensor
    accepted: Tensor
    q_selected: Tensor
    h_selected: Tensor
    parents: Tensor | None
    q: Tensor
    h: Tensor


class Population:
    """M genomes evolving by jump × acceptance (4.1)–(4.6), with optional Moran / Wright–Fisher reproduction.

    Args:
        genomes: initial genomes — float (M, N) (continuous) or bool (M, L) (discrete).
        landscape, jump, acceptance: the model's parts (or ``model=`` an :class:`EvolutionModel`).
        reproduction: ``None`` (pure mutation–selection: every genome is an independent Markov chain with
            kernel (4.1), stationary state e^{−β_s H} (4.4)), or a :class:`~geodyn.evolution.Moran` /
            :class:`~geodyn.evolution.WrightFisher` rule applied after selection, ``reproduce_every`` steps.
        demes: number of independent sub-populations of M / demes consecutive genomes for reproduction.
        labels: optional heritable integer tags (M,) (e.g. learner types), copied with genomes on reproduction.
        seed, generator: randomness (a new generator on the genomes' device seeded with ``seed`` by default).
        dtype: floating dtype of continuous genomes (default: a float tensor's own, float64 for anything else).
            The jumps, energies, acceptance probabilities and uniforms follow it: ``torch.float32`` draws float32
            normals (about 4× cheaper than float64 on CPU, the dominant cost of a Gaussian step) at float32
            resolution of q and H (relative 6e-8). Not for discrete genomes.

    State: ``genomes``, ``energies`` (H at the current time), ``labels``, ``t`` (steps done).
    """

    def __init__(
        self,
        genomes: Tensor | Sequence,
        landscape: Landscape | None = None,
        jump: JumpLaw | None = None,
        acceptance: Acceptance | None = None,
        *,
        model: EvolutionModel | None = None,
        reproduction: Reproduction | None = None,
        reproduce_every: int = 1,
        demes: int = 1,
        labels: Tensor | None = None,
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        t0: int = 0,
        dtype: torch.dtype | None = None,
    ):
        if model is None:
            if landscape is None or jump is None or acceptance is None:
                raise ValueError("give model= or all of landscape, jump and acceptance")
            model = EvolutionModel(landscape, jump, acceptance)
        elif any(x is not None for x in (landscape, jump, acceptance)):
            raise ValueError("give either model= or its parts, not both")
        self.model = model
        q = torch.as_tensor(genomes)
        if dtype is not None and (model.landscape.discrete or not dtype.is_floating_point):
            raise ValueError(f"dtype must be a floating dtype for continuous genomes, got {dtype} ({model.landscape})")
        if model.landscape.discrete:
            q = q.bool()
        elif dtype is not None:
            q = q.to(dtype)
        elif not q.is_floating_point():
            q = q.to(torch.float64)
        if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] < 1:
            raise ValueError(f"genomes must have shape (M, N) with M, N >= 1, got {tuple(q.shape)}")
        model.landscape.check_genomes(q)
        model.jump.check_genomes(q)
        self.genomes = q.clone()
        demes = int(demes)
        if demes < 1 or q.shape[0] % demes:
            raise ValueError(f"demes must divide the population size {q.shape[0]}, got {demes}")
        self.demes = demes
        if reproduction is not None and not isinstance(reproduction, Reproduction):
            raise TypeError(f"reproduction must be a geodyn.evolution.Reproduction, got {reproduction!r}")
        self.reproduction = reproduction
        self.reproduce_every = int(reproduce_every)
        if self.reproduce_every < 1:
            raise ValueError(f"reproduce_every must be >= 1, got {reproduce_every!r}")
        if labels is not None:
            labels = torch.as_tensor(labels, device=q.device).long()
            if labels.shape != (q.shape[0],):
                raise ValueError(f"labels must have shape ({q.shape[0]},), got {tuple(labels.shape)}")
        self.labels = labels
        if generator is None:
            generator = torch.Generator(device=q.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(int(seed))
        self.generator = generator
        self.t = int(t0)
        self.energies = self.model.landscape.energy(self.genomes, self.t)

    # -- properties -----------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """M, the number of genomes."""
        return self.genomes.shape[0]

    @property
    def dim(self) -> int:
        """N (continuous) or L (discrete), the genome length."""
        return self.genomes.shape[1]

    @property
    def landscape(self) -> Landscape:
        return self.model.landscape

    @property
    def jump(self) -> JumpLaw:
        return self.model.jump

    def mean_energy(self) -> float:
        """Population mean of H at the current time."""
        return float(self.energies.double().mean())

    # -- stepping -------------------------------------------------------------------------------------------
    def step(self) -> StepInfo:
        """One step t → t + 1: jump (4.2), accept with A (4.5) against H(·, t), then reproduce if due."""
        model, gen = self.model, self.generator
        q_old = self.genomes
        h_old = self.energies  # H(·, t): re-evaluated after every step when the landscape changes
        proposal = model.propose(q_old, gen)
        h_prop = self.landscape.energy(proposal, self.t)
        u = torch.rand(h_prop.shape, generator=gen, dtype=h_prop.dtype, device=h_prop.device)
        accepted = u < model.acceptance_probability(h_old, h_prop)
        q_sel = torch.where(accepted.unsqueeze(-1), proposal, q_old)
        h_sel = torch.where(accepted, h_prop, h_old)
        info = StepInfo(self.t, q_old, h_old, proposal, h_prop, accepted, q_sel, h_sel, None, q_sel, h_sel)
        self.genomes, self.energies = q_sel, h_sel
        self.jump.observe(self, info)
        if self.reproduction is not None and (self.t + 1) % self.reproduce_every == 0:
            parents = self._parents(h_sel)
            self.genomes, self.energies = q_sel[parents], h_sel[parents]
            if self.labels is not None:
                self.labels = self.labels[parents]
            self.jump.reproduce(parents)
            info.parents, info.q, info.h = parents, self.genomes, self.energies
        self.t += 1
        if not self.landscape.static:
            self.energies = self.landscape.energy(self.genomes, self.t)
        return info

    def _parents(self, energies: Tensor) -> Tensor:
        n = self.size // self.demes
        local = self.reproduction.parents(energies.reshape(self.demes, n), self.generator)
        offset = torch.arange(self.demes, device=local.device).unsqueeze(-1) * n
        return (local + offset).reshape(-1)

    def run(
        self,
        n_steps: int,
        recorders: Sequence = (),
        progress: Callable[[float], None] | None = None,
    ) -> Population:
        """Advance ``n_steps`` steps, feeding each :class:`StepInfo` to the recorders (see
        :mod:`geodyn.evolution.recorders`); returns self. ``progress(fraction)`` is called about 100 times."""
        n_steps = int(n_steps)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        recorders = tuple(recorders)
        for r in recorders:
            r.start(self, n_steps)
        report = max(1, n_steps // 100)
        with torch.no_grad():
            for k in range(1, n_steps + 1):
                info = self.step()
                for r in recorders:
                    r.update(k, info, self)
                if progress is not None and (k % report == 0 or k == n_steps):
                    progress(k / n_steps)
        for r in recorders:
            r.finish()
        if not self.landscape.discrete and not bool(torch.isfinite(self.genomes).all()):
            raise FloatingPointError("genomes became non-finite")
        return self

    def __repr__(self) -> str:
        return (
            f"Population(M={self.size}, N={self.dim}, t={self.t}, {self.model!r}, reproduction={self.reproduction!r})"
        )

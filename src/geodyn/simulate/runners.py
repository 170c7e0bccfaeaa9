"""The four simulators of ``geodyn simulate``, each advanced frame by frame through the library's own APIs:

* ``langevin`` — :class:`~geodyn.dynamics.LangevinEnsemble` walkers, (2.5)/(2.6) or the SDE of (2.7);
* ``fokker-planck`` — :class:`~geodyn.dynamics.FokkerPlanck1D` / :class:`~geodyn.dynamics.FokkerPlanck2D`, (2.7);
* ``schrodinger`` — (3.11) with the Hamiltonian of :func:`geodyn.quantum.from_learning` ((3.6), (3.12)–(3.13));
* ``evolution`` — :class:`~geodyn.evolution.Population` under jump × acceptance (4.1)–(4.6).

Each returns an :class:`Outcome`: an xarray Dataset of the frames computed (coordinates with units, attributes),
and whether Ctrl-C stopped it early (the frames finished before the interrupt are kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr

import geodyn
from geodyn.simulate import build

__all__ = ["Outcome", "simulate", "RUNNERS"]

OnFrame = Callable[[int, int], None]
Q_UNITS = "parameter units"


@dataclass
class Outcome:
    """What a run produced: ``dataset`` (the frames computed), ``interrupted`` and a small ``summary``."""

    dataset: xr.Dataset
    interrupted: bool
    frames: int
    summary: dict = field(default_factory=dict)


def _frames(cfg, advance: Callable[[int], None], on_frame: OnFrame | None) -> bool:
    """advance(k) for frames k = 1 … frames−1; Ctrl-C stops between (or inside) frames and keeps those done.
    Returns whether it was interrupted."""
    total = cfg.frames - 1
    try:
        for k in range(1, total + 1):
            advance(k)
            if on_frame is not None:
                on_frame(k, total)
    except KeyboardInterrupt:
        return True
    return False


def _schedule(steps: int, frames: int) -> np.ndarray:
    """Steps at which frames are recorded: frames points from 0 to steps, as evenly as integers allow."""
    return np.unique(np.round(np.linspace(0, steps, frames)).astype(int))


def _attrs(cfg, **extra) -> dict:
    out = {"simulator": cfg.simulator, "geodyn_version": geodyn.__version__, "seed": cfg.seed}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _gaussian_sample(cfg, count: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    center = torch.from_numpy(build.per_axis(cfg.initial.center, dim))
    width = torch.from_numpy(build.per_axis(cfg.initial.width, dim))
    return center + width * torch.randn(count, dim, generator=gen, dtype=torch.float64)


def _particles(cfg, name: str, unit_time: str, times, q, bins: int, rng, extra_vars: dict, attrs: dict) -> xr.Dataset:
    """Dataset of a particle simulation: positions, their marginal density along q₁, mean and variance."""
    q = np.stack(q)  # (T, M, N)
    if rng is None:
        lo, hi = np.quantile(q[..., 0], [0.001, 0.999])
        pad = 0.05 * (hi - lo) or 1.0
        rng = (lo - pad, hi + pad)
    edges = np.linspace(rng[0], rng[1], bins + 1)
    # density per unit q: counts / (all particles · bin width); particles outside the range count in the total
    dens = np.stack([np.histogram(frame[:, 0], edges)[0] / (frame.shape[0] * np.diff(edges)) for frame in q])
    coords = {
        "time": ("time", np.asarray(times, dtype=np.float64), {"units": unit_time, "long_name": "time"}),
        name: (name, np.arange(q.shape[1])),
        "axis": ("axis", np.arange(1, q.shape[2] + 1), {"long_name": "coordinate index μ"}),
        "q": ("q", 0.5 * (edges[1:] + edges[:-1]), {"units": Q_UNITS, "long_name": "q₁ (bin centre)"}),
    }
    data = {
        "position": (("time", name, "axis"), q, {"units": Q_UNITS, "long_name": "q^μ of each " + name}),
        "density": (("time", "q"), dens, {"units": f"1/({Q_UNITS})", "long_name": "marginal density of q₁"}),
        "mean": (("time", "axis"), q.mean(1), {"units": Q_UNITS, "long_name": "ensemble mean of q^μ"}),
        "variance": (("time", "axis"), q.var(1, ddof=1), {"units": f"({Q_UNITS})²", "long_name": "ensemble variance"}),
        **extra_vars,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ------------------------------------------------------------------------------------------------------------
def run_langevin(cfg, on_frame: OnFrame | None = None) -> Outcome:
    """Walkers of (2.5)/(2.6) (``discrete``, one optimizer step per unit time) or of the SDE of (2.7)."""
    from geodyn.dynamics import DiscreteLearning, EulerMaruyama, LangevinEnsemble

    w, dim = cfg.walkers, cfg.dim
    land = build.landscape(cfg.loss, dim)
    law = build.metric_law(cfg.learning)
    ens = LangevinEnsemble(grad=land.grad, metric=law, kappa=build.kappa(cfg.learning, dim), gamma=cfg.learning.gamma)
    solver = DiscreteLearning() if w.integrator == "discrete" else EulerMaruyama(w.dt)
    gen = torch.Generator().manual_seed(cfg.seed)
    q = _gaussian_sample(cfg, w.count, dim, gen)
    steps = _schedule(w.steps, cfg.frames)
    times, qs, energy = [0.0], [q.numpy().copy()], [float(land.energy(q).mean())]
    state = {"q": q, "t": 0.0}

    def advance(k: int) -> None:
        if k >= len(steps):
            return
        sol = ens.simulate(state["q"], int(steps[k] - steps[k - 1]), solver, generator=gen, t0=state["t"])
        state["q"], state["t"] = sol.q, sol.t
        times.append(sol.t)
        qs.append(sol.q.numpy().copy())
        energy.append(float(land.energy(sol.q).mean()))

    interrupted = _frames(cfg, advance, on_frame)
    unit = "optimizer steps" if w.integrator == "discrete" else "learning time"
    extra = {"mean_loss": (("time",), np.asarray(energy), {"long_name": "walker mean of H̄(q)"})}
    attrs = _attrs(
        cfg,
        equations="(2.5)-(2.8)",
        integrator=repr(solver),
        metric=repr(law),
        gamma=cfg.learning.gamma,
        walkers=w.count,
    )
    ds = _particles(cfg, "walker", unit, times, qs, w.bins, w.range, extra, attrs)
    return Outcome(ds, interrupted, len(times), {"final_mean_loss": energy[-1], "time": times[-1]})


# ------------------------------------------------------------------------------------------------------------
def run_fokker_planck(cfg, on_frame: OnFrame | None = None) -> Outcome:
    """The density of (2.7) on a 1-D or 2-D grid, frames every t_final/(frames − 1), and its stationary state."""
    from geodyn.dynamics import FokkerPlanck1D, FokkerPlanck2D

    dim, law = cfg.dim, build.metric_law(cfg.learning)
    land = build.landscape(cfg.loss, dim)
    model = dict(grad=land.grad, metric=law, kappa=build.kappa(cfg.learning, dim), gamma=cfg.learning.gamma)
    domain, cells = cfg.domain(), cfg.cells()
    center = build.per_axis(cfg.initial.center, dim)
    width = build.per_axis(cfg.initial.width, dim)
    if dim == 1:
        fp = FokkerPlanck1D(**model, domain=domain[0], n=cells[0], boundary=cfg.grid.boundary)
        axes = [fp.centres]
        p0 = fp.normalize(lambda x: np.exp(-0.5 * ((x - center[0]) / width[0]) ** 2))
    else:
        fp = FokkerPlanck2D(**model, domain=tuple(domain), shape=tuple(cells), boundary=cfg.grid.boundary)
        axes = list(fp.axes)
        p0 = fp.normalize(
            lambda x, y: np.exp(-0.5 * ((x - center[0]) / width[0]) ** 2 - 0.5 * ((y - center[1]) / width[1]) ** 2)
        )
    span = cfg.time.t_final / (cfg.frames - 1)
    times, ps = [0.0], [p0]

    def advance(k: int) -> None:
        sol = fp.evolve(ps[-1], span, cfg.time.dt, scheme=cfg.time.scheme, save_at=[span])
        times.append(k * span)
        ps.append(sol.p[-1])

    interrupted = _frames(cfg, advance, on_frame)
    stationary = fp.stationary()
    names = ["q"] if dim == 1 else ["q1", "q2"]
    dens_units = f"1/({Q_UNITS})" if dim == 1 else f"1/({Q_UNITS})²"
    coords = {"time": ("time", np.asarray(times), {"units": "learning time", "long_name": "time t"})}
    for i, (name, ax) in enumerate(zip(names, axes)):
        coords[name] = (name, ax, {"units": Q_UNITS, "long_name": f"q{'' if dim == 1 else i + 1} (cell centre)"})
    p = np.stack(ps)
    mass = p.reshape(len(ps), -1).sum(1) * fp.cell_volume
    data = {
        "density": (("time", *names), p, {"units": dens_units, "long_name": "p(q, t) of (2.7)"}),
        "stationary": (tuple(names), stationary, {"units": dens_units, "long_name": "stationary p of (2.7)"}),
        "mass": (("time",), mass, {"units": "1", "long_name": "∫ p dq (conserved)"}),
    }
    attrs = _attrs(
        cfg,
        equations="(2.7)",
        metric=repr(law),
        gamma=cfg.learning.gamma,
        scheme=cfg.time.scheme,
        boundary=cfg.grid.boundary,
        monotone=int(fp.monotone),
    )
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    tv = 0.5 * float(np.abs(p[-1] - stationary).sum() * fp.cell_volume)
    summary = {"time": times[-1], "mass_drift": float(np.abs(mass - mass[0]).max()), "distance_to_stationary": tv}
    return Outcome(ds, interrupted, len(times), summary)


# ------------------------------------------------------------------------------------------------------------
def run_schrodinger(cfg, on_frame: OnFrame | None = None) -> Outcome:
    """ψ(q, t) of (3.11): ħ, m from γ, β (3.12)–(3.13), V from H̄ and g (3.6), g = f(κ(q)); periodic grid."""
    from geodyn.quantum import CrankNicolsonSchrodinger, Grid, SaveAt, SplitStepSchrodinger, evolve, from_learning
    from geodyn.quantum import gaussian as packet
    from geodyn.quantum.grid import metric_from_law

    dim, lr = cfg.dim, cfg.learning
    law = build.metric_law(lr)
    land = build.landscape(cfg.loss, dim)
    grid = Grid(cfg.domain() if dim > 1 else cfg.domain()[0], cfg.cells() if dim > 1 else cfg.cells()[0])
    if lr.kappa_growth == 0 and len(set(build.per_axis(lr.kappa, dim))) == 1:
        metric = float(law(torch.tensor(float(build.per_axis(lr.kappa, dim)[0]), dtype=torch.float64)))
    else:
        metric = metric_from_law(law, build.grid_kappa(lr, dim))
    ham = from_learning(lr.gamma, lr.beta, build.grid_loss(land, dim), grid, metric, variant=lr.variant)
    psi0 = packet(grid, cfg.initial.center, cfg.initial.width, cfg.initial.momentum, hbar=ham.hbar)
    psi = ham.normalize(psi0)
    solver = (
        SplitStepSchrodinger(cfg.time.dt) if cfg.time.method == "split-step" else CrankNicolsonSchrodinger(cfg.time.dt)
    )
    span = cfg.time.t_final / (cfg.frames - 1)
    times, psis = [0.0], [psi]

    def advance(k: int) -> None:
        sol = evolve(ham, psis[-1], k * span, solver, SaveAt(ts=[k * span]), t0=(k - 1) * span)
        times.append(k * span)
        psis.append(sol.psi[-1])

    interrupted = _frames(cfg, advance, on_frame)
    names = ["q"] if dim == 1 else ["q1", "q2"]
    coords = {"time": ("time", np.asarray(times), {"units": "learning time", "long_name": "time t"})}
    for i, (name, ax) in enumerate(zip(names, grid.axes)):
        coords[name] = (name, ax, {"units": Q_UNITS, "long_name": f"q{'' if dim == 1 else i + 1} (node)"})
    psi_t = np.stack(psis)
    energy = np.array([solver.energy(ham, p) for p in psis])
    norm = np.array([ham.norm(p) ** 2 for p in psis])
    dens_units = f"1/({Q_UNITS})" if dim == 1 else f"1/({Q_UNITS})²"
    dims = ("time", *names)
    data = {
        "density": (dims, np.abs(psi_t) ** 2, {"units": dens_units, "long_name": "p = |ψ|² (3.10), w.r.t. √g dq"}),
        "psi_real": (dims, psi_t.real, {"units": f"({dens_units})^(1/2)", "long_name": "Re ψ"}),
        "psi_imag": (dims, psi_t.imag, {"units": f"({dens_units})^(1/2)", "long_name": "Im ψ"}),
        "potential": (tuple(names), ham.potential, {"units": "loss units", "long_name": "V of (3.6)"}),
        "sqrt_g": (tuple(names), ham.weight, {"units": "1", "long_name": "√det g (volume factor)"}),
        "energy": (("time",), energy, {"units": "loss units", "long_name": "⟨H⟩"}),
        "norm": (("time",), norm, {"units": "1", "long_name": "∫ √g |ψ|² dq"}),
    }
    attrs = _attrs(
        cfg,
        equations="(3.6), (3.10)-(3.13)",
        metric=repr(law),
        gamma=lr.gamma,
        beta=lr.beta,
        variant=lr.variant,
        hbar=ham.hbar,
        mass=ham.mass,
        method=cfg.time.method,
        psi_convention="psi = sqrt(p) exp(-i theta / hbar)",
    )
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    summary = {
        "time": times[-1],
        "hbar": ham.hbar,
        "mass": ham.mass,
        "norm_drift": float(np.abs(norm - norm[0]).max()),
        "energy_drift": float(np.abs(energy - energy[0]).max()),
    }
    return Outcome(ds, interrupted, len(times), summary)


# ------------------------------------------------------------------------------------------------------------
def run_evolution(cfg, on_frame: OnFrame | None = None) -> Outcome:
    """A population under jump × acceptance (4.1)–(4.6) with optional Moran / Wright–Fisher reproduction."""
    from geodyn.evolution import GaussianJump, Metropolis, Moran, Population, Sigmoid, WrightFisher

    pop_cfg, dim = cfg.population, cfg.dim
    land = build.landscape(cfg.loss, dim)
    accept = (Sigmoid if pop_cfg.acceptance == "sigmoid" else Metropolis)(pop_cfg.beta_s)
    repro = {"none": None, "moran": Moran, "wright-fisher": WrightFisher}[pop_cfg.reproduction]
    gen = torch.Generator().manual_seed(cfg.seed)
    q0 = _gaussian_sample(cfg, pop_cfg.size, dim, gen)
    pop = Population(
        q0,
        land,
        GaussianJump(std=pop_cfg.jump),
        accept,
        reproduction=None if repro is None else repro(pop_cfg.selection),
        seed=cfg.seed + 1,
    )
    steps = _schedule(pop_cfg.steps, cfg.frames)
    times, qs, energy = [0.0], [pop.genomes.numpy().copy()], [pop.mean_energy()]

    def advance(k: int) -> None:
        if k >= len(steps):
            return
        pop.run(int(steps[k] - steps[k - 1]))
        times.append(float(pop.t))
        qs.append(pop.genomes.numpy().copy())
        energy.append(pop.mean_energy())

    interrupted = _frames(cfg, advance, on_frame)
    # (4.10): the population follows (2.2) with γ g⁻¹ = c β_s σ, c = ¼ (sigmoid) or ½ (Metropolis), σ = jump²
    eff = accept.drift_coefficient * pop_cfg.beta_s * pop_cfg.jump**2
    extra = {"mean_energy": (("time",), np.asarray(energy), {"long_name": "population mean of H = −log fitness"})}
    attrs = _attrs(
        cfg,
        equations="(4.1)-(4.10)",
        acceptance=repr(accept),
        jump_std=pop_cfg.jump,
        reproduction=pop_cfg.reproduction,
        effective_inverse_metric=eff,
    )
    ds = _particles(cfg, "genome", "generations (steps)", times, qs, pop_cfg.bins, pop_cfg.range, extra, attrs)
    return Outcome(ds, interrupted, len(times), {"time": times[-1], "final_mean_energy": energy[-1]})


RUNNERS = {
    "langevin": run_langevin,
    "fokker-planck": run_fokker_planck,
    "schrodinger": run_schrodinger,
    "evolution": run_evolution,
}


def simulate(cfg, on_frame: OnFrame | None = None) -> Outcome:
    """Run the simulator a validated config names (see :mod:`geodyn.simulate.config`)."""
    out = RUNNERS[cfg.simulator](cfg, on_frame)
    if not math.isfinite(sum(float(np.nansum(v.values)) for v in out.dataset.data_vars.values())):
        raise FloatingPointError(f"{cfg.simulator}: the fields became non-finite; reduce the time step")
    return out

"""The run folder of ``geodyn simulate``: the resolved config, the fields as NetCDF, figures and an animation.

config.toml      every setting, defaults filled in: rerunning it reproduces the run
fields.nc        the xarray Dataset (coordinates with units, attributes), NetCDF-4 via h5netcdf
density.png      the density at a few times (1-D: curves; 2-D: first and last frame)
summary.png      moments / energies / mass over time
density.gif      the density over time (matplotlib + Pillow)
results.json     schema-versioned summary: simulator, frames, interrupted, files, numbers
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tomli_w

import geodyn
from geodyn.serialize import jsonable
from geodyn.simulate.config import resolved
from geodyn.simulate.runners import Outcome

__all__ = ["write_run", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
ENGINE = "h5netcdf"


def _spatial(ds) -> list[str]:
    return [d for d in ds["density"].dims if d != "time"]


def _density_figure(ds, path: Path) -> None:
    import matplotlib.pyplot as plt

    names, times, dens = _spatial(ds), ds["time"].values, ds["density"].values
    if len(names) == 1:
        x = ds[names[0]].values
        fig, ax = plt.subplots(figsize=(6, 3.6))
        picks = np.unique(np.linspace(0, len(times) - 1, min(5, len(times))).round().astype(int))
        for i in picks:
            ax.plot(x, dens[i], label=f"t = {times[i]:.4g}")
        if "stationary" in ds:
            ax.plot(x, ds["stationary"].values, "k--", lw=1, label="stationary")
        ax.set_xlabel(f"{ds[names[0]].attrs.get('long_name', names[0])}")
        ax.set_ylabel(ds["density"].attrs.get("long_name", "density"))
        ax.legend(fontsize=8)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
        ext = _extent(ds, names)
        for ax, i in zip(axes, (0, len(times) - 1)):
            im = ax.imshow(dens[i].T, origin="lower", extent=ext, aspect="auto")
            ax.set_title(f"t = {times[i]:.4g}")
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            fig.colorbar(im, ax=ax)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _extent(ds, names):
    x, y = ds[names[0]].values, ds[names[1]].values
    return (x[0], x[-1], y[0], y[-1])


def _summary_figure(ds, path: Path) -> None:
    import matplotlib.pyplot as plt

    series = [v for v in ("mean_loss", "mean_energy", "energy", "norm", "mass", "mean", "variance") if v in ds]
    fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 3), squeeze=False, constrained_layout=True)
    t = ds["time"].values
    for ax, name in zip(axes[0], series):
        values = ds[name].values
        ax.plot(t, values if values.ndim == 1 else values.reshape(len(t), -1))
        ax.set_title(ds[name].attrs.get("long_name", name), fontsize=9)
        ax.set_xlabel(f"time ({ds['time'].attrs.get('units', '')})", fontsize=8)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _animation(ds, path: Path, fps: int = 8) -> None:
    """The density over time as a GIF (one frame per saved time)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    names, times, dens = _spatial(ds), ds["time"].values, ds["density"].values
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if len(names) == 1:
        x = ds[names[0]].values
        (line,) = ax.plot(x, dens[0])
        ax.set_ylim(0, 1.05 * float(np.nanmax(dens)) or 1.0)
        ax.set_xlabel(names[0])
        ax.set_ylabel("density")

        def draw(i):
            line.set_ydata(dens[i])
            ax.set_title(f"t = {times[i]:.4g}")
            return (line,)
    else:
        im = ax.imshow(dens[0].T, origin="lower", extent=_extent(ds, names), aspect="auto", vmin=0, vmax=dens.max())
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])

        def draw(i):
            im.set_data(dens[i].T)
            ax.set_title(f"t = {times[i]:.4g}")
            return (im,)

    anim = FuncAnimation(fig, draw, frames=len(times), blit=False)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=60)
    plt.close(fig)


def write_run(cfg, outcome: Outcome, out: Path, animate: bool = True) -> dict:
    """Write the run folder ``out`` (created) and return the results.json payload."""
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(tomli_w.dumps(resolved(cfg)))
    outcome.dataset.to_netcdf(out / "fields.nc", engine=ENGINE)
    files = ["config.toml", "fields.nc", "density.png", "summary.png"]
    _density_figure(outcome.dataset, out / "density.png")
    _summary_figure(outcome.dataset, out / "summary.png")
    if animate:
        _animation(outcome.dataset, out / "density.gif")
        files.append("density.gif")
    payload = {
        "schema_version": SCHEMA_VERSION,
        "geodyn_version": geodyn.__version__,
        "simulator": cfg.simulator,
        "frames": outcome.frames,
        "frames_requested": cfg.frames,
        "interrupted": outcome.interrupted,
        "files": files,
        "summary": outcome.summary,
    }
    (out / "results.json").write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    return payload

"""``geodyn simulate``: run any simulator from a TOML config, without writing Python.

* :mod:`geodyn.simulate.config` — the pydantic models of the config (one per simulator), one-line errors;
* :mod:`geodyn.simulate.runners` — Langevin walkers (2.5)–(2.7), Fokker–Planck (2.7) in 1-D/2-D, Schrödinger (3.11)
  from learning parameters (3.6), (3.12)–(3.13), evolution (4.1)–(4.6), frame by frame as xarray Datasets;
* :mod:`geodyn.simulate.output` — the run folder (resolved config, NetCDF fields, figures, animation);
* ``examples/`` — one config per simulator (:data:`EXAMPLES`, :func:`example_text`).
"""

from __future__ import annotations

from importlib import resources

from geodyn.simulate.config import ConfigError, load_config, parse_config

__all__ = ["EXAMPLES", "ConfigError", "example_text", "load_config", "parse_config"]

EXAMPLES = ("langevin", "fokker-planck-1d", "fokker-planck-2d", "schrodinger", "evolution")


def example_text(name: str) -> str:
    """The TOML text of the bundled example ``name`` (one of :data:`EXAMPLES`)."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r} (known: {', '.join(EXAMPLES)})")
    return resources.files("geodyn.simulate").joinpath("examples", f"{name}.toml").read_text()

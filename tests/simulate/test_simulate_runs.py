"""Every example config runs (at a small size) and writes a run folder physicists can open: NetCDF with coordinates
and units, figures, an animation; Ctrl-C keeps the frames computed."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pytest
import tomli_w
import xarray as xr
from typer.testing import CliRunner

from geodyn.cli import app
from geodyn.simulate import EXAMPLES, example_text, parse_config
from geodyn.simulate.output import write_run
from geodyn.simulate.runners import simulate

runner = CliRunner()

# Small sizes: each example keeps its physics, only counts and times shrink.
SMALL = {
    "langevin": {"frames": 4, "walkers": {"count": 400, "steps": 40}},
    "fokker-planck-1d": {"frames": 4, "grid": {"cells": 60}, "time": {"t_final": 2.0, "dt": 0.1}},
    "fokker-planck-2d": {"frames": 3, "grid": {"cells": [16, 12]}, "time": {"t_final": 1.0, "dt": 0.1}},
    "schrodinger": {"frames": 4, "grid": {"cells": 64}, "time": {"t_final": 0.5, "dt": 0.01}},
    "evolution": {"frames": 4, "population": {"size": 400, "steps": 40}},
}


def small(name: str) -> dict:
    data = tomllib.loads(example_text(name))
    for key, value in SMALL[name].items():
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_from_the_command_line(name, tmp_path):
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(small(name)))
    out = tmp_path / "run"
    result = runner.invoke(app, ["simulate", str(path), "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    frames = SMALL[name]["frames"]
    assert payload["frames"] == frames and payload["interrupted"] is False
    for f in ("config.toml", "fields.nc", "density.png", "summary.png", "density.gif", "results.json"):
        assert (out / f).stat().st_size > 200, f
    # the resolved config is complete: it validates alone and equals the run's settings
    assert parse_config(tomllib.loads((out / "config.toml").read_text())) == parse_config(small(name))
    with xr.open_dataset(out / "fields.nc", engine="h5netcdf") as ds:
        dens = ds["density"]
        assert dens.sizes["time"] == frames and ds["time"].attrs["units"]
        space = [d for d in dens.dims if d != "time"]
        assert all(ds[d].attrs["units"] == "parameter units" for d in space)
        assert ds.attrs["simulator"] == payload["simulator"] and ds.attrs["seed"] == 0
        # a density integrates to one over its coordinates (trapezoid rule on the saved coordinates: an independent
        # quadrature of what the solver/histogram wrote; its error for these smooth fields is ≲ h², here < 2 %;
        # walker histograms lose the walkers outside the 0.1–99.9 % range: ≤ 0.2 %, plus the same rule error)
        mass = dens.isel(time=-1)
        for d in space:
            mass = mass.integrate(d)
        weight = 1.0
        if "sqrt_g" in ds:  # |ψ|² is a density with respect to √g dq (3.4)
            weight = float(ds["sqrt_g"].mean())
        assert abs(float(mass) * weight - 1.0) < 0.03


def test_langevin_walkers_start_from_the_configured_gaussian(tmp_path):
    cfg = parse_config(small("langevin"))
    ds = simulate(cfg).dataset
    q0 = ds["position"].isel(time=0, axis=0).values
    # mean of 400 N(−1, 0.2²) draws: standard error 0.2/√400 = 0.01; 5 standard errors
    assert abs(q0.mean() + 1.0) < 5 * 0.01
    assert ds["time"].values[-1] == 40.0  # the discrete dynamics (2.5): one optimizer step per unit time


def test_schrodinger_hamiltonian_is_derived_from_learning(tmp_path):
    """ħ = 2√(γ/β), m = 1/γ (3.12)–(3.13) and, for H̄ = ½kq² and a constant metric g = κ (α = 1), (3.6) gives
    V = (γ/2) k² q²/g − (γ/β) k/g — computed here by hand, not by the library."""
    data = small("schrodinger")
    data["loss"]["curvature"] = 2.0
    data["learning"].update({"kappa": 1.5, "gamma": 0.3, "beta": 5.0})
    ds = simulate(parse_config(data)).dataset
    gamma, beta, k, g = 0.3, 5.0, 2.0, 1.5
    assert ds.attrs["hbar"] == pytest.approx(2 * math.sqrt(gamma / beta), rel=1e-15)
    assert ds.attrs["mass"] == pytest.approx(1 / gamma, rel=1e-15)
    q = ds["q"].values
    expected = 0.5 * gamma * k**2 * q**2 / g - (gamma / beta) * k / g
    np.testing.assert_allclose(ds["potential"].values, expected, rtol=1e-12, atol=1e-12)
    # split-step is unitary: the norm drifts by round-off only (≈ 50 steps × a few ulp)
    assert np.abs(ds["norm"].values - 1.0).max() < 1e-12


def test_schrodinger_crank_nicolson_with_q_dependent_metric():
    data = small("schrodinger")
    data["learning"]["kappa_growth"] = 0.2
    data["time"]["method"] = "crank-nicolson"
    ds = simulate(parse_config(data)).dataset
    q = ds["q"].values
    # g = κ(q) = 1 + 0.2 q² (α = 1, 1-D): √g is its square root at every node
    np.testing.assert_allclose(ds["sqrt_g"].values, np.sqrt(1.0 + 0.2 * q**2), rtol=1e-14)
    assert np.abs(ds["norm"].values - ds["norm"].values[0]).max() < 1e-12  # Cayley transform: unitary in √g dq


def test_evolution_records_the_effective_metric_of_4_10():
    data = small("evolution")
    ds = simulate(parse_config(data)).dataset
    beta_s, jump = data["population"]["beta_s"], data["population"]["jump"]
    assert ds.attrs["effective_inverse_metric"] == pytest.approx(beta_s * jump**2 / 4, rel=1e-15)  # sigmoid c = ¼


def test_fokker_planck_conserves_mass():
    ds = simulate(parse_config(small("fokker-planck-1d"))).dataset
    mass = ds["mass"].values
    # the scheme is conservative (columns of the generator sum to 0): mass moves by round-off only
    assert np.abs(mass - 1.0).max() < 1e-12


def test_ctrl_c_keeps_the_frames_computed(tmp_path):
    cfg = parse_config(small("fokker-planck-1d") | {"frames": 6})

    def interrupt(k, total):
        if k == 2:
            raise KeyboardInterrupt

    outcome = simulate(cfg, on_frame=interrupt)
    assert outcome.interrupted and outcome.frames == 3
    payload = write_run(cfg, outcome, tmp_path / "run", animate=False)
    assert payload["interrupted"] is True and payload["frames"] == 3 and payload["frames_requested"] == 6
    with xr.open_dataset(tmp_path / "run" / "fields.nc", engine="h5netcdf") as ds:
        assert ds.sizes["time"] == 3


def test_cli_ctrl_c_exits_130_and_keeps_the_folder(tmp_path, monkeypatch):
    import geodyn.simulate.runners as runners

    real = runners.run_langevin

    def stopped(cfg, on_frame=None):
        def hook(k, total):
            if on_frame:
                on_frame(k, total)
            if k == 1:
                raise KeyboardInterrupt

        return real(cfg, hook)

    monkeypatch.setitem(runners.RUNNERS, "langevin", stopped)
    path = tmp_path / "l.toml"
    path.write_text(tomli_w.dumps(small("langevin")))
    result = runner.invoke(app, ["simulate", str(path), "--out", str(tmp_path / "run"), "--no-animate"])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "kept 2 of 4 frames" in result.output
    assert json.loads((tmp_path / "run" / "results.json").read_text())["interrupted"] is True


def test_out_that_is_a_file_is_one_line_error(tmp_path):
    path = tmp_path / "l.toml"
    path.write_text(tomli_w.dumps(small("langevin")))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["simulate", str(path), "--out", str(blocker / "run")])
    assert result.exit_code == 2 and str(blocker) in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("schrodinger", {"grid": {"domain": [[-6.0, 6.0], [-6.0, 6.0]], "cells": [16, 16]}}),
        ("schrodinger", {"grid": {"domain": [[-6.0, 6.0], [-6.0, 6.0]], "cells": [16, 16]},
                         "learning": {"kappa": [1.0, 2.0]}, "time": {"method": "crank-nicolson"}}),
        ("langevin", {"walkers": {"dim": 2, "integrator": "euler-maruyama", "dt": 0.1},
                      "learning": {"kappa_growth": 0.5}, "initial": {"center": [-1.0, 0.5]}}),
        ("evolution", {"population": {"dim": 2, "reproduction": "moran", "acceptance": "metropolis"}}),
    ],
    ids=["schrodinger-2d", "schrodinger-2d-cn", "langevin-2d-ito", "evolution-2d-moran"],
)  # fmt: skip
def test_variants_run(name, edit):
    data = small(name)
    for key, value in edit.items():
        data[key].update(value)
    ds = simulate(parse_config(data)).dataset
    assert np.isfinite(ds["density"].values).all() and ds.sizes["time"] == data["frames"]
    if name == "schrodinger":
        # unitary in the √g-weighted norm for both methods (round-off only over 50 steps)
        assert np.abs(ds["norm"].values - ds["norm"].values[0]).max() < 1e-12
        assert ds["density"].dims == ("time", "q1", "q2")
    else:
        assert ds["position"].sizes["axis"] == 2

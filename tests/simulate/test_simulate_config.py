"""The TOML config of `geodyn simulate`: bad values are one-line errors naming the key and the value (exit 2)."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from geodyn.cli import app
from geodyn.simulate import EXAMPLES, ConfigError, example_text, parse_config

runner = CliRunner()


def _example(name: str) -> dict:
    return tomllib.loads(example_text(name))


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        ("langevin", {"learning": {"gamma": -1.0}}, "learning.gamma = -1.0"),
        ("langevin", {"learning": {"law": "cubic"}}, "learning.law = 'cubic'"),
        ("langevin", {"walkers": {"count": 0}}, "walkers.count = 0"),
        ("langevin", {"walkers": {"cuont": 10}}, "walkers.cuont: unknown key"),
        ("langevin", {"loss": {"curvature": [1.0, 2.0]}}, "loss.curvature = [1.0, 2.0] has 2 entries for a 1-D"),
        ("fokker-planck-1d", {"grid": {"domain": [2.0, 1.0]}}, "grid.domain = [2.0, 1.0]"),
        ("fokker-planck-2d", {"grid": {"cells": [10, 10, 10]}}, "grid.cells = [10, 10, 10]"),
        ("fokker-planck-1d", {"time": {"scheme": "rk4"}}, "time.scheme = 'rk4'"),
        ("schrodinger", {"learning": {"kappa_growth": 0.5}}, "time.method = 'split-step' needs a constant"),
        ("schrodinger", {"learning": {"variant": "C"}}, "learning.variant = 'C'"),
        ("evolution", {"population": {"beta_s": "strong"}}, "population.beta_s = 'strong'"),
        ("evolution", {"frames": 1}, "frames = 1"),
    ],
)
def test_bad_value_names_key_and_value(name, edit, expected):
    data = _example(name)
    for section, values in edit.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_unknown_simulator_lists_the_known_ones():
    with pytest.raises(ConfigError, match="simulator = 'quantum': must be one of 'langevin'"):
        parse_config({"simulator": "quantum"})
    with pytest.raises(ConfigError, match="simulator: missing"):
        parse_config({"seed": 1})


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_validates_and_is_in_examples_folder(name):
    from pathlib import Path

    cfg = parse_config(_example(name))
    assert cfg.simulator == name.removesuffix("-1d").removesuffix("-2d")
    on_disk = Path(__file__).resolve().parents[2] / "examples" / f"{name}.toml"
    assert on_disk.read_text() == example_text(name)


def test_cli_config_error_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(example_text("langevin").replace("gamma = 0.05", "gamma = 0"))
    result = runner.invoke(app, ["simulate", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "learning.gamma = 0: Input should be greater than 0" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # validated before anything was written


def test_cli_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("simulator = \n")
    result = runner.invoke(app, ["simulate", str(path)])
    assert result.exit_code == 2 and "is not valid TOML" in result.output
    result = runner.invoke(app, ["simulate", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "cannot read config" in result.output and "Traceback" not in result.output


def test_example_option_writes_a_config_to_start_from(tmp_path):
    target = tmp_path / "mine.toml"
    result = runner.invoke(app, ["simulate", str(target), "--example", "schrodinger"])
    assert result.exit_code == 0, result.output
    assert target.read_text() == example_text("schrodinger")
    again = runner.invoke(app, ["simulate", str(target), "--example", "schrodinger"])
    assert again.exit_code == 2 and "exists" in again.output  # never overwrites a user's file
    bad = runner.invoke(app, ["simulate", "--example", "nope"])
    assert bad.exit_code == 2 and "unknown example 'nope'" in bad.output

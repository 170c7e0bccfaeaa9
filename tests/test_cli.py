"""The `geodyn` command end to end."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import geodyn
from geodyn.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"geodyn {geodyn.__version__}"


def test_reproduce_exact_limits_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["reproduce", "--quick", "--only", "exact-limits", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.stdout
    results = json.loads((out / "results.json").read_text())
    (exp,) = results["experiments"]
    assert exp["name"] == "exact-limits" and exp["verdict"] == "reproduced"
    names = {c["name"].split(":")[0] for c in exp["checks"]}
    assert {"sgd (momentum 0.9)", "rmsprop", "adam", "adamw", "adabelief", "adabelief (decoupled)"} <= names
    assert all(c["value"] <= 1e-10 for c in exp["checks"])
    assert (out / "experiments" / "exact-limits" / "deviation.png").exists()
    assert "exact-limits" in (out / "report.html").read_text()

    again = runner.invoke(app, ["reproduce", "--only", "exact-limits", "--out", str(out)])
    assert again.exit_code == 0
    assert "kept from an earlier run" in again.output


def test_json_output(tmp_path):
    out = tmp_path / "run"
    runner.invoke(app, ["reproduce", "--only", "exact-limits", "--out", str(out), "--quiet"])
    result = runner.invoke(app, ["reproduce", "--only", "exact-limits", "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 0
    from geodyn.experiments.runner import SCHEMA_VERSION

    assert json.loads(result.stdout)["schema_version"] == SCHEMA_VERSION


def test_unknown_experiment_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["reproduce", "--only", "no-such-claim", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown experiment 'no-such-claim'" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_bench_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bench.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["reproduce", "--bench", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "cannot read --bench" in result.output and "Traceback" not in result.output


def test_regimes_command(tmp_path):
    import matplotlib.pyplot as plt

    plt.close("all")
    result = runner.invoke(
        app, ["regimes", "--steps", "20", "--samples", "64", "--out", str(tmp_path), "--json", "--by", "eigen"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["by"] == "eigen" and payload["metric"].startswith("ThreeRegime")
    total = payload["fractions"]["all"]
    assert abs(sum(total.values()) - 1.0) < 1e-12
    assert (tmp_path / "regimes.png").stat().st_size > 1000
    band = payload["band"]  # never a bare null: the share it refers to and why it may be empty
    assert band["share"] == 0.9 and band["note"]
    assert band["interval"] is None and band["intermediate_interval"] == [1e-8, 1e-4]  # ε = 1e-4, ζ = 1e2 defaults
    assert payload["spectrum"] == "eigenvalues of kappa/b"
    assert plt.get_fignums() == []  # the figure was closed after saving


def test_regimes_bad_option_is_one_line():
    result = runner.invoke(app, ["regimes", "--zeta", "nan"])
    assert result.exit_code == 2
    assert "zeta must be a finite number" in result.output and "Traceback" not in result.output


# -- conventions ---------------------------------------------------------------------------------------------------
def _options():
    """Every option of every command (click objects behind the Typer app)."""
    import typer

    root = typer.main.get_command(app)
    for name, cmd in [("geodyn", root), *root.commands.items()]:
        ctx = cmd.context_class(cmd, info_name=name)
        for param in cmd.get_params(ctx):
            if param.param_type_name == "option":
                yield name, param, param.get_help_record(ctx)


def test_every_option_has_a_one_line_description_with_its_default():
    seen = 0
    for command, param, (_, text) in _options():
        if param.name in ("help", "version"):  # actions, not settings
            continue
        seen += 1
        assert text and "\n" not in (param.help or ""), (command, param.opts)
        assert "[default: " in text, (command, param.opts, text)
    assert seen >= 30


def test_boolean_flags_are_shown_as_flags():
    for command in ("reproduce", "bench", "regimes", "simulate"):
        result = runner.invoke(app, [command, "--help"], terminal_width=100)
        assert result.exit_code == 0
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output, command
    assert "  --quiet  " in runner.invoke(app, ["reproduce", "--help"]).output.replace("\n", " ")


def test_list_prints_whole_names_at_80_columns():
    from geodyn.experiments import REGISTRY

    result = runner.invoke(app, ["reproduce", "--list"], terminal_width=80, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    cells = {c.strip() for line in result.output.splitlines() for c in line.split("│")}
    for name in REGISTRY.names():
        assert name in cells, name  # a whole cell: copyable into --only


def test_list_json():
    from geodyn.experiments import REGISTRY

    result = runner.invoke(app, ["reproduce", "--list", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(REGISTRY.names())
    assert all(r["claim"] and r["equations"] for r in rows)
    bench = json.loads(runner.invoke(app, ["bench", "--list", "--json"]).stdout)
    assert {"rosenbrock-2d", "mlp-digits"} <= {t["name"] for t in bench["tasks"]}
    assert "adam" in {o["name"] for o in bench["optimizers"]}


def test_python_dash_m_geodyn():
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(geodyn.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "geodyn", "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"geodyn {geodyn.__version__}"

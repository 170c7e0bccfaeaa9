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
    assert json.loads(result.stdout)["schema_version"] == 1


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
    result = runner.invoke(
        app, ["regimes", "--steps", "20", "--samples", "64", "--out", str(tmp_path), "--json", "--by", "eigen"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["by"] == "eigen" and payload["metric"].startswith("ThreeRegime")
    total = payload["fractions"]["all"]
    assert abs(sum(total.values()) - 1.0) < 1e-12
    assert (tmp_path / "regimes.png").stat().st_size > 1000


def test_regimes_bad_option_is_one_line():
    result = runner.invoke(app, ["regimes", "--zeta", "nan"])
    assert result.exit_code == 2
    assert "zeta must be a finite number" in result.output and "Traceback" not in result.output

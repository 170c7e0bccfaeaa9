"""`geodyn bench`: one-line errors naming the valid choices, a small end-to-end run, resumption by rerunning."""

import json

import pytest
from typer.testing import CliRunner

from geodyn.bench import OPTIMIZERS, TASKS
from geodyn.cli import app

runner = CliRunner()


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_unknown_task_lists_the_valid_ones(tmp_path):
    line = _one_line_error(runner.invoke(app, ["bench", "--tasks", "mnist", "--out", str(tmp_path)]))
    assert "'mnist'" in line and all(t in line for t in TASKS)


def test_unknown_optimizer_lists_the_valid_ones(tmp_path):
    result = runner.invoke(app, ["bench", "--optimizers", "adamw,lamb", "--out", str(tmp_path)])
    line = _one_line_error(result)
    assert "'lamb'" in line and all(o in line for o in OPTIMIZERS)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--workers", "0"], "--workers"),
        (["--backend", "mpi"], "'mpi'"),
        (["--address", "ray://x:1"], "--backend ray"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, needle):
    line = _one_line_error(runner.invoke(app, ["bench", "--out", str(tmp_path), *args]))
    assert needle in line


def test_list_shows_tasks_and_optimizers():
    result = runner.invoke(app, ["bench", "--list"])
    assert result.exit_code == 0
    assert "rosenbrock-64d" in result.output and "schedule-free-adamw" in result.output


def test_small_run_end_to_end_and_rerun_resumes(tmp_path, toy_task):
    args = ["bench", "--tasks", toy_task, "--optimizers", "adamw", "--optimizers", "sgd", "--workers", "1"]
    args += ["--out", str(tmp_path), "--quiet"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "1.00" in first.output and "report:" in first.output  # the ratio table: adamw against itself
    results = json.loads((tmp_path / "results.json").read_text())
    assert {p["optimizer"] for p in results["pairs"]} == {"adamw", "sgd"}
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")}
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["pairs"] == results["pairs"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").rglob("*.json")} == stamp  # nothing rerun


class _Planned(Exception):
    """Raised by the stand-in for run_bench: carries what the CLI asked it to run."""


def _planned_optimizers(monkeypatch, tmp_path, *args):
    import geodyn.bench

    def plan(out, *, size, optimizers, **kwargs):
        raise _Planned(size, list(optimizers))

    monkeypatch.setattr(geodyn.bench, "run_bench", plan)
    result = runner.invoke(app, ["bench", "--out", str(tmp_path), *args])
    assert isinstance(result.exception, _Planned), result.output
    return result.exception.args


def test_quick_default_is_the_curated_set_and_all_or_full_run_every_optimizer(monkeypatch, tmp_path):
    from geodyn.bench.optimizers import QUICK_OPTIMIZERS, available

    size, chosen = _planned_optimizers(monkeypatch, tmp_path)
    assert size == "quick" and chosen == [o for o in QUICK_OPTIMIZERS if o in available()]
    assert chosen[0] == "adamw" and len(chosen) < len(available())
    assert _planned_optimizers(monkeypatch, tmp_path, "--optimizers", "all") == ("quick", available())
    assert _planned_optimizers(monkeypatch, tmp_path, "--full") == ("full", available())
    assert _planned_optimizers(monkeypatch, tmp_path, "--optimizers", "sgd,adamw") == ("quick", ["sgd", "adamw"])


def test_all_mixed_with_names_is_a_one_line_error(tmp_path):
    line = _one_line_error(runner.invoke(app, ["bench", "--optimizers", "all,sgd", "--out", str(tmp_path)]))
    assert "--optimizers all" in line


class _FakeResults:
    """Just what the ratio table reads from BenchResults."""

    reference = "adamw"
    tasks = list(TASKS)
    optimizers = ["adamw", "geodyn-three-regime-kron", "schedule-free-adamw"]

    def ratio_text(self, task, optimizer, score="steps"):
        return "reached, ref ∞" if task == "byte-lm" and optimizer != "adamw" else f"{len(task) / 10:.2f}"


@pytest.mark.parametrize("width", [60, 80, 120])
def test_ratio_table_splits_its_task_columns_to_fit_the_terminal(width):
    import io

    from rich.console import Console

    from geodyn.cli import _ratio_tables

    results = _FakeResults()
    tables = _ratio_tables(results, width)
    assert len(tables) > 1  # nine task columns never fit 120 characters
    shown = []
    for table in tables:
        console = Console(width=width, file=io.StringIO(), record=True)
        console.print(table)
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        tasks = [c.header for c in table.columns[1:]]
        shown += tasks
        for task in tasks:  # headers and cells whole, not folded into slivers
            assert task in text and all(results.ratio_text(task, o) in text for o in results.optimizers)
        assert all(o in text for o in results.optimizers)
    assert shown == results.tasks
    assert len(_ratio_tables(results, 400)) == 1

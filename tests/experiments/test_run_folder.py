"""Run folders you can trust: a cached result is reused only under the same configuration (experiment, size, seed,
geodyn version, code fingerprint); `--only` into an existing folder merges; an unusable `--out` is a one-line error
before any work, for reproduce, bench and regimes."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

import geodyn
import geodyn.bench
import geodyn.experiments
import geodyn.experiments.runner as runner_module
import geodyn.tasks
from geodyn.cli import app
from geodyn.experiments.registry import Check, Context, Control, Outcome, Registry, experiment
from geodyn.experiments.runner import run_experiments

cli = CliRunner()


def toy_registry(calls: list[str]) -> Registry:
    reg = Registry()
    for name in ("alpha", "beta", "gamma"):

        @experiment(name, equations=("2.2",), statement=f"claim {name}", section="S", quick={}, full={}, registry=reg)
        def run(ctx: Context, name=name) -> Outcome:
            calls.append(name)
            value = 1.0 + 0.001 * ctx.seed  # the seed reaches the experiment
            wrong = Control("shifted", "moved by 2", [Check("v", value + 2, 0.5, expected=1.0)])
            return Outcome(checks=[Check("v", value, 0.5, expected=1.0)], controls=[wrong], data={"seed": ctx.seed})

    return reg


def result_json(out, name):
    return json.loads((out / "experiments" / name / "result.json").read_text())


def test_result_records_its_configuration(tmp_path):
    run_experiments(toy_registry([]), tmp_path, seed=7, only=["alpha"])
    raw = result_json(tmp_path, "alpha")
    assert raw["seed"] == 7 and raw["size"] == "quick" and raw["geodyn_version"] == geodyn.__version__
    assert len(raw["code_fingerprint"]) == 16  # sha256 of this module's source, truncated


def test_seed_change_invalidates_the_cache(tmp_path):
    calls: list[str] = []
    run_experiments(toy_registry(calls), tmp_path, seed=-5, only=["alpha"])
    calls.clear()
    run = run_experiments(toy_registry(calls), tmp_path, seed=0, only=["alpha"])
    assert calls == ["alpha"]  # rerun, not "kept from an earlier run"
    assert result_json(tmp_path, "alpha")["seed"] == 0 and run.experiments[0].data == {"seed": 0}
    calls.clear()
    run_experiments(toy_registry(calls), tmp_path, seed=0, only=["alpha"])
    assert calls == []  # same configuration: kept


def test_version_or_code_change_invalidates_the_cache(tmp_path, monkeypatch):
    calls: list[str] = []
    run_experiments(toy_registry(calls), tmp_path, only=["alpha"])
    calls.clear()
    monkeypatch.setattr(geodyn, "__version__", "9.9.9")
    run_experiments(toy_registry(calls), tmp_path, only=["alpha"])
    assert calls == ["alpha"] and result_json(tmp_path, "alpha")["geodyn_version"] == "9.9.9"
    calls.clear()
    monkeypatch.setattr(runner_module, "code_fingerprint", lambda exp: "0123456789abcdef")
    run_experiments(toy_registry(calls), tmp_path, only=["alpha"])
    assert calls == ["alpha"] and result_json(tmp_path, "alpha")["code_fingerprint"] == "0123456789abcdef"


def test_only_into_an_existing_folder_merges(tmp_path):
    calls: list[str] = []
    run_experiments(toy_registry(calls), tmp_path)
    calls.clear()
    run = run_experiments(toy_registry(calls), tmp_path, only=["beta"], force=True)
    assert calls == ["beta"]
    names = [r.name for r in run.experiments]
    assert names == ["alpha", "beta", "gamma"]  # registry order, all finished experiments of the folder
    raw = json.loads((tmp_path / "results.json").read_text())
    assert [e["name"] for e in raw["experiments"]] == names and raw["missing"] == []
    html = (tmp_path / "report.html").read_text()
    for name in names:
        assert f'data-experiment="{name}"' in html
    # a full-size run in the same folder does not show the quick results as its own
    full = run_experiments(toy_registry(calls), tmp_path, size="full", only=["gamma"])
    assert [r.name for r in full.experiments] == ["gamma"]


# -- through the command line -------------------------------------------------------------------------------------
@pytest.fixture
def toy_cli(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(geodyn.experiments, "REGISTRY", toy_registry(calls))
    return calls


def test_cli_seed_change_is_not_kept(tmp_path, toy_cli):
    out = str(tmp_path / "run")
    first = cli.invoke(app, ["reproduce", "--only", "alpha", "--seed", "-5", "--out", out])
    assert first.exit_code == 0, first.output
    again = cli.invoke(app, ["reproduce", "--only", "alpha", "--out", out])
    assert again.exit_code == 0 and "kept from an earlier run" not in again.output
    assert toy_cli == ["alpha", "alpha"]
    same = cli.invoke(app, ["reproduce", "--only", "alpha", "--out", out])
    assert "kept from an earlier run" in same.output and toy_cli == ["alpha", "alpha"]


def test_cli_only_merges_into_the_report(tmp_path, toy_cli):
    out = tmp_path / "run"
    assert cli.invoke(app, ["reproduce", "--out", str(out), "--quiet"]).exit_code == 0
    result = cli.invoke(app, ["reproduce", "--only", "gamma", "--force", "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in json.loads(result.stdout)["experiments"]] == ["alpha", "beta", "gamma"]


def _blocked_paths(tmp_path):
    """An --out under a file, one under /proc (no folder can be made there, even by root) and one under /sys."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return [(blocker / "run", str(blocker)), ("/proc/geodyn-no-such/run", "/proc/geodyn-no-such/run")] + (
        [("/sys/geodyn-test-run", "/sys/geodyn-test-run")] if os.path.isdir("/sys") else []
    )


def _assert_one_line(result, path: str) -> None:
    assert result.exit_code == 2, result.output
    assert path in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("command", ["reproduce", "bench", "regimes"])
def test_unwritable_out_is_one_line_before_any_work(command, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started although --out is unusable")

    monkeypatch.setattr(runner_module, "run_experiments", no_work)
    monkeypatch.setattr(geodyn.bench, "run_bench", no_work)
    monkeypatch.setattr(geodyn.tasks, "digits", no_work)
    extra = {"reproduce": ["--only", "exact-limits"], "bench": ["--tasks", "rosenbrock-2d"], "regimes": []}[command]
    for out, named in _blocked_paths(tmp_path):
        result = cli.invoke(app, [command, *extra, "--out", str(out)])
        _assert_one_line(result, named)


def test_read_only_folder_is_one_line(tmp_path, monkeypatch):
    """Tests run as root, which ignores permission bits: a read-only file system is simulated by the probe write
    failing with EROFS, as the kernel would report it."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    for command in ("reproduce", "bench", "regimes"):
        result = cli.invoke(app, [command, "--out", str(tmp_path / "ro")])
        _assert_one_line(result, str(tmp_path / "ro"))
        assert "Read-only file system" in result.output
    permission = OSError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "ro"))
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(permission))
    result = cli.invoke(app, ["reproduce", "--out", str(tmp_path / "ro")])
    _assert_one_line(result, str(tmp_path / "ro"))
    assert "Permission denied" in result.output

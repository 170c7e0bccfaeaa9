"""Registry, verdict logic and the run folder (results.json, figures, report, interrupt, rerun)."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pytest

from geodyn.experiments import REGISTRY
from geodyn.experiments.registry import (
    Check,
    Context,
    Control,
    Finding,
    Outcome,
    Registry,
    Verdict,
    experiment,
    verdict_of,
)
from geodyn.experiments.runner import SCHEMA_VERSION, load_results, run_experiments


def test_check_two_sided_and_one_sided():
    assert Check("a", 1.05, 0.1, expected=1.0).passed
    assert not Check("a", 1.2, 0.1, expected=1.0).passed
    assert Check("b", 1e-12, 1e-10).passed
    assert not Check("b", 1e-9, 1e-10).passed
    assert not Check("c", math.nan, 1.0, expected=0.0).passed


def test_verdict_logic():
    ok, bad = Check("ok", 0.0, 1.0, expected=0.0), Check("bad", 5.0, 1.0, expected=0.0)
    rejected, accepted = Control("wrong", "a wrong variant", [ok, bad]), Control("lucky", "passes too", [ok])
    assert rejected.rejected and not accepted.rejected
    assert not Control("empty", "no checks", []).rejected  # nothing measured cannot reject anything
    assert verdict_of([ok, ok], [rejected]) is Verdict.REPRODUCED
    assert verdict_of([ok, ok], [rejected, accepted]) is Verdict.INCONCLUSIVE
    assert verdict_of([ok, ok]) is Verdict.INCONCLUSIVE  # no control: cannot tell right from wrong
    assert verdict_of([ok, bad], [rejected]) is Verdict.PARTLY
    assert verdict_of([bad], [rejected]) is Verdict.NOT_REPRODUCED
    assert verdict_of([], [rejected]) is Verdict.NOT_REPRODUCED
    outcome = Outcome(checks=[ok, bad], controls=[accepted])
    assert outcome.verdict is Verdict.PARTLY
    assert len(outcome.failed()) == 2 and "lucky" in outcome.failed()[1]


def test_finding_is_established_only_by_passing_checks():
    ok, bad = Check("ok", 0.0, 1.0, expected=0.0), Check("bad", 5.0, 1.0, expected=0.0)
    assert Finding("t", "s", "d", [ok]).established
    assert not Finding("t", "s", "d", [ok, bad]).established
    assert not Finding("t", "s", "d", []).established


def test_registry_refuses_duplicates_and_missing_sizes():
    reg = Registry()

    @experiment("x", equations=("1",), statement="s", section="S", quick={}, full={}, registry=reg)
    def _x(ctx):
        return Outcome(checks=[])

    with pytest.raises(ValueError, match="registered twice"):
        experiment("x", equations=("1",), statement="s", section="S", quick={}, full={}, registry=reg)(_x.run)
    with pytest.raises(KeyError, match="unknown experiment 'y'"):
        reg["y"]
    assert reg.names() == ["x"]


def test_every_registered_experiment_declares_a_claim():
    assert len(REGISTRY) >= 2
    for exp in REGISTRY:
        assert exp.claim.equations and exp.claim.statement and exp.claim.section
        assert set(exp.sizes) == {"quick", "full"}


def _toy_registry(interrupt_at: str | None = None, calls: list[str] | None = None) -> Registry:
    reg = Registry()
    calls = calls if calls is not None else []

    def make(name: str, value: float):
        @experiment(
            name,
            equations=("2.2",),
            statement=f"claim {name}",
            section="Sec. 2 Learning as a stochastic process",
            quick={"n": 3},
            full={"n": 30},
            registry=reg,
        )
        def run(ctx: Context) -> Outcome:
            calls.append(name)
            if name == interrupt_at:
                raise KeyboardInterrupt
            fig, ax = plt.subplots()
            ax.plot(range(ctx.params["n"]))
            wrong = Check("value of a wrong variant", value + 2.0, 0.5, expected=1.0)
            return Outcome(
                checks=[Check("value", value, 0.5, expected=1.0)],
                controls=[Control("shifted", "the value moved by 2", [wrong])],
                findings=[Finding(f"finding of {name}", "a statement", "d = 0", [Check("d", 0.0, 0.0, 0.0)])],
                figures={"line": fig},
                data={"n": ctx.params["n"]},
                summary=f"toy {name}",
            )

    make("first", 1.0)
    make("second", 3.0)
    make("third", 1.2)
    return reg


def test_run_folder_contents(tmp_path):
    run = run_experiments(_toy_registry(), tmp_path, size="quick")
    assert [r.verdict for r in run.experiments] == ["reproduced", "not reproduced", "reproduced"]
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["size"] == "quick"
    assert raw["experiments"][0]["data"] == {"n": 3}
    assert raw["experiments"][0]["controls"][0]["rejected"] is True
    assert raw["experiments"][0]["controls"][0]["checks"][0]["value"] == 3.0
    assert raw["experiments"][0]["findings"][0]["established"] is True
    assert (tmp_path / "experiments" / "first" / "line.png").stat().st_size > 1000
    assert "size" in (tmp_path / "config.toml").read_text()
    html = (tmp_path / "report.html").read_text()
    for name in ("first", "second", "third"):
        assert f'data-experiment="{name}"' in html
    assert "the value moved by 2" in html and "finding of first" in html and 'id="findings"' in html
    assert "data:image/png;base64," in html
    assert load_results(tmp_path).experiments[1].verdict == "not reproduced"


def test_interrupt_keeps_finished_and_rerun_skips_them(tmp_path):
    calls: list[str] = []
    run = run_experiments(_toy_registry(interrupt_at="second", calls=calls), tmp_path)
    assert run.interrupted and run.missing == ["second", "third"]
    assert [r.name for r in run.experiments] == ["first"]
    html = (tmp_path / "report.html").read_text()
    assert "interrupted" in html and "second, third" in html

    calls.clear()
    rerun = run_experiments(_toy_registry(calls=calls), tmp_path)
    assert calls == ["second", "third"]  # "first" was kept
    assert not rerun.interrupted and rerun.missing == []

    calls.clear()
    run_experiments(_toy_registry(calls=calls), tmp_path, force=True)
    assert calls == ["first", "second", "third"]

    calls.clear()
    run_experiments(_toy_registry(calls=calls), tmp_path, size="full", only=["third"])
    assert calls == ["third"]  # a finished quick result does not stand in for the full size

    # a result written by an older schema (no controls) is run again, never shown with its old verdict
    path = tmp_path / "experiments" / "first" / "result.json"
    raw = json.loads(path.read_text())
    raw.pop("schema_version")
    path.write_text(json.dumps(raw))
    calls.clear()
    run_experiments(_toy_registry(calls=calls), tmp_path, only=["first", "second"])
    assert calls == ["first"]


def test_failing_experiment_is_reported_not_fatal(tmp_path):
    reg = Registry()

    @experiment("boom", equations=("9.9",), statement="fails", section="S", quick={}, full={}, registry=reg)
    def boom(ctx):
        raise RuntimeError("deliberate failure")

    @experiment("needs", equations=("9.9",), statement="imports", section="S", quick={}, full={}, registry=reg)
    def needs(ctx):
        import geodyn_no_such_module  # noqa: F401

    run = run_experiments(reg, tmp_path)
    assert run.experiments[0].status == "error" and run.experiments[0].verdict == "error"
    assert run.experiments[1].verdict == "error" and run.experiments[1].error.startswith("missing dependency")
    assert "deliberate failure" in run.experiments[0].error
    assert not (tmp_path / "experiments" / "boom" / "result.json").exists()  # rerun will try again
    assert "deliberate failure" in (tmp_path / "report.html").read_text()


def test_load_results_refuses_other_schema(tmp_path):
    run_experiments(_toy_registry(), tmp_path, only=["first"])
    raw = json.loads((tmp_path / "results.json").read_text())
    raw["schema_version"] = 99
    (tmp_path / "results.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="schema_version=99"):
        load_results(tmp_path)


def test_checks_with_numpy_values_serialise_to_json():
    import json

    import numpy as np

    from geodyn.experiments.registry import Check

    c = Check("numpy scalars", np.float64(0.5), np.float32(1.0), expected=np.float64(0.25))
    raw = json.loads(json.dumps(c.as_dict()))
    assert raw == dict(name="numpy scalars", value=0.5, expected=0.25, tolerance=1.0, passed=True, note="")

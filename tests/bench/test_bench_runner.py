"""The bench runner: protocol (tuning then fresh seeds), results file, resumption after an interrupt, backends."""

import json
import math

import pytest

from geodyn.backends import PoolBackend
from geodyn.bench import OPTIMIZERS, SCHEMA_VERSION, SEEDS, TUNING_SEED, lr_grid, run_bench, summarise
from geodyn.bench.cell import Cell, run_cell
from geodyn.bench.protocol import HOLD
from geodyn.bench.runner import load_cells, tuning_state

OPTS = ["adamw", "sgd"]


def _curves(cells):
    return {k: (r.status, r.steps, r.values, r.steps_to_target) for k, r in cells.items()}


def test_protocol_tunes_on_the_grid_then_scores_fresh_seeds(tmp_path, toy_task):
    seen = []
    res = run_bench(tmp_path, size="quick", tasks=[toy_task], optimizers=OPTS, on_cell=lambda r, c: seen.append(r))
    grid, seeds = lr_grid("quick"), SEEDS["quick"]
    for opt in OPTS:
        pair = res.pair(toy_task, opt)
        values = OPTIMIZERS[opt].values
        tuned = [r for r in seen if r.cell.optimizer == opt and r.cell.seed == TUNING_SEED]
        trials = {(r.cell.lr, r.cell.hyper) for r in tuned}
        assert {(lr, h) for lr in grid for h in values} <= trials  # the full grid × the optimizer's own values
        extra = sorted({lr for lr, _ in trials} - set(grid))  # half-decades added beyond an edge, by both values
        assert len(trials) == (len(grid) + len(extra)) * len(values) == len(tuned)
        assert len(extra) == pair.extensions
        best = min(tuned, key=lambda r: (r.steps_to_target, r.best_value, r.cell.lr))
        assert (pair.best_lr, pair.best_hyper) == (best.cell.lr, best.cell.hyper)
        assert all(r.cell.split == "validation" for r in tuned)
        scored = [r for r in seen if r.cell.optimizer == opt and r.cell.seed != TUNING_SEED]
        assert sorted(r.cell.seed for r in scored) == sorted(seeds)
        assert all((r.cell.lr, r.cell.hyper) == (best.cell.lr, best.cell.hyper) for r in scored)
        assert all(r.cell.split == "test" for r in scored)
        steps = sorted(r.steps_to_target for r in scored)
        assert pair.steps.low == steps[0] and pair.steps.high == steps[-1]
    raw = json.loads((tmp_path / "results.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    assert raw["protocol"]["lr_grid"] == list(grid)
    assert raw["protocol"]["hold"] == HOLD
    assert raw["ratios_steps"][toy_task]["adamw"] == 1.0
    sgd = next(p for p in raw["pairs"] if p["optimizer"] == "sgd")
    assert sgd["paired_vs_reference"] is not None and sgd["hyper"] == "momentum"
    assert (tmp_path / "report.html").exists() and (tmp_path / "figures" / "profile.png").exists()
    assert "Paired sign test" in (tmp_path / "tables.md").read_text()


def test_interrupted_run_resumes_from_finished_cells(tmp_path, toy_task):
    reference = run_bench(tmp_path / "ref", size="quick", tasks=[toy_task], optimizers=OPTS, report=False)
    ref_cells = load_cells(tmp_path / "ref" / "cells", "quick")

    count = {"n": 0}

    def stop_after_five(result, cached):
        count["n"] += 1
        if count["n"] == 5:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_bench(out, size="quick", tasks=[toy_task], optimizers=OPTS, on_cell=stop_after_five)
    kept = load_cells(out / "cells", "quick")
    assert len(kept) == 5  # every finished cell was saved before the interrupt
    partial = json.loads((out / "results.json").read_text())
    assert partial["interrupted"] is True and partial["missing"]
    assert "interrupted" in (out / "report.html").read_text()

    cached, fresh = [], []
    resumed = run_bench(
        out, size="quick", tasks=[toy_task], optimizers=OPTS,
        on_cell=lambda r, c: (cached if c else fresh).append(r.cell.key),
    )  # fmt: skip
    assert sorted(cached) == sorted(kept)  # nothing finished was run again
    assert len(cached) + len(fresh) == len(ref_cells)
    assert _curves(load_cells(out / "cells", "quick")) == _curves(ref_cells)  # same results as without interrupt
    for opt in OPTS:
        assert resumed.pair(toy_task, opt).best_lr == reference.pair(toy_task, opt).best_lr
    assert json.loads((out / "results.json").read_text())["interrupted"] is False


def test_a_torn_cell_file_is_rerun(tmp_path, toy_task):
    run_bench(tmp_path, size="quick", tasks=[toy_task], optimizers=["adamw"], report=False)
    victim = next((tmp_path / "cells").rglob("*.json"))
    victim.write_text('{"cell": {"task": "toy"')  # as if the process died mid-write without the atomic rename
    fresh = []
    run_bench(tmp_path, size="quick", tasks=[toy_task], optimizers=["adamw"], report=False,
              on_cell=lambda r, c: None if c else fresh.append(r))  # fmt: skip
    assert len(fresh) == 1


def test_process_pool_gives_the_same_results_as_inline():
    # spawned workers import geodyn afresh, so the cell is of a registered task
    cell = Cell("rosenbrock-2d", "adamw", 0.0251, 0, "quick")
    with PoolBackend(1) as pool:
        remote = pool.submit(run_cell, cell, 1).result()
    local = run_cell(cell)
    assert (remote.status, remote.steps, remote.values) == (local.status, local.steps, local.values)


def test_cell_results_are_deterministic_and_json_round_trip(toy_task):
    cell = Cell(toy_task, "adamw", 0.1, 1, "quick")
    a, b = run_cell(cell), run_cell(cell)
    assert a.values == b.values and a.steps == b.steps
    from geodyn.bench.cell import CellResult

    back = CellResult.from_json(json.loads(json.dumps(a.to_json())))
    assert back.values == a.values and back.steps_to_target == a.steps_to_target and back.cell == a.cell


def test_divergence_is_unreached_not_an_error():
    r = run_cell(Cell("rosenbrock-2d", "sgd", 1.0, 0, "quick"))  # lr 1 on a curvature of ~1000 blows up at once
    assert r.status == "diverged" and math.isinf(r.steps_to_target) and r.error == ""


def test_repeated_names_run_each_cell_once(tmp_path, toy_task):
    fresh = []
    res = run_bench(tmp_path, size="quick", tasks=[toy_task, toy_task], optimizers=["adamw", "adamw"], report=False,
                    on_cell=lambda r, c: fresh.append(r.cell.key))  # fmt: skip
    trials = tuning_state(load_cells(tmp_path / "cells", "quick"), toy_task, "adamw", "quick").trials
    assert len(trials) >= len(lr_grid("quick")) * len(OPTIMIZERS["adamw"].values)
    assert len(fresh) == len(set(fresh)) == len(trials) + len(SEEDS["quick"])
    assert len(res.pairs) == 1


def test_a_pair_with_missing_seeds_is_unfinished_not_unreached(tmp_path, toy_task):
    run_bench(tmp_path, size="quick", tasks=[toy_task], optimizers=["adamw", "sgd"], report=False)
    cells = load_cells(tmp_path / "cells", "quick")
    sgd_seed = next(k for k, r in cells.items() if r.cell.optimizer == "sgd" and r.cell.seed == SEEDS["quick"][-1])
    del cells[sgd_seed]
    res = summarise(cells, "quick", [toy_task], ["adamw", "sgd"])
    pair = res.pair(toy_task, "sgd")
    assert not pair.complete and res.ratio_text(toy_task, "sgd") == "—"
    assert res.ratios()[toy_task]["sgd"] is None
    assert math.isinf(res.score_matrix()[0][1]) and sgd_seed in res.missing


def test_error_cells_and_cells_of_another_definition_are_run_again(tmp_path, toy_task, monkeypatch):
    import dataclasses

    from geodyn.bench import tasks as bench_tasks

    run_bench(tmp_path, size="quick", tasks=[toy_task], optimizers=["adamw"], report=False)
    path = next((tmp_path / "cells").rglob("*.json"))
    raw = json.loads(path.read_text())
    raw["status"] = "error"
    path.write_text(json.dumps(raw))
    trials = tuning_state(load_cells(tmp_path / "cells", "quick", current=False), toy_task, "adamw", "quick").trials
    assert len(load_cells(tmp_path / "cells", "quick")) == len(trials) + len(SEEDS["quick"]) - 1
    # a changed target is another definition: none of the saved cells count any more
    changed = dataclasses.replace(bench_tasks.TASKS[toy_task], quick_target=0.01)
    monkeypatch.setitem(bench_tasks.TASKS, toy_task, changed)
    assert load_cells(tmp_path / "cells", "quick") == {}


def test_fingerprint_follows_the_implementation_of_geodyn_rows_only(monkeypatch):
    import geodyn.bench.cell as cell_module

    before = {o: cell_module.fingerprint("rosenbrock-2d", o, "quick") for o in ("adamw", "geodyn-three-regime")}
    cell_module.implementation.cache_clear()
    # other sources for geodyn's optimizers (here: one file fewer) must invalidate its cells, not the peers'
    monkeypatch.setattr(cell_module, "_GEODYN_OPTIMIZER_SOURCES", ("optim", "metric.py"))
    try:
        after = {o: cell_module.fingerprint("rosenbrock-2d", o, "quick") for o in before}
    finally:
        cell_module.implementation.cache_clear()
    assert after["adamw"] == before["adamw"]
    assert after["geodyn-three-regime"] != before["geodyn-three-regime"]
    assert "heavyball 3.2" in cell_module.implementation("psgd-kron") or not OPTIMIZERS["psgd-kron"].available()

"""The Ray backend: a local Ray instance (2 CPUs) gives the same bench and reproduce results as the local backend,
and a worker killed mid-run loses only the cell it was running, which Ray retries."""

import json
import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from geodyn.backends import RayBackend  # noqa: E402
from geodyn.bench import run_bench  # noqa: E402
from geodyn.bench.runner import load_cells  # noqa: E402

pytestmark = pytest.mark.slow

TASK, OPTS = "rosenbrock-2d", ["adamw", "sgd"]


@pytest.fixture(scope="module")
def ray_backend():
    backend = RayBackend(workers=2)
    yield backend
    backend.close()


def _curves(root):
    return {k: (r.status, r.steps, r.values, r.steps_to_target) for k, r in load_cells(root, "quick").items()}


def _kill_first_running_cell(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen executing a bench cell (its process title is ray::run_cell)."""
    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("ray::run_cell"):
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return
        time.sleep(0.05)


def test_bench_on_ray_matches_local_even_when_a_worker_is_killed(tmp_path, ray_backend):
    local = run_bench(tmp_path / "local", size="quick", tasks=[TASK], optimizers=OPTS, report=False)

    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_running_cell, args=(stop, killed), daemon=True)
    killer.start()
    try:
        remote = run_bench(
            tmp_path / "ray", size="quick", tasks=[TASK], optimizers=OPTS, backend=ray_backend, report=False
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no running cell was seen to kill"
    assert _curves(tmp_path / "ray" / "cells") == _curves(tmp_path / "local" / "cells")
    for opt in OPTS:
        assert remote.pair(TASK, opt).best_lr == local.pair(TASK, opt).best_lr
        assert remote.pair(TASK, opt).steps == local.pair(TASK, opt).steps


def test_reproduce_on_ray_matches_local(tmp_path, ray_backend):
    from geodyn.experiments import REGISTRY
    from geodyn.experiments.runner import run_experiments

    only = ["exact-limits"]
    a = run_experiments(REGISTRY, tmp_path / "local", size="quick", only=only)
    b = run_experiments(REGISTRY, tmp_path / "ray", size="quick", only=only, backend=ray_backend)
    (ra,), (rb,) = a.experiments, b.experiments
    assert rb.status == "done" and rb.verdict == ra.verdict
    assert [(c["name"], c["value"]) for c in rb.checks] == [(c["name"], c["value"]) for c in ra.checks]
    assert rb.figures == ra.figures
    assert all((tmp_path / "ray" / "experiments" / rb.name / f).exists() for f in rb.figures)
    assert json.loads((tmp_path / "ray" / "results.json").read_text())["missing"] == []

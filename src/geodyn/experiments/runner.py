"""Run experiments into a run folder that holds everything needed to regenerate any figure.

Layout of a run folder::

    config.toml                      the resolved settings of the run
    results.json                     schema-versioned summary of every experiment (SCHEMA_VERSION)
    report.html                      self-contained report (figures embedded; opens from disk)
    experiments/<name>/result.json   one experiment: checks, verdict, data, figure names
    experiments/<name>/<figure>.png

Each experiment's folder is written as soon as it finishes, so an interrupted run keeps what finished and a
rerun skips it (unless forced).
"""

from __future__ import annotations

import io
import json
import time
import traceback
from collections.abc import Callable
from concurrent.futures import as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tomli_w  # noqa: E402
import torch  # noqa: E402
from pydantic import BaseModel  # noqa: E402

import geodyn  # noqa: E402
from geodyn.backends import Backend  # noqa: E402
from geodyn.environment import environment  # noqa: E402
from geodyn.experiments.registry import Experiment, Registry, Verdict  # noqa: E402
from geodyn.serialize import jsonable  # noqa: E402

SCHEMA_VERSION = 2  # 2: controls, findings, notes; verdicts inconclusive and error

__all__ = ["SCHEMA_VERSION", "ExperimentResult", "RunResults", "run_experiments", "environment"]


class ExperimentResult(BaseModel):
    # results written before controls existed carry no schema_version and are never reused from the cache
    schema_version: int = 1
    name: str
    section: str
    equations: list[str]
    statement: str
    size: str
    status: str  # "done" or "error"
    verdict: str
    checks: list[dict[str, Any]]
    controls: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    notes: list[str] = []
    summary: str = ""
    figures: list[str] = []
    data: dict[str, Any] = {}
    seconds: float = 0.0
    error: str = ""


class RunResults(BaseModel):
    schema_version: int = SCHEMA_VERSION
    geodyn_version: str
    created: str
    size: str
    environment: dict[str, Any]
    experiments: list[ExperimentResult]
    missing: list[str]
    interrupted: bool = False


def _run_one(
    exp: Experiment, size: str, seed: int, progress: Callable[[float], None], threads: int | None
) -> tuple[ExperimentResult, dict[str, bytes]]:
    """Run one experiment; return its result and its figures as PNG bytes (written by the caller, so that a worker
    on another machine needs no access to the run folder)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_one_inner(exp, size, seed, progress)
    finally:
        torch.set_num_threads(previous)


def _run_remote(
    exp: Experiment, size: str, seed: int, threads: int | None
) -> tuple[ExperimentResult, dict[str, bytes]]:
    """The unit of work a backend runs: one experiment, without progress reports."""
    return _run_one(exp, size, seed, lambda fraction: None, threads)


def _run_one_inner(
    exp: Experiment, size: str, seed: int, progress: Callable[[float], None]
) -> tuple[ExperimentResult, dict[str, bytes]]:
    start = time.perf_counter()
    claim = exp.claim
    base = dict(
        schema_version=SCHEMA_VERSION,
        name=exp.name,
        section=claim.section,
        equations=list(claim.equations),
        statement=claim.statement,
        size=size,
    )
    try:
        outcome = exp.run(exp.context(size, seed=seed, progress=progress))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # an experiment's failure is a result, not a crash of the whole run
        # a crash or a missing dependency says nothing about the claim: verdict "error", never "not reproduced"
        kind = "missing dependency" if isinstance(exc, ImportError) else type(exc).__name__
        result = ExperimentResult(
            **base,
            status="error",
            verdict=Verdict.ERROR.value,
            checks=[],
            error=f"{kind}: {exc}\n{traceback.format_exc(limit=6)}",
            seconds=time.perf_counter() - start,
        )
        return result, {}
    pngs: dict[str, bytes] = {}
    for fig_name, fig in outcome.figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        pngs[f"{fig_name}.png"] = buffer.getvalue()
    result = ExperimentResult(
        **base,
        status="done",
        verdict=outcome.verdict.value,
        checks=[c.as_dict() for c in outcome.checks],
        controls=[c.as_dict() for c in outcome.controls],
        findings=[f.as_dict() for f in outcome.findings],
        notes=list(outcome.notes),
        summary=outcome.summary,
        figures=list(pngs),
        data=jsonable(outcome.data),
        seconds=time.perf_counter() - start,
    )
    return result, pngs


def _save(folder: Path, result: ExperimentResult, pngs: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for filename, data in pngs.items():
        (folder / filename).write_bytes(data)
    if result.status == "done":
        (folder / "result.json").write_text(result.model_dump_json(indent=2))


def _load_finished(path: Path, size: str) -> ExperimentResult | None:
    if not path.exists():
        return None
    try:
        result = ExperimentResult.model_validate_json(path.read_text())
    except ValueError:
        return None
    current = result.schema_version == SCHEMA_VERSION
    return result if current and result.size == size and result.status == "done" else None


def run_experiments(
    registry: Registry,
    out: Path,
    size: str = "quick",
    only: list[str] | None = None,
    force: bool = False,
    seed: int = 0,
    on_start: Callable[[Experiment], None] = lambda exp: None,
    on_progress: Callable[[Experiment, float], None] = lambda exp, fraction: None,
    on_finish: Callable[[Experiment, ExperimentResult, bool], None] = lambda exp, result, cached: None,
    bench: dict[str, Any] | None = None,
    threads: int | None = 1,
    backend: Backend | None = None,
) -> RunResults:
    """Run the selected experiments into ``out`` and write results.json and report.html.

    ``threads`` sets torch's intra-op threads while an experiment runs (default 1: the experiments use small
    tensors, for which more threads do not help and stall badly when another process holds a core; None keeps
    torch's setting). Finished experiments of the same size are reused unless ``force``. On KeyboardInterrupt
    the finished ones are written, the rest are listed as missing, and the results come with ``interrupted=True``.
    With a ``backend`` (:mod:`geodyn.backends`, e.g. Ray) every experiment is submitted at once and runs as one
    task there; results and figures come back to this process, which writes the run folder.
    """
    from geodyn.report import write_report

    selected = registry.select(only)
    out.mkdir(parents=True, exist_ok=True)
    config = {"size": size, "seed": seed, "only": [e.name for e in selected], "force": force, "out": str(out)}
    if threads is not None:
        config["threads"] = threads
    (out / "config.toml").write_text(tomli_w.dumps(config))

    results: list[ExperimentResult] = []
    interrupted = False
    queued: list[Experiment] = []
    for exp in selected:
        cached = None if force else _load_finished(out / "experiments" / exp.name / "result.json", size)
        if cached is not None:
            results.append(cached)
            on_finish(exp, cached, True)
        else:
            queued.append(exp)
    try:
        if backend is None:
            for exp in queued:
                on_start(exp)
                result, pngs = _run_one(exp, size, seed, lambda f, exp=exp: on_progress(exp, f), threads)
                _save(out / "experiments" / exp.name, result, pngs)
                results.append(result)
                on_finish(exp, result, False)
        else:
            futures = {}
            for exp in queued:
                on_start(exp)
                futures[backend.submit(_run_remote, exp, size, seed, threads)] = exp
            for future in as_completed(futures):
                exp = futures[future]
                result, pngs = future.result()
                _save(out / "experiments" / exp.name, result, pngs)
                results.append(result)
                on_finish(exp, result, False)
    except KeyboardInterrupt:
        interrupted = True
        if backend is not None:
            backend.close(cancel=True)
    order = {e.name: i for i, e in enumerate(selected)}
    results.sort(key=lambda r: order.get(r.name, len(order)))

    done = {r.name for r in results}
    run = RunResults(
        geodyn_version=geodyn.__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        size=size,
        environment=environment(),
        experiments=results,
        missing=[e.name for e in selected if e.name not in done],
        interrupted=interrupted,
    )
    (out / "results.json").write_text(run.model_dump_json(indent=2))
    write_report(run, out, registry=registry, bench=bench)
    return run


def load_results(out: Path) -> RunResults:
    """Read a run folder's results.json, refusing other schema versions."""
    raw = json.loads((out / "results.json").read_text())
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"results.json schema_version={raw.get('schema_version')!r}; expected {SCHEMA_VERSION}")
    return RunResults.model_validate(raw)

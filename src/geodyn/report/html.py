"""Render results.json into one self-contained report.html (jinja2; figures embedded as data URIs)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

if TYPE_CHECKING:
    from geodyn.experiments.registry import Registry
    from geodyn.experiments.runner import RunResults

_ENV = Environment(loader=PackageLoader("geodyn.report", "templates"), autoescape=select_autoescape(["html"]))

# Paper order of sections; any other section follows in order of first appearance.
SECTION_ORDER = [
    "Sec. 2 Learning as a stochastic process",
    "Sec. 3 Quantum regime",
    "Sec. 4 Classical biology",
    "Sec. 5 Neural physics",
    "Sec. 6 Complex systems",
    "Covariant gradient descent (ref. [13])",
]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_ENV.filters["fmt"] = _fmt


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(
    run: RunResults, out: Path, registry: Registry | None = None, bench: dict[str, Any] | None = None
) -> str:
    """The report as an HTML string: claims-vs-verdicts table, one section per paper section, environment."""
    by_name = {r.name: r for r in run.experiments}
    rows = []
    names = registry.names() if registry is not None else []
    names += [n for n in list(by_name) + run.missing if n not in names]
    for name in names:
        result = by_name.get(name)
        if result is not None:
            rows.append(
                dict(
                    name=name,
                    equations=result.equations,
                    statement=result.statement,
                    section=result.section,
                    verdict=result.verdict,
                    status=result.status,
                    controls=result.controls,
                )
            )
            continue
        exp = registry[name] if registry is not None and name in registry.names() else None
        status = "missing" if name in run.missing else "not run"
        rows.append(
            dict(
                name=name,
                equations=list(exp.claim.equations) if exp else [],
                statement=exp.claim.statement if exp else "",
                section=exp.claim.section if exp else "",
                verdict=status,
                status=status,
                controls=[],
            )
        )

    sections: dict[str, list[dict[str, Any]]] = {}
    for result in run.experiments:
        figures = []
        for filename in result.figures:
            path = out / "experiments" / result.name / filename
            if path.exists():
                figures.append(dict(name=filename, src=_data_uri(path)))
        sections.setdefault(result.section, []).append(dict(result=result, figures=figures))
    ordered = [s for s in SECTION_ORDER if s in sections] + [s for s in sections if s not in SECTION_ORDER]

    findings = [dict(f, experiment=r.name) for r in run.experiments for f in r.findings]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    template = _ENV.get_template("report.html")
    return template.render(
        run=run,
        rows=rows,
        counts=counts,
        sections=[(s, sections[s]) for s in ordered],
        findings=findings,
        bench=bench,
    )


def write_report(
    run: RunResults, out: Path, registry: Registry | None = None, bench: dict[str, Any] | None = None
) -> Path:
    path = out / "report.html"
    path.write_text(render_report(run, out, registry=registry, bench=bench), encoding="utf-8")
    return path


def render_bench(results: dict[str, Any], figures: dict[str, Path]) -> str:
    """The benchmark page: ratio matrix, performance profiles, loss and tuning curves, per-task tables."""
    pairs = {(p["task"], p["optimizer"]): p for p in results["pairs"]}
    template = _ENV.get_template("bench.html")
    return template.render(
        r=results,
        pairs=pairs,
        figures={name: _data_uri(path) for name, path in figures.items() if path.exists()},
    )

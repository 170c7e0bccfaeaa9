"""Render the JSON of the benchmarks as one markdown document (``make bench`` writes docs/performance.md).

    python benchmarks/report.py FILE.json [FILE.json ...] [--out docs/performance.md]

Every table gives ratios to peers measured in the same run of the same benchmark (the JSON already holds them:
a ratio is only meaningful between rows timed in one process), the time of each row, and where known the state
memory of each optimizer; a section on the machine (CPU model, cores, torch and numpy versions, threads) comes
first.

Input schema (one file per benchmark; keys beyond these are ignored)::

    {"benchmark": "step_cost", "title": "...", "threads": 2, "torch": "2.13.0",
     "rows": [{"table": "...",        # rows with the same table are rendered together (default: the title)
               "name": "...", "seconds": 0.0012,
               "ratio": 1.04, "baseline": "Adam(foreach)",     # time ÷ the baseline row's time
               "ratios": {"Adam(foreach)": 1.04, "Adam(fused)": 3.7},   # optional, several peers
               "memory": 8462832,     # optional: optimizer state in bytes
               "note": "..."}]}       # optional

The older row layout of structured_cost.py (``model``, ``optimizer``, ``ms_per_step``, ``ratio_to_adam``; FullCGD
rows with ``k1_ms``, ``k10_ms``, ``state_mb``) is read too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Row:
    name: str
    seconds: float | None
    ratios: dict[str, float]
    memory: int | None = None
    note: str = ""


@dataclass
class Table:
    title: str
    benchmark: str
    rows: list[Row] = field(default_factory=list)

    @property
    def peers(self) -> list[str]:
        """The ratio columns, in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row.ratios))
        return list(seen)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _rows_of(record: dict[str, Any], default_baseline: str) -> Iterable[tuple[str | None, Row]]:
    """One JSON row as (table, Row); FullCGD rows of structured_cost.py become one row per refresh interval."""
    if "k1_ms" in record:  # structured_cost.py: FullCGD cost against N, no peer in the row
        memory = _number(record.get("state_mb"))
        for k in (1, 10):
            ms = _number(record.get(f"k{k}_ms"))
            if ms is None and k != 1:  # the low-rank rows are timed at one refresh interval only
                continue
            yield (
                "FullCGD cost against N (k: steps between eigenbasis refreshes)",
                Row(
                    f"{record.get('model', 'FullCGD')}{', ' + str(record['form']) if record.get('form') else ''} k={k}",
                    None if ms is None else ms / 1e3,
                    {},
                    None if memory is None else round(memory * 1e6),
                ),
            )
        return
    name = str(record.get("name") or record.get("optimizer") or "?")
    seconds = _number(record.get("seconds"))
    if seconds is None:
        for key in ("median_ms", "ms_per_step"):
            if _number(record.get(key)) is not None:
                seconds = record[key] / 1e3
                break
    ratios = {str(k): float(v) for k, v in (record.get("ratios") or {}).items() if _number(v) is not None}
    for key, peer in (("ratio_adam_foreach", "Adam(foreach)"), ("ratio_adam_fused", "Adam(fused)")):  # step_cost
        if not ratios.get(peer) and _number(record.get(key)) is not None:
            ratios[peer] = float(record[key])
    if not ratios:
        ratio = next(
            (_number(record.get(k)) for k in ("ratio", "ratio_to_adam") if _number(record.get(k)) is not None), None
        )
        if ratio is not None:
            ratios = {str(record.get("baseline") or default_baseline): ratio}
    memory = record.get("memory", record.get("state_bytes"))
    memory = int(memory) if _number(memory) is not None else None
    table = record.get("table") or record.get("model")
    yield table, Row(name, seconds, ratios, memory, str(record.get("note") or ""))


def tables_of(payload: dict[str, Any], source: str) -> list[Table]:
    """The tables of one benchmark's JSON, rows in file order, tables in order of first appearance."""
    benchmark = str(payload.get("benchmark") or Path(source).stem)
    title = str(payload.get("title") or benchmark)
    default_baseline = "Adam(foreach)" if "structured" in benchmark or "step" in benchmark else "baseline"
    rows = payload.get("rows")
    if not isinstance(rows, list):
        raise ValueError(f"{source}: rows={rows!r} is not a list")
    tables: dict[str, Table] = {}
    for record in rows:
        if not isinstance(record, dict):
            raise ValueError(f"{source}: row {record!r} is not an object")
        for table, row in _rows_of(record, default_baseline):
            key = str(table or title)
            tables.setdefault(key, Table(key, benchmark)).rows.append(row)
    return list(tables.values())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """What the numbers depend on: CPU, cores this process may use, library versions."""
    info = {"CPU": _cpu_model(), "logical cores": str(os.cpu_count())}
    if hasattr(os, "sched_getaffinity"):
        info["cores available to the process"] = str(len(os.sched_getaffinity(0)))
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    for package in ("torch", "numpy", "scipy", "heavyball", "pytorch-optimizer", "qutip", "fplanck"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        info["torch threads (default)"] = str(torch.get_num_threads())
        info["torch CPU capability"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():  # benchmarks/gpu_check.py's tables are timed on it
            info["GPU"] = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    except ImportError:
        pass
    return info


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def _bytes(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:.2f} MiB"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: Table) -> str:
    peers = table.peers
    has_memory = any(r.memory is not None for r in table.rows)
    has_note = any(r.note for r in table.rows)
    header = ["row", "time"] + [f"× {p}" for p in peers] + (["state memory"] if has_memory else [])
    header += ["note"] if has_note else []
    lines = [f"### {_cell(table.title)}", "", f"*{table.benchmark}*", ""]
    lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1 - has_note) + ["---"] * has_note) + "|")
    for row in table.rows:
        cells = [_cell(row.name), _seconds(row.seconds)]
        cells += [f"{row.ratios[p]:.2f}" if p in row.ratios else "–" for p in peers]
        cells += [_bytes(row.memory)] if has_memory else []
        cells += [_cell(row.note)] if has_note else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(payloads: Sequence[tuple[str, dict[str, Any]]], info: dict[str, str], when: str) -> str:
    """The whole document: machine, then each benchmark's tables."""
    out = [
        "# Performance",
        "",
        f"Written by `make bench` (benchmarks/report.py) on {when}. Every ratio compares rows measured in the same",
        "run of the same benchmark (time ÷ the named peer's time: below 1 is faster than the peer, except where a",
        "table says otherwise). Absolute times depend on the machine below and on its load.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in info.items()]
    for source, payload in payloads:
        benchmark = str(payload.get("benchmark") or Path(source).stem)
        out += ["", f"## {benchmark}", ""]
        keys = ("device", "threads", "torch", "repeats", "steps")
        settings = [f"{k}: {payload[k]}" for k in keys if payload.get(k) is not None]
        if settings:
            out += [f"Run settings — {', '.join(map(str, settings))}.", ""]
        out.append("\n\n".join(render_table(t) for t in tables_of(payload, source)))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("json", nargs="+", help="benchmark JSON files (--json output of each benchmark)")
    parser.add_argument("--out", default="docs/performance.md")
    args = parser.parse_args(argv)
    payloads = []
    for name in args.json:
        with open(name, encoding="utf-8") as fh:
            payloads.append((name, json.load(fh)))
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    Path(args.out).write_text(render(payloads, machine(), when), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

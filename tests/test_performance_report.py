"""benchmarks/report.py renders benchmark JSON as markdown (``make bench`` → docs/performance.md).

Synthetic JSON only: no benchmark is run and no timing is asserted; the test checks that every row, ratio and
memory figure of the input reaches the table it belongs to, in both row layouts the benchmarks write.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


STEP = {
    "benchmark": "step_cost",
    "title": "Diagonal step, synthetic",
    "threads": 2,
    "torch": "2.13.0",
    "rows": [
        {"name": "Adam(foreach)", "seconds": 0.004, "ratio": 1.0, "memory": 8 * 2**20,
         "ratios": {"Adam(foreach)": 1.0, "Adam(fused)": 4.0}},
        {"name": "CGD | compiled", "seconds": 0.0015, "memory": 3 * 2**20,
         "ratios": {"Adam(foreach)": 0.375, "Adam(fused)": 1.5}},
    ],
}  # fmt: skip
STRUCTURED = {  # the layout structured_cost.py writes: model / optimizer / ms_per_step / ratio_to_adam
    "threads": 1,
    "rows": [
        {"model": "MLP", "optimizer": "Adam (foreach)", "ms_per_step": 2.0, "ratio_to_adam": 1.0},
        {"model": "MLP", "optimizer": "SOAP", "ms_per_step": 30.0, "ratio_to_adam": 15.0, "memory": 2**21},
        {"model": "CNN", "optimizer": "Adam (foreach)", "ms_per_step": 1.0, "ratio_to_adam": 1.0},
        {"model": "FullCGD N=100", "k1_ms": 2.5, "k10_ms": 1.25, "state_mb": 0.04},
    ],
}
SIMULATOR = {
    "benchmark": "simulator_cost",
    "rows": [
        {"table": "Walkers", "name": "numpy", "seconds": 2.0, "ratio": 1.0, "baseline": "numpy",
         "note": "1e6 walker-steps/s"},
        {"table": "Walkers", "name": "geodyn", "seconds": 4.0, "ratio": 0.5, "baseline": "numpy"},
    ],
}  # fmt: skip


def _table_lines(text: str, heading: str) -> list[str]:
    """The markdown table rows under ``### heading`` (up to the next blank line after the table)."""
    lines = text.splitlines()
    start = lines.index(f"### {heading}")
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            out.append(line)
        elif out:
            break
    return out


def test_every_row_ratio_and_memory_reaches_its_table(tmp_path):
    report = _report()
    files = []
    for name, payload in (("step_cost", STEP), ("structured_cost", STRUCTURED), ("simulator_cost", SIMULATOR)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(payload))
        files.append(str(path))
    out = tmp_path / "performance.md"
    assert report.main([*files, "--out", str(out)]) == 0
    text = out.read_text()

    assert "## Machine" in text and "| torch |" in text and "| CPU |" in text
    step = _table_lines(text, "Diagonal step, synthetic")
    assert step[0] == "| row | time | × Adam(foreach) | × Adam(fused) | state memory |"
    assert step[2] == "| Adam(foreach) | 4 ms | 1.00 | 4.00 | 8.00 MiB |"
    assert step[3] == "| CGD \\| compiled | 1.5 ms | 0.38 | 1.50 | 3.00 MiB |"  # a "|" in a name is escaped
    assert "Run settings — threads: 2, torch: 2.13.0." in text

    mlp = _table_lines(text, "MLP")
    assert mlp[2] == "| Adam (foreach) | 2 ms | 1.00 | – |" and mlp[3] == "| SOAP | 30 ms | 15.00 | 2.00 MiB |"
    assert len(_table_lines(text, "CNN")) == 3  # header, rule, one row: tables do not mix models
    full = _table_lines(text, "FullCGD cost against N (k: steps between eigenbasis refreshes)")
    assert full[2:] == ["| FullCGD N=100 k=1 | 2.5 ms | 0.04 MiB |", "| FullCGD N=100 k=10 | 1.25 ms | 0.04 MiB |"]

    walkers = _table_lines(text, "Walkers")
    assert walkers[0] == "| row | time | × numpy | note |"
    assert walkers[2:] == ["| numpy | 2.00 s | 1.00 | 1e6 walker-steps/s |", "| geodyn | 4.00 s | 0.50 |  |"]
    # Sections in the order given on the command line.
    assert text.index("## step_cost") < text.index("## structured_cost") < text.index("## simulator_cost")


def test_rows_that_are_not_a_list_are_refused(tmp_path):
    report = _report()
    with pytest.raises(ValueError, match="rows="):
        report.tables_of({"rows": {"name": "x"}}, "bad.json")

"""Ctrl-C on `geodyn bench` with a worker pool: exit 130, finished cells kept, a rerun completes the rest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GEODYN = str(Path(sys.executable).with_name("geodyn"))


@pytest.mark.skipif(not os.path.exists(GEODYN), reason="the geodyn script is not installed next to this Python")
def test_sigint_keeps_finished_cells_and_rerun_completes(tmp_path):
    out = tmp_path / "bench"
    # the transformer's cells take seconds each, so the interrupt falls in the middle of the run
    args = [GEODYN, "bench", "--tasks", "char-transformer", "--optimizers", "adamw"]
    args += ["--workers", "2", "--out", str(out), "--quiet"]
    # a shell that starts jobs in the background passes SIGINT on as ignored; a user's terminal does not
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("cells/**/*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "interrupted" in stderr
    kept = {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("cells/**/*.json")}
    assert 0 < len(kept) < 6 * 2 + 3  # some, not all, cells finished before the interrupt
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["missing"]

    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.glob("cells/**/*.json")}
    assert all(after[k] == v for k, v in kept.items())  # finished cells were not run again
    assert len(after) >= 6 * 2 + 3  # quick grid × two weight decays (+ any grid extension) + quick seeds
    assert json.loads((out / "results.json").read_text())["missing"] == []

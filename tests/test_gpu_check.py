"""benchmarks/gpu_check.py, the script a GPU machine runs (issue #18, item 5): its correctness part on the CPU at
the tiny size (no compile), every path passing; and the same harness failing when one path is broken by a
relative factor of 1e-6, far below any algorithmic error and far above the 1e-12 round-off bound.

With ``--device cpu`` the device runs of KronCGD's per-matrix step, FullCGD and the Langevin ensemble take the same
code path as their CPU references, so a library break cannot tell them apart here; the harness's comparison is then
shown to fail by perturbing only the device run (``device=`` given), the way a wrong GPU kernel would.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

import geodyn.optim.base as base_module
import geodyn.optim.cgd as cgd_module
import geodyn.optim.kron as kron_module
from geodyn.dynamics import LangevinEnsemble
from geodyn.evolution import GaussianJump
from geodyn.optim import FullCGD

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FACTOR = 1 + 1e-6
ARGS = ["--device", "cpu", "--size", "tiny", "--no-compile", "--correctness-only"]
EXPECTED = {
    "CGD foreach vs CPU cgd_reference",
    "CGD foreach, NaN step, nonfinite='skip'",
    "CGD foreach, NaN step, nonfinite='raise'",
    "preset Adam vs torch.optim.Adam on cpu",
    "preset AdamW vs torch.optim.AdamW on cpu",
    "preset SGD (momentum 0.9) vs torch.optim.SGD on cpu",
    "preset RMSprop vs torch.optim.RMSprop on cpu",
    "KronCGD refresh=eigh batched vs CPU per-matrix",
    "KronCGD refresh=qr batched vs CPU per-matrix",
    "FullCGD dense vs CPU",
    "FullCGD rank=2 vs CPU",
    "LangevinEnsemble Euler–Maruyama eager vs CPU",
    "Population step genomes vs CPU replay",
    "Population step energies vs CPU replay",
}


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(BENCHMARKS))  # gpu_check imports step_cost and structured_cost beside it
    yield importlib.import_module("gpu_check")
    sys.path.remove(str(BENCHMARKS))


def _failed(gpu_check) -> set[str]:
    return {c.name for c in gpu_check.correctness("cpu", "tiny", compile=False) if not c.passed}


def test_every_path_passes_on_cpu_and_the_json_renders(gpu_check, tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main([*ARGS, "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert {row["name"] for row in payload["rows"]} == EXPECTED
    assert all("? pass" in row["note"] for row in payload["rows"])
    report = importlib.import_module("report")  # beside gpu_check, on the path the fixture set
    text = report.render([(str(out), payload)], {"CPU": "test"}, "now")
    assert "### Correctness on cpu against the CPU reference" in text
    assert text.count("? pass") == len(EXPECTED)


def test_a_diagonal_step_off_by_a_factor_fails(gpu_check, monkeypatch):
    original = cgd_module.cgd_foreach

    def broken(*args, lr, **kw):
        return original(*args, lr=lr * FACTOR, **kw)

    monkeypatch.setattr(cgd_module, "cgd_foreach", broken)
    failed = _failed(gpu_check)
    # the multi-tensor step (with and without a NaN step) and every preset built on it; the refused step of
    # nonfinite="raise" changes nothing either way
    assert failed == {
        "CGD foreach vs CPU cgd_reference",
        "CGD foreach, NaN step, nonfinite='skip'",
        *(name for name in EXPECTED if name.startswith("preset")),
    }
    assert gpu_check.main(ARGS) == 1


def test_a_missed_nan_fails(gpu_check, monkeypatch):
    """A finiteness check that never fires: the NaN reaches the parameters and nothing raises."""
    monkeypatch.setattr(base_module, "all_finite", lambda grads: True)
    monkeypatch.setattr(cgd_module, "all_finite", lambda grads: True)
    assert {"CGD foreach, NaN step, nonfinite='skip'", "CGD foreach, NaN step, nonfinite='raise'"} <= _failed(gpu_check)


def test_a_batched_kronecker_step_off_by_a_factor_fails(gpu_check, monkeypatch):
    original = kron_module.kron_foreach

    def broken(*args, lr, **kw):
        return original(*args, lr=lr * FACTOR, **kw)

    monkeypatch.setattr(kron_module, "kron_foreach", broken)
    assert _failed(gpu_check) == {name for name in EXPECTED if name.startswith("KronCGD")}


def test_a_population_jump_off_by_a_factor_fails(gpu_check, monkeypatch):
    original = GaussianJump.sample

    def broken(self, q, generator):
        return q + (original(self, q, generator) - q) * FACTOR

    monkeypatch.setattr(GaussianJump, "sample", broken)
    assert _failed(gpu_check) == {"Population step genomes vs CPU replay", "Population step energies vs CPU replay"}


def test_a_device_run_off_by_a_factor_fails(gpu_check, monkeypatch):
    """Only the runs given a device (the device runs; the CPU references are not) are perturbed."""
    original_run, original_simulate = gpu_check._run, LangevinEnsemble.simulate

    def run(make, shapes, grads, device, every=None):
        history, opt = original_run(make, shapes, grads, device, every)
        if every is None and isinstance(opt, FullCGD):  # FullCGD's device runs (its references track gaps)
            history = [[p * FACTOR for p in step] for step in history]
        return history, opt

    def simulate(self, *args, device=None, **kw):
        solution = original_simulate(self, *args, device=device, **kw)
        if device is not None:
            solution.q = solution.q * FACTOR
        return solution

    monkeypatch.setattr(gpu_check, "_run", run)
    monkeypatch.setattr(LangevinEnsemble, "simulate", simulate)
    assert _failed(gpu_check) == {
        "FullCGD dense vs CPU",
        "FullCGD rank=2 vs CPU",
        "LangevinEnsemble Euler–Maruyama eager vs CPU",
    }


def test_bad_device_and_size_are_refused(gpu_check):
    with pytest.raises(ValueError, match="size='huge'"):
        gpu_check.correctness("cpu", "huge")
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "nonsense"])

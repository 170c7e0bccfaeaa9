"""Optimizer step cost (BENCHMARKS.md §1): median step time and optimizer-state memory, in one process.

    python benchmarks/step_cost.py [--repeats N] [--steps N] [--threads N] [--json FILE] [--no-compiled]
                                   [--no-peers] [--compiled-peers] [--cold-compile]

Model: an MLP 784-1000-256-64-10 (1,058,354 float32 parameters, eight tensors of different shapes) on the CPU.
Gradients are two fixed random sets, alternated between steps (assigning ``.grad`` costs the same for every
row); a single constant gradient would drive the central noise moment of CGD towards zero and into denormal
floats, which would time the FPU's slow path rather than the optimizer.

Rows are measured interleaved: each repeat times ``--steps`` steps of every row in turn, so load from other
processes falls on all rows alike; the figure is the median over repeats of the mean step time in a repeat.
The first ``step()`` of each row (state allocation and, for compiled rows, torch.compile) is timed apart and
not counted; warm-up steps follow it. State memory is the sum of ``nbytes`` over the tensors in
``optimizer.state``.

The "default" CGD row is ``CGD(params, metric=...)`` with no path chosen: for this model it switches to the
compiled program after ``geodyn.optim.cgd.AUTO_COMPILE_AFTER`` steps (its warm-up runs past the switch). The
"compiled" CGD rows are ``CGD(..., compiled=True)`` once CGD has that option; until then, CGD with its
multi-tensor update swapped for :func:`geodyn.optim.compiled.cgd_compiled` during ``step()``. CGD's step
includes its non-finite-gradient check (``nonfinite="raise"``, the default); one row shows the step
without it.
Peers: torch's Adam (foreach, fused, for-loop) and, where importable, heavyball's AdamW, SOAP and PSGD-Kron run
eagerly (``heavyball.utils.compile_mode = None``; heavyball compiles by default, ``--compiled-peers``).
On a shared machine, compare the min column too: the median of a contended run mixes in other processes' load.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

import geodyn.optim.cgd as cgd_module
from geodyn.metric import Interpolating, MetricLaw, Power, ThreeRegime
from geodyn.optim import CGD

try:
    from geodyn.optim.compiled import cgd_compiled
except ImportError:  # pragma: no cover - compiled path not available
    cgd_compiled = None

LAYERS = (784, 1000, 256, 64, 10)
WARMUP_STEPS = 5


def make_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers).float()


class _CompiledCGD(CGD):
    """CGD whose multi-tensor step runs :func:`cgd_compiled` (until CGD grows its own option for it)."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        original = cgd_module.cgd_foreach
        cgd_module.cgd_foreach = cgd_compiled
        try:
            return super().step(closure)
        finally:
            cgd_module.cgd_foreach = original


def compiled_cgd(params: list[nn.Parameter], metric: MetricLaw, **kw: Any) -> torch.optim.Optimizer:
    if "compiled" in inspect.signature(CGD).parameters:
        return CGD(params, metric=metric, compiled=True, **kw)
    if not hasattr(cgd_module, "cgd_foreach"):
        raise RuntimeError("geodyn.optim.cgd has no cgd_foreach to stand in for")
    return _CompiledCGD(params, metric=metric, **kw)


@dataclass
class Row:
    name: str
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer] = field(repr=False)
    compiled: bool = False
    times_ms: list[float] = field(default_factory=list)
    first_step_s: float = 0.0
    warmup: int = WARMUP_STEPS
    fx_cache_hits: int = 0
    state_bytes: int = 0


def rows(include_compiled: bool, include_peers: bool = True, compiled_peers: bool = False) -> list[Row]:
    metrics: list[tuple[str, MetricLaw]] = [
        ("Interpolating(1e-8)", Interpolating(1e-8)),
        ("ThreeRegime(1e-8, 1)", ThreeRegime(1e-8, 1.0)),
        ("Power(1) + 1e-8", Power(1) + 1e-8),
    ]
    out = [
        Row("Adam(foreach)", lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True)),
        Row("Adam(fused)", lambda p: torch.optim.Adam(p, lr=1e-3, fused=True)),
        Row("Adam(for-loop)", lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False)),
    ]
    if include_peers:
        out += heavyball_rows(compiled_peers)
    for label, metric in metrics:
        out.append(Row(f"CGD {label} foreach", lambda p, m=metric: CGD(p, lr=1e-3, metric=m, foreach=True)))
    if include_compiled and hasattr(cgd_module, "AUTO_COMPILE_AFTER"):
        # The default (no foreach/compiled argument): past AUTO_COMPILE_AFTER steps this 1 M-parameter model runs
        # the compiled program; the warm-up goes past the switch so the compile is not timed.
        out.append(
            Row(
                "CGD ThreeRegime(1e-8, 1) default",
                lambda p: CGD(p, lr=1e-3, metric=ThreeRegime(1e-8, 1.0)),
                True,
                warmup=cgd_module.AUTO_COMPILE_AFTER + WARMUP_STEPS,
            )
        )
    if include_compiled:
        for label, metric in metrics:
            out.append(Row(f"CGD {label} compiled", lambda p, m=metric: compiled_cgd(p, m, lr=1e-3), True))
        out.append(
            Row(
                "CGD ThreeRegime(1e-8, 1) compiled, nonfinite='ignore'",
                lambda p: compiled_cgd(p, ThreeRegime(1e-8, 1.0), lr=1e-3, nonfinite="ignore"),
                True,
            )
        )
    return out


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of the tensors in ``opt.state``, nested dicts and lists included (heavyball nests), each storage once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack: list[Any] = list(opt.state.values())
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            key = (value.untyped_storage().data_ptr(), value.nbytes)
            if key not in seen:
                seen.add(key)
                total += value.nbytes
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return total


def heavyball_rows(compiled: bool = False) -> list[Row]:
    """heavyball's AdamW, SOAP and PSGD-Kron: eager (``heavyball.utils.compile_mode = None``) unless ``compiled``
    (heavyball's own default: its update functions go through torch.compile; the first step compiles)."""
    try:
        import heavyball
    except ImportError:
        return []
    if not compiled:
        heavyball.utils.compile_mode = None
    label = "compiled" if compiled else "eager"
    classes = {name: getattr(heavyball, name) for name in ("AdamW", "SOAP", "PSGDKron") if hasattr(heavyball, name)}
    return [
        Row(f"heavyball {name} ({label})", lambda p, cls=cls: cls(p, lr=1e-3), compiled)
        for name, cls in classes.items()
    ]


def fx_cache_hits() -> int:
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover
        return 0
    return int(counters["inductor"]["fxgraph_cache_hit"])


class Subject:
    """One row's model, optimizer and the two gradient sets it alternates between."""

    def __init__(self, row: Row, seed: int = 0):
        model = make_mlp(seed)
        self.params = list(model.parameters())
        gen = torch.Generator().manual_seed(seed + 1)
        self.grad_sets = [[torch.randn(p.shape, generator=gen) * 1e-2 for p in self.params] for _ in range(2)]
        self.parity = 0
        self.opt = row.make(self.params)

    def step(self) -> None:
        self.parity ^= 1
        for p, g in zip(self.params, self.grad_sets[self.parity], strict=True):
            p.grad = g
        self.opt.step()


def run(
    repeats: int,
    steps: int,
    include_compiled: bool,
    console: Console,
    include_peers: bool = True,
    compiled_peers: bool = False,
) -> tuple[list[Row], int]:
    table = rows(include_compiled, include_peers, compiled_peers)
    subjects = []
    for row in table:
        hits = fx_cache_hits()
        subject = Subject(row)
        start = time.perf_counter()
        subject.step()
        row.first_step_s = time.perf_counter() - start
        row.fx_cache_hits = fx_cache_hits() - hits
        for _ in range(row.warmup):
            subject.step()
        row.state_bytes = state_bytes(subject.opt)
        subjects.append(subject)
        if row.compiled:
            console.print(f"  compiled {row.name}: first step {row.first_step_s:.1f} s", highlight=False)
    n_params = sum(p.numel() for p in subjects[0].params)
    for _ in range(repeats):
        for row, subject in zip(table, subjects, strict=True):
            start = time.perf_counter()
            for _ in range(steps):
                subject.step()
            row.times_ms.append((time.perf_counter() - start) / steps * 1e3)
    for subject in subjects:
        if not all(torch.isfinite(p).all() for p in subject.params):
            raise RuntimeError(f"non-finite parameters after the benchmark ({subject.opt!r})")
    return table, n_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per row (median reported)")
    parser.add_argument("--steps", type=int, default=30, help="steps per repeat")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the CPUs this process may use)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--no-compiled", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--no-peers", action="store_true", help="skip the heavyball rows")
    parser.add_argument(
        "--compiled-peers", action="store_true", help="run heavyball compiled (its default) instead of eagerly"
    )
    parser.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into a fresh, empty inductor cache directory (time a cold first compile)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be >= 1")

    threads = args.threads
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(threads)
    include_compiled = not args.no_compiled and cgd_compiled is not None
    if args.cold_compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="step_cost_inductor_")
    console = Console()
    if not console.is_terminal and console.width < 150:
        console = Console(width=150)
    console.print(
        f"step_cost: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{platform.processor() or platform.machine()}",
        highlight=False,
    )
    table_rows, n_params = run(
        args.repeats, args.steps, include_compiled, console, not args.no_peers, args.compiled_peers
    )

    by_name = {r.name: r for r in table_rows}
    base_foreach = statistics.median(by_name["Adam(foreach)"].times_ms)
    base_fused = statistics.median(by_name["Adam(fused)"].times_ms)
    table = Table(
        title=f"Optimizer step, MLP {'-'.join(map(str, LAYERS))} ({n_params:,} float32 params), "
        f"{args.repeats}×{args.steps} steps, {torch.get_num_threads()} threads"
    )
    for column in ("optimizer", "median ms", "min–max ms", "× Adam(foreach)", "× Adam(fused)", "state MB"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    table.add_column("first step s", justify="right")
    records = []
    for row in table_rows:
        median = statistics.median(row.times_ms)
        record = {
            "name": row.name,
            # The common schema of benchmarks/report.py: seconds, ratio (to the first peer), memory, ratios.
            "seconds": median / 1e3,
            "ratio": median / base_foreach,
            "memory": row.state_bytes,
            "ratios": {"Adam(foreach)": median / base_foreach, "Adam(fused)": median / base_fused},
            "median_ms": median,
            "min_ms": min(row.times_ms),
            "max_ms": max(row.times_ms),
            "ratio_adam_foreach": median / base_foreach,
            "ratio_adam_fused": median / base_fused,
            "state_bytes": row.state_bytes,
            "state_ratio_adam": row.state_bytes / max(by_name["Adam(foreach)"].state_bytes, 1),
            "first_step_s": row.first_step_s,
            "compiled": row.compiled,
            "fx_graph_cache_hits": row.fx_cache_hits,
            "times_ms": row.times_ms,
        }
        records.append(record)
        first = f"{row.first_step_s:.2f}" + (" (cache hit)" if row.fx_cache_hits else "")
        table.add_row(
            row.name,
            f"{median:.3f}",
            f"{min(row.times_ms):.3f}–{max(row.times_ms):.3f}",
            f"{record['ratio_adam_foreach']:.2f}",
            f"{record['ratio_adam_fused']:.2f}",
            f"{row.state_bytes / 2**20:.2f}",
            first,
        )
    console.print(table)
    console.print(
        "first step: state allocation and, for compiled rows, torch.compile (not in the median); "
        "'cache hit': inductor's on-disk FX graph cache was used.",
        highlight=False,
    )
    if args.json:
        payload = {
            "benchmark": "step_cost",
            "title": f"Diagonal optimizer step, MLP {'-'.join(map(str, LAYERS))} ({n_params:,} float32 parameters), "
            f"{args.repeats}×{args.steps} steps, rows interleaved",
            "model": {"layers": list(LAYERS), "parameters": n_params, "dtype": "float32"},
            "repeats": args.repeats,
            "steps": args.steps,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(),
            "inductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
            "rows": records,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

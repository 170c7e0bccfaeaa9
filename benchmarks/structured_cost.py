"""Step cost and state memory of the structured optimizers (KronCGD, FullCGD) against their peers, in one process.

    python benchmarks/structured_cost.py [--repeats 15] [--window 10] [--threads 1] [--json FILE]

Per model (an MLP, a small CNN, a transformer block) every optimizer is built on its own copy of the parameters
with fixed gradients (set again before each step: heavyball's optimizers clear them). The rows are then timed
interleaved: each repeat steps every optimizer for ``window`` steps (10 by default, so that each timing of a
k = 10 row holds one refresh; a k = 100 row refreshes in one repeat out of ten, which its median hides). The
ratios to torch.optim.Adam(foreach) and to the fastest SOAP row (the goal of issue #18: ≤ 0.8 at k = 10) are
taken repeat by repeat, between rows timed seconds apart; the table gives their minimum and median over repeats
(a contended machine inflates the median, not the minimum), and the state memory (bytes of the tensors in the
optimizer's state) as a ratio to Adam's and to that SOAP's. Peers: pytorch-optimizer's SOAP, heavyball's SOAP
(eager: ``heavyball.utils.compile_mode = None``) and torch.optim.Muon (it takes the 2-D weights only, so it is
timed on those), each where installed. FullCGD is timed against N, dense and low-rank.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from geodyn.metric import ThreeRegime
from geodyn.optim import FullCGD, presets


def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "MLP 256-512-256-10 (0.27 M)": nn.Sequential(
            nn.Linear(256, 512), nn.Tanh(), nn.Linear(512, 256), nn.Tanh(), nn.Linear(256, 10)
        ),
        "CNN 8×8 (2 conv + linear)": nn.Sequential(
            nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 10)
        ),
        "transformer block (d=128)": nn.TransformerEncoderLayer(128, 4, 512, batch_first=True),
    }


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor held in the optimizer's state (nested containers included, shared storage once)."""
    seen: set[int] = set()

    def walk(value: object) -> int:
        if isinstance(value, torch.Tensor):
            key = value.untyped_storage().data_ptr()
            if key in seen:
                return 0
            seen.add(key)
            return value.untyped_storage().nbytes()
        if isinstance(value, dict):
            return sum(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(walk(v) for v in value)
        return 0

    return walk(list(opt.state.values()))


class Row:
    """One optimizer on its own parameters, stepped with fixed gradients."""

    def __init__(self, make: Callable[[list[nn.Parameter]], torch.optim.Optimizer], params: list[nn.Parameter]):
        self.params = [nn.Parameter(p.detach().clone()) for p in params]
        gen = torch.Generator().manual_seed(1)
        self.grads = [torch.randn(p.shape, generator=gen) * 1e-2 for p in self.params]
        self.opt = make(self.params)
        self.step(3)  # warm-up: state allocation, first refresh

    def step(self, n: int) -> None:
        for _ in range(n):
            for p, g in zip(self.params, self.grads):
                p.grad = g
            self.opt.step()

    def time_ms(self, window: int) -> float:
        start = time.perf_counter()
        self.step(window)
        return (time.perf_counter() - start) / window * 1e3


def peers() -> dict[str, Callable | None]:
    out: dict[str, Callable | None] = {
        "Adam (foreach)": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
    }
    try:
        from pytorch_optimizer import SOAP

        out["SOAP (pytorch-optimizer, k=10)"] = lambda p: SOAP(p, lr=1e-3, precondition_frequency=10)
    except ImportError:
        out["SOAP (pytorch-optimizer, k=10)"] = None
    try:
        import heavyball
        import heavyball.utils

        heavyball.utils.compile_mode = None  # eager: no inductor/C++ toolchain needed on CPU
        out["SOAP (heavyball, eager, k=10)"] = lambda p: heavyball.SOAP(
            p, lr=1e-3, precondition_frequency=10, use_precond_schedule=False, weight_decay=0.0
        )
    except ImportError:
        out["SOAP (heavyball, eager, k=10)"] = None
    muon = getattr(torch.optim, "Muon", None)
    out["torch.optim.Muon (2-D weights)"] = (
        (lambda p: muon([q for q in p if q.ndim == 2], lr=1e-3)) if muon is not None else None
    )
    for k in (1, 10, 100):
        out[f"KronCGD three-regime adaptive, k={k}"] = lambda p, k=k: presets.three_regime_kron(
            p, lr=1e-3, precondition_every=k
        )
    out["KronCGD three-regime adaptive, k=10, refresh=eigh"] = lambda p: presets.three_regime_kron(
        p, lr=1e-3, precondition_every=10, refresh="eigh"
    )
    out["KronCGD three-regime adaptive, k=10, per-matrix eigh (the former step)"] = lambda p: presets.three_regime_kron(
        p, lr=1e-3, precondition_every=10, refresh="eigh", foreach=False
    )
    out["KronCGD Shampoo limit (kron), k=10"] = lambda p: presets.shampoo(p, lr=1e-3, precondition_every=10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--window", type=int, default=10, help="steps per timing (10: one refresh at k = 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=200)
    rows = []
    for model_name, model in models().items():
        params = list(model.parameters())
        built = {name: Row(make, params) for name, make in peers().items() if make is not None}
        times: dict[str, list[float]] = {name: [] for name in built}
        for _ in range(args.repeats):
            for name, row in built.items():
                times[name].append(row.time_ms(args.window))
        adam = times["Adam (foreach)"]
        adam_bytes = state_bytes(built["Adam (foreach)"].opt)
        soaps = [name for name in built if name.startswith("SOAP")]
        soap = min(soaps, key=lambda name: statistics.median(times[name])) if soaps else None
        title = f"{model_name}: {sum(p.numel() for p in params):,} parameters; fastest SOAP: {soap}"
        columns = ["ms/step min", "ms/step median", "× Adam min", "× Adam median", "× fastest SOAP min",
                   "× fastest SOAP median", "state × Adam", "state × SOAP"]  # fmt: skip
        table = Table("optimizer", *columns, title=title)
        soap_bytes = state_bytes(built[soap].opt) if soap else None
        for name, make in peers().items():
            if make is None:
                table.add_row(name, "not installed", "", "", "", "", "", "", "")
                continue
            ratios = [t / a for t, a in zip(times[name], adam)]
            # the goal's ratio, repeat by repeat: both rows ran within the same repeat, seconds apart
            to_soap = [t / s for t, s in zip(times[name], times[soap])] if soap else [math.nan]
            memory = state_bytes(built[name].opt)
            rows.append({"model": model_name, "optimizer": name, "ms": times[name], "ms_min": min(times[name]),
                         "ms_median": statistics.median(times[name]), "ratio_min": min(ratios),
                         "ratio_median": statistics.median(ratios), "soap_ratio_min": min(to_soap),
                         "soap_ratio_median": statistics.median(to_soap), "state_ratio": memory / adam_bytes,
                         "state_bytes": memory, "fastest_soap": soap,
                         # the keys benchmarks/report.py renders (medians; the minima go into the note)
                         "table": title, "name": name, "seconds": statistics.median(times[name]) / 1e3,
                         "ratios": {"Adam(foreach)": statistics.median(ratios),
                                    "fastest SOAP": statistics.median(to_soap)},
                         "memory": memory,
                         "note": f"min × Adam {min(ratios):.2f}, min × fastest SOAP {min(to_soap):.2f}"})  # fmt: skip
            table.add_row(name, f"{min(times[name]):.3f}", f"{statistics.median(times[name]):.3f}",
                          f"{min(ratios):.2f}", f"{statistics.median(ratios):.2f}", f"{min(to_soap):.2f}",
                          f"{statistics.median(to_soap):.2f}", f"{memory / adam_bytes:.2f}",
                          f"{memory / soap_bytes:.3f}" if soap_bytes else "")  # fmt: skip
        console.print(table)

    table = Table("N", "form", "ms/step (k=1)", "ms/step (k=10)", "state MB", title="FullCGD cost vs N")
    law = ThreeRegime(1e-8, 1.0)
    cases = [(n, None) for n in (100, 300, 1000, 2000)] + [(n, 16) for n in (1000, 10_000, 100_000)]
    for n, rank in cases:
        p = [nn.Parameter(torch.zeros(n))]
        k1 = Row(lambda q, rank=rank: FullCGD(q, metric=law, rank=rank), p)
        if rank is None:
            k10 = Row(lambda q: FullCGD(q, metric=law, precondition_every=10, damping=1e-6), p)
            k10_ms = statistics.median(k10.time_ms(20) for _ in range(3))
        window = 5 if rank is None and n >= 1000 else 20  # a dense eigh of N ≥ 1000 takes 0.1–3 s a step
        k1_ms = statistics.median(k1.time_ms(window) for _ in range(3))
        state_mb = state_bytes(k1.opt) / 1e6
        form = "dense" if rank is None else f"rank {rank} + diagonal"
        rows.append({"model": f"FullCGD N={n}", "form": form, "k1_ms": k1_ms,
                     "k10_ms": k10_ms if rank is None else None, "state_mb": state_mb})  # fmt: skip
        table.add_row(str(n), form, f"{k1_ms:.2f}", f"{k10_ms:.2f}" if rank is None else "—", f"{state_mb:.1f}")
    console.print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": torch.get_num_threads(), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()

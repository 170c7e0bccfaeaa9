"""Step cost of the structured optimizers (KronCGD, FullCGD) against their peers, measured in one process.

    python benchmarks/structured_cost.py [--repeats 3] [--window 100] [--json FILE]

Per model (an MLP, a small CNN, a transformer block) the amortised step time over a window of steps (so an
eigenbasis refresh every k steps is included), median over repeats, as a ratio to torch.optim.Adam(foreach) run
on the same model with the same gradients. Peers: pytorch-optimizer's SOAP (if installed) and torch.optim.Muon
(if present; it takes the 2-D weights only, so it is timed on those). FullCGD is timed against N.
"""

from __future__ import annotations

import argparse
import json
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


def amortised_step_ms(make: Callable[[list[nn.Parameter]], torch.optim.Optimizer], params: list[nn.Parameter],
                      window: int, repeats: int) -> float:  # fmt: skip
    grads = [torch.randn_like(p) * 1e-2 for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    opt = make(params)
    for _ in range(3):
        opt.step()  # warm-up: state allocation, first refresh
    STATE_BYTES[id(params[0])] = state_bytes(opt)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(window):
            opt.step()
        times.append((time.perf_counter() - start) / window * 1e3)
    return statistics.median(times)


# Optimizer state bytes of the last amortised_step_ms call per parameter list (for the "memory" of --json rows).
STATE_BYTES: dict[int, int] = {}


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of the tensors in ``opt.state``, nested dicts and lists included, each storage once."""
    seen: set[tuple[int, int]] = set()
    total, stack = 0, list(opt.state.values())
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor) and (value.untyped_storage().data_ptr(), value.nbytes) not in seen:
            seen.add((value.untyped_storage().data_ptr(), value.nbytes))
            total += value.nbytes
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return total


def peers() -> dict[str, Callable | None]:
    out: dict[str, Callable | None] = {
        "Adam (foreach)": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
    }
    try:
        from pytorch_optimizer import SOAP

        out["SOAP (pytorch-optimizer, k=10)"] = lambda p: SOAP(p, lr=1e-3, precondition_frequency=10)
    except ImportError:
        out["SOAP (pytorch-optimizer, k=10)"] = None
    muon = getattr(torch.optim, "Muon", None)
    out["torch.optim.Muon (2-D weights)"] = (
        (lambda p: muon([q for q in p if q.ndim == 2], lr=1e-3)) if muon is not None else None
    )
    for k in (1, 10, 100):
        out[f"KronCGD three-regime adaptive, k={k}"] = lambda p, k=k: presets.three_regime_kron(
            p, lr=1e-3, precondition_every=k
        )
    out["KronCGD Shampoo limit (kron), k=10"] = lambda p: presets.shampoo(p, lr=1e-3, precondition_every=10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    console = Console()
    rows = []
    for model_name, model in models().items():
        params = [p for p in model.parameters()]
        table = Table("optimizer", "ms/step (amortised)", "× Adam(foreach)",
                      title=f"{model_name}: {sum(p.numel() for p in params):,} parameters")  # fmt: skip
        base = None
        for name, make in peers().items():
            if make is None:
                table.add_row(name, "not installed", "")
                continue
            fresh = [nn.Parameter(p.detach().clone()) for p in params]
            ms = amortised_step_ms(make, fresh, args.window, args.repeats)
            base = ms if base is None else base
            rows.append({"model": model_name, "optimizer": name, "ms_per_step": ms, "ratio_to_adam": ms / base,
                         "memory": STATE_BYTES.get(id(fresh[0]))})  # fmt: skip
            table.add_row(name, f"{ms:.3f}", f"{ms / base:.2f}")
        console.print(table)

    table = Table("N", "FullCGD k=1 ms/step", "FullCGD k=10 ms/step", "state MB", title="FullCGD cost vs N")
    for n in (100, 300, 1000, 2000):
        p = [nn.Parameter(torch.zeros(n))]
        k1 = amortised_step_ms(lambda q: FullCGD(q, metric=ThreeRegime(1e-8, 1.0)), p, 20, args.repeats)
        k10 = amortised_step_ms(
            lambda q: FullCGD(q, metric=ThreeRegime(1e-8, 1.0), precondition_every=10), p, 20, args.repeats
        )
        state_mb = (n * n + 3 * n) * 4 / 1e6
        rows.append({"model": f"FullCGD N={n}", "k1_ms": k1, "k10_ms": k10, "state_mb": state_mb})
        table.add_row(str(n), f"{k1:.2f}", f"{k10:.2f}", f"{state_mb:.1f}")
    console.print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": torch.get_num_threads(), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()

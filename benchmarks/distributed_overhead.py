"""Cost of CGD under torch.distributed: 2 gloo ranks on the CPU against one process on the same global batch.

    python benchmarks/distributed_overhead.py [--batch N] [--steps N] [--repeats N] [--json FILE]

Model: the MLP 784-1000-256-64-10 of ``step_cost.py`` (1,058,354 float32 parameters), MSE loss on a fixed
random global batch, ``CGD(metric=ThreeRegime(1e-8, 1.0))`` with its non-finite check on (the default).
Every process uses one torch thread: the two ranks together use two cores, the single process one. (Two
threads in one process are no fair baseline on a shared 2-core machine: when another process holds a core,
the second thread spin-waits and small operations slow down a hundredfold.)

Rows:

- train step: zero_grad + forward + backward + ``opt.step()``. One process on the whole batch; DDP and FSDP2
  (``fully_shard`` per Linear and on the root) with each rank on half of it. Ideal for two ranks is 0.5× the
  single process; the rest is communication (gradient all-reduce, FSDP2 all-gathers and reduce-scatters)
  and wrapper overhead.
- optimizer step: ``opt.step()`` alone on the gradients the last train step left. Under DDP each rank steps
  all parameters (as one process does); under FSDP2 its half of them, plus one all-reduce of the non-finite
  flag. Two more FSDP2 rows: the step without the check (``nonfinite="ignore"``), which isolates that
  all-reduce, and the same unchecked arithmetic run through DTensor dispatch (``cgd_foreach`` on the DTensors
  instead of their local shards), which is what the local views save. The last row is a bare all-reduce of one
  float over the two ranks: the latency the check's collective costs.

Every row is timed in the same two processes, interleaved: each repeat times ``--steps`` steps of every row in
turn, between barriers, on rank 0's clock, so load from other processes falls on all rows alike. The
single-process rows run on rank 0 while rank 1 waits in the barrier. The first round is a warm-up; the
figures are the median and the minimum over ``--repeats`` rounds of the mean step time. On a shared machine
compare the min columns too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from geodyn.metric import ThreeRegime
from geodyn.optim import CGD
from geodyn.optim.base import group_options
from geodyn.optim.cgd import cgd_foreach

LAYERS = (784, 1000, 256, 64, 10)
WORLD = 2
WARMUP = 3


def make_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(LAYERS[:-1], LAYERS[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(LAYERS) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, LAYERS[0], generator=gen), torch.randn(batch, LAYERS[-1], generator=gen)


def make_opt(params: Any, **kw: Any) -> CGD:
    return CGD(params, lr=1e-3, metric=ThreeRegime(1e-8, 1.0), **kw)


class Trainer:
    """A model, its CGD and its part of the batch: one train step, or the optimizer step alone."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **opt_kw: Any):
        self.model, self.x, self.y = model, x, y
        self.opt = make_opt(model.parameters(), **opt_kw)

    def train_step(self) -> None:
        self.opt.zero_grad()
        nn.functional.mse_loss(self.model(self.x), self.y).backward()
        self.opt.step()

    def dtensor_dispatch_step(self) -> None:
        """The same arithmetic as ``opt.step()`` without the check, run on the DTensors themselves."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        states = [self.opt.state[p] for p in params]
        options = group_options(self.opt.param_groups[0]) | {"eps_inside": 0.0}
        with torch.no_grad():
            cgd_foreach(
                params,
                [p.grad for p in params],
                [s["first_moment"] for s in states],
                [s["noise_moment"] for s in states],
                [s["step"] for s in states],
                **options,
            )


def _fsdp_model() -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = make_mlp()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def _worker(rank: int, init_file: str, out_file: str, batch: int, steps: int, repeats: int) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x, y = make_batch(batch)
        half = batch // WORLD
        xr, yr = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
        single = Trainer(make_mlp(), x, y)  # stepped on rank 0 only, while rank 1 waits in a barrier
        ddp = Trainer(DDP(make_mlp()), xr, yr)
        fsdp = Trainer(_fsdp_model(), xr, yr)
        fsdp_unchecked = Trainer(_fsdp_model(), xr, yr, nonfinite="ignore")
        idle = lambda: None  # noqa: E731
        # In timing order: each optimizer-only row follows a train row of the same model, which leaves gradients.
        rows: dict[str, Callable[[], None]] = {
            "single_train": single.train_step if rank == 0 else idle,
            "single_opt": single.opt.step if rank == 0 else idle,
            "ddp_train": ddp.train_step,
            "ddp_opt": ddp.opt.step,
            "fsdp_train": fsdp.train_step,
            "fsdp_opt": fsdp.opt.step,
            "fsdp_unchecked_train": fsdp_unchecked.train_step,
            "fsdp_opt_unchecked": fsdp_unchecked.opt.step,
            "fsdp_opt_dtensor": fsdp_unchecked.dtensor_dispatch_step,
            "flag_all_reduce": lambda: dist.all_reduce(torch.zeros(1), op=dist.ReduceOp.MAX),
        }
        means: dict[str, list[float]] = {name: [] for name in rows}
        for repeat in range(repeats + 1):  # the first round warms up (state allocation, first-call costs)
            for name, fn in rows.items():
                dist.barrier()
                start = time.perf_counter()
                for _ in range(steps):
                    fn()
                dist.barrier()
                if repeat:
                    means[name].append((time.perf_counter() - start) / steps)
        if rank == 0:
            torch.save({name: [statistics.median(m), min(m)] for name, m in means.items()}, out_file)
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256, help="global batch (each rank takes half)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "results.pt")
        mp.spawn(
            _worker,
            args=(os.path.join(tmp, "rendezvous"), out_file, args.batch, args.steps, args.repeats),
            nprocs=WORLD,
        )
        t = torch.load(out_file)

    n_params = sum(p.numel() for p in make_mlp().parameters())
    print(f"CGD ThreeRegime(1e-8, 1), MLP {'-'.join(map(str, LAYERS))} ({n_params:,} float32 parameters)")
    print(f"global batch {args.batch}; {WORLD} gloo ranks on CPU, 1 thread each; {os.cpu_count()} cores")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, Python {sys.version.split()[0]}")
    rows = [
        ("train step, 1 process (whole batch)", t["single_train"], t["single_train"]),
        ("train step, DDP (half batch per rank)", t["ddp_train"], t["single_train"]),
        ("train step, FSDP2 (half batch per rank)", t["fsdp_train"], t["single_train"]),
        ("optimizer step, 1 process", t["single_opt"], t["single_opt"]),
        ("optimizer step, DDP", t["ddp_opt"], t["single_opt"]),
        ("optimizer step, FSDP2 (half the parameters)", t["fsdp_opt"], t["single_opt"]),
        ("optimizer step, FSDP2, nonfinite='ignore'", t["fsdp_opt_unchecked"], t["single_opt"]),
        ("optimizer step, FSDP2, DTensor dispatch", t["fsdp_opt_dtensor"], t["single_opt"]),
        ("all-reduce of one float (the flag's collective)", t["flag_all_reduce"], t["single_opt"]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'median ms':>9}  {'× 1 proc':>8}  {'min ms':>8}  {'× 1 proc':>8}")
    for label, (median, best), (base_median, base_best) in rows:
        ratios = f"{median * 1e3:9.2f}  {median / base_median:8.2f}  {best * 1e3:8.2f}  {best / base_best:8.2f}"
        print(f"{label:{width}}  {ratios}")
    results = {"seconds_median_min": t, "batch": args.batch, "parameters": n_params, "cores": os.cpu_count()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

"""Spawning a 2-process gloo world on CPU, and what its ranks run (imported by the spawned processes by name).

:func:`run_world` starts the ranks with ``torch.multiprocessing.spawn``, rendezvous through a file in a fresh
temporary folder (parallel runs cannot collide on a port), and returns what each rank saved. A rank that raises
makes ``run_world`` raise with its traceback (spawn terminates the other ranks); a world that runs past its
deadline is killed and reported as a TimeoutError, and collectives time out on their own after
``COLLECTIVE_TIMEOUT`` so a rank waiting for a dead peer cannot hang.

The scenarios train :func:`mlp` on :func:`global_batches`; each rank takes its half of every global batch and
the mean loss over it. DDP and FSDP2 average the gradients over the ranks, so a single process training on the
mean loss over the whole global batch takes the same steps up to float64 round-off.
"""

from __future__ import annotations

import datetime
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=30)
GLOBAL_BATCH = 16
STEPS = 20


def mlp(seed: int = 0) -> nn.Module:
    """A float64 MLP whose output sizes (15, 7, 1) do not divide by 2: FSDP2 shards them unevenly, and the last
    weight (1×7) leaves rank 1 an empty shard."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 15), nn.Tanh(), nn.Linear(15, 7), nn.Tanh(), nn.Linear(7, 1)).double()


def global_batches(steps: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        x = torch.randn(GLOBAL_BATCH, 6, generator=gen, dtype=torch.float64)
        y = (x[:, :1] * x[:, 1:2] + torch.sin(x[:, 2:3])).to(torch.float64)
        batches.append((x, y))
    return batches


def rank_half(batch: tuple[torch.Tensor, torch.Tensor], rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    half = GLOBAL_BATCH // WORLD
    x, y = batch
    return x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()


def optimizer_factories() -> dict[str, Callable[[Any], torch.optim.Optimizer]]:
    """The diagonal CGD configurations held to single-process training (built on any parameter list)."""
    from geodyn.metric import ThreeRegime
    from geodyn.optim import CGD, presets

    def three_regime(params: Any, **kw: Any) -> torch.optim.Optimizer:
        return CGD(params, lr=2e-2, metric=ThreeRegime(1e-8, 2.0), weight_decay=1e-3, **kw)

    return {
        "three_regime": three_regime,
        "three_regime_loop": lambda p: three_regime(p, foreach=False),
        "adam": lambda p: presets.adam(p, lr=2e-2, weight_decay=1e-3),
        "sgd_momentum": lambda p: presets.sgd(p, lr=5e-2, momentum=0.9),
    }


def structured_factories() -> dict[str, Callable[[Any], torch.optim.Optimizer]]:
    """KronCGD and FullCGD configurations (DDP parity; FSDP2 refusal)."""
    from geodyn.optim import presets

    return {
        "kron": lambda p: presets.three_regime_kron(p, lr=1e-2, zeta=2.0, precondition_every=5, sides="smaller"),
        "full": lambda p: presets.natural_gradient_full(p, lr=1e-2, damping=1e-1, precondition_every=5),
    }


def single_process(make_opt: Callable[[Any], torch.optim.Optimizer], steps: int = STEPS) -> list[torch.Tensor]:
    """Parameters after ``steps`` steps of one process on the whole global batches (the reference)."""
    model = mlp()
    opt = make_opt(model.parameters())
    for x, y in global_batches(steps):
        train_step(model, opt, x, y)
    return [p.detach().clone() for p in model.parameters()]


def _entry(rank: int, init_file: str, out_dir: str, scenario: Callable[..., dict[str, Any]], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=COLLECTIVE_TIMEOUT
    )
    try:  # an exception travels to run_world with its traceback (torch.multiprocessing.spawn)
        torch.save(scenario(rank, *args), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_world(
    scenario: Callable[..., dict[str, Any]], workdir: Path, *args: Any, timeout: float = 120.0
) -> list[dict[str, Any]]:
    """Run ``scenario(rank, *args)`` on 2 gloo ranks; return each rank's result dict (rank order)."""
    workdir.mkdir(parents=True, exist_ok=True)
    init_file = workdir / "rendezvous"
    context = mp.spawn(
        _entry, args=(str(init_file), str(workdir), scenario, args), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            raise TimeoutError(f"{scenario.__name__} did not finish on {WORLD} ranks within {timeout:.0f} s")
    return [torch.load(workdir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --- scenarios (run on every rank) -------------------------------------------------------------------------------


def _full(params: Any) -> list[torch.Tensor]:
    from geodyn.optim.distributed import is_dtensor

    return [(p.full_tensor() if is_dtensor(p) else p).detach().clone() for p in params]


def _nonfinite_outcomes(
    rank: int, model: nn.Module, make_opt: Callable[..., Any], x: torch.Tensor, y: torch.Tensor, where: str
) -> dict[str, Any]:
    """Each policy ("raise", "skip") with a NaN on rank 1 only, put ``where`` = "input" (one input element) or
    "grad" (one element of rank 1's local gradient shard): what each rank saw and did."""
    from geodyn.optim.distributed import local_tensor

    params = list(model.parameters())
    out: dict[str, Any] = {}
    for policy in ("raise", "skip"):
        opt = make_opt(params, nonfinite=policy)
        train_step(model, opt, x, y)  # a clean step first, so that the state exists
        before = _full(params)
        bad_x = x.clone()
        if rank == 1 and where == "input":
            bad_x[0, 0] = float("nan")
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(bad_x), y)
        loss.backward()
        out[f"{policy}_local_loss_finite"] = bool(loss.isfinite())
        if rank == 1 and where == "grad":
            grad = next(g for g in (local_tensor(p.grad) for p in params) if g.numel())
            grad.view(-1)[0] = float("nan")
        out[f"{policy}_local_grads_finite"] = all(bool(local_tensor(p.grad).isfinite().all()) for p in params)
        try:
            opt.step()
            out[f"{policy}_raised"] = None
        except Exception as error:  # noqa: BLE001 - recorded; the test asserts its type
            out[f"{policy}_raised"] = type(error).__name__
        out[f"{policy}_skipped_steps"] = opt.skipped_steps
        out[f"{policy}_moved"] = max((a - b).abs().max().item() for a, b in zip(_full(params), before))
    return out


def ddp_scenario(rank: int) -> dict[str, Any]:
    """DistributedDataParallel (plain tensors): every CGD configuration, KronCGD, FullCGD, and the non-finite check."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    from geodyn.optim import CGD

    out: dict[str, Any] = {"params": {}}
    batches = global_batches(STEPS)
    for name, make_opt in (optimizer_factories() | structured_factories()).items():
        model = DDP(mlp())
        opt = make_opt(model.parameters())
        for batch in batches:
            train_step(model, opt, *rank_half(batch, rank))
        out["params"][name] = _full(model.parameters())

    # NaN in rank 1's input: DDP's gradient all-reduce carries it to rank 0, whose own loss is finite.
    x, y = rank_half(batches[0], rank)
    out["nonfinite"] = _nonfinite_outcomes(rank, DDP(mlp()), lambda p, **kw: CGD(p, lr=1e-2, **kw), x, y, "input")
    return out


def fsdp_scenario(rank: int, checkpoint_dir: str) -> dict[str, Any]:
    """FSDP2 (``fully_shard``, DTensor parameters and state): parity, state layout, DCP save/resume, the non-finite
    check, and the refusal of KronCGD and FullCGD."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.fsdp import fully_shard

    from geodyn.metric import Power, ThreeRegime
    from geodyn.optim import CGD
    from geodyn.optim.distributed import is_dtensor

    def sharded(seed: int = 0) -> nn.Module:
        model = mlp(seed)
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        return fully_shard(model)

    out: dict[str, Any] = {"params": {}, "layout": {}}
    batches = global_batches(STEPS)
    for name, make_opt in optimizer_factories().items():
        model = sharded()
        opt = make_opt(model.parameters())
        for batch in batches:
            train_step(model, opt, *rank_half(batch, rank))
        out["params"][name] = _full(model.parameters())
        out["layout"][name] = [
            {
                key: (is_dtensor(value), value.placements == p.placements, value.to_local().shape == p.to_local().shape)
                for key, value in opt.state[p].items()
                if key != "step"
            }
            for p in model.parameters()
        ]
    out["local_numels"] = [p.to_local().numel() for p in sharded().parameters()]

    # Collectives issued by one step: the agreed non-finite flag only (none when the check is off).
    from torch.distributed.tensor.debug import CommDebugMode

    out["step_collectives"] = {}
    for policy in ("raise", "ignore"):
        model = sharded()
        opt = CGD(model.parameters(), lr=1e-2, metric=ThreeRegime(1e-8, 2.0), nonfinite=policy)
        nn.functional.mse_loss(model(batches[0][0]), batches[0][1]).backward()
        with CommDebugMode() as comm:
            opt.step()
        out["step_collectives"][policy] = comm.get_total_counts()

    # Checkpoint with two param groups (one with its own metric law); resume into a fresh model and optimizer.
    def two_groups(model: nn.Module, lr: float, bias_metric: Any) -> CGD:
        weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        return CGD(
            [{"params": weights}, {"params": biases, "metric": bias_metric, "moment": "raw"}],
            lr=lr,
            metric=ThreeRegime(1e-8, 2.0),
            weight_decay=1e-3,
        )

    k1, k2 = 8, 6
    model = sharded()
    opt = two_groups(model, lr=2e-2, bias_metric=Power(1.0) + 1e-6)
    for batch in batches[:k1]:
        train_step(model, opt, *rank_half(batch, rank))
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=checkpoint_dir)
    uninterrupted = []
    for batch in batches[k1 : k1 + k2]:
        train_step(model, opt, *rank_half(batch, rank))
        uninterrupted.append(_full(model.parameters()))

    fresh_model = sharded(seed=123)
    # Other hyperparameters than the saved ones: the checkpoint's must replace them for the resume to match.
    fresh_opt = two_groups(fresh_model, lr=1.0, bias_metric=Power(0.5))
    model_sd, optim_sd = get_state_dict(fresh_model, fresh_opt)
    dcp.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=checkpoint_dir)
    set_state_dict(fresh_model, fresh_opt, model_state_dict=model_sd, optim_state_dict=optim_sd)
    out["resumed_steps"] = sorted({float(s["step"]) for s in fresh_opt.state.values()})
    out["resumed_state_is_sharded"] = all(
        is_dtensor(s["first_moment"]) and s["first_moment"].placements == p.placements
        for p, s in fresh_opt.state.items()
    )
    out["resumed_bias_metric"] = repr(fresh_opt.param_groups[1]["metric"])
    resumed = []
    for batch in batches[k1 : k1 + k2]:
        train_step(fresh_model, fresh_opt, *rank_half(batch, rank))
        resumed.append(_full(fresh_model.parameters()))
    out["resume_diffs"] = [
        max((a - b).abs().max().item() for a, b in zip(u, r)) for u, r in zip(uninterrupted, resumed)
    ]
    out["resume_bit_identical"] = all(
        all(torch.equal(a, b) for a, b in zip(u, r)) for u, r in zip(uninterrupted, resumed)
    )

    x, y = rank_half(batches[0], rank)
    out["nonfinite"] = _nonfinite_outcomes(
        rank, sharded(), lambda p, **kw: CGD(p, lr=1e-2, metric=ThreeRegime(1e-8, 2.0), **kw), x, y, "grad"
    )

    out["refusals"] = {}
    for name, make_opt in structured_factories().items():
        try:
            make_opt(sharded().parameters())
            out["refusals"][name] = None
        except (TypeError, ValueError) as error:
            out["refusals"][name] = f"{type(error).__name__}: {error}"
    return out


def plain_scenario(rank: int) -> dict[str, Any]:
    """Plain tensors without DDP (gradients differ between ranks, as in pipeline stages): a NaN in rank 1's
    gradient stops rank 0 only through ``nonfinite_group``."""
    from geodyn.optim import CGD

    x, y = rank_half(global_batches(1)[0], rank)
    return {
        name: _nonfinite_outcomes(
            rank, mlp(), lambda p, group=group, **kw: CGD(p, lr=1e-2, nonfinite_group=group, **kw), x, y, "grad"
        )
        for name, group in (("no_group", None), ("world_group", dist.group.WORLD))
    }


def fsdp_compiled_scenario(rank: int) -> dict[str, Any]:
    """FSDP2 with ``compiled=True``: the fused step runs on each rank's local shards. A failure to compile is
    recorded, not raised: it happens on both ranks alike, outside any collective, and only its own test fails."""
    from torch.distributed.fsdp import fully_shard

    try:
        model = mlp()
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)
        opt = optimizer_factories()["three_regime"](model.parameters(), compiled=True)
        for batch in global_batches(STEPS):
            train_step(model, opt, *rank_half(batch, rank))
        return {"params": _full(model.parameters()), "error": None}
    except Exception:  # noqa: BLE001 - reported by the test
        return {"params": None, "error": traceback.format_exc()}


def all_scenarios(rank: int, checkpoint_dir: str) -> dict[str, Any]:
    """Every scenario in one pair of processes: starting one costs ~8 s on 2 cores (torch, then torch._dynamo,
    which DDP and torch.compile both import)."""
    return {
        "ddp": ddp_scenario(rank),
        "fsdp": fsdp_scenario(rank, checkpoint_dir),
        "plain": plain_scenario(rank),
        "compiled": fsdp_compiled_scenario(rank),
    }

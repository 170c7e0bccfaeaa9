"""Exact limits (EQUATIONS.md §6): SGD, RMSprop, Adam, AdamW and AdaBelief are CGD with particular metric laws."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import warnings
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from torch import nn

from geodyn.experiments.registry import Check, Context, Outcome, experiment
from geodyn.optim import presets
from geodyn.tasks import multiplication_task

TOLERANCE = 1e-10  # float64 round-off accumulated over the run; an algorithmic difference shows at ≥ 1e-6

Factory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def _adabelief_reference(**kw) -> Factory | None:
    if importlib.util.find_spec("adabelief_pytorch") is None:
        return None

    def make(params):
        from adabelief_pytorch import AdaBelief

        # The reference announces its settings on stdout; keep the command's output clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return AdaBelief(params, rectify=False, print_change_log=False, **kw)

    return make


def limits() -> dict[str, tuple[Factory, Factory | None]]:
    """Preset → (geodyn optimizer, reference optimizer or None when the reference is not installed)."""
    return {
        "sgd (momentum 0.9)": (
            lambda p: presets.sgd(p, lr=0.02, momentum=0.9, weight_decay=1e-3),
            lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=1e-3),
        ),
        "rmsprop": (
            lambda p: presets.rmsprop(p, lr=1e-3, alpha=0.95, eps=1e-6),
            lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.95, eps=1e-6),
        ),
        "adam": (
            lambda p: presets.adam(p, lr=3e-3, weight_decay=1e-3),
            lambda p: torch.optim.Adam(p, lr=3e-3, weight_decay=1e-3),
        ),
        "adamw": (
            lambda p: presets.adamw(p, lr=3e-3, weight_decay=0.05),
            lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.05),
        ),
        "adabelief": (
            lambda p: presets.adabelief(p, lr=3e-3, eps=1e-12, weight_decouple=False, weight_decay=1e-3),
            _adabelief_reference(lr=3e-3, eps=1e-12, weight_decouple=False, weight_decay=1e-3),
        ),
        "adabelief (decoupled)": (
            lambda p: presets.adabelief(p, lr=3e-3, weight_decay=0.05, weight_decouple=True),
            _adabelief_reference(lr=3e-3, weight_decay=0.05, weight_decouple=True),
        ),
    }


def compare(make_ours: Factory, make_ref: Factory, steps: int, batch: int, seed: int) -> dict[str, list[float]]:
    """Train one MLP twice on the same minibatches; per step: max |Δθ| and both losses."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)).double()
    twin = copy.deepcopy(model)
    ours, ref = make_ours(list(model.parameters())), make_ref(list(twin.parameters()))
    x_all, y_all = multiplication_task(1024, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    record: dict[str, list[float]] = {"deviation": [], "loss": [], "reference_loss": []}
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        for net, opt, key in ((model, ours, "loss"), (twin, ref, "reference_loss")):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            record[key].append(loss.item())
        record["deviation"].append(
            max((a - b).abs().max().item() for a, b in zip(model.parameters(), twin.parameters()))
        )
    return record


@experiment(
    "exact-limits",
    equations=("2.2", "2.9", "6.4"),
    statement="SGD, RMSprop, Adam, AdamW and AdaBelief are covariant gradient descent with metric laws "
    "Power(0) and ε + κ^½ (raw or central κ): each preset steps exactly like its reference implementation.",
    section="Covariant gradient descent (ref. [13])",
    quick={"steps": 200, "batch": 32},
    full={"steps": 2000, "batch": 32},
)
def exact_limits(ctx: Context) -> Outcome:
    steps, batch = ctx.params["steps"], ctx.params["batch"]
    table = limits()
    checks, data, absent = [], {}, []
    fig, (ax_dev, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, (make_ours, make_ref)) in enumerate(table.items()):
        if make_ref is None:
            absent.append(name)
            continue
        record = compare(make_ours, make_ref, steps, batch, ctx.seed)
        worst = max(record["deviation"])
        data[name] = {"max_deviation": worst, "final_loss": record["loss"][-1]}
        checks.append(Check(f"{name}: max |Δθ| over {steps} steps", worst, TOLERANCE, note="float64"))
        ax_dev.semilogy([max(d, 1e-18) for d in record["deviation"]], label=name)
        ax_loss.semilogy(record["loss"], label=name, alpha=0.8)
        ctx.progress((i + 1) / len(table))
    ax_dev.axhline(TOLERANCE, color="k", ls="--", lw=1, label="tolerance")
    ax_dev.set(xlabel="step", ylabel="max |θ_geodyn − θ_reference|", title="deviation from the reference")
    ax_loss.set(xlabel="step", ylabel="minibatch loss", title="training loss (geodyn presets)")
    ax_dev.legend(fontsize=8, loc="center right")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    summary = (
        f"Each preset and its reference train the same float64 MLP on y = x₁x₂ for {steps} steps; the largest "
        f"parameter deviation over all presets is {max(d['max_deviation'] for d in data.values()):.2e}."
    )
    if absent:
        summary += (
            f" Not compared (reference not installed: pip install adabelief-pytorch==0.2.1): {', '.join(absent)}."
        )
    return Outcome(checks=checks, figures={"deviation": fig}, data=data, summary=summary)

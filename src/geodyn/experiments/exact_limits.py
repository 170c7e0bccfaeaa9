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

from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment
from geodyn.optim import presets
from geodyn.tasks import multiplication_task

TOLERANCE = 1e-10  # float64 round-off accumulated over the run; an algorithmic difference shows at ≥ 1e-6
REFERENCE = "adabelief-pytorch==0.2.1"  # the AdaBelief reference of EQUATIONS.md §6

Factory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def require_reference() -> None:
    """Raise ModuleNotFoundError when the AdaBelief reference is missing: a row that cannot be compared must
    make the run an error, never vanish from the table (the runner reports an ImportError as a missing
    dependency)."""
    if importlib.util.find_spec("adabelief_pytorch") is None:
        raise ModuleNotFoundError(
            f"exact-limits compares the AdaBelief presets with their reference: pip install {REFERENCE}"
        )


def _adabelief_reference(**kw) -> Factory:
    def make(params):
        from adabelief_pytorch import AdaBelief

        # The reference announces its settings on stdout; keep the command's output clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return AdaBelief(params, rectify=False, print_change_log=False, **kw)

    return make


def _altered(make: Factory, **changes) -> Factory:
    """The preset of ``make`` with some of its CGD settings changed (a deliberately wrong variant)."""

    def build(params):
        opt = make(params)
        for group in opt.param_groups:
            group.update(changes)
        return opt

    return build


def limits() -> dict[str, tuple[Factory, Factory]]:
    """Preset → (geodyn optimizer, reference optimizer) for every exact limit of EQUATIONS.md §6."""
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


def wrong_limits(table: dict[str, tuple[Factory, Factory]]) -> dict[str, tuple[str, str, Factory, Factory]]:
    """Controls: a preset with one setting of its metric law or its moments wrong, against the same reference.

    Each is a plausible misreading of the §6 table; the exact-limit check must see the difference.
    Name → (what is wrong, the preset it alters, wrong geodyn optimizer, reference).
    """
    keys = ("adam", "adabelief", "rmsprop", "sgd (momentum 0.9)", "adamw")
    adam, belief, rms, sgd, adamw = (table[k] for k in keys)
    wrong = {
        "adam with the central moment": (
            "Adam's κ̂ from G − m (AdaBelief's central moment) instead of the raw G², against torch.optim.Adam",
            _altered(adam[0], moment="central"),
            adam[1],
        ),
        "adabelief with the raw moment": (
            "AdaBelief's κ̂ from the raw G² (Adam's moment) instead of G − m, against adabelief-pytorch",
            _altered(belief[0], moment="raw"),
            belief[1],
        ),
        "rmsprop with bias correction": (
            "RMSprop with Adam's bias correction 1/(1 − β₂ᵗ) of κ̂, against torch.optim.RMSprop",
            _altered(rms[0], bias_correction=True),
            rms[1],
        ),
        "sgd without the 1/(1 − μ) step": (
            "SGD momentum as the EMA force m with step lr instead of lr/(1 − μ), against torch.optim.SGD",
            _altered(sgd[0], lr=0.02),
            sgd[1],
        ),
        "adamw with coupled weight decay": (
            "AdamW with the decay added to the gradient (Adam's L2) instead of q ← (1 − γλ)q, against "
            "torch.optim.AdamW",
            _altered(adamw[0], decoupled_weight_decay=False),
            adamw[1],
        ),
    }
    return {
        name: (variant, key, ours, ref) for key, (name, (variant, ours, ref)) in zip(keys, wrong.items(), strict=True)
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
    quick={"steps": 200, "batch": 32, "seeds": 1},
    full={"steps": 2000, "batch": 32, "seeds": 5},
)
def exact_limits(ctx: Context) -> Outcome:
    """Each preset of EQUATIONS.md §6 against its reference ((2.2) with g = Power(0) or ε + κ^½ (6.4)), and each
    control (one setting wrong) against the same reference; float64, same initialisation and minibatches."""
    require_reference()
    steps, batch, n_seeds = int(ctx.params["steps"]), int(ctx.params["batch"]), int(ctx.params["seeds"])
    seeds = [ctx.seed + k for k in range(n_seeds)]
    table, wrong = limits(), wrong_limits(limits())
    total, done = (len(table) + len(wrong)) * n_seeds, 0

    def worst_over_seeds(make_ours, make_ref):
        nonlocal done
        records = []
        for s in seeds:
            records.append(compare(make_ours, make_ref, steps, batch, s))
            done += 1
            ctx.progress(done / total)
        return [max(r["deviation"]) for r in records], records[0]

    checks, controls, data, curves = [], [], {"seeds": seeds, "steps": steps, "tolerance": TOLERANCE}, {}
    for name, (make_ours, make_ref) in table.items():
        per_seed, first = worst_over_seeds(make_ours, make_ref)
        data[name] = {"max_deviation": max(per_seed), "per_seed": per_seed, "final_loss": first["loss"][-1]}
        checks.append(
            Check(
                f"{name}: max |Δθ| over {steps} steps, {n_seeds} seed(s)",
                max(per_seed),
                TOLERANCE,
                note="float64 round-off bound; the controls below show what one wrong setting gives",
            )
        )
        curves[name] = first
    for name, (variant, preset, make_ours, make_ref) in wrong.items():
        per_seed, first = worst_over_seeds(make_ours, make_ref)
        data[f"control: {name}"] = {"max_deviation": max(per_seed), "smallest_over_seeds": min(per_seed)}
        check = Check(f"{name}: max |Δθ| over {steps} steps, {n_seeds} seed(s)", min(per_seed), TOLERANCE)
        controls.append(Control(name, variant, [check]))
        curves[f"control: {name}"] = first | {"preset": preset}
    fig = _figure(curves, steps)
    worst = max(data[n]["max_deviation"] for n in table)
    smallest_control = min(c.checks[0].value for c in controls)
    summary = (
        f"Each preset and its reference train the same float64 MLP on y = x₁x₂ for {steps} steps "
        f"({n_seeds} seed(s)); the largest parameter deviation over all presets is {worst:.2e} (tolerance "
        f"{TOLERANCE:g}). Each control (one setting wrong) deviates from its reference by at least "
        f"{smallest_control:.2e}."
    )
    notes = [] if n_seeds >= 5 else [f"{ctx.size} size: {n_seeds} seed(s) (full size: 5)"]
    return Outcome(checks=checks, controls=controls, figures={"deviation": fig}, data=data, summary=summary,
                   notes=notes)  # fmt: skip


def _figure(curves: dict[str, dict[str, list[float]]], steps: int):
    fig, (ax_dev, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    floor = 1e-18  # log axis: an exact zero is drawn at the floor
    presets_, controls_ = (
        [n for n in curves if not n.startswith("control")],
        [n for n in curves if n.startswith("control")],
    )
    for i, name in enumerate(presets_):
        ax_dev.semilogy([max(d, floor) for d in curves[name]["deviation"]], color=f"C{i}", label=name)
        ax_loss.semilogy(curves[name]["loss"], color=f"C{i}", label=name, alpha=0.8)
    for name in controls_:
        i = presets_.index(curves[name]["preset"])  # a control is drawn in its preset's colour
        ax_dev.semilogy([max(d, floor) for d in curves[name]["deviation"]], color=f"C{i}", ls="--", lw=1,
                        label=name)  # fmt: skip
    ax_dev.axhline(TOLERANCE, color="k", ls=":", lw=1, label=f"tolerance {TOLERANCE:g}")
    ax_dev.set(xlabel=r"step $t$", ylabel=r"$\max_i\,|\theta_i^{\mathrm{geodyn}} - \theta_i^{\mathrm{ref}}|$",
               title="deviation from the reference (solid: presets, dashed: controls)")  # fmt: skip
    ax_loss.set(xlabel=r"step $t$", ylabel=r"minibatch loss $H$", title=f"training loss of the presets ({steps} steps)")
    ax_dev.legend(fontsize=6, loc="center right", ncol=2)
    ax_loss.legend(fontsize=7)
    fig.tight_layout()
    return fig

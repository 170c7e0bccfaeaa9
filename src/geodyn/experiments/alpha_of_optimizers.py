"""The metric exponent α of real optimizers on real networks, read off their step fluctuations ((2.6), (2.8), (2.9)).

Measured at stationarity and fixed parameters (:mod:`geodyn.analysis.stationary`): a network is trained briefly,
then each optimizer runs at those fixed parameters for ≥ 5 memory times of its noise EMA (the parameters are put
back after every step, so its state forgets its start), and Var(Δq_i) over the next steps is fitted against the
per-example κ_ii/b of the same parameters, computed without any optimizer. Slope s = 1 − 2α.

The optimizers see the noise term of (2.6) alone: the mean gradient of the data pool is subtracted (as at a
minimum of H̄), so an uncentred (Adam-style) moment estimates κ/b and not ∇H̄∇H̄ᵀ + κ/b.

Decision rule, fixed in advance: an exponent is reproduced when the far end of its 95 % interval lies within ⅛ of
the claimed α, i.e. the estimate is closer to the claim than to the claim shifted by ¼ (the controls), beyond
doubt. At α = ½ the expected slope is 0, so R² says nothing there; the interval on the slope does.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from geodyn.analysis import estimate_alpha
from geodyn.analysis.stationary import seed_interval, stationary_step_variance
from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment, torch_threads
from geodyn.metric import Power
from geodyn.optim import CGD, presets

__all__ = ["Probe", "digits_probe", "transformer_probe", "alpha_of_optimizers", "RESOLUTION", "exponent_check"]

#: Half the ¼ shift of the controls: an estimate must be closer to the claimed α than to α ± ¼.
RESOLUTION = 0.125


@dataclass
class Probe:
    """A trained network held at fixed parameters: its minibatch loss, the per-example κ/b and the tilt ∇H̄.

    ``mask`` selects the variables that enter the fits (all with κ above the round-off floor, or a documented
    subset). ``kurtosis`` is the kurtosis of each component of the minibatch gradient, 3 + (k₁ − 3)/b from the
    per-example kurtosis k₁.
    """

    name: str
    params: list[Tensor]
    batch_loss: Callable[[torch.Generator], Callable[[int], Tensor]]
    kappa: Tensor
    tilt: list[Tensor]
    mask: Tensor
    batch: int
    kurtosis: Tensor

    def measure(self, optimizer: torch.optim.Optimizer, warmup: int, steps: int, seed: int, blocks: int = 1) -> Tensor:
        """Var(Δq_i) of ``optimizer`` at these parameters after ``warmup`` equilibration steps (2.6), (2.8)."""
        gen = torch.Generator().manual_seed(seed)
        loss = self.batch_loss(gen)
        return stationary_step_variance(self.params, optimizer, loss, warmup, steps, tilt=self.tilt, blocks=blocks)


def _split(flat: Tensor, params: list[Tensor]) -> list[Tensor]:
    out, offset = [], 0
    for p in params:
        out.append(flat[offset : offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()
    return out


def _pool_probe(name, model, inputs, targets, loss_one, batch, mask_of=None, vmap=True) -> Probe:
    """Minibatches of ``batch`` examples drawn with replacement from a fixed pool, so that κ/b and ∇H̄ of the pool
    are exact for the sampler (2.8)."""
    from geodyn.noise import gradient_noise

    params = [p for p in model.parameters() if p.requires_grad]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.func warns about fused attention kernels it traces slowly
        noise = gradient_noise(model, loss_one, inputs, targets, chunk_size=128)
    samples = noise.samples.double()
    centred = samples - samples.mean(0)
    second = centred.pow(2).mean(0)
    kappa = second / batch
    kurtosis = 3.0 + (centred.pow(4).mean(0) / second.clamp_min(1e-300).pow(2) - 3.0) / batch
    tilt = _split(samples.mean(0), params)
    del noise, samples, centred
    # A gradient that vanishes in exact arithmetic (the key biases of attention: softmax is shift invariant) leaves
    # only round-off, κ ≲ (u max|g|)²; such variables would dominate a log-log fit from decades below the rest.
    # Kept: √κ at least 100 round-off units of the largest noise component.
    unit = torch.finfo(params[0].dtype).eps
    mask = kappa > kappa.max() * (100 * unit) ** 2
    if mask_of is not None:
        mask &= mask_of
    n = len(inputs)

    def batch_loss(gen: torch.Generator) -> Callable[[int], Tensor]:
        def loss(t: int) -> Tensor:
            idx = torch.randint(0, n, (batch,), generator=gen)
            return F.cross_entropy(_flatten_logits(model(inputs[idx])), targets[idx].reshape(-1))

        return loss

    return Probe(name, params, batch_loss, kappa, tilt, mask, batch, kurtosis)


def _flatten_logits(out: Tensor) -> Tensor:
    return out.reshape(-1, out.shape[-1])


def _one_example_loss(out: Tensor, target: Tensor) -> Tensor:
    return F.cross_entropy(_flatten_logits(out), target.reshape(-1))


def digits_probe(hidden: int, train_steps: int, seed: int, batch: int = 32) -> Probe:
    """The digits MLP (64 → hidden → hidden → 10, tanh, float64) after ``train_steps`` Adam steps; the pool is the
    training split (1347 images)."""
    from geodyn.tasks import digits, digits_mlp

    x, y, _, _ = digits(seed=0)
    model = digits_mlp(hidden=hidden, seed=seed)
    _train(model, lambda idx: F.cross_entropy(model(x[idx]), y[idx]), len(x), batch, train_steps, seed)
    return _pool_probe(f"digits MLP 64-{hidden}-{hidden}-10", model, x, y, _one_example_loss, batch)


def transformer_probe(train_steps: int, windows: int, seed: int, batch: int = 16) -> Probe:
    """The benchmark's character transformer (2 layers, d = 64, context 32, float32) after ``train_steps`` Adam
    steps; the pool is ``windows`` fixed text windows. Only the attention and feed-forward blocks enter the fits:
    embedding and output rows of rare characters get a gradient in few windows, a noise far from the white noise
    of (2.4) at batch 16."""
    from geodyn.bench.tasks import CONTEXT, CharTransformer, _text, _windows

    splits, vocab = _text()
    train = splits["train"]
    torch.manual_seed(seed)
    model = CharTransformer(vocab)
    gen = torch.Generator().manual_seed(50_000 + seed)
    starts = torch.randint(0, len(train) - CONTEXT - 1, (windows,), generator=gen)
    x, y = _windows(train, starts)
    _train(model, lambda idx: _one_example_loss(model(x[idx]), y[idx]), windows, batch, train_steps, seed)
    mask = torch.cat(
        [torch.full((p.numel(),), name.startswith("blocks."), dtype=torch.bool) for name, p in model.named_parameters()]
    )
    return _pool_probe("char transformer (attention + MLP blocks)", model, x, y, _one_example_loss, batch, mask)


def _train(model: nn.Module, loss_of: Callable[[Tensor], Tensor], n: int, batch: int, steps: int, seed: int) -> None:
    opt = presets.adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(10_000 + seed)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(torch.randint(0, n, (batch,), generator=gen)).backward()
        opt.step()


# ----------------------------------------------------------------------------------------------- the optimizers
def _adam(ps, beta2):
    return presets.adam(ps, lr=1e-3, betas=(0.9, beta2))


def _adabelief(ps, beta2):
    return presets.adabelief(ps, lr=1e-3, betas=(0.9, beta2))


def _natural(ps, beta2):
    return presets.natural_gradient(ps, lr=1e-5, betas=(0.9, beta2), damping=1e-14)


def _sgd(ps, beta2):
    return torch.optim.SGD(ps, lr=0.05)


def _power(alpha: float):
    def make(ps, beta2):
        return CGD(ps, lr=1e-4, metric=Power(alpha), moment="raw", betas=(0.9, beta2))

    return make


#: (label, factory(params, β₂), claimed α): the claims.
CLAIMS = (("Adam", _adam, 0.5), ("AdaBelief", _adabelief, 0.5), ("natural gradient", _natural, 1.0))
#: (name, variant, factory, whose claim's check it faces): the controls, run on the digits MLP.
CONTROLS = (
    ("SGD as an efficient learner", "SGD's flat metric g = I (α = 0) where Adam's g = √K̂ (α = ½) is claimed", _sgd,
     "Adam"),
    ("Adam's exponent − ¼", "g = K̂^{1/4}: Adam's exponent shifted by ¼", _power(0.25), "Adam"),
    ("natural gradient's exponent − ¼", "g = K̂^{3/4}: natural gradient's exponent shifted by ¼", _power(0.75),
     "natural gradient"),
)  # fmt: skip
EXPECTED = {label: alpha for label, _, alpha in CLAIMS}


def exponent_check(label: str, alphas: list[float], within: tuple[float, float], expected: float) -> Check:
    """|α̂ − α| + half-width ≤ ⅛, α̂ the mean over seeds; the interval is Student-t over seeds, or with one seed
    the fit's own 95 % interval ``within``."""
    mean, half = seed_interval(alphas)
    source = f"t-interval over {len(alphas)} seeds"
    if math.isnan(half):
        half, source = (within[1] - within[0]) / 2, "one seed: the fit's 95 % interval across variables"
    return Check(
        f"{label}: |α̂ − {expected:g}| + 95 % half-width",
        abs(mean - expected) + half,
        RESOLUTION,
        note=f"α̂ = {mean:.3f} ± {half:.3f} ({source}); passes when the interval lies within ⅛ of α = {expected:g}, "
        "closer to the claim than to the claim shifted by ¼",
    )


def _measure_all(probe, rows, beta2, steps, seed):
    """α per row on one probe: {label: (AlphaEstimate, Var(Δq))}."""
    out = {}
    for k, (label, make, *_rest) in enumerate(rows):
        opt = make(probe.params, beta2)
        warmup = 0 if isinstance(opt, torch.optim.SGD) else math.ceil(5 / (1 - beta2))  # ≥ 5 τ₂
        var = probe.measure(opt, warmup, steps, seed=1000 * seed + k)
        out[label] = (estimate_alpha(var[probe.mask], probe.kappa[probe.mask]), var)
    return out


@experiment(
    "alpha-of-optimizers",
    equations=("2.6", "2.8", "2.9"),
    statement="Read off the stationary step fluctuations at fixed parameters, Var(Δq_i) ∝ (κ_ii/b)^{1−2α}: Adam and "
    "AdaBelief are efficient learners (α = ½), natural gradient is the quantum regime (α = 1); SGD (α = 0) and "
    "exponents shifted by ¼ must fail the same checks.",
    section="Sec. 5 Neural physics",
    quick={"seeds": 1, "hidden": 32, "train_steps": 200, "beta2": 0.95, "steps": 320, "transformer": False},
    full={"seeds": 5, "hidden": 64, "train_steps": 1500, "beta2": 0.99, "steps": 1000, "transformer": True,
          "transformer_train_steps": 300, "windows": 512, "transformer_steps": 300},
)  # fmt: skip
def alpha_of_optimizers(ctx: Context) -> Outcome:
    p = ctx.params
    seeds, beta2, steps = int(p["seeds"]), float(p["beta2"]), int(p["steps"])
    tasks = ["digits MLP"] + (["char transformer"] if p.get("transformer") else [])
    alphas: dict[tuple[str, str], list] = {}
    scatter: dict[str, dict] = {}
    start = time.perf_counter()
    work, done = seeds * (len(tasks) + 1), 0
    with torch_threads(1):
        for s in range(seeds):
            seed = ctx.seed + s
            probe = digits_probe(int(p["hidden"]), int(p["train_steps"]), seed)
            fits = _measure_all(probe, CLAIMS + tuple((n, f, h) for n, _, f, h in CONTROLS), beta2, steps, seed)
            for label, (fit, _var) in fits.items():
                alphas.setdefault(("digits MLP", label), []).append(fit)
            if s == 0:
                scatter["digits MLP"] = {"probe": probe, "fits": fits}
            done += 2
            ctx.progress(done / work)
            if "char transformer" in tasks:
                probe = transformer_probe(int(p["transformer_train_steps"]), int(p["windows"]), seed)
                fits = _measure_all(probe, CLAIMS, beta2, int(p["transformer_steps"]), seed)
                for label, (fit, _var) in fits.items():
                    alphas.setdefault(("char transformer", label), []).append(fit)
                if s == 0:
                    scatter["char transformer"] = {"probe": probe, "fits": fits}
                del probe
                done += 1
                ctx.progress(done / work)
    runtime = time.perf_counter() - start

    def check(task, label, expected, name=None):
        fits = alphas[(task, label)]
        return exponent_check(f"{name or label} on the {task}", [f.alpha for f in fits], fits[0].interval, expected)

    checks = [check(task, label, alpha) for task in tasks for label, _, alpha in CLAIMS]
    controls = [
        Control(name, variant, [check("digits MLP", name, EXPECTED[claim], name=f"{name} (claim: {claim})")])
        for name, variant, _, claim in CONTROLS
    ]
    data = {
        f"{task}: {label}": {
            "alpha_per_seed": [f.alpha for f in fits],
            "slope_per_seed": [f.slope for f in fits],
            "within_seed_interval": [list(f.interval) for f in fits],
            "r_squared": [f.r_squared for f in fits],
            "variables": fits[0].n,
            "alpha_mean_and_halfwidth": list(seed_interval([f.alpha for f in fits])),
        }
        for (task, label), fits in alphas.items()
    }
    data |= {"runtime_s": runtime, "beta2": beta2, "recorded_steps": steps, "seeds": seeds}
    notes = [
        f"β₂ = {beta2:g} for every adaptive optimizer (τ₂ = {beta2 / (1 - beta2):.0f} steps), equilibrated for "
        f"{math.ceil(5 / (1 - beta2))} ≥ 5τ₂ steps at fixed parameters; the exponent of the law does not depend on β₂.",
        "The mean gradient of the data pool is subtracted from every minibatch gradient (the noise term of (2.6)).",
    ]
    if seeds < 5:
        notes.append(f"{ctx.size} size: {seeds} seed(s) (full size: 5); with one seed the interval is the fit's own.")
    if "char transformer" not in tasks:
        notes.append(f"{ctx.size} size: digits MLP only; the character transformer runs at full size.")
    fig = _figure(scatter, alphas, tasks)
    summary = "; ".join(
        f"{task} {label}: α = {seed_interval([f.alpha for f in fits])[0]:.3f}" for (task, label), fits in alphas.items()
    )
    return Outcome(checks=checks, controls=controls, figures={"alpha-fits": fig}, data=data, notes=notes,
                   summary=f"Stationary Var(Δq) against per-example κ/b at fixed parameters: {summary} "
                   f"({runtime:.0f} s).")  # fmt: skip


def _figure(scatter, alphas, tasks):
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(5.2 * (len(tasks) + 1), 4.4), squeeze=False)
    axes = axes[0]
    for ax, task in zip(axes, tasks, strict=False):
        probe, fits = scatter[task]["probe"], scatter[task]["fits"]
        lk = probe.kappa[probe.mask].log10().numpy()
        sel = np.random.default_rng(0).permutation(lk.size)[:1500]
        for i, (label, (fit, var)) in enumerate(fits.items()):
            v = var[probe.mask]
            lv = np.log10(np.clip(v.numpy(), 1e-300, None))
            shift = float(np.median(lv))  # each optimizer's own γ: compare shapes, not levels
            ax.plot(lk[sel], lv[sel] - shift, ".", ms=1.5, alpha=0.3, color=f"C{i}")
            xs = np.array([lk.min(), lk.max()])
            ax.plot(xs, fit.slope * (xs - np.median(lk)), "-", color=f"C{i}", label=f"{label}: α̂ = {fit.alpha:.3f}")
        ax.set(xlabel=r"$\log_{10}\,\kappa_{ii}/b$", ylabel=r"$\log_{10}\,\mathrm{Var}(\Delta q_i)$ (shifted)",
               title=f"{task}: stationary steps, slope $1-2\\alpha$")  # fmt: skip
        ax.legend(fontsize=6)
    ax = axes[-1]
    labels = list(dict.fromkeys(label for _, label in alphas))
    for j, task in enumerate(tasks):
        for i, label in enumerate(labels):
            if (task, label) not in alphas:
                continue
            fits = alphas[(task, label)]
            mean, half = seed_interval([f.alpha for f in fits])
            half = half if not math.isnan(half) else (fits[0].interval[1] - fits[0].interval[0]) / 2
            ax.errorbar(mean, i + 0.2 * j, xerr=half, fmt="os"[j], color=f"C{j}", ms=4,
                        label=task if i == 0 else None)  # fmt: skip
    for a in (0.0, 0.5, 1.0):
        ax.axvspan(a - RESOLUTION, a + RESOLUTION, color="grey", alpha=0.15)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel=r"$\hat\alpha$ (95 % interval)", title=r"exponents; grey: $\alpha\pm1/8$ for $\alpha = 0, 1/2, 1$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

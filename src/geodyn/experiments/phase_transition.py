"""The εζ phase transition of the three-regime metric: intermediate variables appear when εζ ≪ 1 ((6.6)–(6.9))."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from geodyn.experiments.registry import Check, Context, Outcome, experiment
from geodyn.metric import INTERMEDIATE, ThreeRegime
from geodyn.noise import gradient_noise
from geodyn.optim import presets
from geodyn.tasks import digits, digits_mlp


def planted_fractions(eps_zeta: list[float], decades: tuple[float, float], points: int) -> tuple[list, list]:
    """Intermediate fraction of a log-uniform spectrum, measured and predicted by the band width (6.9).

    With the crossover λ* = ε/ζ at the spectrum's centre the dominant-term band is (ε², ζ⁻²), log₁₀-width
    −2 log₁₀(εζ) decades when εζ < 1 and none otherwise.
    """
    lo, hi = decades
    lam = torch.logspace(lo, hi, points, dtype=torch.float64)
    centre = 10 ** ((lo + hi) / 2)
    measured, predicted = [], []
    for ez in eps_zeta:
        law = ThreeRegime(math.sqrt(ez * centre), math.sqrt(ez / centre))
        measured.append(float((law.regime(lam) == INTERMEDIATE).double().mean()))
        predicted.append(min(max(-2 * math.log10(ez), 0.0) / (hi - lo), 1.0))
    return measured, predicted


def train_digits(law: ThreeRegime, steps: int, batch: int, lr: float, seed: int) -> dict[str, float]:
    """Three-regime CGD on the digits MLP; the intermediate fraction of its own κ̂ at the end, and the loss."""
    x, y, x_test, y_test = digits(seed)
    model = digits_mlp(seed=seed)
    opt = presets.three_regime(model.parameters(), lr=lr, eps=law.eps, zeta=law.zeta, scale_free=False)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    labels = []
    for p in model.parameters():
        state = opt.state[p]
        t = state["step"].item()
        labels.append(law.regime(state["noise_moment"] / (1 - 0.999**t)).reshape(-1))
    labels = torch.cat(labels)
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).double().mean())
    tail = max(steps // 10, 1)
    return {
        "intermediate_fraction": float((labels == INTERMEDIATE).double().mean()),
        "final_loss": float(np.mean(losses[-tail:])),
        "test_accuracy": accuracy,
    }


def median_noise(batch: int, seed: int) -> float:
    """Median per-parameter minibatch noise κ_ii/b of the digits MLP at initialisation: where λ* is put."""
    x, y, _, _ = digits(seed)
    model = digits_mlp(seed=seed)
    noise = gradient_noise(model, lambda out, t: nn.functional.cross_entropy(out, t), x[:256], y[:256])
    return float(noise.diagonal().median()) / batch


@experiment(
    "phase-transition",
    equations=("6.5", "6.6", "6.7", "6.8", "6.9"),
    statement="Under g = ε + √κ + ζκ intermediate (α = ½) variables exist only when εζ ≪ 1, in the band "
    "ε² ≪ λ ≪ ζ⁻²; for εζ ≳ 1 every variable is slow or fast.",
    section="Sec. 6 Complex systems",
    quick={"eps_zeta": [1e-6, 1e-4, 1e-2, 1.0, 1e2], "steps": 200, "batch": 64, "points": 1601},
    full={"eps_zeta": [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2], "steps": 2000, "batch": 64,
          "points": 16001},
)  # fmt: skip
def phase_transition(ctx: Context) -> Outcome:
    p = ctx.params
    sweep = list(p["eps_zeta"])
    decades = (-12.0, 4.0)
    measured, predicted = planted_fractions(sweep, decades, p["points"])
    ctx.progress(0.05)
    grid_step = (decades[1] - decades[0]) / (p["points"] - 1)
    checks = [
        Check("planted spectrum: max |intermediate fraction − band width (6.9)|",
              max(abs(a - b) for a, b in zip(measured, predicted)), 2 * grid_step / (decades[1] - decades[0]),
              note="tolerance: two grid points at each band edge"),
    ]  # fmt: skip

    centre = median_noise(p["batch"], ctx.seed)
    runs = []
    for i, ez in enumerate(sweep):
        law = ThreeRegime(math.sqrt(ez * centre), math.sqrt(ez / centre))
        runs.append(train_digits(law, p["steps"], p["batch"], lr=3e-3, seed=ctx.seed) | {"eps_zeta": ez})
        ctx.progress(0.05 + 0.95 * (i + 1) / len(sweep))
    fractions = [r["intermediate_fraction"] for r in runs]
    above = [f for r, f in zip(runs, fractions) if r["eps_zeta"] >= 1.0]
    increases = sum(b > a + 1e-12 for a, b in zip(fractions, fractions[1:]))
    checks += [
        Check("MLP: intermediate fraction at εζ ≥ 1 (6.6)", max(above) if above else math.nan, 0.0,
              note="dominant-term band is empty for εζ ≥ 1"),
        Check(f"MLP: intermediate fraction at εζ = {sweep[0]:g} (6.7)", fractions[0], 0.5, expected=1.0,
              note="λ* at the median κ_ii: most variables inside the band"),
        Check("MLP: increases of the intermediate fraction along increasing εζ", float(increases), 0.0,
              note="the fraction shrinks monotonically as the band (6.9) narrows"),
    ]  # fmt: skip

    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax_a.semilogx(sweep, predicted, "k-", label="band width (6.9)")
    ax_a.semilogx(sweep, measured, "o", label="planted spectrum (16 decades)")
    ax_a.semilogx(sweep, fractions, "s", label="digits MLP, optimizer's κ̂")
    ax_a.axvline(1.0, color="grey", ls=":", lw=1)
    ax_a.set(xlabel="εζ", ylabel="fraction of intermediate variables", title="the εζ transition")
    ax_a.legend(fontsize=8)
    ax_b.semilogx(sweep, [r["final_loss"] for r in runs], "o-", color="C3", label="final training loss")
    ax_b.set(xlabel="εζ", ylabel="training loss (last 10 % of steps)", title="training speed vs εζ (λ* fixed)")
    ax_c = ax_b.twinx()
    ax_c.semilogx(sweep, [r["test_accuracy"] for r in runs], "s--", color="C0", label="test accuracy")
    ax_c.set_ylabel("test accuracy")
    fig.tight_layout()
    summary = "MLP on digits, three-regime CGD with λ* = ε/ζ at the median κ_ii/b: " + "; ".join(
        f"εζ = {r['eps_zeta']:g}: {r['intermediate_fraction']:.0%} intermediate, loss {r['final_loss']:.3g}, "
        f"accuracy {r['test_accuracy']:.1%}"
        for r in runs
    )
    return Outcome(
        checks=checks, figures={"phase": fig}, summary=summary + ".",
        data={"eps_zeta": sweep, "planted_measured": measured, "planted_predicted": predicted, "mlp": runs,
              "lambda_star": centre},
    )  # fmt: skip

"""Regime maps: which variables of a model are slow, intermediate or fast under a metric law (EQUATIONS.md §5).

Under g(λ) = ε + √λ + ζλ (6.8) a direction with noise eigenvalue λ is slow (α ≈ 0), intermediate (α ≈ ½) or fast
(α ≈ 1) by the dominant term; the intermediate band ε² ≪ λ ≪ ζ⁻² (6.9) exists only when εζ ≪ 1 (6.6), (6.7).
A map labels either every parameter (by its diagonal κ_ii) or every eigen-direction of each layer's κ.

Two intervals are reported and must not be confused (:meth:`RegimeMap.band_report`):

* the **dominant-term interval** of the √λ term, ((c₀/c½)², (c½/c₁)²) = (ε², ζ⁻²) for (6.8): where a variable is
  *labelled* intermediate (the classification convention of EQUATIONS.md §5); it exists iff εζ < 1;
* the **band** of (6.9) at share h (default 0.9): where the √λ term carries at least h of g(λ) — the variables that
  truly learn with α ≈ ½. It exists only for εζ ≤ ((1−h)/(2h))² (3.09e-3 at h = 0.9), so for 3.09e-3 < εζ < 1 the
  band is empty while many variables are still labelled intermediate (their √λ term is the largest, not dominant).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from geodyn.metric import FAST, INTERMEDIATE, SLOW, MetricLaw, PowerSum
from geodyn.noise import GradientNoise

__all__ = ["RegimeMap", "regime_map", "REGIME_NAMES"]

REGIME_NAMES = {SLOW: "slow", INTERMEDIATE: "intermediate", FAST: "fast"}


@dataclass
class RegimeMap:
    """Noise eigenvalues (or κ_ii) per layer, their regime labels under ``metric``, and the fractions."""

    metric: MetricLaw
    spectra: dict[str, Tensor]
    labels: dict[str, Tensor]
    by: str
    batch_size: int = 1

    def band_report(self, share: float = 0.9) -> dict:
        """Which λ count as intermediate, and why the (6.9) band can be empty (module docstring).

        Returns ``share`` h, ``interval`` [lo, hi] where the √λ term is ≥ h of g (None when empty),
        ``intermediate_interval`` [lo, hi] where the √λ term is the largest term (the labels; None when empty),
        ``fraction_in_band`` (share of all variables inside the band) and a one-sentence ``note``.
        """
        band = self.metric.band(share)
        coefs = self.metric._class_coefficients() if isinstance(self.metric, PowerSum) else None
        interval = None
        if coefs is not None and coefs[1] > 0:
            c0, c_half, c1 = coefs
            lo, hi = (c0 / c_half) ** 2, (c_half / c1) ** 2 if c1 > 0 else math.inf
            interval = [lo, hi] if lo < hi else None
        lam = torch.cat([s.reshape(-1) for s in self.spectra.values()])
        inside = (
            0.0 if band is None or lam.numel() == 0 else float(((lam >= band[0]) & (lam <= band[1])).double().mean())
        )
        if band is not None:
            note = f"the √λ term is ≥ {share:.0%} of g for λ in the band; {inside:.1%} of the variables lie there"
        elif interval is not None:
            note = (
                f"no λ has the √λ term ≥ {share:.0%} of g (with g = ε + √λ + ζλ that needs εζ ≤ "
                f"{((1 - share) / (2 * share)) ** 2:.3g}); variables labelled intermediate have the √λ term as the "
                "largest of the terms, not a dominant one"
            )
        else:
            note = "no λ has the √λ term as its largest term: no variable is intermediate (6.6)"
        return {
            "share": share,
            "interval": None if band is None else list(band),
            "intermediate_interval": interval,
            "fraction_in_band": inside,
            "note": note,
        }

    def fractions(self) -> dict[str, dict[str, float]]:
        """Per layer and overall ("all"): the fraction of slow, intermediate and fast variables."""
        out = {}
        everything = torch.cat([lab.reshape(-1) for lab in self.labels.values()])
        for name, lab in [*self.labels.items(), ("all", everything)]:
            n = max(lab.numel(), 1)
            out[name] = {REGIME_NAMES[r]: float((lab == r).sum()) / n for r in (SLOW, INTERMEDIATE, FAST)}
        return out

    def table(self):
        """A Rich table of the fractions per layer."""
        from rich.table import Table

        table = Table("layer", "variables", "slow", "intermediate", "fast", title=f"regimes under {self.metric!r}")
        fractions = self.fractions()
        for name, frac in fractions.items():
            n = sum(lab.numel() for lab in self.labels.values()) if name == "all" else self.labels[name].numel()
            table.add_row(name, str(n), *(f"{frac[k]:.1%}" for k in ("slow", "intermediate", "fast")))
        return table

    def text(self) -> str:
        """The fractions per layer as plain text (what ``print(rmap)`` shows)."""
        from rich.console import Console

        console = Console(width=100, file=io.StringIO())
        console.print(self.table())
        return console.file.getvalue()

    def __str__(self) -> str:
        return self.text()

    def axis_label(self) -> str:
        """What the histogram's axis shows: the spectra divided by the batch size b (the noise an optimizer sees)."""
        what = "λ (eigenvalue of κ" if self.by == "eigen" else "κ_ii"
        if self.by == "eigen":
            return f"log₁₀ {what}/b), b = {self.batch_size}" if self.batch_size != 1 else f"log₁₀ {what})"
        return f"log₁₀ {what}/b, b = {self.batch_size}" if self.batch_size != 1 else f"log₁₀ {what}"

    def figure(self):
        """Histogram of log₁₀ λ per regime with the band edges of the law, and stacked fractions per layer."""
        import matplotlib.pyplot as plt

        fig, (ax_h, ax_b) = plt.subplots(1, 2, figsize=(12, 4.2))
        lam = torch.cat([s.reshape(-1) for s in self.spectra.values()]).double()
        lab = torch.cat([s.reshape(-1) for s in self.labels.values()])
        positive = lam > 0
        logs = lam[positive].log10()
        if logs.numel():
            bins = torch.linspace(float(logs.min()), float(logs.max()) + 1e-9, 60).tolist()
            colors = {SLOW: "#4c72b0", INTERMEDIATE: "#55a868", FAST: "#c44e52"}
            for r, name in REGIME_NAMES.items():
                ax_h.hist(logs[lab[positive] == r].tolist(), bins=bins, color=colors[r], alpha=0.8, label=name)
        coefs = self.metric._class_coefficients() if isinstance(self.metric, PowerSum) else None
        if coefs is not None:  # dominant-term crossovers of c₀ + c½√λ + c₁λ: λ = (c₀/c½)² and (c½/c₁)²
            c0, c_half, c1 = coefs
            for edge in ((c0 / c_half) ** 2 if c_half else 0.0, (c_half / c1) ** 2 if c1 else 0.0):
                if edge > 0:
                    ax_h.axvline(math.log10(edge), color="k", ls="--", lw=1)
        ax_h.set(xlabel=self.axis_label(), ylabel="count",
                 title="noise spectrum by regime (dashed: crossovers of the dominant term)")  # fmt: skip
        ax_h.legend(fontsize=8)
        fractions = self.fractions()
        names = list(self.labels)
        left = [0.0] * len(names)
        for key, color in (("slow", "#4c72b0"), ("intermediate", "#55a868"), ("fast", "#c44e52")):
            values = [fractions[n][key] for n in names]
            ax_b.barh(names, values, left=left, color=color, label=key)
            left = [a + b for a, b in zip(left, values)]
        ax_b.set(xlabel="fraction of variables", xlim=(0, 1), title="regimes per layer")
        ax_b.invert_yaxis()
        fig.tight_layout()
        return fig


def regime_map(
    source: GradientNoise | Tensor | dict[str, Tensor],
    metric: MetricLaw,
    by: str = "parameter",
    batch_size: int = 1,
    k: int | None = None,
) -> RegimeMap:
    """Label each variable slow / intermediate / fast under ``metric`` by the dominant term of g(λ) (§5).

    ``source`` is a model's :class:`~geodyn.noise.GradientNoise`, a spectrum, or spectra by layer. For a
    GradientNoise, ``by="parameter"`` uses κ_ii of every parameter and ``by="eigen"`` the top ``k`` eigenvalues of
    each layer's κ (Gram trick). κ is per example; ``batch_size`` b gives the minibatch noise κ/b that an
    optimizer with batches of b sees.
    """
    if by not in ("parameter", "eigen"):
        raise ValueError(f"unknown by={by!r}: expected 'parameter' or 'eigen'")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if isinstance(source, GradientNoise):
        if by == "parameter":
            diag = source.diagonal()
            spectra = {name: diag[cols] for name, cols in source.slices.items()}
        else:
            spectra = {name: source.top_eigen(k, columns=cols)[0] for name, cols in source.slices.items()}
    elif isinstance(source, Tensor):
        spectra = {"all": source}
    else:
        spectra = dict(source)
    spectra = {name: lam.detach().double().clamp_min(0.0) / batch_size for name, lam in spectra.items()}
    labels = {name: metric.regime(lam) for name, lam in spectra.items()}
    return RegimeMap(metric=metric, spectra=spectra, labels=labels, by=by, batch_size=int(batch_size))

"""``quantum-shift-symmetry``: (3.14) on a ring — which windings of θ a single-valued ψ can carry.

The Madelung equations (3.7)–(3.9) accept any circulation w = ∮∂θ; ψ = √p e^{−iθ/ħ} (3.10) is single valued on the
ring only for w ∈ 2πħℤ. For each winding of a scan, the Madelung fields are evolved directly (RK4, spectral) and
ψ built from the initial fields is evolved by split-step Fourier (dt and dt/2). The mismatch between the two routes,
divided by the Richardson estimate of split-step's own error, is ≈ 1 where the routes share a continuum limit and
≫ 1 where they do not. The claim predicts the matching windings to be exactly 2πħℤ; the controls predict them at
2πℤ (the shift without ħ) and at 2πħ_Bℤ (ħ of variant B) and are judged by the same checks on the same scan.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from geodyn.experiments.registry import Check, Context, Control, Outcome, experiment
from geodyn.quantum import Grid, Hamiltonian, Madelung, MadelungFields, SaveAt, SplitStepSchrodinger, evolve
from geodyn.quantum.madelung import planck_constant

__all__ = ["shift_symmetry"]

GAMMA, BETA = 1.0, 1.0  # ħ = 2, m = 1: the quanta 2πħ and 2π differ by a factor 2
LENGTH = 2 * math.pi
MATCH = 0.1  # |mismatch/Richardson − 1| where the routes agree: O(dt²) corrections of a second-order method


def _routes(mad: Madelung, grid: Grid, nu: float, t1: float, dt: float, rk4_dt: float):
    """Madelung fields and split-step ψ (dt, dt/2) from the same initial fields with winding 2πħν."""
    q = grid.axes[0]
    f0 = MadelungFields((1 + 0.3 * np.cos(q)) / LENGTH, 0.2 * np.sin(q), (2 * math.pi * mad.hbar * nu,))
    v = 0.5 * np.cos(q)
    ham = Hamiltonian(grid, mad.hbar, mad.mass, v)
    (fm,) = mad.evolve_fields(f0, grid, t1, rk4_dt, v)
    psi0 = mad.psi_of_fields(f0, grid)
    a = evolve(ham, psi0, t1, SplitStepSchrodinger(dt), SaveAt(ts=[t1])).psi[-1]
    b = evolve(ham, psi0, t1, SplitStepSchrodinger(dt / 2), SaveAt(ts=[t1])).psi[-1]
    psi_m = mad.psi_of_fields(fm, grid)
    return {
        "err": (ham.norm(psi_m - a), ham.norm(psi_m - b)),
        "richardson": 4 / 3 * ham.norm(a - b),  # split-step is O(dt²): ψ_dt − ψ_0 ≈ (4/3)(ψ_dt − ψ_{dt/2})
        "p_madelung": fm.p,
        "p_psi": np.abs(b) ** 2,
    }


def _checks(nus: np.ndarray, ratio: np.ndarray, quantum: float, label: str) -> list[Check]:
    """The windings that match (ratio ≈ 1) must be exactly the multiples of ``quantum`` (in units of 2πħ)."""
    n = nus / quantum
    predicted = np.abs(n - np.round(n)) < 1e-9
    return [
        Check(
            f"windings in {label}: max |mismatch / Richardson − 1| (the two routes agree)",
            float(np.max(np.abs(ratio[predicted] - 1.0))),
            MATCH,
            note=f"{int(predicted.sum())} of {len(nus)} scanned windings",
        ),
        Check(
            f"windings outside {label}: max Richardson / mismatch (the routes must differ: ≤ {MATCH})",
            float(np.max(1.0 / ratio[~predicted])) if (~predicted).any() else math.nan,
            MATCH,
            note="a shared continuum limit would give 1",
        ),
    ]


@experiment(
    "quantum-shift-symmetry",
    equations=("3.7", "3.8", "3.9", "3.10", "3.14"),
    statement="On a ring, phase windings 2πħn give single-valued ψ whose Schrödinger evolution is the Madelung "
    "evolution; the Madelung equations also admit non-quantised windings, which no single-valued ψ represents.",
    section="Sec. 3 Quantum regime",
    quick={"grid": 64, "t_final": 0.5, "dt": 2e-3, "rk4_dt": 2.5e-3, "steps_per_quantum": 4},
    full={"grid": 128, "t_final": 1.0, "dt": 1e-3, "rk4_dt": 6e-4, "steps_per_quantum": 8},
)
def shift_symmetry(ctx: Context) -> Outcome:
    p = ctx.params
    mad = Madelung(GAMMA, BETA)
    grid = Grid((0.0, LENGTH), int(p["grid"]))
    t1, dt, rk4_dt = float(p["t_final"]), float(p["dt"]), float(p["rk4_dt"])
    hbar_b = planck_constant(GAMMA, BETA, "B")
    k = int(p["steps_per_quantum"])
    # windings 2πħν: a grid of ν in [0, 2] plus the quanta of the controls (2π = 2πħ·½, 2πħ_B = 2πħ·ħ_B/ħ)
    extra = [hbar_b / mad.hbar, 2 * hbar_b / mad.hbar]
    nus = np.array(sorted(set(np.round(np.arange(2 * k + 1) / k, 12)) | set(extra)))
    runs = []
    for i, nu in enumerate(nus):
        runs.append(_routes(mad, grid, float(nu), t1, dt, rk4_dt))
        ctx.progress(0.95 * (i + 1) / len(nus))
    err = np.array([r["err"][0] for r in runs])
    richardson = np.array([r["richardson"] for r in runs])
    ratio = err / richardson
    one = int(np.argmin(np.abs(nus - 1.0)))
    e_a, e_b = runs[one]["err"]
    checks = [
        Check(
            "winding 2πħ: ‖ψ_Madelung − ψ_split-step‖ observed order in dt",
            math.log2(e_a / e_b),
            0.1,
            expected=2.0,
            note=f"{e_a:.2e} → {e_b:.2e}: the two routes differ only by split-step's O(dt²)",
        ),
        *_checks(nus, ratio, 1.0, "2πħℤ"),
    ]
    controls = [
        Control(
            "shift by 2π (no ħ)",
            "θ ≃ θ + 2πn: windings quantised in units of 2π",
            _checks(nus, ratio, 1.0 / mad.hbar, "2πℤ"),
        ),
        Control(
            "ħ of variant B",
            "θ ≃ θ + 2πħ_B n with ħ_B = √(2γ/β)",
            _checks(nus, ratio, hbar_b / mad.hbar, "2πħ_Bℤ"),
        ),
    ]
    half = int(np.argmin(np.abs(nus - 0.5)))
    fig = _figure(grid, nus, ratio, runs, one, half, mad.hbar, hbar_b, t1)
    ctx.progress(1.0)
    off = ~(np.abs(nus - np.round(nus)) < 1e-9)
    return Outcome(
        checks=checks,
        controls=controls,
        figures={"shift-symmetry": fig},
        data={"nu": nus, "mismatch": err, "richardson": richardson, "ratio": ratio, "hbar": mad.hbar},
        summary=f"ħ = {mad.hbar:g}. Windings 2πħν, ν ∈ [0, 2]: ψ and the Madelung fields share their continuum limit "
        f"(mismatch/Richardson {ratio[~off].min():.2f}–{ratio[~off].max():.2f}) exactly at integer ν; elsewhere the "
        f"mismatch is {ratio[off].min():.0f}–{ratio[off].max():.0f}× split-step's own error, including the 2π "
        f"(ν = ½) and 2πħ_B (ν = {hbar_b / mad.hbar:.3f}) windings of the controls.",
    )


def _figure(grid, nus, ratio, runs, one, half, hbar, hbar_b, t1):
    q = grid.axes[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
    for ax, idx, title in (
        (axes[0], one, r"winding $2\pi\hbar$ ($\nu = 1$)"),
        (axes[1], half, r"winding $2\pi$ ($\nu = 1/2$)"),
    ):
        ax.plot(q, runs[idx]["p_madelung"], label="Madelung (3.7)–(3.9)")
        ax.plot(q, runs[idx]["p_psi"], "--", label=r"$|\psi|^2$, single-valued $\psi$ (3.11)")
        ax.set_xlabel(r"$q$")
        ax.set_ylabel(rf"$p(q, t = {t1:g})$")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    ax = axes[2]
    ax.semilogy(nus, ratio, "o-", ms=4)
    for n0, style, label in (
        (1.0, "k", r"$2\pi\hbar\,\mathbb{Z}$ (3.14)"),
        (1 / hbar, "C3", r"$2\pi\mathbb{Z}$"),
        (hbar_b / hbar, "C2", r"$2\pi\hbar_B\mathbb{Z}$"),
    ):
        marks = np.arange(0, 2 + 1e-9, n0)
        ax.plot(marks, np.full_like(marks, 1.0), "|", color=style, ms=14 if n0 == 1.0 else 9, mew=2, label=label)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_xlabel(r"winding $w = 2\pi\hbar\,\nu$: $\nu$")
    ax.set_ylabel(r"$\|\psi_{\rm Madelung} - \psi\| \,/\,$ Richardson error")
    ax.set_title(rf"where the two routes agree ($\hbar = {hbar:g}$)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

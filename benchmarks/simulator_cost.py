"""Simulator cost: walker steps per second of the SDE of (2.7), and time to the stationary Fokker–Planck density.

    python benchmarks/simulator_cost.py [--walkers N] [--steps N] [--repeats N] [--grid N] [--threads N]
                                        [--skip-fplanck] [--no-compile] [--json FILE]

Walkers — M walkers in 2-D on the double well H̄ = (x² − 1)² + y²/2 with the q-dependent diagonal noise
κ(q) of :func:`geodyn.experiments.dynamics_experiments.state_kappa` and metric g = κ^α (α = 1, the most curved
case), γ = 0.5, Euler–Maruyama dt = 1e-3 with the Itô drift ∂_ν D^{μν}:

* geodyn — ``LangevinEnsemble.simulate`` with ``EulerMaruyama`` (the Itô drift by automatic differentiation of κ);
* geodyn (analytic) — the same with ``divergence=`` the closed-form Itô drift;
* geodyn compiled — ``simulate(..., compile=True)``: the automatic-drift step and its Box–Muller normals as one
  ``torch.compile`` program (the compile time of the first step is printed, not timed), in float64 and with
  ``dtype=torch.float32`` (walkers, normals and arithmetic in float32; the numpy peer stays float64); and, to
  show what the normals cost, the compiled float64 step fed eager ``torch.randn`` normals (``noise=``);
* numpy — the same SDE written out by hand (closed-form ∇H̄, κ, ∂κ), vectorised over walkers, one Python loop
  iteration per step, numpy's PCG64 normals.

Before timing, one step of each from the same walkers and the same normals is compared (max |difference|).
Rows are timed interleaved; the figure is the median over repeats of walker-steps / second (``--json FILE``
writes rows of name, value, ratio to numpy, and every repeat).

Fokker–Planck — the same model at α = 0 with constant κ = 1 (∂_t p = ∂(γ p ∇H̄) + (γ²/2) Δp, expressible in
fplanck as drag 1/γ, k_B T = γ/2, U = H̄) on a grid² grid: geodyn's assembly, ``stationary()`` solve, and
backward-Euler ``evolve`` from a Gaussian on the barrier (x = 0, so the slow
Kramers inter-well mode is not excited) until the L1 distance to the stationary density is below 1e-6; fplanck
0.2.2 (``np.product`` patched to ``np.prod``): assembly and ``steady_state()`` (shift-invert ``eigs``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

from geodyn.dynamics import EulerMaruyama, FokkerPlanck2D, LangevinEnsemble, LearningModel
from geodyn.experiments.dynamics_experiments import double_well, state_kappa
from geodyn.metric import Power

GAMMA, ALPHA, DT = 0.5, 1.0, 1e-3
# Rows for --json, in the schema of benchmarks/report.py (table, name, seconds, ratio, baseline).
RECORDS: list[dict] = []
DOMAIN = ((-2.4, 2.4), (-2.0, 2.0))


def analytic_divergence(q: torch.Tensor) -> torch.Tensor:
    """∂_μ D^{μμ} = (γ²/2)(1 − 2α) κ_μ^{−2α} ∂_μ κ_μ for the diagonal κ of ``state_kappa``."""
    x, y = q[:, 0], q[:, 1]
    k = state_kappa(q)
    dk = torch.stack([x, 0.5 * (x + y)], dim=-1)
    return 0.5 * GAMMA**2 * (1 - 2 * ALPHA) * k.pow(-2 * ALPHA) * dk


def numpy_step(q: np.ndarray, z: np.ndarray) -> np.ndarray:
    """One Euler–Maruyama step of dq = [−γ κ^{−α}∇H̄ + ∂D] dt + γ κ^{½−α} √dt z (diagonal κ(q))."""
    x, y = q[:, 0], q[:, 1]
    kx = 0.5 + 0.5 * x * x + 0.25 * y * y
    s = x + y
    ky = 0.5 + 0.25 * s * s
    c = 0.5 * GAMMA**2 * (1 - 2 * ALPHA)
    out = np.empty_like(q)
    out[:, 0] = x + DT * (-GAMMA * 4 * x * (x * x - 1) * kx**-ALPHA + c * kx ** (-2 * ALPHA) * x)
    out[:, 0] += GAMMA * math.sqrt(DT) * kx ** (0.5 - ALPHA) * z[:, 0]
    out[:, 1] = y + DT * (-GAMMA * y * ky**-ALPHA + c * ky ** (-2 * ALPHA) * 0.5 * s)
    out[:, 1] += GAMMA * math.sqrt(DT) * ky ** (0.5 - ALPHA) * z[:, 1]
    return out


def walkers(m: int, steps: int, repeats: int, compile_rows: bool = True) -> list[dict]:
    auto = LangevinEnsemble(double_well, metric=Power(ALPHA), kappa=state_kappa, gamma=GAMMA)
    exact = LangevinEnsemble(
        double_well, metric=Power(ALPHA), kappa=state_kappa, gamma=GAMMA, divergence=analytic_divergence
    )
    rng = np.random.default_rng(0)
    q0 = np.column_stack([rng.normal(-1, 0.3, m), rng.normal(0, 0.5, m)])
    z = rng.standard_normal((m, 2))
    em = EulerMaruyama(DT)
    ref = numpy_step(q0, z)
    qt, zt = torch.from_numpy(q0), torch.from_numpy(z)
    with torch.no_grad():
        for label, ens in (("autograd", auto), ("analytic", exact)):
            diff = float(np.abs(em.step(ens.model, qt, zt).numpy() - ref).max())
            print(f"one-step agreement geodyn ({label}) vs numpy: max |Δ| = {diff:.2e}")
    if compile_rows:
        for dtype in (torch.float64, torch.float32):
            t = time.perf_counter()
            auto.simulate(qt, 1, em, seed=0, dtype=dtype, compile=True)  # compiles the timed program
            t_compile = time.perf_counter() - t
            out = auto.simulate(qt, 1, em, noise=zt.unsqueeze(0), dtype=dtype, compile=True).q
            diff = float(np.abs(out.double().numpy() - ref).max())
            print(f"one-step agreement geodyn compiled ({dtype}) vs numpy: max |Δ| = {diff:.2e}; "
                  f"first step (compile) {t_compile:.1f} s")  # fmt: skip

    def run_numpy():
        q = q0.copy()
        gen = np.random.default_rng(1)
        for _ in range(steps):
            q = numpy_step(q, gen.standard_normal((m, 2)))

    def run_geodyn(ens, **kw):
        kw = {"seed": 1} | kw

        def go():
            ens.simulate(qt, steps, em, **kw)

        return go

    rows = {"geodyn (autograd Itô drift)": run_geodyn(auto), "geodyn (analytic Itô drift)": run_geodyn(exact)}
    if compile_rows:
        rows["geodyn compiled (autograd Itô drift)"] = run_geodyn(auto, compile=True)
        rows["geodyn compiled (autograd Itô drift, float32)"] = run_geodyn(auto, compile=True, dtype=torch.float32)
        gen = torch.Generator().manual_seed(1)
        randn = lambda k: torch.randn((m, 2), generator=gen, dtype=torch.float64)  # noqa: E731
        rows["geodyn compiled, eager torch.randn normals"] = run_geodyn(auto, compile=True, noise=randn, seed=None)
    rows["numpy (hand-written)"] = run_numpy
    times: dict[str, list[float]] = {k: [] for k in rows}
    for fn in rows.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in rows.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    rate = {k: m * steps / statistics.median(v) for k, v in times.items()}
    base = rate["numpy (hand-written)"]
    print(f"\nwalker steps per second, M = {m:,} walkers, 2-D, g = κ(q)^{ALPHA:g}, {steps} steps × {repeats} repeats")
    print(f"{'row':46s} {'walker-steps/s':>16s} {'ratio to numpy':>15s} {'min..max ratio':>16s}")
    out = []
    for k, r in rate.items():
        # ratio of repeat i of the row to repeat i of numpy (the same load fell on both)
        ratios = [tn / tk for tk, tn in zip(times[k], times["numpy (hand-written)"], strict=True)]
        print(f"{k:46s} {r:16.3e} {r / base:15.3f} {min(ratios):7.3f}..{max(ratios):<7.3f}")
        RECORDS.append(
            {
                "table": f"Walkers: M = {m:,}, {steps} Euler–Maruyama steps (higher ratio = faster)",
                "name": k,
                "seconds": statistics.median(times[k]),
                "ratio": r / base,
                "baseline": "numpy (hand-written)",
                "note": f"{r:.3e} walker-steps/s; ratio per repeat {min(ratios):.2f}..{max(ratios):.2f}",
            }
        )


def fokker_planck(n: int, skip_fplanck: bool) -> None:
    model = LearningModel(double_well, metric=Power(0.0), kappa=1.0, gamma=GAMMA)
    print(f"\nFokker–Planck to the stationary state, {n}² grid, α = 0, constant κ = 1, γ = {GAMMA}")
    print(f"{'row':44s} {'seconds':>9s}")
    t = time.perf_counter()
    fp = FokkerPlanck2D(model=model, domain=DOMAIN, shape=(n, n))
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    p_stat = fp.stationary()
    t_stat = time.perf_counter() - t
    exact = np.exp(-2 * double_well(torch.from_numpy(np.stack([c.ravel() for c in fp.centres], 1))).numpy() / GAMMA)
    exact = exact / (exact.sum() * fp.cell_volume)
    err = float(np.abs(p_stat.ravel() - exact).sum() * fp.cell_volume)
    print(f"{'geodyn assembly':44s} {t_build:9.3f}")
    print(f"{'geodyn stationary() (L1 vs exp(-2H/γ): ' + f'{err:.1e})':44s} {t_stat:9.3f}")
    # evolve in chunks until the L1 distance to the stationary density is below 1e-6
    p = fp.normalize(lambda x, y: np.exp(-(x**2 + (y - 0.6) ** 2) / (2 * 0.25**2)))
    t = time.perf_counter()
    elapsed_t, chunk, dist = 0.0, 2.0, 1.0
    while dist > 1e-6 and elapsed_t < 200:
        p = fp.evolve(p, chunk, dt=0.1).p[-1]
        elapsed_t += chunk
        dist = float(np.abs(p - p_stat).sum() * fp.cell_volume)
    t_evolve = time.perf_counter() - t
    print(f"{'geodyn evolve (BE dt 0.1) to L1 ' + f'{dist:.0e} (t = {elapsed_t:g})':44s} {t_evolve:9.3f}")
    if skip_fplanck:
        return
    try:
        np.product = np.prod  # noqa: NPY003, NPY201  (fplanck 0.2.2 calls the removed np.product)
        import fplanck
        from scipy import constants
    except ImportError:
        print("fplanck not installed")
        return
    res = np.array([DOMAIN[0][1] - DOMAIN[0][0], DOMAIN[1][1] - DOMAIN[1][0]]) / n
    t = time.perf_counter()
    sim = fplanck.fokker_planck(
        temperature=GAMMA / (2 * constants.k),
        drag=1 / GAMMA,
        extent=res * n * (1 - 1e-9),
        resolution=res,
        boundary=fplanck.boundary.reflecting,
        potential=lambda x, y: (x**2 - 1) ** 2 + 0.5 * y**2,
    )
    t_fb = time.perf_counter() - t
    t = time.perf_counter()
    try:
        ss = sim.steady_state()
        t_fs = time.perf_counter() - t
        ss = ss / (ss.sum() * fp.cell_volume)
        ferr = float(np.abs(ss.ravel() - exact).sum() * fp.cell_volume)
        print(f"{'fplanck assembly (Python loop)':44s} {t_fb:9.3f}")
        print(f"{'fplanck steady_state() (L1 vs exact: ' + f'{ferr:.1e})':44s} {t_fs:9.3f}")
        print(f"ratio fplanck / geodyn, stationary solve: {t_fs / t_stat:.2f}; "
              f"assembly + solve: {(t_fb + t_fs) / (t_build + t_stat):.2f}")  # fmt: skip
        table = f"Fokker–Planck stationary state, {n}² grid (time ÷ geodyn assembly + stationary)"
        for name, sec in (("geodyn assembly + stationary()", t_build + t_stat), ("geodyn evolve to L1 1e-6", t_evolve),
                          ("fplanck assembly + steady_state()", t_fb + t_fs)):  # fmt: skip
            RECORDS.append({"table": table, "name": name, "seconds": sec, "ratio": sec / (t_build + t_stat),
                            "baseline": "geodyn assembly + stationary()"})  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - report, do not crash the table
        print(f"fplanck steady_state failed: {exc!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--walkers", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-fplanck", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON (benchmarks/report.py)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    walkers(args.walkers, args.steps, args.repeats, not args.no_compile)
    fokker_planck(args.grid, args.skip_fplanck)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"benchmark": "simulator_cost", "threads": torch.get_num_threads(), "torch": torch.__version__,
                       "numpy": np.__version__, "rows": RECORDS}, fh, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()

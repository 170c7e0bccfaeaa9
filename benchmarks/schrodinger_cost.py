"""Schrödinger solver cost: steps per second and error against the analytic solution of (3.11), against QuTiP.

    python benchmarks/schrodinger_cost.py [--points N] [--t-final T] [--dt DT] [--repeats R] [--threads N]
                                          [--skip-qutip] [--qutip-method adams|bdf] [--json FILE]

Problem: the harmonic oscillator (ħ = m = ω = 1, i.e. γ = 1, β = 4 in (3.12)–(3.13)) on a periodic box of length
``--box`` with N nodes, a coherent state released at x0 = 2, whose exact evolution is

    ψ(x, t) = π^{−1/4} exp(−(x − x0 cos t)²/2 − i x0 sin t · x + i (x0²/2) sin t cos t − i t/2).

Rows (each evolves to t_final; the figure is the median wall time over repeats, after one warm-up):

* geodyn split-step — Strang split-step Fourier (spectral H), fixed dt;
* geodyn Crank–Nicolson — second-order stencil H (the same sparse matrix QuTiP gets), fixed dt, with and without
  iterative refinement (``refine``);
* QuTiP ``sesolve`` — the Crank–Nicolson stencil H as a CSR ``Qobj``, adaptive integrator (``--qutip-method``) at
  atol 1e-8 / rtol 1e-6, which puts its error near geodyn's. The spectral H would be a dense N × N matrix
  (4.3 GB at N = 2¹⁴), so QuTiP is compared on the stencil H only.

Error: ‖ψ − ψ_exact‖ in L² (the stencil rows also carry the O(h²) spatial error of the stencil, ≈ 1e-6 here).

Threads: numpy.fft (pocketfft) runs on one thread; SciPy's SuperLU calls BLAS for its dense kernels, and QuTiP's
integrators use NumPy/SciPy. ``--threads N`` caps the BLAS and OpenMP thread pools of every loaded library with
threadpoolctl (installed with scikit-learn, the ``bench`` extra) for the whole run; without the flag the libraries
use their defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time

import numpy as np

from geodyn.quantum import CrankNicolsonSchrodinger, Grid, Hamiltonian, SplitStepSchrodinger, evolve

X0 = 2.0


def exact(x: np.ndarray, t: float) -> np.ndarray:
    return math.pi**-0.25 * np.exp(
        -((x - X0 * math.cos(t)) ** 2) / 2
        - 1j * X0 * math.sin(t) * x
        + 0.5j * X0**2 * math.sin(t) * math.cos(t)
        - 0.5j * t
    )


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    out = fn()  # warm-up (plans, factorisations)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def thread_limit(threads: int | None):
    """A context that caps the BLAS/OpenMP thread pools at ``threads`` (threadpoolctl), or does nothing."""
    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("--threads needs threadpoolctl (pip install threadpoolctl, or the bench extra)") from exc
    return threadpool_limits(limits=threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=2**14)
    ap.add_argument("--box", type=float, default=40.0)
    ap.add_argument("--t-final", type=float, default=1.0)
    ap.add_argument("--dt", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="cap the BLAS/OpenMP thread pools (threadpoolctl)")
    ap.add_argument("--skip-qutip", action="store_true")
    ap.add_argument("--qutip-method", default="adams")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON (benchmarks/report.py)")
    args = ap.parse_args()
    # threadpoolctl caps the pools of the libraries loaded when it is entered: load SciPy's (and QuTiP's) first
    import scipy.sparse.linalg  # noqa: F401

    if not args.skip_qutip:
        with contextlib.suppress(ImportError):
            import qutip  # noqa: F401

    with thread_limit(args.threads):
        run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> None:
    grid = Grid((-args.box / 2, args.box / 2), args.points)
    x = grid.axes[0]
    ham = Hamiltonian(grid, 1.0, 1.0, 0.5 * x * x)
    psi0 = exact(x, 0.0)
    ref = exact(x, args.t_final)
    steps = round(args.t_final / args.dt)
    print(
        f"numpy {np.__version__}, N = {args.points} nodes, h = {grid.spacing[0]:.2e}, t_final = {args.t_final:g}, "
        f"dt = {args.dt:g} ({steps} steps), coherent state x0 = {X0:g}, "
        f"BLAS/OpenMP threads: {args.threads or 'library default'}"
    )

    rows: dict[str, tuple[float, float, float]] = {}  # name → (seconds, steps per second, error)

    def run(solver):
        return lambda: evolve(ham, psi0, args.t_final, solver).psi[-1]

    for name, solver in (
        ("geodyn split-step (spectral H)", SplitStepSchrodinger(args.dt)),
        ("geodyn Crank–Nicolson (stencil H)", CrankNicolsonSchrodinger(args.dt)),
        ("geodyn Crank–Nicolson, refine=False", CrankNicolsonSchrodinger(args.dt, refine=False)),
    ):
        sec, psi = timed(run(solver), args.repeats)
        rows[name] = (sec, steps / sec, ham.norm(psi - ref))

    if not args.skip_qutip:
        try:
            import qutip
        except ImportError:
            print("qutip not installed")
        else:
            k_mat, _ = CrankNicolsonSchrodinger.matrices(ham)  # flat metric: W = I, H = K
            h_q = qutip.Qobj(k_mat.tocsr(), dtype="csr")
            psi_q = qutip.Qobj(psi0[:, None])
            opts = {
                "method": args.qutip_method,
                "atol": 1e-8,
                "rtol": 1e-6,
                "nsteps": 10**8,
                "store_final_state": True,
                "store_states": False,
                "normalize_output": False,
            }

            def go():
                return qutip.sesolve(h_q, psi_q, [0.0, args.t_final], options=opts).final_state.full().ravel()

            sec, psi = timed(go, max(1, args.repeats - 2))
            rows[f"QuTiP {qutip.__version__} sesolve ({args.qutip_method}, stencil H)"] = (
                sec,
                math.nan,
                ham.norm(psi - ref),
            )

    base = rows["geodyn Crank–Nicolson (stencil H)"][0]
    print(f"\n{'row':52s} {'seconds':>9s} {'steps/s':>10s} {'L2 error':>10s} {'time / CN':>10s}")
    for name, (sec, rate, err) in rows.items():
        print(f"{name:52s} {sec:9.3f} {rate:10.1f} {err:10.2e} {sec / base:10.2f}")
    if args.json:
        table = f"Schrödinger, harmonic oscillator, N = {args.points}, {steps} steps of dt = {args.dt:g}"
        records = [
            {"table": table, "name": name, "seconds": sec, "ratio": sec / base, "note": f"L2 error {err:.1e}",
             "baseline": "geodyn Crank–Nicolson (stencil H)"}
            for name, (sec, _, err) in rows.items()
        ]  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"benchmark": "schrodinger_cost", "threads": args.threads, "numpy": np.__version__,
                       "rows": records}, fh, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()

"""Evolution speed (BENCHMARKS.md §3): accepted mutations per second for 10⁵ genomes, geodyn against numpy.

    python benchmarks/evolution_rate.py [--genomes N] [--steps N] [--repeats N] [--threads N] [--device D]
                                        [--json FILE] [--no-thp]

Two workloads, each one step = every genome proposes a jump and keeps it with the sigmoid acceptance (4.5):

* continuous — N = 16 real traits on a double-well landscape H = Σ_i ((q_i)² − 1)², Gaussian jumps σ = 0.3² I,
  β_s = 2; geodyn in float64 and with ``Population(..., dtype=torch.float32)`` (float32 genomes, normals,
  energies and uniforms; the numpy peer stays float64, numpy's float32 normals being no faster);
* discrete   — NK landscape, 64 loci, K = 4 (seeded), one point mutation per genome per step, H = −log F, β_s = 50.

The peer is the same algorithm written in plain numpy, vectorised over genomes within a step (one Python loop
iteration per step), with numpy's PCG64 generator: proposals, energies of the proposals only (the current
energies are carried), one uniform per genome, ``where``. The NK energies use the same tables and the same
code-matrix product. geodyn runs through ``Population.step`` (its whole per-step path).

Rows are measured interleaved: each repeat times ``--steps`` steps of every row in turn, so load from other
processes falls on all rows alike; the figure is the median over repeats of accepted mutations / second. The ratio
geodyn / numpy is printed per workload. Absolute rates are machine-dependent; only the ratio is meant to travel.
"""

from __future__ import annotations

import os
import sys

# numpy advises the kernel to back large arrays with transparent huge pages; torch does so only when this variable is
# set before its first allocation. Without it each fresh 50 MB temporary costs ~12 500 page faults (measured here:
# 90 ms for one int64 conversion of a 100 000 × 64 array, 24 ms with it), which would time the page-fault path
# rather than the algorithm. ``--no-thp`` (set before this import) shows torch's default.
if "--no-thp" not in sys.argv:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.special import expit  # noqa: E402

from geodyn.evolution import DoubleWell, GaussianJump, NKLandscape, PointMutation, Population, Sigmoid

DIM, JUMP, BETA_CONT = 16, 0.3, 2.0
LOCI, K, BETA_NK = 64, 4, 50.0


# -- the numpy peers -----------------------------------------------------------------------------------------------
class NumpyContinuous:
    """q ← where(u < A, q + σ^{1/2} z, q) on the double well, in numpy."""

    def __init__(self, q0: np.ndarray, seed: int):
        self.rng = np.random.default_rng(seed)
        self.q = q0.copy()
        self.h = self.energy(self.q)

    @staticmethod
    def energy(q: np.ndarray) -> np.ndarray:
        u = q * q - 1.0
        return (u * u).sum(1)

    def step(self) -> int:
        prop = self.q + JUMP * self.rng.standard_normal(self.q.shape)
        h_prop = self.energy(prop)
        accept = self.rng.random(self.h.shape[0]) < expit(-BETA_CONT * (h_prop - self.h))
        self.q = np.where(accept[:, None], prop, self.q)
        self.h = np.where(accept, h_prop, self.h)
        return int(accept.sum())


class NumpyNK:
    """One point mutation per genome, sigmoid acceptance, on the same NK tables, in numpy."""

    def __init__(self, x0: np.ndarray, nk: NKLandscape, seed: int):
        self.rng = np.random.default_rng(seed)
        self.x = x0.copy()
        self.code = nk._code_matrix.numpy()
        self.offsets = nk._offsets.numpy()
        self.tables = nk.tables.numpy().ravel()
        self.h = self.energy(self.x)
        self.rows = np.arange(x0.shape[0])

    def energy(self, x: np.ndarray) -> np.ndarray:
        flat = (x.astype(np.float32) @ self.code + self.offsets).astype(np.int32)
        return -np.log(self.tables[flat].mean(1))

    def step(self) -> int:
        prop = self.x.copy()
        loci = self.rng.integers(0, prop.shape[1], size=prop.shape[0])
        prop[self.rows, loci] ^= True
        h_prop = self.energy(prop)
        accept = self.rng.random(self.h.shape[0]) < expit(-BETA_NK * (h_prop - self.h))
        self.x = np.where(accept[:, None], prop, self.x)
        self.h = np.where(accept, h_prop, self.h)
        return int(accept.sum())


class GeodynRow:
    """A geodyn Population stepped through ``Population.step``; returns accepted mutations per step."""

    def __init__(self, pop: Population):
        self.pop = pop
        self.cuda = pop.genomes.device.type == "cuda"

    def step(self) -> int:
        return int(self.pop.step().accepted.sum())

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


# -- measurement ----------------------------------------------------------------------------------------------------
def time_steps(step: Callable[[], int], steps: int, sync: Callable[[], None] = lambda: None) -> float:
    """Accepted mutations per second over ``steps`` steps."""
    sync()
    start = time.perf_counter()
    accepted = 0
    for _ in range(steps):
        accepted += step()
    sync()
    return accepted / (time.perf_counter() - start)


def build_rows(genomes: int, device: str) -> dict[str, dict[str, object]]:
    gen = np.random.default_rng(0)
    q0 = gen.standard_normal((genomes, DIM))
    nk = NKLandscape(LOCI, K, seed=0)
    x0 = gen.random((genomes, LOCI)) < 0.5
    rows: dict[str, dict[str, object]] = {"continuous": {}, "discrete (NK)": {}}
    cont = Population(torch.tensor(q0, device=device), DoubleWell(), GaussianJump(JUMP**2), Sigmoid(BETA_CONT), seed=1)
    rows["continuous"]["geodyn"] = GeodynRow(cont)
    cont32 = Population(
        torch.tensor(q0, device=device), DoubleWell(), GaussianJump(JUMP**2), Sigmoid(BETA_CONT), seed=1,
        dtype=torch.float32,
    )  # fmt: skip
    rows["continuous"]["geodyn (float32)"] = GeodynRow(cont32)
    rows["continuous"]["numpy"] = NumpyContinuous(q0, seed=1)
    nk_dev = NKLandscape(LOCI, K, seed=0).to(device)
    disc = Population(torch.tensor(x0, device=device), nk_dev, PointMutation(1), Sigmoid(BETA_NK), seed=1)
    rows["discrete (NK)"]["geodyn"] = GeodynRow(disc)
    rows["discrete (NK)"]["numpy"] = NumpyNK(x0, nk, seed=1)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genomes", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="device of the geodyn populations (cpu, cuda)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--no-thp", action="store_true", help="leave torch's allocations on 4 kB pages (its default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = build_rows(args.genomes, args.device)
    for workload in rows.values():  # warm-up: allocation, first kernels
        for row in workload.values():
            for _ in range(2):
                row.step()
    rates: dict[str, dict[str, list[float]]] = {w: {r: [] for r in rows[w]} for w in rows}
    for _ in range(args.repeats):
        for w, workload in rows.items():
            for name, row in workload.items():
                sync = row.sync if isinstance(row, GeodynRow) else (lambda: None)
                rates[w][name].append(time_steps(row.step, args.steps, sync))

    console = Console()
    table = Table(
        title=f"accepted mutations per second, {args.genomes:,} genomes (median of {args.repeats} repeats "
        f"of {args.steps} steps)"
    )
    for col in ("workload", "row", "accepted / s", "÷ numpy (median)", "÷ numpy (min..max per repeat)"):
        table.add_column(col, justify="right")
    results = {}
    for w in rows:
        n = statistics.median(rates[w]["numpy"])
        g = statistics.median(rates[w]["geodyn"])
        results[w] = {
            "geodyn": g,
            "numpy": n,
            "ratio": g / n,
            "geodyn_all": rates[w]["geodyn"],
            "numpy_all": rates[w]["numpy"],
            "rows": [],
        }
        for name in rows[w]:
            v = statistics.median(rates[w][name])
            # repeat i of a row against repeat i of numpy: the same load fell on both
            per = [a / b for a, b in zip(rates[w][name], rates[w]["numpy"], strict=True)]
            results[w]["rows"].append({"name": name, "value": v, "unit": "accepted/s", "ratio_to_numpy": v / n,
                                       "ratios_per_repeat": per})  # fmt: skip
            table.add_row(w, name, f"{v:,.0f}", f"{v / n:.2f}×", f"{min(per):.2f}..{max(per):.2f}")
    console.print(table)
    meta = {
        "genomes": args.genomes,
        "steps": args.steps,
        "repeats": args.repeats,
        "device": args.device,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", ""),
    }
    console.print(f"[dim]{meta}[/dim]")
    # the layout of benchmarks/report.py: one table per workload, rates as ratios to numpy (higher = faster)
    report_rows = [
        {"table": f"Evolution: {w}, {args.genomes:,} genomes, accepted mutations per second (higher ratio = faster)",
         "name": r["name"], "seconds": None, "ratio": r["ratio_to_numpy"], "baseline": "numpy",
         "note": f"{r['value']:,.0f} accepted/s; ratio per repeat "
                 f"{min(r['ratios_per_repeat']):.2f}..{max(r['ratios_per_repeat']):.2f}"}
        for w in results for r in results[w]["rows"]
    ]  # fmt: skip
    out = {"benchmark": "evolution_rate", "meta": meta, "results": results, "rows": report_rows}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()

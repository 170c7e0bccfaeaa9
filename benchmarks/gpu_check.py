"""One script for a machine with a GPU (issue #18, item 5): correctness of every optimizer path on the device
against the CPU reference in float64, then the step-cost tables on the device.

    python benchmarks/gpu_check.py [--device cuda] [--json FILE] [--max-seconds 300] [--no-compile]
                                   [--correctness-only] [--size small|tiny]

``make bench-gpu`` runs it and renders docs/performance-gpu.md with benchmarks/report.py. ``--device cpu`` runs
the same checks on the CPU (tests/test_gpu_check.py does, at ``--size tiny``). Exit status 1 if a check fails.

Correctness (each path on ``--device`` against a reference computed on the CPU from the same float64 inputs; the
gradients are fixed, so they do not depend on the parameters and differences do not grow through the loss):

* diagonal CGD: the CPU for-loop reference (``foreach=False``, :func:`geodyn.optim.cgd.cgd_reference`) against
  the device's multi-tensor step and ``compiled=True``, then with a NaN gradient at one step: ``nonfinite="skip"``
  (trajectories equal, one skipped step) and ``"raise"`` (the error, nothing touched).
* the presets equal to torch.optim (Adam, AdamW, SGD with momentum, RMSprop) against torch.optim on the device.
* KronCGD (refresh "eigh" and "qr"; per-matrix ``foreach=False`` and batched ``foreach=True``) and FullCGD (dense
  and ``rank=k``) against their CPU per-matrix runs.
* LangevinEnsemble.simulate (Euler–Maruyama with the autograd Itô drift, given normals; compiled too) and
  Population.step (Gaussian jumps, Metropolis; the device's draws replayed on the CPU) against the CPU.

Tolerances. Elementwise paths do the same arithmetic on both devices up to the order of a few roundings per step
(fused multiply–adds, a division against a multiplication by the reciprocal, CUDA's pow within 2 ulp): after S ≤
50 steps ≲ 10·S·ε₆₄ ≈ 6e-14 relative to max(1, |q|), so ``SAME = 1e-12`` holds with a margin of ~20.
Eigendecompositions differ between LAPACK and cuSOLVER by a backward error ~ n·ε·‖K‖, which moves an eigenvector
by ≲ n·ε·‖K‖/gap (Davis–Kahan): the bound of a structured path on another device is SAME × max(1, ‖K‖/gap),
with ‖K‖/gap the largest ratio over the factors met along the CPU reference run (eigenvalues closer than
10³·n·ε·‖K‖ count as one degenerate cluster, in which the metric is constant and the step does not depend on the
basis). Sums over N coordinates (the landscape's energy) differ by reduction order: |Δ| ≤ 2·γ_N·Σ|terms| with
γ_N = N·ε/(1 − N·ε) (Higham, Accuracy and Stability, (3.4)).

Step cost (skipped with ``--correctness-only``): rows interleaved in one process, ``torch.cuda.synchronize()``
before and after each timed window, ratios against peers timed in the same run: the MLP of
benchmarks/step_cost.py (CGD default / foreach / compiled against torch Adam foreach and fused, heavyball AdamW /
SOAP / PSGD-Kron), and the three models of benchmarks/structured_cost.py (KronCGD against Adam(foreach),
pytorch-optimizer's and heavyball's SOAP). heavyball compiles in inductor's default mode, unless ``--no-compile``,
its compile fails, or half of ``--max-seconds`` is spent (then eagerly, said in the row's note). Under
``--no-compile`` the default CGD row (it compiles) is left out. ``--max-seconds`` bounds the timing: repeats stop
once it is spent (at least one repeat of every row). Peers that are not installed are left out.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geodyn.evolution import GaussianJump, Metropolis, Population, Quadratic
from geodyn.metric import Power, ThreeRegime
from geodyn.optim import CGD, FullCGD, KronCGD, NonFiniteGradientError, presets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_cost  # noqa: E402  (benchmarks/ is not a package)
import structured_cost  # noqa: E402

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
SAME = 1e-12  # elementwise arithmetic, see the module docstring
SIZES = {
    # shapes of the diagonal and Kronecker checks, FullCGD's N and rank, steps, walkers × dims, population
    "small": dict(
        shapes=[(64, 48), (48,), (48, 48), (10, 48), (10,)],
        kron=[(12, 12), (12, 12), (8, 8, 1, 1), (6,)],
        full=(40, 4),
        steps=20,
        walkers=(4096, 4),
        population=(8192, 6),
    ),  # fmt: skip
    "tiny": dict(
        shapes=[(6, 4), (4,), (5, 5), (3, 5)],
        kron=[(5, 5), (5, 5), (3, 3)],
        full=(8, 2),
        steps=8,
        walkers=(32, 3),
        population=(64, 3),
    ),  # fmt: skip
}


@dataclass
class Check:
    name: str
    delta: float  # max |Δ| / max(1, max |reference|)
    tol: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return math.isfinite(self.delta) and self.delta <= self.tol


# -- inputs --------------------------------------------------------------------------------------------------------
def _grads(shapes: Sequence[tuple[int, ...]], steps: int, seed: int, nan_step: int | None = None) -> list[list]:
    """Fixed float64 CPU gradients per step: a mean plus noise (a noise moment well away from 0); at ``nan_step``
    one entry of the first tensor is NaN."""
    rng = np.random.default_rng(seed)
    means = [rng.normal(size=s) for s in shapes]
    out = []
    for t in range(steps):
        step = [torch.tensor(mu + rng.normal(size=s) * (1 + i)) for i, (mu, s) in enumerate(zip(means, shapes))]
        if t == nan_step:
            step[0].view(-1)[0] = math.nan
        out.append(step)
    return out


def _params(shapes: Sequence[tuple[int, ...]], device: str, seed: int = 0) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=gen, dtype=F64).to(device)) for s in shapes]


def _run(make: Callable, shapes, grads, device: str, every: Callable | None = None):
    """Step ``make(params)`` through ``grads`` on ``device``; the parameters after each step (on the CPU)."""
    params = _params(shapes, device)
    opt = make(params)
    history = []
    for step in grads:
        for p, g in zip(params, step, strict=True):
            p.grad = g.to(device)
        opt.step()
        history.append([p.detach().cpu().clone() for p in params])
        if every is not None:
            every(opt)
    return history, opt


def _delta(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> float:
    """max over steps and tensors of |a − b| / max(1, max |b|) (b the reference); inf on a length mismatch."""
    if len(a) != len(b):
        return math.inf
    worst = 0.0
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys, strict=True):
            if not x.numel():
                continue
            d = (x - y).abs().max().item() / max(1.0, y.abs().max().item())
            if not d == d:  # a NaN is a failure (max() would drop it)
                return math.inf
            worst = max(worst, d)
    return worst


class GapTracker:
    """The largest ‖K‖/gap over the symmetric factors of an optimizer's state, step by step (module docstring)."""

    def __init__(self) -> None:
        self.ratio = 1.0

    def _spectrum(self, eigenvalues: torch.Tensor, n: int) -> None:
        lam = torch.sort(eigenvalues.double().cpu()).values
        norm = lam.abs().max().item()
        if norm == 0.0:
            return
        gaps = torch.diff(lam)
        gaps = gaps[gaps > 1e3 * n * EPS64 * norm]  # closer eigenvalues: one degenerate cluster
        if gaps.numel():
            self.ratio = max(self.ratio, norm / gaps.min().item())

    def __call__(self, opt: torch.optim.Optimizer) -> None:
        for state in opt.state.values():
            for key in ("left", "right"):
                k = state.get(key)
                if isinstance(k, torch.Tensor) and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] > 1:
                    self._spectrum(torch.linalg.eigvalsh(k.double().cpu()), k.shape[0])
            lam = state.get("lowrank_eigenvalues")
            if isinstance(lam, torch.Tensor):  # the remainder of these runs is 0: the gap to 0 counts too
                self._spectrum(torch.cat([lam.reshape(-1).double().cpu(), torch.zeros(1, dtype=F64)]), lam.numel() + 1)


# -- checks --------------------------------------------------------------------------------------------------------
def _cgd_checks(device: str, size: dict, compile: bool) -> list[Check]:
    shapes, steps = size["shapes"], size["steps"]
    law = dict(lr=1e-2, metric=ThreeRegime(1e-3, 1.0), weight_decay=0.01)
    grads = _grads(shapes, steps, seed=1)
    reference, _ = _run(lambda p: CGD(p, foreach=False, **law), shapes, grads, "cpu")
    paths = {"foreach": dict(foreach=True)} | ({"compiled": dict(compiled=True)} if compile else {})
    checks = []
    for label, kw in paths.items():
        history, _ = _run(lambda p, kw=kw: CGD(p, **kw, **law), shapes, grads, device)
        checks.append(Check(f"CGD {label} vs CPU cgd_reference", _delta(history, reference), SAME))
    # A NaN gradient at one step: "skip" leaves that step out (the CPU reference skips it too) ...
    nan_step = steps // 2
    nan_grads = _grads(shapes, steps, seed=1, nan_step=nan_step)
    reference, ref_opt = _run(lambda p: CGD(p, foreach=False, nonfinite="skip", **law), shapes, nan_grads, "cpu")
    for label, kw in paths.items():
        history, opt = _run(lambda p, kw=kw: CGD(p, nonfinite="skip", **kw, **law), shapes, nan_grads, device)
        delta = _delta(history, reference) if opt.skipped_steps == ref_opt.skipped_steps == 1 else math.inf
        checks.append(Check(f"CGD {label}, NaN step, nonfinite='skip'", delta, SAME, f"{opt.skipped_steps} skipped"))
    # ... and "raise" raises from that step with parameters and state untouched (compared bit for bit).
    for label, kw in paths.items():
        params = _params(shapes, device)
        opt = CGD(params, nonfinite="raise", **kw, **law)
        raised, delta = False, math.inf
        for t, step in enumerate(nan_grads):
            for p, g in zip(params, step):
                p.grad = g.to(device)
            if t < nan_step:
                opt.step()
                continue
            before = [p.detach().clone() for p in params] + [
                v.clone() for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)
            ]
            try:
                opt.step()
            except NonFiniteGradientError:
                raised = True
            after = [p.detach() for p in params] + [
                v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)
            ]
            delta = max((a - b).abs().max().item() for a, b in zip(after, before, strict=True))
            break
        checks.append(
            Check(
                f"CGD {label}, NaN step, nonfinite='raise'",
                delta if raised else math.inf,
                0.0,
                "raised, state untouched" if raised else "did not raise",
            )  # fmt: skip
        )
    return checks


def _preset_checks(device: str, size: dict) -> list[Check]:
    """Presets against torch.optim on the same device: same formulas, rounding order differs (SAME bound)."""
    shapes, steps = size["shapes"], size["steps"]
    grads = _grads(shapes, steps, seed=2)
    cases = {
        "Adam": (lambda p: presets.adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3),
                 lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3)),
        "AdamW": (lambda p: presets.adamw(p, lr=3e-3, weight_decay=0.05),
                  lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.05)),
        "SGD (momentum 0.9)": (lambda p: presets.sgd(p, lr=0.02, momentum=0.9, weight_decay=1e-3),
                               lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=1e-3)),
        "RMSprop": (lambda p: presets.rmsprop(p, lr=1e-3, alpha=0.95, eps=1e-6, weight_decay=1e-3),
                    lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=0.95, eps=1e-6, weight_decay=1e-3)),
    }  # fmt: skip
    checks = []
    for name, (ours, theirs) in cases.items():
        a, _ = _run(ours, shapes, grads, device)
        b, _ = _run(theirs, shapes, grads, device)
        checks.append(Check(f"preset {name} vs torch.optim.{name.split()[0]} on {device}", _delta(a, b), SAME))
    return checks


def _structured_checks(device: str, size: dict) -> list[Check]:
    steps = size["steps"]
    other_device = torch.device(device).type != "cpu"
    checks = []
    kron = size["kron"]  # square factors: full rank from the first step (see tests/optim/test_kron_foreach.py)
    grads = _grads(kron, steps, seed=3)
    for refresh in ("eigh", "qr"):
        law = dict(lr=1e-2, metric=ThreeRegime(1e-3, 1.0), precondition_every=2, refresh=refresh)
        gaps = GapTracker()
        reference, _ = _run(lambda p, law=law: KronCGD(p, foreach=False, **law), kron, grads, "cpu", gaps)
        for foreach in (False, True):
            if not other_device and not foreach:
                continue  # the reference itself
            history, _ = _run(lambda p, f=foreach, law=law: KronCGD(p, foreach=f, **law), kron, grads, device)
            amplification = gaps.ratio if other_device else 1.0
            checks.append(
                Check(
                    f"KronCGD refresh={refresh} {'batched' if foreach else 'per-matrix'} vs CPU per-matrix",
                    _delta(history, reference),
                    SAME * amplification,
                    f"‖K‖/gap = {gaps.ratio:.3g}",
                )  # fmt: skip
            )
    n, k = size["full"]
    rng = np.random.default_rng(4)
    basis = rng.normal(size=(n, k))  # gradients in a k-dimensional subspace: rank-k tracking is exact
    full_grads = [[torch.tensor(basis @ (rng.normal(size=k) + 1.0))] for _ in range(steps)]
    for label, kw in (("dense", {}), (f"rank={k}", dict(rank=k))):
        law = dict(lr=1e-2, metric=ThreeRegime(1e-3, 1.0), **kw)
        gaps = GapTracker()
        reference, _ = _run(lambda p, law=law: FullCGD(p, **law), [(n,)], full_grads, "cpu", gaps)
        history, _ = _run(lambda p, law=law: FullCGD(p, **law), [(n,)], full_grads, device)
        tol = SAME * (gaps.ratio if other_device else 1.0)
        checks.append(Check(f"FullCGD {label} vs CPU", _delta(history, reference), tol, f"‖K‖/gap = {gaps.ratio:.3g}"))
    return checks


def _simulator_checks(device: str, size: dict, compile: bool) -> list[Check]:
    from geodyn.dynamics import EulerMaruyama, LangevinEnsemble

    checks = []
    walkers, dim = size["walkers"]
    steps = size["steps"]
    gen = torch.Generator().manual_seed(5)
    q0 = torch.randn(walkers, dim, generator=gen, dtype=F64)
    noise = torch.randn(steps, walkers, dim, generator=gen, dtype=F64)
    ensemble = LangevinEnsemble(
        lambda q: (0.5 * q**2 + 0.1 * q**4).sum(-1), metric=Power(0.5), kappa=lambda q: 1.0 + 0.5 * q**2, gamma=0.1
    )  # a state-dependent diagonal κ: the automatic Itô drift (forward-mode passes) is part of every step
    reference = ensemble.simulate(q0, steps, EulerMaruyama(0.01), noise=noise).q  # q0 on the CPU
    for label, kw in (("eager", {}),) + ((("compiled", dict(compile=True)),) if compile else ()):
        q = ensemble.simulate(q0, steps, EulerMaruyama(0.01), noise=noise, device=device, **kw).q.cpu()
        checks.append(Check(f"LangevinEnsemble Euler–Maruyama {label} vs CPU", _delta([[q]], [[reference]]), SAME))

    m, n = size["population"]
    curvature = torch.linspace(0.5, 2.0, n, dtype=F64)
    landscape, jump, acceptance = Quadratic(curvature), GaussianJump(std=0.3), Metropolis(2.0)
    q0 = torch.randn(m, n, generator=gen, dtype=F64)
    generator = torch.Generator(device=device).manual_seed(6)
    pop = Population(q0.to(device), landscape, jump, acceptance, generator=generator)
    worst_q = worst_h = 0.0
    bound_h = 0.0
    for _ in range(3):
        q_old = pop.genomes.cpu()
        replay = torch.Generator(device=device)
        replay.set_state(generator.get_state())
        pop.step()
        # The device's draws, in Population.step's order (jump normals, then the acceptance uniforms), on the CPU.
        z = torch.randn(q_old.shape, generator=replay, dtype=F64, device=device).cpu()
        u = torch.rand((m,), generator=replay, dtype=F64, device=device).cpu()
        proposal = q_old + z * 0.3
        h_old, h_new = landscape.energy(q_old), landscape.energy(proposal)
        accepted = u < pop.model.acceptance_probability(h_old, h_new)
        q_ref = torch.where(accepted.unsqueeze(-1), proposal, q_old)
        h_ref = torch.where(accepted, h_new, h_old)
        worst_q = max(worst_q, _delta([[pop.genomes.cpu()]], [[q_ref]]))
        # 2·γ_N·Σ|terms| for each energy, the terms ½ c_i q_i² all ≥ 0 so Σ|terms| = H.
        gamma_n = n * EPS64 / (1 - n * EPS64)
        bound_h = max(bound_h, 2 * gamma_n * h_ref.abs().max().item() / max(1.0, h_ref.abs().max().item()))
        worst_h = max(worst_h, _delta([[pop.energies.cpu()]], [[h_ref]]))
    checks.append(Check("Population step genomes vs CPU replay", worst_q, SAME))
    checks.append(Check("Population step energies vs CPU replay", worst_h, max(bound_h, EPS64), "2·γ_N·H bound"))
    return checks


def correctness(device: str, size: str = "small", compile: bool = True) -> list[Check]:
    """Every check of the module docstring on ``device``; each Check says whether it passed."""
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not one of {sorted(SIZES)}")
    spec = SIZES[size]
    return (
        _cgd_checks(device, spec, compile)
        + _preset_checks(device, spec)
        + _structured_checks(device, spec)
        + _simulator_checks(device, spec, compile)
    )


# -- step cost -----------------------------------------------------------------------------------------------------
@dataclass
class Timed:
    table: str
    name: str
    make: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    model: Callable[[], nn.Module]
    warmup: int = step_cost.WARMUP_STEPS
    note: str = ""


class _Subject:
    """One row's parameters on the device, its optimizer, and two gradient sets alternated between steps (a
    constant gradient would drive CGD's central noise moment into denormals: benchmarks/step_cost.py)."""

    def __init__(self, row: Timed, device: str):
        self.params = [nn.Parameter(p.detach().to(device)) for p in row.model().parameters()]
        gen = torch.Generator().manual_seed(1)
        self.grads = [[(torch.randn(p.shape, generator=gen) * 1e-2).to(device) for p in self.params] for _ in "ab"]
        self.parity = 0
        self.opt = row.make(self.params)

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.parity ^= 1
            for p, g in zip(self.params, self.grads[self.parity]):
                p.grad = g  # set before every step: heavyball clears them
            self.opt.step()


def _heavyball(compile: bool) -> Any:
    try:
        import heavyball
        import heavyball.utils
    except ImportError:
        return None
    if not compile:
        heavyball.utils.compile_mode = None
    elif heavyball.utils.compile_mode is not None:
        # inductor's default mode: heavyball's own ("max-autotune-no-cudagraphs") autotunes every kernel, minutes
        # of the ~6 the script has on a GPU
        heavyball.utils.compile_mode = "default"
    return heavyball


def _structured_model(name: str) -> nn.Module:
    return structured_cost.models()[name].float()


def timing_rows(device: str, compile: bool) -> list[Timed]:
    """The rows of the step-cost tables (module docstring), in timing order."""
    mlp_title = f"Diagonal step on {device}, MLP {'-'.join(map(str, step_cost.LAYERS))} (float32)"
    law = ThreeRegime(1e-8, 1.0)
    mlp = step_cost.make_mlp
    rows = [
        Timed(mlp_title, "Adam(foreach)", lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True), mlp),
        Timed(mlp_title, "Adam(fused)", lambda p: torch.optim.Adam(p, lr=1e-3, fused=True), mlp),
        Timed(mlp_title, "CGD ThreeRegime foreach", lambda p: CGD(p, lr=1e-3, metric=law, foreach=True), mlp),
    ]
    if compile:  # the default compiles this 1 M-parameter group after AUTO_COMPILE_AFTER steps: warm up past it
        after = step_cost.cgd_module.AUTO_COMPILE_AFTER + step_cost.WARMUP_STEPS
        rows.insert(2, Timed(mlp_title, "CGD ThreeRegime default", lambda p: CGD(p, lr=1e-3, metric=law), mlp, after))
        rows += [
            Timed(mlp_title, "CGD ThreeRegime compiled", lambda p: CGD(p, lr=1e-3, metric=law, compiled=True), mlp),
            Timed(
                mlp_title,
                "CGD ThreeRegime compiled, nonfinite='ignore'",
                lambda p: CGD(p, lr=1e-3, metric=law, compiled=True, nonfinite="ignore"),
                mlp,
            ),  # fmt: skip
        ]
    heavyball = _heavyball(compile)
    if heavyball is not None:
        label = "compiled" if compile else "eager"
        for name in ("AdamW", "SOAP", "PSGDKron"):
            if hasattr(heavyball, name):
                cls = getattr(heavyball, name)
                rows.append(Timed(mlp_title, f"heavyball {name} ({label})", lambda p, c=cls: c(p, lr=1e-3), mlp))
    for model_name in structured_cost.models():
        title = f"Kronecker step on {device}, {model_name}"
        model = functools.partial(_structured_model, model_name)
        rows.append(Timed(title, "Adam(foreach)", lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True), model))
        try:
            from pytorch_optimizer import SOAP

            rows.append(Timed(title, "SOAP (pytorch-optimizer, k=10)",
                              lambda p: SOAP(p, lr=1e-3, precondition_frequency=10), model))  # fmt: skip
        except ImportError:
            pass
        if heavyball is not None:
            soap = functools.partial(
                heavyball.SOAP, lr=1e-3, precondition_frequency=10, weight_decay=0.0, use_precond_schedule=False
            )
            rows.append(Timed(title, f"SOAP (heavyball, {'compiled' if compile else 'eager'}, k=10)", soap, model))
        for refresh in ("qr", "eigh"):
            rows.append(Timed(title, f"KronCGD three-regime adaptive, k=10, refresh={refresh}",
                              lambda p, r=refresh: presets.three_regime_kron(p, lr=1e-3, precondition_every=10,
                                                                             refresh=r), model))  # fmt: skip
    return rows


def timing(device: str, compile: bool, repeats: int, window: int, max_seconds: float) -> list[dict[str, Any]]:
    """Time the rows interleaved (synchronising the device around each window); the report's row layout."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    start = time.perf_counter()
    built: list[tuple[Timed, _Subject]] = []
    for row in timing_rows(device, compile):
        heavyball = _heavyball(compile) if "heavyball" in row.name else None
        if (
            heavyball is not None
            and heavyball.utils.compile_mode is not None
            and (time.perf_counter() - start > max_seconds / 2)
        ):
            heavyball.utils.compile_mode = None  # half the budget spent building: no more heavyball compiles
            print("  heavyball runs eagerly from here on (half of --max-seconds spent)", file=sys.stderr)
        if heavyball is not None and heavyball.utils.compile_mode is None and compile:
            row.note = "eager"
        try:
            subject = _Subject(row, device)
            subject.step(1 + row.warmup)  # state allocation, compilation, the first refreshes
        except Exception as exc:  # noqa: BLE001 - a peer that cannot compile here runs eagerly, or is reported
            if heavyball is None or heavyball.utils.compile_mode is None:
                print(f"  {row.table}: {row.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            heavyball.utils.compile_mode = None  # heavyball's compile failed: eager from here on
            row.note = f"eager (compile failed: {type(exc).__name__})"
            try:
                subject = _Subject(row, device)
                subject.step(1 + row.warmup)
            except Exception as again:  # noqa: BLE001
                print(f"  {row.table}: {row.name} failed: {type(again).__name__}: {again}", file=sys.stderr)
                continue
        sync()
        built.append((row, subject))
    compile_s = time.perf_counter() - start
    times: dict[int, list[float]] = {i: [] for i in range(len(built))}
    for r in range(repeats):
        if r and time.perf_counter() - start > max_seconds:
            break
        for i, (_, subject) in enumerate(built):
            steps = window
            sync()
            t0 = time.perf_counter()
            subject.step(steps)
            sync()
            times[i].append((time.perf_counter() - t0) / steps)
    out = []
    for table in dict.fromkeys(row.table for row, _ in built):
        members = [i for i, (row, _) in enumerate(built) if row.table == table]
        median = {built[i][0].name: statistics.median(times[i]) for i in members}
        peers = [name for name in ("Adam(foreach)", "Adam(fused)") if name in median]
        soaps = [name for name in median if name.startswith("SOAP")]
        if soaps:
            peers.append(min(soaps, key=median.__getitem__))
        for i in members:
            row, subject = built[i]
            ratios = {("fastest SOAP" if p.startswith("SOAP") else p): median[row.name] / median[p] for p in peers}
            note = f"min {min(times[i]) * 1e3:.3g} ms over {len(times[i])} repeats of {window} steps"
            memory = step_cost.state_bytes(subject.opt)
            note = "; ".join(filter(None, [row.note, note]))
            out.append(
                dict(table=table, name=row.name, seconds=median[row.name], ratios=ratios, memory=memory, note=note)
            )
    print(f"  timing: {compile_s:.1f} s to build and warm up (compiles included), "
          f"{time.perf_counter() - start - compile_s:.1f} s timed", file=sys.stderr)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda", help="torch device of the checks and timings (default: cuda)")
    parser.add_argument("--size", default="small", choices=sorted(SIZES), help="size of the correctness inputs")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile paths and peers")
    parser.add_argument("--correctness-only", action="store_true", help="skip the step-cost tables")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per row (median reported)")
    parser.add_argument("--window", type=int, default=10, help="steps per timed window (10: one refresh at k = 10)")
    parser.add_argument("--max-seconds", type=float, default=210.0, help="time budget of the step-cost part")
    parser.add_argument("--json", metavar="FILE", help="write the results in benchmarks/report.py's layout")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.window < 1 or not args.max_seconds > 0:
        parser.error("--repeats, --window and --max-seconds must be positive")
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        parser.error(f"--device {args.device!r} is not usable here: {exc}")
    compile = not args.no_compile
    started = time.perf_counter()
    checks = correctness(args.device, args.size, compile)
    title = f"Correctness on {args.device} against the CPU reference (float64, size {args.size})"
    rows = []
    for c in checks:
        verdict = "pass" if c.passed else "FAIL"
        print(f"{verdict}  {c.name}: max |Δ| {c.delta:.3g} (tol {c.tol:.3g}) {c.note}")
        note = "; ".join(filter(None, [f"max relative |Δ| {c.delta:.3g} ≤ {c.tol:.3g}? {verdict}", c.note]))
        rows.append(dict(table=title, name=c.name, seconds=None, ratios={}, note=note))
    print(f"correctness: {sum(c.passed for c in checks)}/{len(checks)} pass ({time.perf_counter() - started:.1f} s)")
    if not args.correctness_only:
        rows += timing(args.device, compile, args.repeats, args.window, args.max_seconds)
        for row in rows[len(checks) :]:
            ratios = ", ".join(f"× {k} {v:.2f}" for k, v in row["ratios"].items())
            print(f"{row['table'][:40]:40s} {row['name'][:50]:50s} {row['seconds'] * 1e3:9.3f} ms  {ratios}")
    if args.json:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        payload = dict(benchmark="gpu_check", title=f"GPU check on {name}", device=name, torch=torch.__version__,
                       repeats=args.repeats, steps=args.window, rows=rows)  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""A compiled CGD step: every parameter's whole update in one fused loop (torch.compile / inductor).

:func:`cgd_compiled` has the signature and in-place semantics of :func:`geodyn.optim.cgd.cgd_foreach` and the
same arithmetic (equal to it within float round-off; tests hold them to 1e-12 in float64). The multi-tensor
path runs ~10 passes over memory per step (one per ``_foreach_*`` kernel); here inductor fuses the EMA
updates, the metric law and the parameter update of every tensor into one C++ (or Triton) kernel that reads
p, G, m, K once and writes p, m, K once.

How recompilation is avoided:

- Step-dependent scalars (bias corrections, the step size; also lr, betas, weight decay, eps_inside, so that
  schedulers do not recompile) are computed on the host in double precision exactly as ``cgd_foreach`` does
  and passed in one small tensor per call (one row per parameter), never as Python floats. The step
  counters are incremented inside the kernel.
- A :class:`~geodyn.metric.PowerSum` law is written into the generated source as literal constants
  g = Σ c λ^a (terms in the order of :meth:`~geodyn.metric.PowerSum.apply_foreach`); any other law (e.g.
  :class:`~geodyn.metric.Custom`, or a PowerSum subclass that overrides its evaluation) is called as is and
  traced by dynamo.
- One function is generated (and compiled) per key: metric terms (or the law object), moment, maximize,
  weight-decay mode, bias correction, eps_inside on/off, which branch of torch.lerp's formula 1 − β₁ takes,
  flat. Each has its own code object, so dynamo's per-code-object recompile limit is not shared between keys.
- ``dynamic=False``: a kernel is specialised to the parameter shapes, dtype and device it sees (a model's
  shapes do not change). A new set of shapes for the same key (another model, or a step where some
  parameters have no gradient) compiles once more; past dynamo's recompile limit
  (``torch._dynamo.config.recompile_limit``, default 8 per key) those shape sets take the multi-tensor step
  :func:`~geodyn.optim.cgd.cgd_foreach` instead, with one warning per key; shape sets compiled before keep their
  kernels.
- Laws without a constant floor (g(0) = 0, e.g. Power(1)) give no step where g = 0, as the eager step does.
- ``check=True`` (the optimizer's ``nonfinite`` policies "raise" and "skip") adds the finiteness decision to the
  same program: "all gradients finite" is reduced on device (one read of G, vectorised) and every store is
  ``where(finite, new, old)``, so a refused step rewrites what it read. The step counters then advance on the host
  after it reads the flag (they are CPU tensors, as in torch's non-capturable optimizers).

The first call per key and shape set compiles (seconds to tens of seconds on 2 CPU cores); inductor's on-disk
cache makes later processes faster. float16/bfloat16 tensors are updated in float32 inside the kernel and
rounded once on store (``cgd_foreach`` rounds after every operation), so the two agree to bf16/fp16
round-off, not bit for bit.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw, PowerSum
from geodyn.noise import MOMENTS

__all__ = ["cgd_compiled", "compiled_step_cache_clear", "compiled_step_source"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# The sample d whose second moment estimates κ, per moment (geodyn.noise.noise_deviation; m1: the new m).
_DEVIATION = {"central": "g - m1", "raw": "g", "momentum": "m1"}


def _opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def _round_to_float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _at_least_1d(tensors: Sequence[Tensor]) -> list[Tensor]:
    """0-dim tensors as (1,)-views of the same storage.

    torch 2.13's dynamo treats a 0-dim float64 CPU input as a Python scalar and silently drops in-place
    writes to it; a 1-element view is an ordinary tensor input, and writes through it reach the original.
    """
    return [t.view(1) if t.dim() == 0 else t for t in tensors]


def _flat_value(metric: MetricLaw) -> float:
    if isinstance(metric, PowerSum):
        # A flat PowerSum has all exponents 0; its terms merge into one (the value metric(0) returns).
        return sum(c for c, _ in metric.terms)
    return float(metric(torch.zeros((), dtype=torch.float64)))


def _power_expr(var: str, a: float) -> str:
    if a == 0.5:
        return f"{var}.sqrt()"
    if a == 1.0:
        return var
    return f"{var}.pow({a!r})"


def _powersum_lines(terms: Sequence[tuple[float, float]], lam: str, out: str) -> list[str]:
    """Source lines computing ``out = Σ c λ^a`` in the operation order of ``PowerSum.apply_foreach``."""
    lines: list[str] = []
    have = False
    constant = 0.0
    for c, a in terms:
        if a == 0.0:
            constant += c
            continue
        if not have:
            expr = _power_expr(lam, a)
            lines.append(f"{out} = {expr}" if c == 1.0 else f"{out} = {expr} * {c!r}")
            have = True
        else:
            term = _power_expr(lam, a)
            lines.append(f"{out} = {out} + {term}" if c == 1.0 else f"{out} = {out} + {c!r} * {term}")
    if not have:  # only reached for flat laws, which take the flat path instead
        raise ValueError("a PowerSum with only constant terms is flat")
    if constant:
        lines.append(f"{out} = {out} + {constant!r}")
    return lines


class _Layout:
    """Which scalars a generated step reads, and their column in the per-parameter scalar row."""

    def __init__(self, *, flat: bool, weight_decay: bool, decoupled: bool, bias_correction: bool, eps: bool):
        names = ["lerp", "step"]
        if weight_decay:
            names.append("decay" if decoupled else "wd")
        if not flat:
            names += ["beta2", "one_minus_beta2"]
            if eps:
                names.append("eps_inside")
            if bias_correction:
                names.append("inv_bc2")
        self.names = tuple(names)
        self.index = {n: i for i, n in enumerate(names)}


def _generate(key: tuple[Any, ...], metric: MetricLaw) -> tuple[str, _Layout]:
    law, moment, maximize, wd_mode, bias_correction, eps, small_weight, flat, checked = key
    weight_decay = wd_mode is not None
    layout = _Layout(
        flat=flat,
        weight_decay=weight_decay,
        decoupled=wd_mode == "decoupled",
        bias_correction=bias_correction,
        eps=eps,
    )
    ix = layout.index
    body: list[str] = [
        "p = params[i]",
        "s = scalars[i]",
        "lowp = p.dtype in _LOW_PRECISION",
        "p0 = p.float() if lowp else p",
        "p_in = p0",
        "m0 = first_moments[i].float() if lowp else first_moments[i]",
        "g = grads[i].float() if lowp else grads[i]",
    ]
    if maximize:
        body.append("g = -g")
    if wd_mode == "decoupled":
        body.append(f"p0 = p0 * s[{ix['decay']}]")
    elif wd_mode == "coupled":
        body.append(f"g = g + s[{ix['wd']}] * p0")
    # torch.lerp's own formula, with its branch on the weight (1 - beta1) fixed by the key; inductor's lerp
    # decomposition selects per element, which costs ~20 % of the step.
    if small_weight:
        body.append(f"m1 = m0 + s[{ix['lerp']}] * (g - m0)")
    else:
        body.append(f"m1 = g - (g - m0) * s[{ix['lerp']}]")
    if flat:
        body.append(f"p1 = p0 + m1 * s[{ix['step']}]")
    else:
        body += [
            "k = noise_moments[i]",
            "k0 = k.float() if lowp else k",
            f"d = {_DEVIATION[moment]}",
            f"k1 = k0 * s[{ix['beta2']}] + s[{ix['one_minus_beta2']}] * d * d",
        ]
        if eps:
            body.append(f"k1 = k1 + s[{ix['eps_inside']}]")
        body.append(f"lam = k1 * s[{ix['inv_bc2']}]" if bias_correction else "lam = k1")
        if isinstance(law, tuple):
            body += _powersum_lines(law, "lam", "metric_value")
        else:
            body.append("metric_value = _metric(lam)")
        if not isinstance(law, tuple) or law[0][1] > 0.0:  # g may vanish: m/∞ = 0 there, never 0/0
            body.append("metric_value = torch.where(metric_value > 0, metric_value, torch.inf)")
        body.append(f"p1 = p0 + s[{ix['step']}] * m1 / metric_value")
        # A refused step stores the values it read: parameters and state unchanged, in the same pass.
        body.append("k.copy_(torch.where(finite, k1, k0))" if checked else "k.copy_(k1)")
    if checked:  # the step counters advance on the host, once the flag is read (they may live on another device)
        body += ["first_moments[i].copy_(torch.where(finite, m1, m0))", "p.copy_(torch.where(finite, p1, p_in))"]
    else:
        body += ["first_moments[i].copy_(m1)", "p.copy_(p1)", "steps[i].add_(1)"]
    args = "params, grads, first_moments, noise_moments, steps, scalars"
    head = [f"def _cgd_step({args}):"]
    if checked:
        # "All gradients finite" on device, in the program that applies the update (the found_inf pattern).
        head += [
            "    finite = grads[0].isfinite().all()",
            "    for i in range(1, len(grads)):",
            "        finite = finite & grads[i].isfinite().all()",
        ]
    tail = ["    return finite"] if checked else []
    source = "\n".join(head + ["    for i in range(len(params)):"] + [f"        {line}" for line in body] + tail)
    return source + "\n", layout


class _CompiledStep:
    def __init__(self, key: tuple[Any, ...], metric: MetricLaw):
        self.key = key
        self.source, self.layout = _generate(key, metric)
        namespace: dict[str, Any] = {"torch": torch, "_LOW_PRECISION": _LOW_PRECISION, "_metric": metric}
        # A fresh code object per key: dynamo keeps its compile cache (and recompile limit) per code object.
        code = compile(self.source, f"<geodyn.optim.compiled {key!r}>", "exec")
        exec(code, namespace)  # noqa: S102 - generated from the key above, no user strings
        self.eager: Callable[..., None] = namespace["_cgd_step"]
        self.compiled = torch.compile(
            self.eager, dynamic=False, fullgraph=isinstance(key[0], tuple), options={"size_asserts": False}
        )
        self.warned = False


_CACHE: dict[tuple[Any, ...], _CompiledStep] = {}


def _key(
    metric: MetricLaw,
    moment: str,
    weight_decay: float,
    decoupled_weight_decay: bool,
    bias_correction: bool,
    eps_inside: float,
    maximize: bool,
    beta1: float,
    checked: bool = False,
) -> tuple[Any, ...]:
    if moment not in MOMENTS:
        raise ValueError(f"unknown moment={moment!r}: expected one of {', '.join(MOMENTS)}")
    if moment not in _DEVIATION:  # a moment geodyn.noise knows but this module was not taught
        raise NotImplementedError(f"cgd_compiled does not implement moment={moment!r}; use cgd_foreach")
    flat = bool(metric.is_flat)
    law: Any = metric.terms if _inlinable(metric) else metric
    if flat:
        law = None  # the flat value travels as a runtime scalar
    wd_mode = None if not weight_decay else ("decoupled" if decoupled_weight_decay else "coupled")
    return (
        law,
        None if flat else moment,
        bool(maximize),
        wd_mode,
        bool(bias_correction),
        bool(eps_inside) and not flat,
        abs(1.0 - beta1) < 0.5,  # which of torch.lerp's two formulas the first-moment EMA uses
        flat,
        bool(checked),
    )


def _inlinable(metric: MetricLaw) -> bool:
    """A PowerSum whose evaluation is PowerSum's own, so its terms say everything about it."""
    kind = type(metric)
    return (
        isinstance(metric, PowerSum)
        and kind.__call__ is PowerSum.__call__
        and kind.apply_foreach is PowerSum.apply_foreach
    )


def _step_for(key: tuple[Any, ...], metric: MetricLaw) -> _CompiledStep:
    step = _CACHE.get(key)
    if step is None:
        step = _CACHE[key] = _CompiledStep(key, metric)
    return step


def compiled_step_source(
    metric: MetricLaw,
    *,
    moment: str = "central",
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = True,
    bias_correction: bool = True,
    eps_inside: float = 0.0,
    maximize: bool = False,
    beta1: float = 0.9,
    check: bool = False,
) -> str:
    """The Python source that is compiled for these settings (for inspection and debugging)."""
    key = _key(
        metric, moment, weight_decay, decoupled_weight_decay, bias_correction, eps_inside, maximize, beta1, check
    )
    return _generate(key, metric)[0]


def compiled_step_cache_clear() -> None:
    """Forget the generated steps (their compiled kernels go with them)."""
    _CACHE.clear()


def cgd_compiled(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    first_moments: Sequence[Tensor],
    noise_moments: Sequence[Tensor | None],
    steps: Sequence[Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    metric: MetricLaw,
    moment: str,
    weight_decay: float,
    decoupled_weight_decay: bool,
    bias_correction: bool,
    eps_inside: float,
    maximize: bool,
    check: bool = False,
) -> bool:
    """One CGD step, each parameter's update fused into one compiled loop; same arithmetic and in-place
    effects as :func:`geodyn.optim.cgd.cgd_foreach` (params, first_moments, noise_moments and steps are
    updated in place). All tensors must share one device and dtype (the optimizer groups them).

    With ``check`` the same program first reduces "every gradient is finite" to a 0-dim flag on the tensors'
    device and stores either the new or the old values of p, m and K (a refused step writes back what it read:
    no second pass, nothing changed); the host then reads that one flag (no device round trip on the CPU) and
    advances the step counters only for an applied step. Returns whether the step was applied.
    """
    params = list(params)
    if not params:
        return True
    arguments = (list(params), list(grads), list(first_moments), list(noise_moments), list(steps))
    options = dict(
        lr=lr, beta1=beta1, beta2=beta2, metric=metric, moment=moment, weight_decay=weight_decay,
        decoupled_weight_decay=decoupled_weight_decay, bias_correction=bias_correction, eps_inside=eps_inside,
        maximize=maximize,
    )  # fmt: skip
    steps = list(steps)
    key = _key(
        metric, moment, weight_decay, decoupled_weight_decay, bias_correction, eps_inside, maximize, beta1, check
    )
    step = _step_for(key, metric)
    flat = key[7]

    # The step counters are incremented inside the compiled kernel (or, with check, after an applied step); t is
    # their value after it.
    if steps[0].dtype == torch.float32:
        ts = [_round_to_float32(s.item() + 1.0) for s in steps]
    else:
        ts = [s.item() + 1 for s in steps]
    # Scalars in double precision, computed as cgd_foreach computes them; one row per parameter.
    if bias_correction:
        step_sizes = [-lr / (1.0 - beta1**t) for t in ts]
    else:
        step_sizes = [-lr] * len(params)
    if flat:
        value = _flat_value(metric)
        step_sizes = [s / value for s in step_sizes]
    ref = params[0]
    dtype = _opmath_dtype(ref.dtype)
    # torch.lerp rounds the weight to the compute precision first; 1 - w is then exact (Sterbenz).
    weight = _round_to_float32(1.0 - beta1) if dtype == torch.float32 else 1.0 - beta1
    constants = {
        "lerp": weight if key[6] else 1.0 - weight,
        "decay": 1.0 - lr * weight_decay,
        "wd": weight_decay,
        "beta2": beta2,
        "one_minus_beta2": 1.0 - beta2,
        "eps_inside": eps_inside,
    }
    layout = step.layout
    template = [constants.get(name, 0.0) for name in layout.names]
    step_col = layout.index["step"]
    bc2_col = layout.index.get("inv_bc2")
    rows = []
    for i, t in enumerate(ts):
        row = template.copy()
        row[step_col] = step_sizes[i]
        if bc2_col is not None:
            row[bc2_col] = 1.0 / (1.0 - beta2**t)
        rows.append(row)
    scalars = torch.tensor(rows, dtype=dtype, device=ref.device)

    grads, first_moments = list(grads), list(first_moments)
    noise = [] if flat else list(noise_moments)
    if any(p.dim() == 0 for p in params):
        params, grads, first_moments, noise = (_at_least_1d(x) for x in (params, grads, first_moments, noise))
    try:
        with torch.no_grad():
            # The checked program does not touch the counters: not passing them saves their guards and views.
            counters = [] if check else _at_least_1d(steps)
            finite = step.compiled(params, grads, first_moments, noise, counters, scalars)
    except torch._dynamo.exc.FailOnRecompileLimitHit:
        # Dynamo refuses before running anything, so nothing was updated: the eager multi-tensor step takes over.
        if not step.warned:
            step.warned = True
            warnings.warn(
                "geodyn CGD(compiled=True): torch._dynamo's recompile limit was reached for this step (too many "
                "sets of parameter shapes); new shape sets use the eager multi-tensor step "
                "(raise torch._dynamo.config.recompile_limit to compile them)",
                RuntimeWarning,
                stacklevel=2,
            )
        from geodyn.optim.base import all_finite
        from geodyn.optim.cgd import cgd_foreach

        if check and not all_finite(arguments[1]):
            return False
        cgd_foreach(*arguments, **options)
        return True
    if not check:
        return True
    if not bool(finite):  # the one host read of the step; its update was masked in the program
        return False
    torch._foreach_add_(steps, 1)
    return True

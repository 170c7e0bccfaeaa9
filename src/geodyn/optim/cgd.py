"""Covariant gradient descent (CGD) with a diagonal noise covariance.

One step (EQUATIONS.md §6, the discrete form of (2.2) q ← q − γ g⁻¹ ∇H with g = f(κ), (2.9)):

    t += 1;  G = ∇H (minibatch)
    m = β₁ m + (1−β₁) G                                  force
    d = G − m (central) | G (raw)
    K = β₂ K + (1−β₂) d∘d  [+ eps_inside]                noise moment, κ ≈ K̂ (2.8)
    m̂ = m/(1−β₁ᵗ),  K̂ = K/(1−β₂ᵗ)                        bias correction (optional)
    q ← q − γ m̂ / f(K̂)                                    f: the metric law, elementwise

The step is composed of three pieces that live elsewhere: the EMA estimators of :mod:`geodyn.noise`, the
metric law of :mod:`geodyn.metric`, and the update below. :func:`cgd_reference` is the plain per-tensor loop;
:func:`cgd_foreach` the multi-tensor fast path that tests hold equal to it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw, PowerSum
from geodyn.noise import (
    diagonal_moment_update,
    diagonal_moment_update_foreach,
    ema_update,
    ema_update_foreach,
    noise_deviation,
    noise_deviation_foreach,
)
from geodyn.optim.base import (
    CovariantOptimizer,
    NonFiniteGradientError,
    _as_float,
    all_finite,
    effective_gradient,
    group_options,
)
from geodyn.optim.distributed import has_dtensor, local_views

__all__ = ["CGD", "NonFiniteGradientError", "cgd_reference", "cgd_foreach"]


#: The default step (``compiled=None`` with ``foreach=None``) runs the compiled program for a group of at least
#: this many elements, of one dtype and device, once its parameters have taken ``AUTO_COMPILE_AFTER`` steps: short
#: runs and small models never pay the compile (seconds per set of shapes), large ones stop paying ~10 passes a step.
AUTO_COMPILE_NUMEL = 2**20
AUTO_COMPILE_AFTER = 50
# Set when compiling failed once (e.g. no C++ compiler for inductor): default steps then stay eager.
_auto_compile_failure: list[str] = []


def _flat_value(metric: MetricLaw) -> float:
    return float(metric(torch.zeros((), dtype=torch.float64)))


def may_vanish(metric: MetricLaw) -> bool:
    """Whether g(λ) can be 0 (no constant floor, e.g. Power(1)); a law that exposes no terms might."""
    terms = getattr(metric, "terms", None)
    return terms is None or terms[0][1] > 0.0


def _no_step_where_flat_zero(values: Tensor) -> Tensor:
    """g = 0 where neither noise nor a floor was seen: such a coordinate takes no step (m/∞ = 0), never 0/0.

    The pseudo-inverse convention of :func:`geodyn.optim.spectral.inverse_metric`, elementwise.
    """
    return torch.where(values > 0, values, torch.full_like(values, torch.inf))


def cgd_reference(
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
) -> None:
    """One CGD step, tensor by tensor (EQUATIONS.md §6 and (2.2)): the reference the fast path must equal."""
    flat = _flat_value(metric) if metric.is_flat else None
    for i, param in enumerate(params):
        steps[i].add_(1)
        t = steps[i].item()
        grad = effective_gradient(
            param,
            grads[i],
            lr=lr,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        m = first_moments[i]
        ema_update(m, grad, beta1)
        step_size = lr / (1.0 - beta1**t) if bias_correction else lr
        if flat is not None:
            param.add_(m, alpha=-step_size / flat)
            continue
        noise = noise_moments[i]
        diagonal_moment_update(noise, noise_deviation(grad, m, moment), beta2, eps_inside)
        noise_hat = noise / (1.0 - beta2**t) if bias_correction else noise
        g = metric(noise_hat)
        param.addcdiv_(m, _no_step_where_flat_zero(g) if may_vanish(metric) else g, value=-step_size)


def cgd_foreach(
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
) -> None:
    """One CGD step on multi-tensor kernels; same arithmetic as :func:`cgd_reference`.

    All tensors must share one device and dtype (the optimizer groups them). While dynamo traces the step
    (``torch.compile(opt.step)``) the same update runs on tensor scalars (:func:`_cgd_foreach_traced`).
    """
    if torch.compiler.is_compiling():
        _cgd_foreach_traced(
            params, grads, first_moments, noise_moments, steps, lr=lr, beta1=beta1, beta2=beta2, metric=metric,
            moment=moment, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
            bias_correction=bias_correction, eps_inside=eps_inside, maximize=maximize,
        )  # fmt: skip
        return
    params, first_moments, steps = list(params), list(first_moments), list(steps)
    grads = torch._foreach_neg(list(grads)) if maximize else list(grads)
    torch._foreach_add_(steps, 1)
    ts = [s.item() for s in steps]
    if weight_decay:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    ema_update_foreach(first_moments, grads, beta1)
    if bias_correction:
        step_sizes = [-lr / (1.0 - beta1**t) for t in ts]
    else:
        step_sizes = [-lr] * len(params)
    if metric.is_flat:
        flat = _flat_value(metric)
        torch._foreach_add_(params, torch._foreach_mul(first_moments, [s / flat for s in step_sizes]))
        return
    noise = list(noise_moments)
    diagonal_moment_update_foreach(noise, noise_deviation_foreach(grads, first_moments, moment), beta2, eps_inside)
    if not bias_correction or all(t == ts[0] for t in ts):
        # The usual case: 1/(1−β₂ᵗ) and the leading coefficient go into the law's constants and the step size,
        # so neither a scaled copy of K nor a pass scaling g is made.
        law, scale, factor = _normalised_law(metric, 1.0 / (1.0 - beta2 ** ts[0]) if bias_correction else 1.0)
        metric_values = law.apply_foreach(noise, scale=scale)
        if factor != 1.0:
            step_sizes = [s / factor for s in step_sizes]
    else:
        metric_values = metric.apply_foreach(torch._foreach_mul(noise, [1.0 / (1.0 - beta2**t) for t in ts]))
    if may_vanish(metric):
        metric_values = [_no_step_where_flat_zero(v) for v in metric_values]
    torch._foreach_addcdiv_(params, first_moments, metric_values, step_sizes)


def _normalised_law(metric: MetricLaw, scale: float) -> tuple[MetricLaw, float, float]:
    """(h, s', c) with g(scale·λ) = c·h(s'·λ), where for a plain PowerSum (6.8) s' = 1 and h's leading
    non-constant coefficient is 1.

    g(sλ) = Σ cᵢ s^{aᵢ} λ^{aᵢ}; dividing by c = c₀ s^{a₀} (the first term with a₀ > 0) leaves h = λ^{a₀} + …, so
    the multi-tensor step evaluates h without a pass for the leading factor and divides the step size by c.
    Any other law is returned as ``(metric, scale, 1)``.
    """
    if not _plain_power_sum(metric):
        return metric, scale, 1.0
    scaled = [(c * scale**a if scale != 1.0 else c, a) for c, a in metric.terms]
    factor = next(c for c, a in scaled if a > 0.0)
    if factor == 1.0 and scale == 1.0:
        return metric, 1.0, 1.0
    return PowerSum([(c / factor, a) for c, a in scaled]), 1.0, factor


def _plain_power_sum(metric: MetricLaw) -> bool:
    """A PowerSum evaluated by PowerSum's own code, so that its terms say everything about it."""
    kind = type(metric)
    return (
        isinstance(metric, PowerSum)
        and not metric.is_flat
        and kind.__call__ is PowerSum.__call__
        and kind.apply_foreach is PowerSum.apply_foreach
    )


def _cgd_foreach_traced(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    first_moments: Sequence[Tensor],
    noise_moments: Sequence[Tensor | None],
    steps: Sequence[Tensor],
    *,
    lr: float | Tensor,
    beta1: float,
    beta2: float,
    metric: MetricLaw,
    moment: str,
    weight_decay: float,
    decoupled_weight_decay: bool,
    bias_correction: bool,
    eps_inside: float,
    maximize: bool,
) -> None:
    """:func:`cgd_foreach` for dynamo: step counts, bias corrections and lr stay tensors (no ``.item()``), so
    one graph serves every step and every learning rate; equal to the eager step within round-off.

    Bias corrections are computed in float64 from the float32 step counters, as the eager step computes them
    on the host in double precision.
    """
    params, first_moments, steps = list(params), list(first_moments), list(steps)
    grads = torch._foreach_neg(list(grads)) if maximize else list(grads)
    torch._foreach_add_(steps, 1)
    if weight_decay:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1.0 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    ema_update_foreach(first_moments, grads, beta1)
    ts = [s.to(torch.float64) for s in steps]
    step_sizes = [-lr / (1.0 - beta1**t) for t in ts] if bias_correction else [-lr] * len(params)
    if metric.is_flat:
        flat = _flat_value(metric)
        torch._foreach_add_(params, torch._foreach_mul(first_moments, [s / flat for s in step_sizes]))
        return
    noise = list(noise_moments)
    diagonal_moment_update_foreach(noise, noise_deviation_foreach(grads, first_moments, moment), beta2, eps_inside)
    if bias_correction:
        noise = torch._foreach_mul(noise, [1.0 / (1.0 - beta2**t) for t in ts])
    metric_values = metric.apply_foreach(noise)
    if may_vanish(metric):
        metric_values = [_no_step_where_flat_zero(v) for v in metric_values]
    updates = torch._foreach_div(first_moments, metric_values)
    torch._foreach_mul_(updates, step_sizes)
    torch._foreach_add_(params, updates)


def _auto_compiled(
    params: list[Tensor],
    grads: list[Tensor],
    first_moments: list[Tensor],
    noise_moments: list[Tensor | None],
    steps: list[Tensor],
    options: dict[str, Any],
) -> bool:
    """The default step's compiled program; if compiling fails, a warning and the multi-tensor step from then on.

    Dynamo and inductor fail while tracing or compiling, before the program runs, so nothing was updated yet.
    """
    from geodyn.optim.compiled import cgd_compiled

    try:
        return cgd_compiled(params, grads, first_moments, noise_moments, steps, **options)
    except Exception as error:  # noqa: BLE001 - any compile failure: the eager step is always available
        _auto_compile_failure.append(f"{type(error).__name__}: {error}".split("\n", 1)[0])
        warnings.warn(
            f"geodyn CGD: compiling the default step failed ({_auto_compile_failure[0]}); the multi-tensor step "
            "is used from now on (pass compiled=False to never try)",
            RuntimeWarning,
            stacklevel=4,
        )
    check = options.pop("check", False)
    if check and not all_finite(grads):
        return False
    cgd_foreach(params, grads, first_moments, noise_moments, steps, **options)
    return True


def _real_view(t: Tensor | None) -> Tensor | None:
    return torch.view_as_real(t) if t is not None and t.is_complex() else t


class CGD(CovariantOptimizer):
    """Covariant gradient descent, diagonal structure: q ← q − γ f(K̂)⁻¹ m̂ (EQUATIONS.md (2.2), (2.9), §6).

    Args:
        params: parameters or parameter groups; any setting below may be given per group (a group may have
            its own metric law).
        lr: learning rate γ (a float or a 0-dim tensor, for schedulers).
        metric: the metric law f mapping noise eigenvalues to metric eigenvalues; default ``Interpolating(1e-8)``
            (the α = ½ law of (6.4), as in Adam/AdaBelief).
        moment: "central" (default; κ from G − m, AdaBelief-style), "raw" (κ from G, Adam-style) or "momentum"
            (κ from m itself; with β₂ = 0 the sign-descent limit) (2.8).
        betas: (β₁, β₂) of the force and noise EMAs; τ = β/(1−β) steps of memory.
        weight_decay: L2 strength; ``decoupled_weight_decay`` applies it as q ← (1 − γλ) q (AdamW) instead of
            adding λq to the gradient (Adam).
        bias_correction: divide the EMAs by 1 − βᵗ (default on).
        eps_inside: constant added to the stored noise moment each step; only to reproduce AdaBelief exactly.
        maximize: ascend instead of descend.
        foreach: ``True`` forces the eager multi-tensor step, ``False`` the per-tensor reference loop; ``None``
            (default) lets ``compiled`` decide.
        compiled: ``True`` fuses each parameter's whole update into one loop with torch.compile
            (:func:`geodyn.optim.compiled.cgd_compiled`); the first step compiles (seconds: 14 s for the
            1 M-parameter MLP of benchmarks/step_cost.py on 2 shared CPU cores), later steps cost about as much as
            one pass over p, G, m and K. With a non-finite check, the check is part of that program (an on-device
            flag and a masked update) when a single group with one dtype and device is stepped. ``False``: never.
            ``None`` (default, with ``foreach=None``): the multi-tensor step, switching to the compiled program for
            a group of at least ``AUTO_COMPILE_NUMEL`` (2²⁰) real elements of one dtype and device once its state
            has taken ``AUTO_COMPILE_AFTER`` (50) steps; if compiling fails, one warning and the multi-tensor step
            from then on. Small models and short runs (tests, experiments) never compile.
        nonfinite: what a NaN/inf gradient does: "raise" (default, :class:`NonFiniteGradientError`, from the same
            ``step()`` call), "skip" the group's step (counted in ``skipped_steps``), or "ignore" (no check).
            Parameters, moments and step counters are never touched by a refused step.
        nonfinite_group: a process group over which to agree on the non-finite check for plain-tensor parameters
            whose gradients differ between ranks (e.g. pipeline stages). Not needed under DistributedDataParallel
            (gradients are already all-reduced) nor for DTensor parameters (always agreed over their mesh).

    Under torch.distributed: with DistributedDataParallel nothing changes. With FSDP2 (``fully_shard``) or other
    DTensor parameters the state is created like the parameter (DTensors with its mesh and placements) and each
    rank steps its local shards, as the update is elementwise; every path (foreach, ``foreach=False``,
    ``compiled``) works, and state_dicts save and load with torch.distributed.checkpoint
    (:mod:`geodyn.optim.distributed`).

    Complex parameters are stepped as their ``torch.view_as_real`` (real and imaginary parts as separate
    coordinates, each with its own noise moment), as torch's built-in optimizers do. ``torch.compile(opt.step)``
    traces the multi-tensor step on tensor scalars: with a tensor ``lr`` it compiles once for every step count and
    learning rate.
    """

    supports_complex = True
    traceable_step = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        metric: MetricLaw | None = None,
        moment: str = "central",
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = True,
        bias_correction: bool = True,
        eps_inside: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        compiled: bool | None = None,
        nonfinite: str = "raise",
        nonfinite_group: Any = None,
    ):
        defaults = dict(
            lr=lr,
            metric=metric,
            moment=moment,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            bias_correction=bias_correction,
            eps_inside=eps_inside,
            maximize=maximize,
            foreach=foreach,
            compiled=compiled,
            nonfinite=nonfinite,
            nonfinite_group=nonfinite_group,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if group.get("compiled") and group.get("foreach") is False:
            raise ValueError("compiled=True and foreach=False exclude each other: pick one step implementation")

    def _init_state(self, param: Tensor, metric: MetricLaw) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["first_moment"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if not metric.is_flat and "noise_moment" not in state:
            state["noise_moment"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    def _init_group_state(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for p in params:
            self._init_state(p, group["metric"])

    def _checks_in_step(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> bool:
        # The compiled program reduces the flag and masks the update in one pass over the data.
        return self._compiles(group, params)

    def _compiles(self, group: dict[str, Any], params: list[Tensor]) -> bool:
        """Whether this eager step runs the compiled program: ``compiled=True``, or the default (``compiled=None``,
        ``foreach=None``) for a large single-dtype group past its first ``AUTO_COMPILE_AFTER`` steps."""
        compiled = group.get("compiled")
        if torch.compiler.is_compiling():
            return False  # traced by dynamo already: the multi-tensor step on tensor scalars
        if compiled is not None:
            return bool(compiled)
        if group["foreach"] is not None or _auto_compile_failure:
            return False
        first = params[0]
        state = self.state.get(first)
        # The step count of the state, not of this object: a resumed run switches where the original did.
        if not state or state["step"].item() < AUTO_COMPILE_AFTER:
            return False
        if sum(p.numel() for p in params) < AUTO_COMPILE_NUMEL:
            return False
        if any(p.dtype != first.dtype or p.device != first.device or p.is_complex() for p in params):
            return False
        return not has_dtensor(params)  # sharded runs choose compiled=True explicitly (one compile per rank)

    def _step_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], check: bool = False
    ) -> bool:
        metric = group["metric"]
        compiles = self._compiles(group, params)  # on the parameters themselves, before any view is taken
        states = [self._init_state(p, metric) for p in params]
        first_moments = [s["first_moment"] for s in states]
        noise_moments = [s.get("noise_moment") for s in states]
        steps = [s["step"] for s in states]
        if any(p.is_complex() for p in params):
            params, grads, first_moments, noise_moments = (
                [_real_view(t) for t in ts] for ts in (params, grads, first_moments, noise_moments)
            )
        if has_dtensor(params):
            if not metric.elementwise:  # a per-shard statistic would differ from the whole tensor's
                raise TypeError(f"{metric!r} is not elementwise: sharded (DTensor/FSDP2) parameters are not supported")
            # Elementwise update: stepping each rank's shards is stepping the global tensors.
            params, grads, (first_moments, noise_moments) = local_views(params, grads, first_moments, noise_moments)
        options = group_options(group) | {"eps_inside": _as_float(group["eps_inside"])}
        if check and not compiles and not all_finite(grads):
            return False
        if group["foreach"] is False and not torch.compiler.is_compiling():  # traced: one path, on tensor scalars
            cgd_reference(params, grads, first_moments, noise_moments, steps, **options)
            return True
        buckets: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, p in enumerate(params):
            buckets.setdefault((p.device, p.dtype), []).append(i)
        step = cgd_foreach
        if compiles:
            from geodyn.optim.compiled import cgd_compiled

            step = cgd_compiled
            if check and len(buckets) > 1:  # a refused step must leave every bucket unchanged: decide first
                if not all_finite(grads):
                    return False
                check = False
            if check:
                options["check"] = True
            if group.get("compiled") is None:  # the default switched to the compiled program: one bucket
                return _auto_compiled(params, grads, first_moments, noise_moments, steps, options)
        for indices in buckets.values():
            applied = step(
                [params[i] for i in indices],
                [grads[i] for i in indices],
                [first_moments[i] for i in indices],
                [noise_moments[i] for i in indices],
                [steps[i] for i in indices],
                **options,
            )
            if check and not applied:
                return False
        return True

"""Covariant gradient descent with Kronecker-factored noise covariance (EQUATIONS.md §6, "Structures").

For a weight matrix W (m×n; a convolution kernel is read as out × in·kh·kw) the noise covariance of vec(W) is
approximated from two EMA factors of the deviation d (G − m, G, or m by ``moment``)::

    L = E[d dᵀ] (m×m),   R = E[dᵀ d] (n×n),   κ ≈ c · L^{1/2} ⊗ R^{1/2},   c = tr L / (tr L^{1/2} · tr R^{1/2})

The trace normalisation c makes tr κ = E‖d‖² (set ``trace_normalize=False`` for the bare product, which gives
Shampoo exactly). κ's eigenbasis is Q_L ⊗ Q_R, refreshed every ``precondition_every`` steps (by ``eigh``, or by
one power-iteration step with QR from the previous basis: ``refresh``), and the metric law acts on its
eigenvalues in one of two ways:

- ``spectrum="kron"``: on the Kronecker eigenvalues c·√(λ_L,i λ_R,j). With Power(α) this is the update
  L^{−α/2} M R^{−α/2} (α = ½: Shampoo's L^{−1/4} M R^{−1/4}).
- ``spectrum="adaptive"``: on an EMA of the squared deviation rotated into the eigenbasis (as SOAP does), which
  corrects the Kronecker eigenvalues between refreshes.

``sides="left"``/``"right"`` keep one factor only (κ ≈ L/n ⊗ I); ``sides="smaller"`` picks the smaller one. With
``moment="momentum"``, β₂ = 0 and Power(½) the one-sided κ = M Mᵀ gives the polar factor U Vᵀ of M: Muon's update.

Rank-deficient factors (every factor in its first steps) follow the conventions of
:mod:`geodyn.optim.spectral`: a relative cut-off, no step along directions without gradient history, and a
damping relative to each factor's largest eigenvalue; ``grafting="adam"`` optionally gives each matrix the norm
of Adam's step (docs/structured-numerics.md).

The same step serves :class:`~geodyn.optim.FullCGD`, whose "matrix" is the whole parameter vector as N×1 with a
left factor only — the full N×N κ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from geodyn.metric import MetricLaw
from geodyn.noise import ema_update, noise_deviation
from geodyn.optim.base import CovariantOptimizer, effective_gradient, group_options, validate_hyperparameters
from geodyn.optim.cgd import cgd_foreach, cgd_reference
from geodyn.optim.distributed import refuse_dtensors
from geodyn.optim.kron_foreach import kron_foreach
from geodyn.optim.spectral import PseudoInverseLaw, clipped_eigh, damp, default_rcond, inverse_metric, power_qr

__all__ = ["KronCGD", "matrix_step", "SPECTRA", "SIDES", "GRAFTINGS"]


#: Groups saved before these settings existed step as they did: no damping, no grafting.
LEGACY_STRUCTURE_SETTINGS: dict[str, Any] = {
    "rcond": None,
    "damping": 0.0,
    "relative_damping": True,
    "grafting": None,
    "grafting_eps": 1e-8,
    "refresh": "eigh",
}


SPECTRA = ("kron", "adaptive")
SIDES = ("both", "left", "right", "smaller")
GRAFTINGS = (None, "adam")
REFRESHES = (None, "eigh", "qr")
#: Default relative damping δ of the factors (see :class:`KronCGD`).
DEFAULT_DAMPING = 1e-6


def _resolve_sides(sides: str, shape: tuple[int, int]) -> tuple[bool, bool]:
    if sides == "smaller":
        return (True, False) if shape[0] <= shape[1] else (False, True)
    return sides in ("both", "left"), sides in ("both", "right")


def matrix_step(
    grad: Tensor,
    first_moment: Tensor,
    state: dict[str, Any],
    *,
    beta1: float,
    beta2: float,
    metric: MetricLaw,
    moment: str,
    bias_correction: bool,
    spectrum: str,
    sides: str,
    trace_normalize: bool,
    precondition_every: int,
    rcond: float | None,
    damping: float = 0.0,
    relative_damping: bool = True,
    grafting: str | None = None,
    grafting_eps: float = 1e-8,
    refresh: str = "eigh",
) -> Tensor:
    """Update the state of one matrix from its gradient (m×n) and return the direction f(κ̂)⁻¹ m̂ (m×n).

    ``first_moment`` is the m×n force EMA (updated in place). State keys: step, left/right (factors),
    left_basis/right_basis and left_eigenvalues/right_eigenvalues (cached eigendecompositions, cut and damped
    as in :mod:`geodyn.optim.spectral`), rotated_moment (adaptive spectrum), graft_moment (Adam grafting).

    Eigen-directions whose factor eigenvalue was cut (no gradient history) take no step. With
    ``grafting="adam"`` the direction is rescaled to the norm of Adam's step m̂/(√v̂ + ε) on the same matrix
    (v̂ the bias-corrected EMA of G∘G with β₂), as Distributed Shampoo grafts: ‖adam‖·D/‖D‖, 0 when D = 0.
    ``refresh="qr"`` refreshes a cached basis by :func:`~geodyn.optim.spectral.power_qr` (the first refresh
    is always an ``eigh``).
    """
    use_left, use_right = _resolve_sides(sides, tuple(grad.shape))
    state["step"].add_(1)
    t = state["step"].item()
    m = first_moment
    ema_update(m, grad, beta1)
    d = noise_deviation(grad, m, moment)
    if use_left:
        state["left"].mul_(beta2).addmm_(d, d.mT, alpha=1.0 - beta2)
    if use_right:
        state["right"].mul_(beta2).addmm_(d.mT, d, alpha=1.0 - beta2)
    bc1 = 1.0 - beta1**t if bias_correction else 1.0
    bc2 = 1.0 - beta2**t if bias_correction else 1.0

    if (t - 1) % precondition_every == 0 or "left_basis" not in state and "right_basis" not in state:
        for side, used in (("left", use_left), ("right", use_right)):
            if used:
                lam, basis = refresh_factor(state, side, bc2, rcond, refresh)
                state[f"{side}_eigenvalues"] = damp(lam, damping, relative_damping).to(grad.dtype)
                state[f"{side}_basis"] = basis.to(grad.dtype)

    def rotate(x: Tensor) -> Tensor:
        if use_left:
            x = state["left_basis"].mT @ x
        if use_right:
            x = x @ state["right_basis"]
        return x

    force = rotate(m / bc1)
    # A factor's null space has an arbitrary basis (float32 and float64 pick different ones), so only the
    # directions it kept may step: then the step does not depend on that choice. Between refreshes this also
    # holds back new gradient directions in a stale null space until the next refresh.
    kept = _kept(state, grad.shape, use_left, use_right)
    if spectrum == "kron":
        lam = _kron_eigenvalues(state, grad.shape, use_left, use_right, trace_normalize)
    else:
        rotated = rotate(d)
        state["rotated_moment"].mul_(beta2).addcmul_(rotated, rotated, value=1.0 - beta2)
        lam = state["rotated_moment"] / bc2
        # Round-off puts ~((m+n)·ε)² of the largest variance into a rotated entry without noise (the first
        # steps' off-diagonal entries: the rotated d is then diagonal); the cut-off (m+n)·ε·max lies far above
        # that, so such an entry takes no step instead of a unit Adam step. ε is float32's for float64 too: an
        # entry between the two precisions' cut-offs would otherwise step in one and not in the other.
        cut = default_rcond(sum(grad.shape), _coarser(grad.dtype, torch.float32)) if rcond is None else rcond
        kept = kept & (lam > cut * lam.amax())
    direction = force * inverse_metric(metric, lam, kept)
    if use_left:
        direction = state["left_basis"] @ direction
    if use_right:
        direction = direction @ state["right_basis"].mT
    if grafting == "adam":
        if "graft_moment" not in state:  # also when grafting is switched on in a running group
            state["graft_moment"] = torch.zeros_like(grad, memory_format=torch.contiguous_format)
        direction = _graft_adam(direction, grad, m / bc1, state["graft_moment"], beta2, bc2, grafting_eps)
    return direction


def refresh_factor(
    state: dict[str, Any], side: str, bc2: float, rcond: float | None, refresh: str
) -> tuple[Tensor, Tensor]:
    """(λ, Q) of one bias-corrected factor: ``eigh`` (float64), or one power-QR step from the cached basis."""
    if refresh == "qr" and f"{side}_basis" in state:
        return power_qr(state[side] / bc2, state[f"{side}_basis"], rcond)
    return clipped_eigh(state[side] / bc2, rcond)


def _coarser(a: torch.dtype, b: torch.dtype) -> torch.dtype:
    return a if torch.finfo(a).eps >= torch.finfo(b).eps else b


def _kept(state: dict[str, Any], shape: torch.Size, use_left: bool, use_right: bool) -> Tensor:
    """True where both factor eigenvalues of an entry of the rotated matrix were kept (it has a history)."""
    if use_left and use_right:
        return (state["left_eigenvalues"] > 0)[:, None] & (state["right_eigenvalues"] > 0)[None, :]
    if use_left:
        return (state["left_eigenvalues"] > 0)[:, None].expand(shape)
    return (state["right_eigenvalues"] > 0)[None, :].expand(shape)


def _graft_adam(
    direction: Tensor, grad: Tensor, force: Tensor, moment: Tensor, beta2: float, bc2: float, eps: float
) -> Tensor:
    """‖Adam's step‖ · D/‖D‖ (Distributed Shampoo's per-tensor grafting); ``moment`` is Adam's v, updated here."""
    moment.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    adam_norm = torch.linalg.vector_norm(force / ((moment / bc2).sqrt() + eps))
    norm = torch.linalg.vector_norm(direction)
    scale = torch.where(norm > 0, adam_norm / torch.where(norm > 0, norm, torch.ones_like(norm)), 0.0)
    return direction * scale


def _kron_eigenvalues(
    state: dict[str, Any], shape: torch.Size, use_left: bool, use_right: bool, trace_normalize: bool
) -> Tensor:
    """Eigenvalues of κ ≈ c L^{1/2} ⊗ R^{1/2} (both sides) or L/n ⊗ I (one side), broadcast to the matrix shape."""
    if use_left and use_right:
        sl, sr = state["left_eigenvalues"].sqrt(), state["right_eigenvalues"].sqrt()
        lam = sl[:, None] * sr[None, :]
        if trace_normalize:
            denom = sl.sum() * sr.sum()
            c = torch.where(denom > 0, state["left_eigenvalues"].sum() / denom.clamp_min(1e-300), 0.0)
            lam = lam * c
        return lam
    if use_left:
        lam = state["left_eigenvalues"][:, None].expand(shape)
        return lam / shape[1] if trace_normalize else lam
    lam = state["right_eigenvalues"][None, :].expand(shape)
    return lam / shape[0] if trace_normalize else lam


class KronCGD(CovariantOptimizer):
    """Covariant gradient descent with a Kronecker-factored metric per weight matrix (EQUATIONS.md (2.2), (2.9), §6).

    Parameters with ≥ 2 dimensions (and no side longer than ``max_factor_dim``) use the Kronecker structure of
    the module docstring; the others use diagonal CGD with the same law. Arguments as :class:`~geodyn.optim.CGD`,
    plus:

    Args:
        spectrum: "kron" (metric on the Kronecker eigenvalues) or "adaptive" (on a rotated second moment, SOAP-like).
        sides: "both" (default), "left", "right" or "smaller" (one factor, on the smaller dimension).
        trace_normalize: scale κ so that tr κ = E‖d‖² (default True; False gives Shampoo's bare product).
        precondition_every: eigenbases are refreshed every k steps (1 = exact; O(m³ + n³) per refresh).
        max_factor_dim: parameters with a side longer than this fall back to diagonal CGD (factor memory m² + n²).
        rcond: relative eigenvalue cutoff of the pseudo-inverse (default: dimension × machine epsilon); directions
            below it have no gradient history and take no step. The adaptive spectrum also cuts its rotated
            variances at rcond × the largest (default (m + n) × float32's epsilon, in every dtype).
        damping: δ added to each factor's kept eigenvalues, L + δ·λ_max(L) I and R + δ·λ_max(R) I (Shampoo's
            ε, relative to the factor's scale; default 1e-6). It bounds how much a weakly excited
            direction is amplified, whatever the units of the loss.
        relative_damping: False adds the bare δ (L + δI: Shampoo's absolute ε).
        grafting: None, or "adam" to give each matrix's step the norm of Adam's step on it (Distributed
            Shampoo's grafting), keeping the direction of f(κ̂)⁻¹ m̂.
        grafting_eps: Adam's ε in the grafted norm.
        refresh: how a cached eigenbasis is refreshed: "eigh" (a float64 eigendecomposition, exact) or "qr"
            (one step of power iteration with QR from the previous basis, as SOAP does, in the parameters'
            dtype; the first refresh is an eigh). Default: "eigh" at ``precondition_every=1``, else "qr".
        foreach: the batched step of :mod:`geodyn.optim.kron_foreach` (default) or, with False, the
            per-matrix reference :func:`matrix_step`; both give the same update.
        nonfinite, nonfinite_group: as :class:`~geodyn.optim.CGD`.

    Runs in one process or under DistributedDataParallel (every rank holds whole matrices and the same
    all-reduced gradient, so every rank computes the same step). DTensor parameters (FSDP2, tensor parallel) are
    refused with a TypeError: the factors L, R and their eigenbases need the whole matrix.
    """

    legacy_settings = LEGACY_STRUCTURE_SETTINGS

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
        maximize: bool = False,
        spectrum: str = "kron",
        sides: str = "both",
        trace_normalize: bool = True,
        precondition_every: int = 10,
        max_factor_dim: int = 4096,
        rcond: float | None = None,
        damping: float = DEFAULT_DAMPING,
        relative_damping: bool = True,
        grafting: str | None = None,
        grafting_eps: float = 1e-8,
        refresh: str | None = None,
        foreach: bool | None = None,
        nonfinite: str = "raise",
        nonfinite_group: Any = None,
    ):
        defaults = dict(
            lr=lr,
            metric=metric,
            moment=moment,
            betas=tuple(betas),
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            bias_correction=bias_correction,
            maximize=maximize,
            foreach=foreach,
            spectrum=spectrum,
            sides=sides,
            trace_normalize=trace_normalize,
            precondition_every=precondition_every,
            max_factor_dim=max_factor_dim,
            rcond=rcond,
            damping=damping,
            relative_damping=relative_damping,
            grafting=grafting,
            grafting_eps=grafting_eps,
            refresh=refresh,
            nonfinite=nonfinite,
            nonfinite_group=nonfinite_group,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        _validate_structure(group)
        if group.get("foreach") not in (None, True, False):
            raise ValueError(f"invalid foreach={group['foreach']!r}: must be None, True or False")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        refuse_dtensors(type(self).__name__, self.param_groups[-1]["params"])

    def _is_matrix(self, param: Tensor, group: dict[str, Any]) -> bool:
        return param.ndim >= 2 and max(param.shape[0], param[0].numel()) <= group["max_factor_dim"]

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[param]
        if state:
            return state
        state["step"] = torch.zeros((), dtype=torch.float32)
        state["first_moment"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        if not self._is_matrix(param, group):
            state["noise_moment"] = torch.zeros_like(param)
            return state
        rows, cols = param.shape[0], param[0].numel()
        use_left, use_right = _resolve_sides(group["sides"], (rows, cols))
        if use_left:
            state["left"] = param.new_zeros(rows, rows)
        if use_right:
            state["right"] = param.new_zeros(cols, cols)
        if group["spectrum"] == "adaptive":
            state["rotated_moment"] = param.new_zeros(rows, cols)
        return state

    def _step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        if group.get("foreach") is False:
            self._step_group_reference(group, params, grads)
            return
        options = group_options(group)
        buckets: dict[tuple[Any, ...], tuple[list[Tensor], list[Tensor]]] = {}
        for param, grad in zip(params, grads):
            self._init_state(param, group)
            key = (self._is_matrix(param, group), param.device, param.dtype)
            buckets.setdefault(key, ([], []))
            buckets[key][0].append(param)
            buckets[key][1].append(grad)
        for (is_matrix, _, _), (ps, gs) in buckets.items():
            states = [self.state[p] for p in ps]
            if not is_matrix:
                # cgd_foreach already reads g = 0 as "no step" wherever the law may vanish (PseudoInverseLaw's
                # convention), so the bare law keeps its multi-tensor kernels: these steps are CGD's, bit for bit.
                cgd_foreach(
                    ps, gs, [s["first_moment"] for s in states], [s["noise_moment"] for s in states],
                    [s["step"] for s in states], eps_inside=0.0, **options,
                )  # fmt: skip
                continue
            lr, wd = options["lr"], options["weight_decay"]
            gs = torch._foreach_neg(gs) if options["maximize"] else list(gs)
            if wd and options["decoupled_weight_decay"]:
                torch._foreach_mul_(ps, 1.0 - lr * wd)
            elif wd:
                gs = torch._foreach_add(gs, ps, alpha=wd)
            kron_foreach(
                ps, [g.reshape(p.shape[0], -1) for p, g in zip(ps, gs)], states, lr=lr,
                beta1=options["beta1"], beta2=options["beta2"], metric=options["metric"], moment=options["moment"],
                bias_correction=options["bias_correction"], spectrum=group["spectrum"], sides=group["sides"],
                trace_normalize=group["trace_normalize"], precondition_every=group["precondition_every"],
                **structure_options(group),
            )  # fmt: skip

    def _step_group_reference(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        options = group_options(group)
        for param, grad in zip(params, grads):
            state = self._init_state(param, group)
            if not self._is_matrix(param, group):
                cgd_reference(
                    [param], [grad], [state["first_moment"]], [state["noise_moment"]], [state["step"]],
                    eps_inside=0.0, **(options | {"metric": PseudoInverseLaw(options["metric"])}),
                )  # fmt: skip
                continue
            g = effective_gradient(
                param, grad, lr=options["lr"], weight_decay=options["weight_decay"],
                decoupled_weight_decay=options["decoupled_weight_decay"], maximize=options["maximize"],
            )  # fmt: skip
            rows = param.shape[0]
            direction = matrix_step(
                g.reshape(rows, -1), state["first_moment"].view(rows, -1), state,
                beta1=options["beta1"], beta2=options["beta2"], metric=options["metric"], moment=options["moment"],
                bias_correction=options["bias_correction"], spectrum=group["spectrum"], sides=group["sides"],
                trace_normalize=group["trace_normalize"], precondition_every=group["precondition_every"],
                **structure_options(group),
            )  # fmt: skip
            param.add_(direction.reshape(param.shape), alpha=-options["lr"])


def _validate_structure(group: dict[str, Any]) -> None:
    validate_hyperparameters(group)
    if group["spectrum"] not in SPECTRA:
        raise ValueError(f"unknown spectrum={group['spectrum']!r}: expected one of {', '.join(SPECTRA)}")
    if group["sides"] not in SIDES:
        raise ValueError(f"unknown sides={group['sides']!r}: expected one of {', '.join(SIDES)}")
    k = group["precondition_every"]
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"invalid precondition_every={k!r}: must be an integer >= 1")
    if not isinstance(group["max_factor_dim"], int) or group["max_factor_dim"] < 1:
        raise ValueError(f"invalid max_factor_dim={group['max_factor_dim']!r}: must be an integer >= 1")
    validate_spectral(group)


def structure_options(group: dict[str, Any]) -> dict[str, Any]:
    """The pseudo-inverse, damping, grafting and refresh settings of a group, as :func:`matrix_step` takes them.

    ``refresh=None`` resolves to "eigh" when the basis is refreshed every step (exact) and "qr" otherwise."""
    options = {key: group.get(key, value) for key, value in LEGACY_STRUCTURE_SETTINGS.items()}
    if options["refresh"] is None:
        options["refresh"] = "eigh" if group["precondition_every"] == 1 else "qr"
    return options


def validate_spectral(group: dict[str, Any]) -> None:
    """Raise ValueError naming a bad rcond, damping or grafting setting (KronCGD and FullCGD)."""
    group = structure_options(group)
    rcond = group["rcond"]
    if rcond is not None and not (0.0 <= float(rcond) < 1.0):
        raise ValueError(f"invalid rcond={rcond!r}: must be in [0, 1)")
    damping = group["damping"]
    if not (isinstance(damping, (int, float)) and math.isfinite(damping) and damping >= 0.0):
        raise ValueError(f"invalid damping={damping!r}: must be a finite number >= 0")
    if not isinstance(group["relative_damping"], bool):
        raise ValueError(f"invalid relative_damping={group['relative_damping']!r}: must be True or False")
    if group["refresh"] not in REFRESHES:
        raise ValueError(f"unknown refresh={group['refresh']!r}: expected None, 'eigh' or 'qr'")
    if group["grafting"] not in GRAFTINGS:
        raise ValueError(f"unknown grafting={group['grafting']!r}: expected None or 'adam'")
    eps = group["grafting_eps"]
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"invalid grafting_eps={eps!r}: must be a finite number >= 0")

"""Known optimizers as covariant gradient descent with a particular metric law (EQUATIONS.md §6 table).

Each preset returns a :class:`~geodyn.optim.CGD` whose steps equal the named optimizer's, with that optimizer's
argument names and defaults. Tests hold each one to its reference implementation in float64.

The structured presets (Kronecker and full κ) default to their stable forms: ε and damping relative to the
scale of each factor, and, for :func:`shampoo`, the step norm grafted onto Adam's; the textbook forms are one
argument away (``eps=0``/``relative_eps=False``, ``grafting=None``, ``damping=0``). docs/structured-numerics.md
explains the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from geodyn.metric import Interpolating, Power, ScaleFreeThreeRegime, ThreeRegime
from geodyn.optim.cgd import CGD
from geodyn.optim.full import FullCGD
from geodyn.optim.kron import KronCGD

__all__ = [
    "sgd", "rmsprop", "adam", "adamw", "adabelief", "natural_gradient", "three_regime",
    "shampoo", "soap_like", "muon_exact", "natural_gradient_full", "three_regime_kron",
]  # fmt: skip

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


# fmt: off
def sgd(params: Params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0, **kw: Any) -> CGD:
    """torch.optim.SGD(lr, momentum) as CGD: metric Power(0) (α = 0, (6.3)), no bias correction.

    The EMA force m = (1−μ) Σ μᵏ G equals SGD's momentum buffer times (1−μ), so the step size is lr/(1−μ).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"invalid momentum={momentum!r}: must be in [0, 1)")
    return CGD(
        params,
        lr=lr / (1.0 - momentum),
        metric=Power(0.0),
        moment="raw",
        betas=(momentum, 0.0),
        weight_decay=weight_decay,
        decoupled_weight_decay=False,
        bias_correction=False,
        **kw,
    )


def rmsprop(
    params: Params,
    lr: float = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    **kw: Any,
) -> CGD:
    """torch.optim.RMSprop(lr, alpha, eps) as CGD: Interpolating(eps) (6.4), raw moment, no momentum or bias
    correction."""
    return CGD(
        params,
        lr=lr,
        metric=Interpolating(eps),
        moment="raw",
        betas=(0.0, alpha),
        weight_decay=weight_decay,
        decoupled_weight_decay=False,
        bias_correction=False,
        **kw,
    )


def adam(
    params: Params,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    **kw: Any,
) -> CGD:
    """torch.optim.Adam as CGD: Interpolating(eps) (6.4) on the raw second moment, L2 weight decay."""
    return CGD(
        params,
        lr=lr,
        metric=Interpolating(eps),
        moment="raw",
        betas=betas,
        weight_decay=weight_decay,
        decoupled_weight_decay=False,
        **kw,
    )


def adamw(
    params: Params,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    **kw: Any,
) -> CGD:
    """torch.optim.AdamW as CGD: Interpolating(eps) (6.4), raw moment, decoupled weight decay."""
    return CGD(
        params,
        lr=lr,
        metric=Interpolating(eps),
        moment="raw",
        betas=betas,
        weight_decay=weight_decay,
        decoupled_weight_decay=True,
        **kw,
    )


def adabelief(
    params: Params,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-16,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    **kw: Any,
) -> CGD:
    """AdaBelief (adabelief-pytorch 0.2.1, rectify=False) as CGD: Interpolating(eps) on the central moment,
    with eps also kept inside the stored moment as that implementation does."""
    return CGD(
        params,
        lr=lr,
        metric=Interpolating(eps),
        moment="central",
        betas=betas,
        weight_decay=weight_decay,
        decoupled_weight_decay=weight_decouple,
        eps_inside=eps,
        **kw,
    )


def natural_gradient(
    params: Params,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    damping: float = 1e-8,
    weight_decay: float = 0.0,
    **kw: Any,
) -> CGD:
    """Diagonal empirical-Fisher natural gradient: g = κ (α = 1, (6.1)) on the raw moment, plus ``damping``·I
    (damping = 0 is the exact Power(1) law)."""
    metric = Power(1.0) + damping if damping else Power(1.0)
    return CGD(params, lr=lr, metric=metric, moment="raw", betas=betas, weight_decay=weight_decay, **kw)


def _three_regime_lr(lr: float | None, eps: float, zeta: float, scale_free: bool) -> float:
    """The default learning rate of the three-regime presets: Adam's 1e-3 scaled by g(s²)/s = 1 + ε̃ + ζ̃, so that
    a variable at its tensor's noise scale (λ = s²) steps as it would under Adam's default (√λ = s); 1e-3 for the
    raw law, whose ε and ζ carry units."""
    if lr is not None:
        return lr
    return 1e-3 * (1.0 + eps + zeta) if scale_free else 1e-3


def three_regime(
    params: Params,
    lr: float | None = None,
    eps: float = 0.1,
    zeta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    moment: str = "central",
    weight_decay: float = 0.0,
    scale_free: bool = True,
    **kw: Any,
) -> CGD:
    """The three-regime metric g = ε + √κ + ζκ ((6.5), (6.8)) as an optimizer: noise eigenvalues below ε² move
    like SGD, those in the band ε² ≪ λ ≪ ζ⁻² like AdaBelief, larger ones like natural gradient.

    ``scale_free`` (default): ε = ε̃·s and ζ = ζ̃/s with s the RMS of √K̂ of each parameter
    (:class:`~geodyn.metric.ScaleFreeThreeRegime`, invariant to rescaling the loss); ``eps``, ``zeta`` are ε̃, ζ̃.
    ``scale_free=False``: the raw law :class:`~geodyn.metric.ThreeRegime` with ``eps``, ``zeta`` in gradient units.
    ``lr`` defaults to 1e-3·(1 + ε̃ + ζ̃) for the scale-free law (see :func:`_three_regime_lr`), 1e-3 for the raw one."""
    return CGD(
        params,
        lr=_three_regime_lr(lr, eps, zeta, scale_free),
        metric=ScaleFreeThreeRegime(eps, zeta) if scale_free else ThreeRegime(eps, zeta),
        moment=moment,
        betas=betas,
        weight_decay=weight_decay,
        **kw,
    )


def shampoo(
    params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
    relative_eps: bool = True, grafting: str | None = "adam", precondition_every: int = 10,
    weight_decay: float = 0.0, **kw: Any,
) -> KronCGD:
    """Shampoo as KronCGD: raw Kronecker factors and g = κ^{1/2} on the bare product (L + εI)^{1/2} ⊗ (R + εI)^{1/2},
    i.e. the update (L + εI)^{−1/4} M (R + εI)^{−1/4} (EQUATIONS.md §6 table), grafted onto Adam's step norm.

    Defaults, and why: ε is relative (ε·λ_max of each factor), so the ratio of the largest to the smallest
    preconditioner eigenvalue per side is at most ε^{−1/4} ≈ 32 whatever the units of the loss; a bare ε = 1e-12
    on a rank-deficient factor multiplied its null space by 10⁶ per side (a second step 1e9 × lr). Directions
    with no gradient history are cut off and take no step. ``grafting="adam"`` gives each matrix the norm of
    Adam's step (Distributed Shampoo's default), so the preset moves like Adam at Adam's learning rate. The
    textbook form is ``eps=0`` or ``relative_eps=False`` with ``grafting=None``.
    """
    return KronCGD(
        params, lr=lr, metric=Power(0.5), moment="raw", betas=betas, weight_decay=weight_decay,
        spectrum="kron", trace_normalize=False, precondition_every=precondition_every, damping=eps,
        relative_damping=relative_eps, grafting=grafting, **kw,
    )


def soap_like(
    params: Params, lr: float = 3e-3, betas: tuple[float, float] = (0.95, 0.95), eps: float = 1e-8,
    precondition_every: int = 10, weight_decay: float = 0.0, **kw: Any,
) -> KronCGD:
    """SOAP-like: Adam's √v + ε law on the raw second moment rotated into the Kronecker eigenbasis."""
    return KronCGD(
        params, lr=lr, metric=Interpolating(eps), moment="raw", betas=betas, weight_decay=weight_decay,
        spectrum="adaptive", precondition_every=precondition_every, **kw,
    )


def muon_exact(
    params: Params, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0, **kw: Any
) -> KronCGD:
    """Muon with the exact polar factor: one-sided instantaneous κ = M Mᵀ of the momentum M and g = κ^{1/2},
    so the update is U Vᵀ for M = U Σ Vᵀ (singular values at or below the relative cut-off count as 0: the
    pseudo-inverse polar factor). Vectors get the diagonal limit of the same law: sign descent, sign(0) = 0.
    No damping by default: the polar factor is the point of Muon, and its step norm is bounded by construction."""
    kw.setdefault("damping", 0.0)
    return KronCGD(
        params, lr=lr, metric=Power(0.5), moment="momentum", betas=(momentum, 0.0), weight_decay=weight_decay,
        sides="smaller", trace_normalize=False, precondition_every=1, bias_correction=False, **kw,
    )


def natural_gradient_full(
    params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), damping: float = 1e-2,
    relative_damping: bool = True, precondition_every: int = 1, **kw: Any,
) -> FullCGD:
    """Empirical-Fisher natural gradient with the full N×N κ: g = κ̂ + δ·λ_max(κ̂) I (α = 1, (6.1)), Tikhonov damped.

    Defaults, and why: the damping is relative, so directions with λ ≫ δ·λ_max move as natural gradient and
    weaker ones at most 1/δ = 100 × faster than the strongest, whatever the units of the loss. With an absolute
    1e-8 the float32 least-squares run of tests/optim/test_stability.py diverged (loss 8 × its start), and a
    relative 1e-3 left float32 and float64 runs an order of magnitude apart. Directions with no gradient history
    take no step (pseudo-inverse). ``relative_damping=False`` gives κ̂ + δI, ``damping=0`` the pseudo-inverse.
    """
    return FullCGD(
        params, lr=lr, metric=Power(1.0), moment="raw", betas=betas, precondition_every=precondition_every,
        damping=damping, relative_damping=relative_damping, **kw,
    )


def three_regime_kron(
    params: Params, lr: float | None = None, eps: float = 0.1, zeta: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999), spectrum: str = "adaptive", precondition_every: int = 10,
    weight_decay: float = 0.0, scale_free: bool = True, **kw: Any,
) -> KronCGD:
    """The three-regime law g = ε + √κ + ζκ ((6.5)) on the centred Kronecker-factored κ (trace-normalised).

    ``scale_free`` (default): ε = ε̃·s, ζ = ζ̃/s with s the RMS of √λ over each matrix's κ̂ eigenvalues (each
    vector's K̂) (:class:`~geodyn.metric.ScaleFreeThreeRegime`); ``scale_free=False``: the raw ThreeRegime.
    ``lr`` defaults as in :func:`three_regime`."""
    metric = ScaleFreeThreeRegime(eps, zeta) if scale_free else ThreeRegime(eps, zeta)
    return KronCGD(
        params, lr=_three_regime_lr(lr, eps, zeta, scale_free),
        metric=metric, moment="central", betas=betas, weight_decay=weight_decay,
        spectrum=spectrum, precondition_every=precondition_every, **kw,
    )
# fmt: on

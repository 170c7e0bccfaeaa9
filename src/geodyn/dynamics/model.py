"""The model shared by the walker and grid simulators: loss H̄, metric law g = f(κ), noise covariance κ(q), rate γ.

Everything the two simulators need is a field of q computed here, once, for a batch of points q of shape (P, N):

* the gradient force          −γ g⁻¹ ∇H̄                         (2.2), (2.5)
* the noise factor            B = g⁻¹ κ^{1/2}, B Bᵀ = g⁻¹ κ g⁻¹    (2.6), (2.8)
* the diffusion tensor        D = (γ²/2) g⁻¹ κ g⁻¹                 (2.7)
* the Itô drift               ∂_ν D^{μν}                           (2.7), needed when D depends on q

g = f(κ) is the metric law applied in the eigenbasis of κ ((2.9), :mod:`geodyn.metric`); a diagonal κ (shape
(N,) constant, (P, N) from a callable) is handled elementwise without an eigendecomposition. Since g, κ and D
share one eigenbasis, every field is a function of κ's eigenvalues: with h(λ) = λ / f(λ)², D = (γ²/2) h(κ) and
B = h(κ)^{1/2}. The derivative of the matrix function h(κ) needed by the Itô drift uses the Daleckii–Krein formula
(divided differences of h in the eigenbasis), which stays finite at repeated eigenvalues where differentiating
through ``torch.linalg.eigh`` does not.

Conventions (documented defaults, EQUATIONS.md):

* ``kappa`` may be a number (κ = c I), an (N,) tensor (diagonal), an (N, N) tensor (full), or a callable
  q ↦ κ(q) returning (P, N) (diagonal) or (P, N, N) (full). A callable must act row by row: κ of walker m may
  depend only on q[m] (the Itô drift differentiates the batch with a tangent in every row at once), and be
  built from differentiable torch operations (reverse mode for a diagonal κ, forward mode for a full κ and for
  every κ under ``torch.compile``).
* Negative eigenvalues of κ are clipped to 0 and tiny ones (below N·eps·λ_max) are treated as 0, and where g = 0
  the inverse metric is 0 (:func:`geodyn.optim.spectral.inverse_metric`). The Itô drift needs κ ≻ 0 wherever
  it is evaluated when f(λ) has an exponent above ½ (h(λ) = λ^{1−2α} is singular at 0).
* ``loss`` is batched by default: it maps (P, N) to (P,), and its gradient is the autograd gradient of the summed
  loss. With ``per_sample=True`` it maps (N,) to a scalar and is vectorised with ``torch.func.vmap(grad(loss))``.
  Alternatively ``grad`` gives ∇H̄ analytically, (P, N) ↦ (P, N).
* Under ``torch.compile`` (``LangevinEnsemble.simulate(compile=True)``) a q-dependent diagonal κ is differentiated
  in forward mode, and for N ≤ 4 the SDE drift takes ∇H̄ of a batched loss from the same passes (tangent e_μ in
  every row gives ∂_μH̄ and ∂_μκ at once): N dual-number evaluations, no backward pass, one fused program.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from geodyn.metric import MetricLaw, PowerSum
from geodyn.optim.spectral import clipped_eigh, default_rcond, inverse_metric

__all__ = ["LearningModel", "matrix_function_derivative", "symmetric_eigh"]

TensorFn = Callable[[Tensor], Tensor]

#: Largest N for which the drift takes ∇H̄ from the forward-mode passes of the Itô drift (N passes of H̄ instead of
#: one forward and one backward pass: cheaper for small N only).
FUSED_GRAD_MAX_N = 4


@contextlib.contextmanager
def _forward_ad_warnings_off():
    with warnings.catch_warnings():
        # torch's first forward-AD use scripts its decompositions and warns that torch.jit.script is deprecated
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        yield


def _quiet_forward_ad():
    """The warnings filter above, or nothing inside torch.compile (which does not trace a warnings filter)."""
    return contextlib.nullcontext() if torch.compiler.is_compiling() else _forward_ad_warnings_off()


def symmetric_eigh(k: Tensor, rcond: float | None = None) -> tuple[Tensor, Tensor]:
    """(λ, Q) of symmetric PSD matrices (…, N, N) as :func:`geodyn.optim.spectral.clipped_eigh` (λ ≥ 0, ascending,
    λ < rcond·λ_max set to 0), in closed form for N = 2 (rotation angle ½ atan2(2b, a − c)), else LAPACK."""
    n = k.shape[-1]
    if n != 2:
        lam, vecs = clipped_eigh(k, rcond)
        return lam.to(k.dtype), vecs.to(k.dtype)
    a, c = k[..., 0, 0], k[..., 1, 1]
    b = 0.5 * (k[..., 0, 1] + k[..., 1, 0])
    mean, radius = 0.5 * (a + c), torch.hypot(0.5 * (a - c), b)
    top = (mean + radius).clamp_min(0.0)
    det = a * c - b * b
    low = torch.where(top > 0, det / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(top))
    low = low.clamp(min=0.0).minimum(top)
    cutoff = (default_rcond(2, k.dtype) if rcond is None else rcond) * top
    low = torch.where(low > cutoff, low, torch.zeros_like(low))
    top = torch.where(top > cutoff, top, torch.zeros_like(top))
    theta = 0.5 * torch.atan2(2.0 * b, a - c)
    cos, sin = theta.cos(), theta.sin()
    vecs = torch.stack([torch.stack([-sin, cos], -1), torch.stack([cos, sin], -1)], -1)  # columns: low, top
    return torch.stack([low, top], -1), vecs


def divided_differences(lam: Tensor, h: Tensor, dh: Tensor) -> Tensor:
    """Divided differences of h on κ's eigenvalues, the kernel of the Itô drift of (2.7) (Daleckii–Krein):
    L_ij = (h_i − h_j)/(λ_i − λ_j), or (h'_i + h'_j)/2 where |λ_i − λ_j| ≤ 1e-6 max(|λ_i|, |λ_j|); shape (…, N, N)."""
    gap = lam.unsqueeze(-1) - lam.unsqueeze(-2)
    scale = torch.maximum(lam.abs().unsqueeze(-1), lam.abs().unsqueeze(-2)).clamp_min(torch.finfo(lam.dtype).tiny)
    close = gap.abs() <= 1e-6 * scale
    divided = (h.unsqueeze(-1) - h.unsqueeze(-2)) / torch.where(close, torch.ones_like(gap), gap)
    return torch.where(close, 0.5 * (dh.unsqueeze(-1) + dh.unsqueeze(-2)), divided)


def matrix_function_derivative(lam: Tensor, vecs: Tensor, h: Tensor, dh: Tensor, direction: Tensor) -> Tensor:
    """Fréchet derivative of the symmetric matrix function h(K) = Q diag(h(λ)) Qᵀ in a symmetric direction E.

    Daleckii–Krein: Dh(K)[E] = Q (L ∘ (Qᵀ E Q)) Qᵀ with L_ij = (h_i − h_j)/(λ_i − λ_j), and L_ij = (h'_i + h'_j)/2
    where λ_i ≈ λ_j (relative gap below 1e-6). Used for the Itô drift ∂_ν D^{μν} of (2.7) with full κ(q).

    Shapes: ``lam``, ``h``, ``dh`` (..., N); ``vecs`` (..., N, N); ``direction`` (..., N, N) (broadcast).
    """
    L = divided_differences(lam, h, dh)
    rotated = vecs.mT @ direction @ vecs
    return vecs @ (L * rotated) @ vecs.mT


@dataclass
class Factors:
    """κ, the inverse metric g⁻¹ = f(κ)⁻¹ (2.9) and the noise factor B = g⁻¹κ^{1/2} (2.6)/(2.8), in κ's eigenbasis.

    ``diagonal``: lam (P or 1, N) are κ's diagonal entries and ``vecs`` is None. Otherwise lam (…, N) and vecs
    (…, N, N) with κ = Q diag(λ) Qᵀ. ``ginv`` = 1/f(λ) (0 where f = 0) and ``noise`` = √λ/f(λ) are eigenvalues of
    g⁻¹ and B = g⁻¹κ^{1/2}. ``loss_grad`` is ∇H̄ at the same points when it came out of the forward-mode passes
    that differentiated κ (else None).
    """

    lam: Tensor
    vecs: Tensor | None
    ginv: Tensor
    noise: Tensor
    loss_grad: Tensor | None = None

    @property
    def diagonal(self) -> bool:
        return self.vecs is None

    def _apply(self, eig: Tensor, x: Tensor) -> Tensor:
        if self.vecs is None:
            return eig * x
        coords = (x.unsqueeze(-2) @ self.vecs).squeeze(-2)  # Qᵀ x, row by row
        return ((eig * coords).unsqueeze(-2) @ self.vecs.mT).squeeze(-2)  # Q (eig ∘ Qᵀx)

    def apply_inverse_metric(self, x: Tensor) -> Tensor:
        """g⁻¹ x for x of shape (P, N)."""
        return self._apply(self.ginv, x)

    def apply_noise(self, z: Tensor) -> Tensor:
        """B z with B = g⁻¹κ^{1/2} symmetric (so B Bᵀ = g⁻¹κg⁻¹, (2.8)), for z of shape (P, N)."""
        return self._apply(self.noise, z)

    def matrix(self, eig: Tensor) -> Tensor:
        """The symmetric matrix with eigenvalues ``eig`` in κ's eigenbasis (diag_embed when κ is diagonal)."""
        if self.vecs is None:
            return torch.diag_embed(eig)
        return (self.vecs * eig.unsqueeze(-2)) @ self.vecs.mT


class LearningModel:
    """The learning dynamics (2.5)–(2.7): loss H̄, metric law g = f(κ) (2.9), noise covariance κ(q), rate γ.

    Fields (all for q of shape (P, N)): :meth:`loss_grad` ∇H̄, :meth:`gradient_drift` −γ g⁻¹∇H̄ (2.2),
    :meth:`noise_factor` B with B Bᵀ = g⁻¹κg⁻¹ (2.6)/(2.8), :meth:`diffusion` D = (γ²/2) g⁻¹κg⁻¹ (2.7),
    :meth:`ito_drift` ∂_ν D^{μν} (2.7) and :meth:`drift` their sum. The walker simulator
    (:class:`~geodyn.dynamics.LangevinEnsemble`) and the grid solvers (:class:`~geodyn.dynamics.FokkerPlanck1D`,
    :class:`~geodyn.dynamics.FokkerPlanck2D`) both read the model only through these fields.

    Args:
        loss: H̄; batched (P, N) ↦ (P,) unless ``per_sample``. Either ``loss`` or ``grad`` is required.
        grad: ∇H̄ analytically, (P, N) ↦ (P, N); takes precedence over autograd of ``loss``.
        metric: the metric law f (e.g. ``Power(1)`` for g = κ).
        kappa: κ — number, (N,), (N, N), or callable (P, N) ↦ (P, N) | (P, N, N). See the module docstring.
        gamma: the learning rate γ (the constant of g ∝ κ^α is 1, EQUATIONS.md (2.2) convention).
        divergence: optional analytic Itô drift ∂_ν D^{μν}, (P, N) ↦ (P, N); default: automatic differentiation.
        per_sample: ``loss`` maps one point (N,) to a scalar; gradients by ``torch.func.vmap(torch.func.grad)``.
    """

    def __init__(
        self,
        loss: TensorFn | None = None,
        *,
        grad: TensorFn | None = None,
        metric: MetricLaw,
        kappa: float | Tensor | TensorFn = 1.0,
        gamma: float,
        divergence: TensorFn | None = None,
        per_sample: bool = False,
    ):
        if loss is None and grad is None:
            raise ValueError("LearningModel needs a loss or an analytic grad")
        if not isinstance(metric, MetricLaw):
            raise TypeError(f"metric must be a geodyn.metric.MetricLaw, got {metric!r}")
        gamma = float(gamma)
        if not gamma > 0 or gamma == float("inf"):
            raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
        self.loss = loss
        self.grad = grad
        self.metric = metric
        self.gamma = gamma
        self.divergence = divergence
        self.per_sample = bool(per_sample)
        self.kappa = kappa
        self.kappa_is_callable = callable(kappa)
        if not self.kappa_is_callable:
            k = torch.as_tensor(kappa, dtype=torch.float64)
            if k.ndim > 2 or (k.ndim == 2 and k.shape[0] != k.shape[1]):
                raise ValueError(f"a constant kappa must be a number, (N,) or (N, N), got shape {tuple(k.shape)}")
            if not bool(torch.isfinite(k).all()):
                raise ValueError(f"kappa must be finite, got {k.tolist()}")
            self._kappa_const = k
        self._cache: dict[tuple[torch.dtype, torch.device, int], Factors] = {}
        self._kappa_full: bool | None = None  # learned from the first κ(q) evaluated with derivatives

    # -- κ and its factors ------------------------------------------------------------------------------
    @property
    def q_dependent(self) -> bool:
        """True when κ (hence g and D) depends on q, so the Itô drift ∂_ν D^{μν} is not zero."""
        return self.kappa_is_callable

    def kappa_at(self, q: Tensor) -> Tensor:
        """κ at the points q (P, N): (P, N) or (N,) when diagonal, (P, N, N) or (N, N) when full."""
        if self.kappa_is_callable:
            k = self.kappa(q)
            if k.ndim not in (2, 3) or k.shape[0] != q.shape[0] or k.shape[-1] != q.shape[-1]:
                raise ValueError(f"kappa(q) must return (P, N)|(P, N, N) for q {tuple(q.shape)}, not {tuple(k.shape)}")
            return k.to(q.dtype)
        k = self._kappa_const.to(dtype=q.dtype, device=q.device)
        n = q.shape[-1]
        if k.ndim == 0:
            return k.expand(n).clone()
        if k.shape[-1] != n:
            raise ValueError(f"kappa has size {k.shape[-1]} but q has N = {n}")
        return k

    def _factors_of(self, k: Tensor) -> Factors:
        full = k.ndim == 3 or (k.ndim == 2 and not self.kappa_is_callable)
        if full:
            lam, vecs = symmetric_eigh(k)
        else:
            lam, vecs = k.clamp_min(0.0), None
        ginv = inverse_metric(self.metric, lam)
        return Factors(lam=lam, vecs=vecs, ginv=ginv, noise=lam.sqrt() * ginv)

    def factors(self, q: Tensor) -> Factors:
        """κ's eigenvalues/eigenvectors with g⁻¹ and B = g⁻¹κ^{1/2} at q (cached when κ is constant)."""
        if self.kappa_is_callable:
            return self._factors_of(self.kappa_at(q))
        key = (q.dtype, q.device, q.shape[-1])
        if key not in self._cache:
            self._cache[key] = self._factors_of(self.kappa_at(q))
        return self._cache[key]

    # -- fields -------------------------------------------------------------------------------------------
    def loss_grad(self, q: Tensor) -> Tensor:
        """∇H̄ at q (P, N): the analytic ``grad``, else autograd of the (summed or per-sample) loss."""
        if self.grad is not None:
            return self.grad(q)
        assert self.loss is not None
        if self.per_sample:
            return torch.func.vmap(torch.func.grad(self.loss))(q)
        x = q.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.loss(x)
            if value.shape != q.shape[:1]:
                raise ValueError(f"a batched loss must map (P, N) to (P,), got {tuple(value.shape)}; see per_sample")
            (g,) = torch.autograd.grad(value.sum(), x, allow_unused=True, materialize_grads=True)
        return g.detach()

    def gradient_drift(self, q: Tensor, factors: Factors | None = None) -> Tensor:
        """−γ g⁻¹ ∇H̄ at q: covariant gradient descent (2.2), the deterministic part of (2.5) and of (2.7)."""
        f = self.factors(q) if factors is None else factors
        grad = self.loss_grad(q) if f.loss_grad is None else f.loss_grad
        return f.apply_inverse_metric(grad).mul_(-self.gamma)

    def noise_factor(self, q: Tensor) -> Tensor:
        """B = g⁻¹ κ^{1/2} (symmetric, B Bᵀ = g⁻¹κg⁻¹ (2.8)) as a (P, N, N) or (N, N) matrix."""
        f = self.factors(q)
        return f.matrix(f.noise)

    def diffusion(self, q: Tensor) -> Tensor:
        """D = (γ²/2) g⁻¹ κ g⁻¹ (2.7) at q, as a (P, N, N) tensor."""
        f = self.factors(q)
        d = f.matrix(0.5 * self.gamma**2 * f.noise**2)
        return d.expand(q.shape[0], -1, -1) if d.ndim == 2 else d

    def _h_and_slope(self, lam: Tensor) -> tuple[Tensor, Tensor]:
        """h(λ) = λ/f(λ)² and h'(λ) elementwise (D = (γ²/2) h(κ)): closed form for power sums, else autograd."""
        ginv = inverse_metric(self.metric, lam)
        h = lam * ginv**2
        if isinstance(self.metric, PowerSum):
            lam_slope = torch.zeros_like(lam)  # λ f'(λ) = Σ c a λ^a: finite at λ = 0
            for c, a in self.metric.terms:
                if a != 0.0:
                    lam_slope = lam_slope + (c * a) * lam.pow(a)
            return h, ginv**2 - 2.0 * lam_slope * ginv**3
        x = lam.detach().requires_grad_(True)
        with torch.enable_grad():
            hx = x * inverse_metric(self.metric, x) ** 2
            (dh,) = torch.autograd.grad(hx.sum(), x, allow_unused=True, materialize_grads=True)
        return h, dh.detach()

    def _factors_and_ito(self, q: Tensor) -> tuple[Factors, Tensor]:
        """Factors at q and the Itô drift ∂_ν D^{μν} by automatic differentiation of κ (row by row).

        With D = (γ²/2) h(κ), h(λ) = λ/f(λ)²:

        * diagonal κ: ∂_μ D^{μμ} = (γ²/2) h'(κ_μ) ∂_μκ_μ, with ∂_μκ_μ by reverse mode (one backward pass per
          coordinate on one graph); inside ``torch.compile`` instead by N forward-mode passes, tangent e_μ in every
          row, which for N ≤ ``FUSED_GRAD_MAX_N`` and a batched loss also carry H̄ (the factors then hold ∇H̄,
          ``Factors.loss_grad``) — one fusable program, where eager forward mode costs more than reverse mode;
        * full κ = Q diag(λ) Qᵀ: by Daleckii–Krein, Σ_ν ∂_ν D^{μν} = (γ²/2) Σ_ab Q_μa L_ab v_aᵀ (∂_{v_b} κ) v_b with
          L the divided differences of h (:func:`matrix_function_derivative`) and ∂_{v_b} the derivative along
          eigenvector v_b of each walker — N forward-mode (dual number) passes of κ, no N×N×N tensor.
        """
        n = q.shape[-1]
        if self._kappa_full is not True and torch.compiler.is_compiling():
            diagonal = self._diagonal_jets(q.detach())
            if diagonal is not None:
                k, dk, grad = diagonal
                f = self._factors_of(k)
                f.loss_grad = grad
                _, dh = self._h_and_slope(f.lam)
                return f, dh.mul_(dk).mul_(0.5 * self.gamma**2)
        if self._kappa_full is not True:
            x = q.detach().requires_grad_(True)
            with torch.enable_grad():
                k = self.kappa_at(x)
                self._kappa_full = k.ndim == 3
                if k.ndim == 2:
                    cols = []
                    for mu in range(n):
                        (g,) = torch.autograd.grad(
                            k[:, mu].sum(), x, retain_graph=mu < n - 1, allow_unused=True, materialize_grads=True
                        )
                        cols.append(g[:, mu])
                    f = self._factors_of(k.detach())
                    _, dh = self._h_and_slope(f.lam)
                    return f, 0.5 * self.gamma**2 * dh * torch.stack(cols, dim=-1)
        x = q.detach()
        f = self._factors_of(self.kappa_at(x))
        h, dh = self._h_and_slope(f.lam)
        assert f.vecs is not None
        columns = []
        with _quiet_forward_ad(), fwAD.dual_level():
            for b in range(n):
                v_b = f.vecs[..., :, b].contiguous()
                dk = fwAD.unpack_dual(self.kappa(fwAD.make_dual(x, v_b))).tangent
                if dk is None:
                    columns.append(torch.zeros_like(x))
                    continue
                dk = dk.to(x.dtype)
                dk_vb = 0.5 * ((dk @ v_b.unsqueeze(-1)) + (dk.mT @ v_b.unsqueeze(-1)))  # symmetric part of ∂κ, (P,N,1)
                columns.append((f.vecs.mT @ dk_vb).squeeze(-1))  # v_aᵀ (∂_{v_b}κ) v_b for all a
        rotated = torch.stack(columns, dim=-1)  # (P, a, b)
        L = divided_differences(f.lam, h, dh)
        in_eigenbasis = (L * rotated).sum(-1)  # Σ_b L_ab (…)_ab
        return f, 0.5 * self.gamma**2 * (f.vecs @ in_eigenbasis.unsqueeze(-1)).squeeze(-1)

    def _diagonal_jets(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """(κ(x), ∂_μκ_μ(x), ∇H̄(x) or None) for a diagonal κ by N dual-number passes, tangent e_μ in every row
        (κ acts row by row, so the tangent of κ_μ is ∂_μκ_μ); None, remembered, when κ turns out full.

        ∇H̄ rides along (tangent of H̄ = ∂_μH̄) for a batched ``loss`` without analytic ``grad`` when N ≤
        ``FUSED_GRAD_MAX_N``; otherwise the drift takes it by reverse mode as before.
        """
        n = x.shape[-1]
        with_loss = self.grad is None and not self.per_sample and self.loss is not None and n <= FUSED_GRAD_MAX_N
        k, dk_cols, grad_cols = x, [], []
        with _quiet_forward_ad(), fwAD.dual_level():
            for mu in range(n):
                tangent = torch.zeros_like(x)
                tangent[:, mu] = 1.0
                dual = fwAD.make_dual(x, tangent)
                k, dk = fwAD.unpack_dual(self.kappa_at(dual))
                if k.ndim == 3:
                    self._kappa_full = True
                    return None
                dk_cols.append(torch.zeros_like(x[:, mu]) if dk is None else dk[:, mu])
                if with_loss:
                    assert self.loss is not None
                    value, dvalue = fwAD.unpack_dual(self.loss(dual))
                    if value.shape != x.shape[:1]:
                        raise ValueError(
                            f"a batched loss must map (P, N) to (P,), got {tuple(value.shape)}; see per_sample"
                        )
                    grad_cols.append(torch.zeros_like(x[:, mu]) if dvalue is None else dvalue.to(x.dtype))
        self._kappa_full = False
        grad = torch.stack(grad_cols, dim=-1) if with_loss else None
        return k, torch.stack(dk_cols, dim=-1).to(x.dtype), grad

    def drift_and_factors(self, q: Tensor, ito: bool = True) -> tuple[Tensor, Factors]:
        """(drift of (2.7), factors at q), evaluating κ(q) once: −γ g⁻¹∇H̄ (+ ∂_ν D^{μν} when ``ito``)."""
        if not (ito and self.kappa_is_callable):
            f = self.factors(q)
            return self.gradient_drift(q, f), f
        if self.divergence is not None:
            f = self.factors(q)
            return self.gradient_drift(q, f) + self.divergence(q), f
        f, div = self._factors_and_ito(q)
        return self.gradient_drift(q, f).add_(div), f

    def ito_drift(self, q: Tensor) -> Tensor:
        """∂_ν D^{μν}(q) (2.7): the drift a Langevin walker needs to sample the gradient-form Fokker–Planck equation.

        Zero for constant κ. Otherwise the analytic ``divergence`` if given, else by automatic differentiation of
        κ(q) and the chain rule through D = (γ²/2) h(κ), h(λ) = λ/f(λ)²: elementwise for diagonal κ,
        Daleckii–Krein in κ's eigenbasis for full κ (see :meth:`_factors_and_ito`).
        """
        if not self.kappa_is_callable:
            return torch.zeros_like(q)
        if self.divergence is not None:
            return self.divergence(q)
        return self._factors_and_ito(q)[1]

    def drift(self, q: Tensor, ito: bool = True) -> Tensor:
        """The SDE drift of (2.7): −γ g⁻¹∇H̄ + ∂_ν D^{μν} (the Itô drift is left out when ``ito`` is False)."""
        return self.drift_and_factors(q, ito)[0]

    def __repr__(self) -> str:
        k = "κ(q)" if self.kappa_is_callable else f"κ{tuple(self._kappa_const.shape)}"
        return f"LearningModel(metric={self.metric!r}, gamma={self.gamma:g}, {k})"

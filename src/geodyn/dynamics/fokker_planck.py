"""Conservative finite-volume solvers of the Fokker–Planck equation (2.7) on 1-D and 2-D grids.

    ∂_t p = ∂_μ [ γ g^{μν} p ∂_ν H̄ + D^{μν} ∂_ν p ],   D = (γ²/2) g⁻¹κg⁻¹,   g = f(κ(q))          (2.7)

(with g = κ this is (3.1); with g = I it is (4.12)). Written as ∂_t p = −∂_μ J^μ with the flux
J = v p − D ∇p, v = −γ g⁻¹∇H̄ (:meth:`LearningModel.gradient_drift`); the fields are evaluated at cell faces.

Discretisation (cell averages p_c on a uniform grid, dp/dt = A p with a sparse generator A):

* **Drift + the diagonal part of D** across each face: the Scharfetter–Gummel (exponentially fitted) flux
  J = (D/h) [B(−Pe) p_L − B(Pe) p_R], Pe = v h / D, B(z) = z/(eᶻ − 1). It is exact for a constant-coefficient
  1-D flux, second order for smooth fields, reduces to central differences for Pe → 0 and to upwinding for
  |Pe| → ∞ (D = 0 is allowed: pure upwinding), and its coefficients are nonnegative for every Pe. Chosen over
  plain upwinding (first order) and central differencing (negative coefficients for |Pe| > 2).
* **Off-diagonal D** (2-D): the cross flux −D_xy ∂_y p at an x-face (and −D_xy ∂_x p at a y-face) uses the
  average of two one-sided differences in the neighbouring cells, picked by the sign of D_xy so that the
  resulting 9-point stencil puts positive weight on the diagonal (D_xy > 0) or anti-diagonal (D_xy < 0)
  neighbours — the classical positive-coefficient stencil for mixed derivatives, second order. Its axis
  neighbours get negative weights ≈ −|D_xy|/(hx hy), which the face's own coupling (D_xx/hx)·B(∓Pe)/hx must
  outweigh for the generator to stay monotone.
* **Positivity enforcement** (2-D, ``positivity="enforce"``, the default): where a face's Scharfetter–Gummel
  coupling cannot outweigh the cross terms — high Péclet numbers, where B(Pe) ~ Pe·e^{−Pe} — the least
  extra normal diffusion δ·h that restores nonnegative couplings is added at that face (a_L, a_R += δ, which
  keeps a_L − a_R = v). Since Pe = v h/D → 0 under refinement this switches itself off on fine grids (second
  order is kept; it acts in the far tails where p is tiny); ``limited_faces`` counts the faces touched. It is
  *not* consistent where even B = 1 does not suffice, i.e. where |D_xy| > D_xx hy/hx or > D_yy hx/hy (the grid
  aspect ratio must be chosen with hy/hx ≈ √(D_yy/D_xx)); such faces are counted in ``inconsistent_faces`` and
  warned about. ``positivity="none"`` keeps the plain scheme and warns if it is not monotone.
* Near a no-flux wall a cross-term one-sided difference that would leave the domain is taken as 0 (mirror
  ghost cell). **Boundaries**: no-flux (the wall faces carry no flux) or periodic (the last and first cells
  share a face, fields evaluated at the upper edge), per axis.

Properties, by construction: every face flux leaves one cell and enters its neighbour, so the columns of A sum
to 0 and the mass Σ p_c |cell| is conserved by the time steppers up to round-off (the diagonal is set to minus
the off-diagonal column sum). With all off-diagonal entries of A ≥ 0 (``monotone``; always in 1-D and, with
enforcement, in 2-D) A is a Metzler matrix: I − dt·A is an M-matrix for every dt, so backward Euler keeps
p ≥ 0 for any step, and the stationary density is the positive Perron vector of A. The sparse LU
factorisations use diagonal pivots with a symmetric ordering, so the factors keep the M-matrix sign pattern
and the triangular solves add only nonnegative terms: p ≥ 0 holds in floating point too (for the stationary
solve the pinned cell is a maximum of p, which keeps the pivots away from cancellation). Crank–Nicolson is
second order in time but keeps p ≥ 0 only for dt ≤ 2/max|A_cc| (a warning is issued otherwise).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from geodyn.dynamics.langevin import _resolve_model
from geodyn.dynamics.model import LearningModel, TensorFn
from geodyn.metric import MetricLaw

__all__ = ["FokkerPlanck1D", "FokkerPlanck2D", "GridSolution", "bernoulli", "scharfetter_gummel"]

_BOUNDARIES = ("no-flux", "periodic")


def bernoulli(z: np.ndarray) -> np.ndarray:
    """The Bernoulli function of the Scharfetter–Gummel flux for (2.7): B(z) = z / (eᶻ − 1), B(0) = 1 (series near
    0), B(z) → 0 for z → +∞ and ≈ −z for z → −∞."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    small = np.abs(z) < 1e-5
    zs = z[small]
    out[small] = 1.0 - zs / 2.0 + zs * zs / 12.0
    zb = z[~small]
    with np.errstate(over="ignore"):
        out[~small] = zb / np.expm1(zb)
    return out


def scharfetter_gummel(v: np.ndarray, d: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Face coefficients (a_L, a_R) ≥ 0 of the Scharfetter–Gummel flux J = a_L p_L − a_R p_R of J = v p − D ∂p,
    the flux of (2.7) across one face (v = −γ g⁻¹∇H̄ normal component, D the normal diffusion coefficient).

    a_L − a_R = v exactly (B(−z) − B(z) = z); D = 0 gives upwinding, v = 0 gives D/h (p_L − p_R).
    """
    v = np.asarray(v, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if np.any(d < 0):
        raise ValueError("the diffusion coefficient across a face must be >= 0")
    pos = d > 0
    pe = np.where(pos, v * h / np.where(pos, d, 1.0), 0.0)
    a_left = np.where(pos, d / h * bernoulli(-pe), np.maximum(v, 0.0))
    a_right = np.where(pos, d / h * bernoulli(pe), np.maximum(-v, 0.0))
    return a_left, a_right


@dataclass
class GridSolution:
    """Solutions p(q, t) of (2.7): densities ``p`` (T, *grid shape) at ``times`` (T,) from ``evolve``."""

    times: np.ndarray
    p: np.ndarray


class _Assembler:
    """COO triplets of the generator: a face flux F = Σ w_k p_k leaves cell L and enters cell R."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def flux(self, left: np.ndarray, right: np.ndarray, cell: np.ndarray, weight: np.ndarray, h: float) -> None:
        """Add a flux term weight·p[cell] across faces (left → right) of width h."""
        self.rows += [left, right]
        self.cols += [cell, cell]
        self.vals += [-weight / h, weight / h]

    def matrix(self, n: int, fix_diagonal: bool = True) -> sp.csr_matrix:
        a = sp.coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))), shape=(n, n)
        ).tocsr()
        a.sum_duplicates()
        if not fix_diagonal:
            return a
        off = (a - sp.diags(a.diagonal())).tocsr()
        # Off-diagonal entries that cancel to round-off (|x| ≤ 1e-12 of the column's largest) are set to 0 …
        scale = np.asarray(abs(off).max(axis=0).todense()).ravel()
        coo = off.tocoo()
        coo.data[np.abs(coo.data) <= 1e-12 * scale[coo.col]] = 0.0
        off = coo.tocsr()
        off.eliminate_zeros()
        # … and conservation fixes the diagonal: minus the off-diagonal column sum (columns of A sum to 0).
        col = np.asarray(off.sum(axis=0)).ravel()
        return (off - sp.diags(col)).tocsr()


def _splu(m: sp.spmatrix) -> spla.SuperLU:
    # Diagonal pivots with a symmetric ordering: for an M-matrix this is stable and sign-preserving.
    return spla.splu(
        sp.csc_matrix(m), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )


class _FiniteVolume:
    """Shared machinery: generator, time stepping, stationary solve, mass and moments."""

    generator: sp.csr_matrix
    shape: tuple[int, ...]
    cell_volume: float

    def _finish_setup(self) -> None:
        a = self.generator
        off = (a - sp.diags(a.diagonal())).tocoo()
        self.min_offdiagonal = float(off.data.min()) if off.nnz else 0.0
        self.monotone = self.min_offdiagonal >= 0.0
        if not self.monotone:
            warnings.warn(
                f"Fokker–Planck generator has a negative off-diagonal entry ({self.min_offdiagonal:.3g}): "
                "positivity is not guaranteed; refine the grid or set hy/hx ≈ sqrt(D_yy/D_xx)",
                stacklevel=3,
            )

    # -- densities --------------------------------------------------------------------------------------
    def _flat(self, p) -> np.ndarray:
        if callable(p):
            p = p(*self.centres) if isinstance(self.centres, tuple) else p(self.centres)
        arr = np.asarray(p, dtype=np.float64)
        if arr.size != self.generator.shape[0]:
            raise ValueError(f"density has {arr.size} values for a grid of shape {self.shape}")
        return arr.reshape(-1).copy()

    def mass(self, p) -> float:
        """∫ p dq = Σ p_c |cell| (conserved by the solver)."""
        return float(np.sum(p) * self.cell_volume)

    def normalize(self, p) -> np.ndarray:
        """p evaluated on the cell centres (array or callable of the centre coordinates), scaled to mass 1."""
        flat = self._flat(p)
        if np.any(flat < 0) or not np.all(np.isfinite(flat)):
            raise ValueError("a density must be finite and >= 0")
        return (flat / (flat.sum() * self.cell_volume)).reshape(self.shape)

    # -- time stepping ----------------------------------------------------------------------------------
    def evolve(
        self,
        p0,
        t_final: float,
        dt: float,
        scheme: str = "backward_euler",
        save_at: Sequence[float] | None = None,
    ) -> GridSolution:
        """Integrate (2.7) from density p0 (array or callable on the centres; not renormalised) to ``t_final``.

        ``scheme``: ``"backward_euler"`` (first order, positivity for every dt, default — for stiff problems) or
        ``"crank_nicolson"`` (second order; positive for dt ≤ 2/max|A_cc|). The step is dt shrunk so that an
        integer number of steps reaches t_final; ``save_at`` times are rounded to the nearest step (default:
        the initial and the final time).
        """
        if scheme not in ("backward_euler", "crank_nicolson"):
            raise ValueError(f"scheme must be 'backward_euler' or 'crank_nicolson', got {scheme!r}")
        if not (t_final >= 0 and math.isfinite(t_final)):
            raise ValueError(f"t_final must be a finite number >= 0, got {t_final!r}")
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        n_steps = max(1, math.ceil(t_final / dt - 1e-9)) if t_final > 0 else 0
        h = t_final / n_steps if n_steps else 0.0
        times = [0.0, t_final] if save_at is None else list(save_at)
        save = sorted({min(n_steps, max(0, round(t / h))) if h else 0 for t in times})
        p = self._flat(p0)
        eye = sp.identity(p.size, format="csr")
        if scheme == "backward_euler":
            lu = _splu(eye - h * self.generator) if n_steps else None
            rhs = None
        else:
            diag_max = float(np.abs(self.generator.diagonal()).max())
            if h * diag_max > 2.0:
                warnings.warn(
                    f"Crank–Nicolson with dt·max|A_cc| = {h * diag_max:.3g} > 2 does not guarantee p >= 0",
                    stacklevel=2,
                )
            lu = _splu(eye - 0.5 * h * self.generator) if n_steps else None
            rhs = (eye + 0.5 * h * self.generator).tocsr()
        out_t, out_p = [], []
        if 0 in save:
            out_t.append(0.0)
            out_p.append(p.reshape(self.shape).copy())
        for k in range(1, n_steps + 1):
            p = lu.solve(p if rhs is None else rhs @ p)
            if k in save:
                out_t.append(k * h)
                out_p.append(p.reshape(self.shape).copy())
        return GridSolution(times=np.asarray(out_t), p=np.stack(out_p))

    # -- stationary state -------------------------------------------------------------------------------
    def stationary(self) -> np.ndarray:
        """The stationary density of (2.7): the normalised null vector of the generator, A p = 0, ∫p = 1.

        Solved as the nonsingular M-matrix system left when one cell's value is pinned, factorised with diagonal
        pivots: the triangular factors then have the M-matrix sign pattern and the substitutions only add positive
        numbers, so p ≥ 0 in floating point. The pinned cell is a maximum of p (found by shifted inverse iteration
        and refined), which keeps that system well conditioned.
        """
        a = self.generator.tocsc()
        n = a.shape[0]
        keep = np.ones(n, dtype=bool)

        def solve(k: int) -> np.ndarray:
            keep[:] = True
            keep[k] = False
            idx = np.flatnonzero(keep)
            sub = -a[idx][:, idx]
            rhs = np.asarray(a[idx, k].todense()).ravel()
            x = np.empty(n)
            x[idx] = _splu(sub).solve(rhs)
            x[k] = 1.0
            return x

        # Pin a cell where p is large: pinning a far-tail cell leaves a nearly singular system whose elimination
        # cancels. A few shifted inverse iterations, (σI − A)⁻¹ with σ = 1e-3·max|A_cc| (a strictly dominant
        # M-matrix), locate the bulk of p; the pin moves to the maximum of the solution until it stays.
        shift = 1e-3 * float(np.abs(a.diagonal()).max())
        resolvent = _splu(shift * sp.identity(n, format="csc") - a)
        x = np.ones(n)
        for _ in range(3):
            x = resolvent.solve(x)
            x /= x.max()
        k = int(np.argmax(x))
        p = solve(k)
        for _ in range(3):
            top = int(np.argmax(p))
            if p[top] <= 2.0 * p[k]:
                break
            k = top
            p = solve(k)
        if not (np.all(np.isfinite(p)) and p.min() >= 0.0):
            warnings.warn(
                f"stationary solve lost positivity (min {p.min():.3g}); is the generator monotone?", stacklevel=2
            )
        return (p / (p.sum() * self.cell_volume)).reshape(self.shape)

    def residual(self, p) -> float:
        """max |A p| / max |A| |p|: how far p is from stationary (dimensionless)."""
        flat = self._flat(p)
        return float(np.abs(self.generator @ flat).max() / (abs(self.generator) @ np.abs(flat)).max())


def _faces(n: int, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    left = np.arange(n - 1)
    right = left + 1
    if periodic:
        left, right = np.append(left, n - 1), np.append(right, 0)
    return left, right


def _check_boundary(b: str) -> str:
    if b not in _BOUNDARIES:
        raise ValueError(f"boundary must be one of {_BOUNDARIES}, got {b!r}")
    return b


def _fields(model: LearningModel, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float64))
    with torch.no_grad():
        v = model.gradient_drift(q)
    d = model.diffusion(q)
    return v.detach().cpu().numpy(), d.detach().cpu().numpy()


class FokkerPlanck1D(_FiniteVolume):
    """Finite-volume solver of the 1-D Fokker–Planck equation (2.7) ∂_t p = ∂_q[γ g⁻¹ p ∂_qH̄ + D ∂_q p].

    Covers (3.1) (metric ``Power(1)``: stationary p ∝ exp(−2H̄/γ)) and (4.12) (``Power(0)``). Scharfetter–Gummel
    fluxes, no-flux or periodic boundary; see the module docstring for the scheme and its guarantees.

    Args:
        loss, grad, metric, kappa, gamma, divergence, per_sample, model: the model, as for
            :class:`~geodyn.dynamics.LangevinEnsemble` with N = 1 (q has shape (P, 1)).
        domain: (a, b).
        n: number of cells (width h = (b − a)/n, centres a + (i + ½) h).
        boundary: ``"no-flux"`` (default) or ``"periodic"``.

    Attributes: ``centres`` (n,), ``edges`` (n + 1,), ``h``, ``generator`` (sparse, dp/dt = A p), ``monotone``
    (always True in 1-D), ``min_offdiagonal``. Methods: :meth:`evolve`, :meth:`stationary`, :meth:`normalize`,
    :meth:`mass`, :meth:`moments`, :meth:`residual`.
    """

    def __init__(
        self,
        loss: TensorFn | None = None,
        *,
        grad: TensorFn | None = None,
        metric: MetricLaw | None = None,
        kappa: float | torch.Tensor | TensorFn = 1.0,
        gamma: float | None = None,
        divergence: TensorFn | None = None,
        per_sample: bool = False,
        model: LearningModel | None = None,
        domain: tuple[float, float],
        n: int,
        boundary: str = "no-flux",
    ):
        self.model = _resolve_model(model, loss, grad, metric, kappa, gamma, divergence, per_sample)
        a, b = float(domain[0]), float(domain[1])
        if not b > a:
            raise ValueError(f"domain must be (a, b) with b > a, got {domain!r}")
        if int(n) < 2:
            raise ValueError(f"n must be >= 2 cells, got {n!r}")
        self.n = int(n)
        self.boundary = _check_boundary(boundary)
        self.h = (b - a) / self.n
        self.domain = (a, b)
        self.edges = a + self.h * np.arange(self.n + 1)
        self.centres = a + self.h * (np.arange(self.n) + 0.5)
        self.shape = (self.n,)
        self.cell_volume = self.h
        left, right = _faces(self.n, self.boundary == "periodic")
        face_x = self.edges[1:][left]  # the face right of `left` (for periodic, x = b)
        v, d = _fields(self.model, face_x[:, None])
        a_left, a_right = scharfetter_gummel(v[:, 0], d[:, 0, 0], self.h)
        asm = _Assembler()
        asm.flux(left, right, left, a_left, self.h)
        asm.flux(left, right, right, -a_right, self.h)
        self.generator = asm.matrix(self.n)
        self.limited_faces = self.inconsistent_faces = 0  # no cross terms in 1-D
        self._finish_setup()

    def moments(self, p) -> tuple[float, float]:
        """(mean, variance) of a density on the grid (midpoint rule)."""
        w = np.asarray(p).reshape(-1) * self.h
        mean = float(w @ self.centres)
        return mean, float(w @ (self.centres - mean) ** 2)


class FokkerPlanck2D(_FiniteVolume):
    """Finite-volume solver of the 2-D Fokker–Planck equation (2.7) with a full tensor D(q) and drift.

    ∂_t p = ∂_μ[γ g^{μν} p ∂_νH̄ + D^{μν} ∂_ν p], μ, ν ∈ {x, y}, including the off-diagonal terms D^{xy};
    covers (3.1) and (4.12) as special metrics. Scheme, boundaries and guarantees: module docstring.

    Args:
        loss, grad, metric, kappa, gamma, divergence, per_sample, model: the model with N = 2.
        domain: ((ax, bx), (ay, by)).
        shape: (nx, ny) cells.
        boundary: ``"no-flux"`` or ``"periodic"``, or one per axis.
        positivity: ``"enforce"`` (default: least extra diffusion at high-Péclet faces so that A stays monotone)
            or ``"none"`` (plain scheme; warns when not monotone). See the module docstring.

    Attributes: ``centres`` (X, Y) meshgrids (indexing "ij", shape (nx, ny)), ``axes`` (cx, cy), ``edges``
    (ex, ey), ``hx``, ``hy``, ``generator`` (sparse, C-order flattening of (nx, ny)), ``monotone``,
    ``min_offdiagonal``, ``limited_faces``, ``inconsistent_faces``. Methods as :class:`FokkerPlanck1D`.
    """

    def __init__(
        self,
        loss: TensorFn | None = None,
        *,
        grad: TensorFn | None = None,
        metric: MetricLaw | None = None,
        kappa: float | torch.Tensor | TensorFn = 1.0,
        gamma: float | None = None,
        divergence: TensorFn | None = None,
        per_sample: bool = False,
        model: LearningModel | None = None,
        domain: tuple[tuple[float, float], tuple[float, float]],
        shape: tuple[int, int],
        boundary: str | tuple[str, str] = "no-flux",
        positivity: str = "enforce",
    ):
        self.model = _resolve_model(model, loss, grad, metric, kappa, gamma, divergence, per_sample)
        (ax, bx), (ay, by) = ((float(u), float(w)) for u, w in domain)
        nx, ny = (int(s) for s in shape)
        if not (bx > ax and by > ay):
            raise ValueError(f"domain must be ((ax, bx), (ay, by)) with increasing bounds, got {domain!r}")
        if not (nx >= 2 and ny >= 2):
            raise ValueError(f"shape must have at least 2 cells per axis, got {shape!r}")
        if positivity not in ("enforce", "none"):
            raise ValueError(f"positivity must be 'enforce' or 'none', got {positivity!r}")
        bnd = (boundary, boundary) if isinstance(boundary, str) else tuple(boundary)
        self.boundary = tuple(_check_boundary(b) for b in bnd)
        self.shape = (nx, ny)
        self.domain = ((ax, bx), (ay, by))
        self.hx, self.hy = (bx - ax) / nx, (by - ay) / ny
        self.cell_volume = self.hx * self.hy
        ex, ey = ax + self.hx * np.arange(nx + 1), ay + self.hy * np.arange(ny + 1)
        self.edges = (ex, ey)
        cx, cy = ax + self.hx * (np.arange(nx) + 0.5), ay + self.hy * (np.arange(ny) + 0.5)
        self.axes = (cx, cy)
        self.centres = tuple(np.meshgrid(cx, cy, indexing="ij"))
        periodic = tuple(b == "periodic" for b in self.boundary)

        def index(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return i * ny + j

        def shift(i: np.ndarray, j: np.ndarray, axis: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """Cell (i, j) moved by `step` along `axis`: (i', j', valid)."""
            i2, j2 = i.copy(), j.copy()
            if axis == 0:
                i2 = i + step
                valid = (i2 >= 0) & (i2 < nx)
                i2 = i2 % nx if periodic[0] else np.clip(i2, 0, nx - 1)
                valid = np.ones_like(valid) if periodic[0] else valid
            else:
                j2 = j + step
                valid = (j2 >= 0) & (j2 < ny)
                j2 = j2 % ny if periodic[1] else np.clip(j2, 0, ny - 1)
                valid = np.ones_like(valid) if periodic[1] else valid
            return i2, j2, valid

        faces = []
        cross = _Assembler()
        for axis, (h_ax, h_other, n_ax) in enumerate(((self.hx, self.hy, nx), (self.hy, self.hx, ny))):
            lo, hi = _faces(n_ax, periodic[axis])
            other = np.arange(ny if axis == 0 else nx)
            # face k between cells (lo[k], o) and (hi[k], o) along `axis`, for every o along the other axis
            a_lo, o = (g.ravel() for g in np.meshgrid(lo, other, indexing="ij"))
            a_hi = np.meshgrid(hi, other, indexing="ij")[0].ravel()
            if axis == 0:
                iL, jL, iR, jR = a_lo, o, a_hi, o
                pts = np.stack([ex[1:][a_lo], cy[o]], axis=1)
            else:
                iL, jL, iR, jR = o, a_lo, o, a_hi
                pts = np.stack([cx[o], ey[1:][a_lo]], axis=1)
            v, d = _fields(self.model, pts)
            L, R = index(iL, jL), index(iR, jR)
            faces.append((L, R, h_ax, v[:, axis], d[:, axis, axis]))
            # cross flux −D^{ab} ∂_b p (b the other axis) with the sign-dependent positive-coefficient stencil:
            # c ≥ 0: ∂_b p ≈ ½[(p_R(+1) − p_R) + (p_L − p_L(−1))];  c < 0: ½[(p_R − p_R(−1)) + (p_L(+1) − p_L)]
            c = d[:, 0, 1] if axis == 0 else d[:, 1, 0]
            w = -c / (2.0 * h_other)
            pos = c >= 0
            for cell_i, cell_j, fwd_when_pos in ((iR, jR, True), (iL, jL, False)):
                ip, jp, vp = shift(cell_i, cell_j, 1 - axis, +1)
                im, jm, vm = shift(cell_i, cell_j, 1 - axis, -1)
                base, plus_cell, minus_cell = index(cell_i, cell_j), index(ip, jp), index(im, jm)
                use_fwd = pos if fwd_when_pos else ~pos
                fwd, bwd = use_fwd & vp, ~use_fwd & vm  # a difference leaving a no-flux wall is 0 (mirror)
                cross.flux(L[fwd], R[fwd], plus_cell[fwd], w[fwd], h_ax)
                cross.flux(L[fwd], R[fwd], base[fwd], -w[fwd], h_ax)
                cross.flux(L[bwd], R[bwd], base[bwd], w[bwd], h_ax)
                cross.flux(L[bwd], R[bwd], minus_cell[bwd], -w[bwd], h_ax)
        n_cells = nx * ny
        cross_matrix = cross.matrix(n_cells, fix_diagonal=False)
        asm = cross
        self.limited_faces = 0
        self.inconsistent_faces = 0
        for L, R, h_ax, v_ax, d_ax in faces:
            # drift + D^{aa} ∂_a p: Scharfetter–Gummel, plus the least extra diffusion δ that keeps the two
            # neighbour couplings A[L, R] = a_R/h and A[R, L] = a_L/h nonnegative against the cross terms
            a_left, a_right = scharfetter_gummel(v_ax, d_ax, h_ax)
            need_right = np.maximum(0.0, -np.asarray(cross_matrix[L, R]).ravel()) * h_ax
            need_left = np.maximum(0.0, -np.asarray(cross_matrix[R, L]).ravel()) * h_ax
            if positivity == "enforce":
                delta = np.maximum(0.0, np.maximum(need_right - a_right, need_left - a_left))
                self.limited_faces += int(np.count_nonzero(delta))
                self.inconsistent_faces += int(np.count_nonzero(np.maximum(need_left, need_right) > d_ax / h_ax))
                a_left, a_right = a_left + delta, a_right + delta
            asm.flux(L, R, L, a_left, h_ax)
            asm.flux(L, R, R, -a_right, h_ax)
        if self.inconsistent_faces:
            warnings.warn(
                f"{self.inconsistent_faces} faces have |D_xy| above what the grid aspect ratio allows "
                "(|D_xy| ≤ D_xx hy/hx and ≤ D_yy hx/hy); the diffusion added there to keep p ≥ 0 does not vanish "
                "under refinement — choose hy/hx ≈ sqrt(D_yy/D_xx)",
                stacklevel=2,
            )
        self.generator = asm.matrix(n_cells)
        self._finish_setup()

    def moments(self, p) -> tuple[np.ndarray, np.ndarray]:
        """(mean (2,), covariance (2, 2)) of a density on the grid (midpoint rule)."""
        w = np.asarray(p).reshape(self.shape) * self.cell_volume
        x, y = self.centres
        mean = np.array([np.sum(w * x), np.sum(w * y)])
        dx, dy = x - mean[0], y - mean[1]
        cov = np.array([[np.sum(w * dx * dx), np.sum(w * dx * dy)], [np.sum(w * dx * dy), np.sum(w * dy * dy)]])
        return mean, cov

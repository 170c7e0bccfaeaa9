"""Periodic grids, metric (and noise-covariance) fields sampled on them, and the divergence-form operators of
(3.9), (3.11) and (5.3).

Arrays: every field on a grid is a numpy array, float64 for p, θ, V, Q and metric components, complex128 for ψ,
indexed ``[i, j, …]`` like ``np.meshgrid(..., indexing="ij")``. The quantum module is a grid code built on FFTs
and sparse LU factorisations (numpy.fft, scipy.sparse), like :mod:`geodyn.dynamics.fokker_planck`; torch enters
only where a loss or κ is a torch function (exact derivatives of H̄ by autograd in
:func:`geodyn.quantum.madelung.effective_potential`, metric laws of :mod:`geodyn.metric`).

Grid: nodes x_j = a + j h, j = 0 … n − 1, h = (b − a)/n, periodic (x_n ≡ a). Faces sit at x_j + h/2.

Tensor fields (metric g_{μν}(q), noise covariance κ_{μν}(q)) are given as

* ``None`` — the identity; a number c — c·I (constant);
* a callable of the node coordinates ``f(*coords)`` (numpy or torch operations) returning one array of the grid
  shape, c(q)·I (the field itself in 1-D, conformally flat in N-D); in N-D also a sequence of N arrays (the diagonal
  g_{μμ}) or an array of shape (N, *shape) (diagonal) or (N, N, *shape) (full);
* such arrays directly.

A callable is also evaluated at the faces (exact face coefficients for the conservative second-order stencil);
for arrays the face values are the mean of the two neighbouring nodes (second order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Grid",
    "TensorField",
    "as_field",
    "call_field",
    "div_grad",
    "laplace_beltrami",
    "laplace_beltrami_coefficient",
    "metric_from_law",
    "spectral_gradient",
]

SCHEMES = ("fd2", "spectral")


@dataclass(frozen=True)
class Grid:
    """A uniform periodic grid on a box [a₁, b₁) × … (1-D or N-D), the q-space of (3.1)–(3.14).

    Args:
        domain: (a, b) in 1-D, or a sequence of (a, b) per axis.
        shape: number of nodes per axis (an int in 1-D).
    """

    domain: Any
    shape: Any
    spacing: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        dom = self.domain
        if len(dom) == 2 and all(np.isscalar(v) for v in dom):
            dom = (dom,)
        dom = tuple((float(a), float(b)) for a, b in dom)
        shape = (self.shape,) if np.isscalar(self.shape) else tuple(self.shape)
        shape = tuple(int(n) for n in shape)
        if len(shape) != len(dom):
            raise ValueError(f"domain has {len(dom)} axes but shape has {len(shape)}")
        if any(b <= a for a, b in dom):
            raise ValueError(f"each axis needs a < b, got {dom}")
        if any(n < 4 for n in shape):
            raise ValueError(f"each axis needs at least 4 nodes, got {shape}")
        object.__setattr__(self, "domain", dom)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", tuple((b - a) / n for (a, b), n in zip(dom, shape)))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def lengths(self) -> tuple[float, ...]:
        return tuple(b - a for a, b in self.domain)

    @property
    def cell_volume(self) -> float:
        return math.prod(self.spacing)

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """Node coordinates x_j = a + j h per axis."""
        return tuple(a + h * np.arange(n) for (a, _), h, n in zip(self.domain, self.spacing, self.shape))

    @property
    def coords(self) -> tuple[np.ndarray, ...]:
        """Node coordinates as ``meshgrid(..., indexing="ij")`` arrays of the grid shape."""
        return tuple(np.meshgrid(*self.axes, indexing="ij"))

    def face_coords(self, axis: int) -> tuple[np.ndarray, ...]:
        """Coordinates of the faces x_j + h/2 along ``axis`` (node coordinates on the other axes)."""
        axes = list(self.axes)
        axes[axis] = axes[axis] + 0.5 * self.spacing[axis]
        return tuple(np.meshgrid(*axes, indexing="ij"))

    @property
    def wavenumbers(self) -> tuple[np.ndarray, ...]:
        """Angular wavenumbers k_μ = 2π·fftfreq(n, h), broadcastable to the grid shape."""
        out = []
        for ax, (n, h) in enumerate(zip(self.shape, self.spacing)):
            k = 2.0 * np.pi * np.fft.fftfreq(n, d=h)
            shape = [1] * self.ndim
            shape[ax] = n
            out.append(k.reshape(shape))
        return tuple(out)

    def integrate(self, f: np.ndarray) -> float | complex:
        """∫ f dq by the rectangle rule (spectrally accurate for smooth periodic f)."""
        return np.sum(f) * self.cell_volume

    def evaluate(self, f: Callable[..., Any] | np.ndarray | float, at: tuple[np.ndarray, ...] | None = None):
        """A scalar field on the nodes (or on the coordinates ``at``): a callable of the coordinates, an array
        of the grid shape, or a number."""
        pts = self.coords if at is None else at
        if callable(f):
            out = np.asarray(call_field(f, pts), dtype=np.float64)
        else:
            out = np.asarray(f, dtype=np.float64)
        return np.broadcast_to(out, pts[0].shape).copy()


def call_field(f: Callable[..., Any], coords: tuple[np.ndarray, ...]) -> Any:
    """f(*coords) for a field written with numpy or with torch operations: numpy arrays first; if f rejects them
    (TypeError, as torch functions do), float64 torch tensors, with the result converted back to numpy."""
    try:
        return f(*coords)
    except TypeError:
        import torch

        out = f(*(torch.as_tensor(c, dtype=torch.float64) for c in coords))
        if isinstance(out, (list, tuple)):
            return [o.detach().numpy() if isinstance(o, torch.Tensor) else o for o in out]
        return out.detach().numpy() if isinstance(out, torch.Tensor) else out


# ---------------------------------------------------------------------------------------------------------------
# tensor fields
# ---------------------------------------------------------------------------------------------------------------
def _as_components(value: Any, grid: Grid) -> tuple[str, np.ndarray]:
    """('diagonal', (N, *shape)) or ('full', (N, N, *shape)) from a tensor-field value given at the grid's points."""
    n, shape = grid.ndim, grid.shape
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"a diagonal tensor field on a {n}-D grid needs {n} components, got {len(value)}")
        return "diagonal", np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for v in value])
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0 or arr.shape == shape:  # c(q)·I: the metric itself in 1-D, conformally flat in N-D
        return "diagonal", np.broadcast_to(arr, (n, *shape)).copy()
    if arr.shape == (n,):
        return "diagonal", np.broadcast_to(arr.reshape(n, *([1] * n)), (n, *shape)).copy()
    if arr.shape == (n, *shape):
        return "diagonal", arr.copy()
    if arr.shape == (n, n):
        return "full", np.broadcast_to(arr.reshape(n, n, *([1] * n)), (n, n, *shape)).copy()
    if arr.shape == (n, n, *shape):
        return "full", arr.copy()
    raise ValueError(f"a tensor field on a grid of shape {shape} cannot have shape {arr.shape}")


class TensorField:
    """A symmetric positive tensor field T_{μν}(q) on a :class:`Grid`: a metric g (2.9), a noise covariance κ (2.8),
    or a diffusion-like coefficient such as g⁻¹κg⁻¹ (5.3).

    Diagonal fields keep their components at the nodes and at the faces of every axis (for the conservative
    second-order stencil of :func:`div_grad`); full fields only at the nodes (spectral operators).

    Args:
        grid: the grid.
        value: None (identity), a number, a callable of the coordinates, or arrays (see the module docstring).
    """

    def __init__(self, grid: Grid, value: Any = None):
        self.grid = grid
        self.constant = value is None or np.isscalar(value)
        self._callable = value if callable(value) else None
        raw = 1.0 if value is None else value
        self.kind, self.nodes = _as_components(call_field(raw, grid.coords) if callable(raw) else raw, grid)
        self._faces: dict[int, np.ndarray] = {}

    @classmethod
    def from_components(
        cls, grid: Grid, nodes: np.ndarray, faces: dict[int, np.ndarray] | None = None, constant: bool = False
    ) -> TensorField:
        """A field from diagonal (N, *shape) or full (N, N, *shape) node components (and optional face values)."""
        out = cls.__new__(cls)
        out.grid, out.constant, out._callable = grid, constant, None
        out.kind, out.nodes = _as_components(nodes, grid)
        out._faces = dict(faces or {})
        return out

    @property
    def diagonal(self) -> bool:
        return self.kind == "diagonal"

    def faces(self, axis: int) -> np.ndarray:
        """Diagonal components (N, *shape) at the faces x + h/2 e_axis."""
        if not self.diagonal:
            raise ValueError("face values exist only for diagonal tensor fields")
        if axis not in self._faces:
            if self._callable is not None:
                _, comp = _as_components(call_field(self._callable, self.grid.face_coords(axis)), self.grid)
            else:
                comp = 0.5 * (self.nodes + np.roll(self.nodes, -1, axis=1 + axis))
            self._faces[axis] = comp
        return self._faces[axis]

    def at(self, where: int | None) -> np.ndarray:
        """Components at the nodes (``where=None``) or at the faces of axis ``where``."""
        return self.nodes if where is None else self.faces(where)

    # -- algebra on components -------------------------------------------------------------------------------
    def sqrt_det(self, where: int | None = None) -> np.ndarray:
        """√det T at the nodes or faces (the volume factor √g of (3.4) and of the Laplace–Beltrami operator)."""
        comp = self.at(where)
        if self.diagonal:
            return np.sqrt(np.prod(comp, axis=0))
        mat = np.moveaxis(comp, (0, 1), (-2, -1))
        return np.sqrt(np.linalg.det(mat))

    def inverse_components(self, where: int | None = None) -> np.ndarray:
        """Components of T⁻¹ (g^{μν} for a metric) at the nodes or faces."""
        comp = self.at(where)
        if self.diagonal:
            return 1.0 / comp
        mat = np.moveaxis(comp, (0, 1), (-2, -1))
        return np.moveaxis(np.linalg.inv(mat), (-2, -1), (0, 1))

    def combine(self, other: TensorField, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> TensorField:
        """Diagonal field fn(T_μμ, S_μμ) componentwise, nodes and faces."""
        if not (self.diagonal and other.diagonal):
            raise ValueError("combine is defined for diagonal fields")
        faces = {ax: fn(self.faces(ax), other.faces(ax)) for ax in range(self.grid.ndim)}
        return TensorField.from_components(
            self.grid, fn(self.nodes, other.nodes), faces, self.constant and other.constant
        )


def metric_from_law(law, kappa: Callable[..., Any] | Any) -> Callable[..., Any]:
    """g = f(κ(q)) for a diagonal κ: the callable (*coords) ↦ f(κ_μμ(q)) of a :class:`geodyn.metric.MetricLaw`
    ``law`` applied to each eigenvalue (2.9), for use as a metric field. ``kappa`` is a callable of the coordinates
    (returning an array in 1-D or a sequence of diagonal components) or a constant. Called with torch tensors (as
    :func:`geodyn.quantum.effective_potential` does for autograd) it stays in torch, so a torch-written κ keeps
    its derivatives."""
    import torch

    def apply(c):
        if isinstance(c, torch.Tensor):
            return law(c.to(torch.float64))
        return law(torch.as_tensor(np.asarray(c, dtype=np.float64))).numpy()

    def g(*coords):
        k = kappa(*coords) if callable(kappa) else kappa
        if isinstance(k, (list, tuple)):
            return [apply(c) for c in k]
        return apply(k)

    return g


# ---------------------------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------------------------
def spectral_gradient(f: np.ndarray, grid: Grid) -> list[np.ndarray]:
    """∂_μ f for every axis by FFT (exact for band-limited periodic f). Real f gives real derivatives."""
    fk = np.fft.fftn(f)
    out = []
    for ax, k in enumerate(grid.wavenumbers):
        kk = k.copy()
        if grid.shape[ax] % 2 == 0:  # the Nyquist mode has no well-defined (real) derivative: drop it
            kk.reshape(-1)[grid.shape[ax] // 2] = 0.0
        d = np.fft.ifftn(1j * kk * fk)
        out.append(d.real if np.isrealobj(f) else d)
    return out


def div_grad(f: np.ndarray, coefficient: TensorField, scheme: str = "fd2") -> np.ndarray:
    """∂_μ ( C^{μν}(q) ∂_ν f ) on the periodic grid — the divergence-form operator inside (3.9), (3.11), (5.3).

    Schemes:

    * ``"fd2"`` — the conservative second-order stencil Σ_μ [C^{μμ}_{+}(f₊ − f) − C^{μμ}_{−}(f − f₋)] / h_μ² with C
      at the faces (diagonal C only). It is the operator the Crank–Nicolson solver uses, so on its solutions V + Q
      is evaluated consistently.
    * ``"spectral"`` — flux F^μ = C^{μν} ∂_ν f and its divergence by FFT (full C allowed); spectrally accurate for
      smooth periodic f and C, the operator of the split-step solver when C is constant.
    """
    grid = coefficient.grid
    f = np.asarray(f)
    if scheme == "fd2":
        if not coefficient.diagonal:
            raise ValueError('scheme "fd2" needs a diagonal coefficient; use scheme="spectral" for a full tensor')
        out = np.zeros_like(f)
        for ax, h in enumerate(grid.spacing):
            c_plus = coefficient.faces(ax)[ax]
            c_minus = np.roll(c_plus, 1, axis=ax)
            out = out + (c_plus * (np.roll(f, -1, axis=ax) - f) - c_minus * (f - np.roll(f, 1, axis=ax))) / (h * h)
        return out
    if scheme == "spectral":
        grad = spectral_gradient(f, grid)
        n = grid.ndim
        total = np.zeros_like(f)
        for mu in range(n):
            if coefficient.diagonal:
                flux = coefficient.nodes[mu] * grad[mu]
            else:
                flux = sum(coefficient.nodes[mu, nu] * grad[nu] for nu in range(n))
            total = total + spectral_gradient(flux, grid)[mu]
        return total
    raise ValueError(f"unknown scheme {scheme!r}: expected one of {SCHEMES}")


def laplace_beltrami(f: np.ndarray, metric: TensorField, scheme: str = "fd2") -> np.ndarray:
    """∇_μ(g^{μν}∂_ν f) = (1/√g) ∂_μ(√g g^{μν} ∂_ν f), the Laplace–Beltrami operator of (3.9) and (3.11);
    in 1-D (1/√g) ∂(√g g⁻¹ ∂f)."""
    return div_grad(f, laplace_beltrami_coefficient(metric), scheme) / metric.sqrt_det()


def laplace_beltrami_coefficient(metric: TensorField) -> TensorField:
    """The coefficient √g g^{μν} of the Laplace–Beltrami operator, at the nodes (and faces for diagonal g)."""
    if metric.diagonal:
        faces = {ax: metric.sqrt_det(ax) * metric.inverse_components(ax) for ax in range(metric.grid.ndim)}
        nodes = metric.sqrt_det() * metric.inverse_components()
        return TensorField.from_components(metric.grid, nodes, faces, metric.constant)
    return TensorField.from_components(metric.grid, metric.sqrt_det() * metric.inverse_components())


def as_field(grid: Grid, value: Any) -> TensorField:
    """``value`` as a :class:`TensorField` (a TensorField is returned unchanged)."""
    if isinstance(value, TensorField):
        if value.grid != grid:
            raise ValueError("the tensor field lives on a different grid")
        return value
    return TensorField(grid, value)

"""The walker step as one ``torch.compile`` program (``LangevinEnsemble.simulate(compile=True)``).

Two programs per solver class: one takes standard normals z (M, N) (supplied noise), the other takes uniform pairs
and makes the normals itself by Box–Muller, z = √(−2 ln(1 − u₀)) (cos 2πu₁, sin 2πu₁), fused with the step.
torch's own ``randn`` transforms uniforms the same way, but for float64 on CPU element by element (≈ 3× the cost
of the uniforms); inside the fused program the transform is vectorised and nearly free, which is what lets a
compiled float64 run outpace a numpy loop. Same law, another stream: a seeded compiled run is not the seeded eager
run (they agree to round-off given the same normals, e.g. ``noise=``).

Dynamo keys the programs on the solver's and model's attributes and on the walkers' shape and dtype, so each new
model (another law, κ or loss), shape or dtype compiles again; past ``torch._dynamo.config.recompile_limit``
(8 by default) programs per process dynamo runs the step eagerly instead (same results, eager speed). The model's
κ kind (diagonal or full) is learned before the first trace so that the trace has no branch on it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["box_muller", "uniform_pairs", "compiled_step"]


def uniform_pairs(q: Tensor, generator: torch.Generator) -> Tensor:
    """Uniforms in [0, 1) of shape (2, ⌈M N / 2⌉) on q's device and dtype: the input of :func:`box_muller`."""
    return torch.rand((2, (q.numel() + 1) // 2), generator=generator, dtype=q.dtype, device=q.device)


def box_muller(u: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Independent standard normals of ``shape`` from uniform pairs u (2, ⌈n/2⌉) in [0, 1) (Box–Muller): the
    cosines fill the first half of the flattened output, the sines the second, cut to n = prod(shape)."""
    radius = torch.sqrt(-2.0 * torch.log1p(-u[0]))
    angle = (2.0 * math.pi) * u[1]
    n = math.prod(shape)
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)])[:n].reshape(shape)


def _step_from_normals(solver, model, q: Tensor, z: Tensor) -> Tensor:
    return solver.step(model, q, z)


def _step_from_uniforms(solver, model, q: Tensor, u: Tensor) -> Tensor:
    return solver.step(model, q, box_muller(u, q.shape))


_PROGRAMS: dict[bool, Callable] = {}


def compiled_step(solver, model, q: Tensor, *, uniforms: bool) -> Callable[[Tensor, Tensor], Tensor]:
    """(q, draws) ↦ the walkers after one step of ``solver``, as a compiled program; ``draws`` are standard
    normals (M, N), or with ``uniforms`` the output of :func:`uniform_pairs`."""
    if model.kappa_is_callable and model._kappa_full is None:
        with torch.no_grad():  # learn whether κ is diagonal or full outside the compiled program
            model.drift_and_factors(q[:1])
    if uniforms not in _PROGRAMS:
        _PROGRAMS[uniforms] = torch.compile(_step_from_uniforms if uniforms else _step_from_normals, dynamic=False)
    program = _PROGRAMS[uniforms]

    def step(x: Tensor, draws: Tensor) -> Tensor:
        with warnings.catch_warnings():
            # tracing forward AD scripts torch's decompositions, which warns that torch.jit.script is deprecated
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            return program(solver, model, x, draws)

    return step

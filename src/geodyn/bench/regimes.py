"""Which regime each variable of a three-regime optimizer is in (EQUATIONS.md §5, (6.9)), read from its state.

For a diagonal CGD the law acts on each parameter's K̂ = K / (1 − β₂ᵗ) (one variable per coordinate); for a KronCGD
matrix with the adaptive spectrum, on the rotated moment (one variable per eigen-coordinate); with the Kronecker
spectrum, on the Kronecker eigenvalues. Each variable's regime is that of the dominant term of g (slow: ε, the
intermediate √λ, fast: ζλ); the shares say whether the optimizer actually used its intermediate band.
"""

from __future__ import annotations

import torch

from geodyn.metric import ScaleFreeThreeRegime, ThreeRegime

__all__ = ["regime_shares"]


def _moments(opt: torch.optim.Optimizer, group: dict) -> list[torch.Tensor]:
    from geodyn.optim.kron import _kron_eigenvalues, _resolve_sides

    beta2 = float(group["betas"][1])
    out = []
    for p in group["params"]:
        state = opt.state.get(p)
        if not state or "step" not in state:
            continue
        t = float(state["step"])
        bc2 = 1.0 - beta2**t if group.get("bias_correction", True) else 1.0
        if "noise_moment" in state:
            out.append(state["noise_moment"] / bc2)
        elif "rotated_moment" in state:
            out.append(state["rotated_moment"] / bc2)
        elif "left_eigenvalues" in state or "right_eigenvalues" in state:
            rows = p.shape[0]
            shape = torch.Size((rows, p[0].numel()))
            use_left, use_right = _resolve_sides(group["sides"], tuple(shape))
            out.append(_kron_eigenvalues(state, shape, use_left, use_right, group["trace_normalize"]))
    return out


def regime_shares(opt: torch.optim.Optimizer) -> list[float] | None:
    """[slow, intermediate, fast] shares of all variables under a three-regime law; None for other optimizers
    (or before the first step)."""
    counts = torch.zeros(3, dtype=torch.float64)
    for group in getattr(opt, "param_groups", []):
        law = group.get("metric")
        if not isinstance(law, (ThreeRegime, ScaleFreeThreeRegime)):
            continue
        for lam in _moments(opt, group):
            counts += torch.bincount(law.regime(lam.detach()).flatten().cpu(), minlength=3)[:3].double()
    total = float(counts.sum())
    return None if total == 0 else [float(c) / total for c in counts]

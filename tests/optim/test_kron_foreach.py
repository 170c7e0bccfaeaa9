"""KronCGD's batched step (geodyn.optim.kron_foreach) against the per-matrix reference matrix_step, in float64.

Both paths compute the same update (EQUATIONS.md (2.9), §6); they differ only in the order of floating-point
operations (a fused addmm_, the 1/(1−β₁ᵗ) applied after the rotation, stacked factor refreshes), so steps agree to
a few ulps per operation: 1e-12 relative to the largest entry leaves a margin of ~10³ over the ~30 roundings of
ε₆₄ ≈ 1.1e-16 that one step chains through two rotations and a 5-point eigendecomposition.

With a refresh every k > 1 steps the tests use square weights, whose factors have full rank from the first step:
a rank-deficient factor's null space has a basis chosen by round-off, and once later gradients reach that
stale null space the two paths (both right) rotate it differently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geodyn.metric import Power, ScaleFreeThreeRegime, ThreeRegime
from geodyn.optim import KronCGD

TOL = 1e-12


def _params(shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(*s, generator=gen, dtype=torch.float64)) for s in shapes]


def _grads(shapes, steps, seed, skip=()):
    """Gradients per step (a mean plus scaled noise); ``skip`` holds (step, index) pairs left without a gradient."""
    rng = np.random.default_rng(seed)
    means = [rng.normal(size=s) for s in shapes]
    out = []
    for t in range(steps):
        out.append([None if (t, i) in skip else torch.tensor(mu + rng.normal(size=s) * (1 + i)) for i, (mu, s)
                    in enumerate(zip(means, shapes))])  # fmt: skip
    return out


def _run(shapes, grads, **kw):
    params = _params(shapes)
    opt = KronCGD(params, **kw)
    history = []
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history, opt, params


def _assert_same(a, b):
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            scale = max(1.0, y.abs().max().item())
            assert (x - y).abs().max().item() <= TOL * scale


EXACT = [(6, 4), (4, 6), (3, 2, 2, 2), (5,), (6, 4)]  # two same-shaped matrices share a batched eigh
SQUARE = [(5, 5), (5, 5), (5, 5, 1, 1), (3, 3), (5,)]

CONFIGS = {
    "kron-central": dict(metric=ThreeRegime(1e-3, 1.0), spectrum="kron"),
    "adaptive-scale-free": dict(metric=ScaleFreeThreeRegime(0.1, 1.0), spectrum="adaptive"),
    "shampoo-raw-graft": dict(metric=Power(0.5), moment="raw", trace_normalize=False, grafting="adam"),
    "left-momentum": dict(metric=Power(0.5), moment="momentum", sides="left", betas=(0.9, 0.0), damping=0.0),
    "smaller-maximize-l2": dict(
        metric=Power(1.0), sides="smaller", maximize=True, weight_decay=0.1, decoupled_weight_decay=False
    ),  # fmt: skip
    "right-decoupled": dict(metric=Power(0.5), sides="right", weight_decay=0.1, spectrum="adaptive"),
}


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_batched_step_equals_reference_with_exact_refresh(config):
    kw = dict(lr=0.05, precondition_every=1, **CONFIGS[config])
    grads = _grads(EXACT, 8, seed=1, skip={(2, 0), (3, 0), (4, 3)})  # steps counts differ between parameters
    fast, opt, params = _run(EXACT, grads, **kw)
    slow, _, _ = _run(EXACT, grads, foreach=False, **kw)
    _assert_same(fast, slow)
    assert opt.state[params[0]]["step"].item() == 6 and opt.state[params[1]]["step"].item() == 8


@pytest.mark.parametrize("refresh", ["eigh", "qr"])
@pytest.mark.parametrize("config", ["kron-central", "adaptive-scale-free", "shampoo-raw-graft"])
def test_batched_step_equals_reference_with_stale_bases(config, refresh):
    kw = dict(lr=0.05, precondition_every=3, refresh=refresh, **CONFIGS[config])
    grads = _grads(SQUARE, 11, seed=2, skip={(1, 1)})
    fast, _, _ = _run(SQUARE, grads, **kw)
    slow, _, _ = _run(SQUARE, grads, foreach=False, **kw)
    _assert_same(fast, slow)


def test_state_moves_between_the_two_paths():
    """A state dict written by one path continues in the other: same keys, same meaning."""
    kw = dict(lr=0.05, precondition_every=3, metric=ThreeRegime(1e-3, 1.0), spectrum="adaptive")
    grads = _grads(SQUARE, 10, seed=3)
    reference, _, _ = _run(SQUARE, grads, foreach=False, **kw)
    params = _params(SQUARE)
    first = KronCGD(params, foreach=False, **kw)
    for step in grads[:5]:
        for p, g in zip(params, step):
            p.grad = g
        first.step()
    second = KronCGD(params, **kw)
    second.load_state_dict(first.state_dict())
    for step in grads[5:]:
        for p, g in zip(params, step):
            p.grad = g
        second.step()
    _assert_same([[p.detach() for p in params]], [reference[-1]])


def test_bad_foreach_and_refresh_arguments():
    p = [nn.Parameter(torch.zeros(3, 3))]
    with pytest.raises(ValueError, match="refresh='svd'"):
        KronCGD(p, refresh="svd")
    with pytest.raises(ValueError, match="foreach='yes'"):
        KronCGD(p, foreach="yes")

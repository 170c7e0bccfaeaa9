"""The scale-free three-regime law (EQUATIONS.md §7 "Units of ε and ζ", (6.5), (6.8)) and its loss-scale invariance."""

from __future__ import annotations

import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from geodyn.metric import ScaleFreeThreeRegime, ThreeRegime, metric_from_spec
from geodyn.optim import CGD, KronCGD, presets
from geodyn.optim.compiled import _inlinable

from helpers import minibatches, small_mlp

U = torch.finfo(torch.float64).eps  # unit round-off of float64 (2⁻⁵², an upper bound on ulp/2 relative error)


def _lam(seed: int = 0, shape=(7, 5)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen, dtype=torch.float64) ** 4 * 1e-3  # spread over several decades


@pytest.mark.parametrize("statistic", ["rms", "median"])
def test_law_matches_its_definition_with_an_independent_scale(statistic):
    lam = _lam()
    values = lam.numpy()
    s = math.sqrt(values.mean()) if statistic == "rms" else float(np.median(np.sqrt(values)))
    law = ScaleFreeThreeRegime(eps=0.05, zeta=0.3, statistic=statistic)
    expected = 0.05 * s + np.sqrt(values) + 0.3 * values / s
    np.testing.assert_allclose(law(lam).numpy(), expected, rtol=8 * U, atol=0)  # a few roundings per entry


def test_law_is_homogeneous_of_degree_one_half():
    # g(c²λ) = |c| g(λ): s scales by |c|, so does every term. c = 2¹⁰ is exact in binary: equality to the bit.
    lam, law = _lam(1), ScaleFreeThreeRegime(0.01, 0.5)
    assert torch.equal(law(lam * 4.0**10), law(lam) * 2.0**10)
    raw = ThreeRegime(0.01, 0.5)  # the dimensionful law is not: its ε and ζ terms do not scale with √λ
    assert not torch.allclose(raw(lam * 4.0**10), raw(lam) * 2.0**10, rtol=1e-3)


def test_regime_and_band_are_relative_to_the_scale():
    lam, law = _lam(2), ScaleFreeThreeRegime(0.05, 0.5)
    s2 = lam.mean()
    assert torch.equal(law.regime(lam), ThreeRegime(0.05, 0.5).regime(lam / s2))
    torch.testing.assert_close(law.local_exponent(lam * 1e8), ThreeRegime(0.05, 0.5).local_exponent(lam / s2))
    assert law.band() == ThreeRegime(0.05, 0.5).band()  # in units of s²
    assert torch.equal(law.regime(lam * 1e8), law.regime(lam))


def test_median_falls_back_to_rms_where_most_noise_is_zero():
    lam = torch.zeros(9, dtype=torch.float64)
    lam[0] = 4.0
    g = ScaleFreeThreeRegime(0.1, 1.0, statistic="median")(lam)
    s = math.sqrt(4.0 / 9)
    torch.testing.assert_close(g[0], torch.tensor(0.1 * s + 2.0 + 4.0 / s, dtype=torch.float64))
    assert torch.isfinite(g).all()


def test_a_tensor_without_noise_takes_no_step():
    assert torch.equal(ScaleFreeThreeRegime()(torch.zeros(4, dtype=torch.float64)), torch.zeros(4, dtype=torch.float64))
    p = nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = presets.three_regime([p], lr=0.1, moment="momentum", betas=(0.0, 0.9))
    p.grad = torch.zeros(3, dtype=torch.float64)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3, dtype=torch.float64))


def test_spec_round_trip_and_bad_input():
    law = ScaleFreeThreeRegime(0.02, 0.4, statistic="median")
    assert metric_from_spec(law.spec()) == law
    assert law.spec() == {"kind": "scale_free_three_regime", "eps": 0.02, "zeta": 0.4, "statistic": "median"}
    with pytest.raises(ValueError, match="statistic='mean'"):
        ScaleFreeThreeRegime(statistic="mean")
    with pytest.raises(ValueError, match="zeta"):
        ScaleFreeThreeRegime(zeta=-1.0)
    with pytest.raises(ValueError, match="statistic='p90'"):
        metric_from_spec({"kind": "scale_free_three_regime", "eps": 0.1, "zeta": 0.1, "statistic": "p90"})


def test_state_dict_is_plain_data_and_resumes():
    model = small_mlp()
    opt = presets.three_regime(model.parameters(), lr=1e-2)
    batches = list(minibatches(10))
    for x, y in batches[:5]:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # plain data only
    assert json.loads(saved["param_groups"][0]["metric"])["kind"] == "scale_free_three_regime"
    twin = copy.deepcopy(model)
    fresh = presets.three_regime(twin.parameters(), lr=1e-2, zeta=7.0)  # the saved law wins
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["metric"] == opt.param_groups[0]["metric"]


def test_compiled_step_calls_the_law_instead_of_inlining_it():
    # The compiled step inlines PowerSum terms elementwise; a law that needs the whole tensor must not be inlined.
    assert not _inlinable(ScaleFreeThreeRegime())
    assert _inlinable(ThreeRegime())


# ------------------------------------------------------------------------------------------ loss-scale invariance

STEPS = 30


def _trajectory(make, scale: float) -> tuple[torch.Tensor, float]:
    """Train the small float64 MLP on (scale × MSE); the final parameters (flat) and the path length Σ_t max|Δq_t|."""
    model = small_mlp()
    opt = make(list(model.parameters()))
    path_length = 0.0
    for x, y in minibatches(STEPS):
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad()
        (scale * nn.functional.mse_loss(model(x), y)).backward()
        opt.step()
        path_length += max((p - b).abs().max().item() for p, b in zip(model.parameters(), before))
    return torch.cat([p.detach().flatten() for p in model.parameters()]), path_length


def _invariance_gap(make, scale: float) -> tuple[float, float]:
    a, length = _trajectory(make, 1.0)
    b, _ = _trajectory(make, scale)
    return (a - b).abs().max().item(), length


SCALE_FREE = {
    "diagonal-foreach": lambda p: presets.three_regime(p, lr=1e-2),
    "diagonal-reference": lambda p: presets.three_regime(p, lr=1e-2, foreach=False),
    "kron-adaptive": lambda p: presets.three_regime_kron(p, lr=1e-3, precondition_every=3),
    "kron-kron": lambda p: presets.three_regime_kron(p, lr=1e-3, precondition_every=3, spectrum="kron"),
}
RAW = {
    "diagonal": lambda p: presets.three_regime(p, lr=1e-2, eps=1e-8, zeta=1.0, scale_free=False),
    "kron-adaptive": lambda p: presets.three_regime_kron(p, lr=1e-3, eps=1e-8, zeta=1.0, precondition_every=3,
                                                         scale_free=False),
    "diagonal-dimensionless-values": lambda p: CGD(p, lr=1e-2, metric=ThreeRegime(1e-3, 0.1)),
    "kron-dimensionless-values": lambda p: KronCGD(p, lr=1e-3, metric=ThreeRegime(1e-3, 0.1), precondition_every=3),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCALE_FREE))
def test_scale_free_steps_are_bit_identical_under_a_power_of_two_loss_scale(name):
    # c = 2¹⁴ ≈ 1.6·10⁴: multiplying by a power of two is exact in binary floating point (no overflow here), and
    # so are √(c²x) = c√x, means, EMAs and LAPACK's eigh of c²L (Householder steps commute with exact scaling).
    # In exact arithmetic the step does not depend on c (see ScaleFreeThreeRegime), so here it must agree to the bit.
    gap, length = _invariance_gap(SCALE_FREE[name], 2.0**14)
    assert length > 1e-2  # the run moves
    assert gap == 0.0


# Loss × 10⁴ (not a power of two): G, m, K̂, s and g are c, c, c², c, c times their values up to round-off, so each
# step's update differs by a relative error of at most (number of roundings on its path)·u. Backward through the MLP
# and the diagonal update (EMAs, a mean over ≤ 128 entries, sqrt, division) stay below 10³ roundings, and over 30
# steps of lr 1e-2 on this smooth problem an early error is amplified by less than 10 (each step is a contraction up
# to O(lr·curvature)). So the parameter gap is ≤ 10⁴ u · Σ_t max|Δq_t| (the path length). KronCGD is held to the exact
# power-of-two test only: its eigenvectors of nearly degenerate factor eigenvalues (rank-deficient L early on) are
# determined only up to u·λ_max/gap, which no small multiple of u bounds.
def _bound(length: float) -> float:
    return 1e4 * U * length


@pytest.mark.parametrize("name", ["diagonal-foreach", "diagonal-reference"])
def test_diagonal_steps_agree_to_round_off_when_the_loss_is_multiplied_by_1e4(name):
    gap, length = _invariance_gap(SCALE_FREE[name], 1e4)
    assert length > 1e-2
    assert gap <= _bound(length)


@pytest.mark.parametrize("name", list(RAW))
def test_raw_three_regime_is_not_scale_invariant(name):
    gap, length = _invariance_gap(RAW[name], 2.0**14)
    assert gap > 1e-2 * length  # the dimensionful ε, ζκ terms change the steps by far more than round-off


@pytest.mark.slow
def test_compiled_scale_free_step_matches_foreach():
    a, _ = _trajectory(lambda p: presets.three_regime(p, lr=1e-2, compiled=True), 1.0)
    b, length = _trajectory(lambda p: presets.three_regime(p, lr=1e-2), 1.0)
    assert (a - b).abs().max().item() <= _bound(length)  # fused vs unfused arithmetic: round-off only


def test_sharded_parameters_are_refused_because_the_scale_is_a_whole_tensor_statistic(tmp_path):
    # Under FSDP2 each rank steps its local shard; s from a shard is not s of the tensor, so the step would differ
    # from the single-process one. A one-rank gloo group is enough to make DTensor parameters.
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        p = nn.Parameter(distribute_tensor(torch.randn(4, 3, dtype=torch.float64), mesh, [Shard(0)]))
        p.grad = distribute_tensor(torch.randn(4, 3, dtype=torch.float64), mesh, [Shard(0)])
        with pytest.raises(TypeError, match="not elementwise"):
            presets.three_regime([p], lr=0.1).step()
        presets.three_regime([p], lr=0.1, scale_free=False).step()  # the elementwise raw law still steps shards
    finally:
        dist.destroy_process_group()

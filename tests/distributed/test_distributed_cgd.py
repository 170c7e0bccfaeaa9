"""CGD under torch.distributed, 2 gloo ranks on CPU: DistributedDataParallel and FSDP2 (``fully_shard``).

The ranks run every scenario in one spawn per module (starting two processes costs ~8 s on 2 cores) and the tests
below check what each rank recorded.

Tolerance of the parity tests: the distributed gradient is the average of two half-batch means, the
single-process one the mean of the whole batch; the sums differ in order, so gradients differ by a few float64
ulps (~1e-16 relative), which 20 steps carry into the parameters (measured: ≤ 5e-16 for CGD and FullCGD,
3e-13 for KronCGD, whose eigendecompositions amplify round-off). 1e-10 leaves room for other step counts and
models and still catches the mistakes that matter: gradients summed instead of averaged over the ranks change
these parameters by 6e-3 (Adam, nearly scale-invariant) to 0.6, one step more or fewer by 6e-3 to 0.04.
"""

from __future__ import annotations

import distributed_workers as workers
import pytest
import torch

from geodyn.metric import Power

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend",
)
PARITY_TOL = 1e-10


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert [t.shape for t in a] == [t.shape for t in b]
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("world")
    return workers.run_world(workers.all_scenarios, workdir, str(workdir / "checkpoint"), timeout=240.0)


@pytest.fixture(scope="module")
def ddp(world):
    return [rank["ddp"] for rank in world]


@pytest.fixture(scope="module")
def fsdp(world):
    return [rank["fsdp"] for rank in world]


@pytest.fixture(scope="module")
def references():
    factories = workers.optimizer_factories() | workers.structured_factories()
    return {name: workers.single_process(make) for name, make in factories.items()}


@pytest.mark.parametrize("name", sorted(workers.optimizer_factories()))
def test_ddp_matches_single_process(ddp, references, name):
    for rank in ddp:
        assert _max_diff(rank["params"][name], references[name]) < PARITY_TOL
    assert all(torch.equal(a, b) for a, b in zip(ddp[0]["params"][name], ddp[1]["params"][name]))


@pytest.mark.parametrize("name", sorted(workers.structured_factories()))
def test_kron_and_full_under_ddp_match_single_process(ddp, references, name):
    """Whole matrices on each rank and identical all-reduced gradients: the structured step runs unchanged.

    KronCGD uses ``sides="smaller"``, whose factors are full rank from the first step. With both sides the first
    factors are rank-deficient, and the adaptive spectrum depends on the eigenbasis eigh picks inside their null
    space, which round-off decides: a single process changes its trajectory by ~1e-2 just by averaging two half-
    batch losses instead of one batch loss, so no distributed comparison could be tight there."""
    for rank in ddp:
        assert _max_diff(rank["params"][name], references[name]) < PARITY_TOL
    moved = _max_diff(references[name], [p.detach() for p in workers.mlp().parameters()])
    assert moved > 1e-3  # the comparison is between trained parameters, not two untouched copies


@pytest.mark.parametrize("name", sorted(workers.optimizer_factories()))
def test_fsdp2_matches_single_process(fsdp, references, name):
    for rank in fsdp:
        assert _max_diff(rank["params"][name], references[name]) < PARITY_TOL


def test_fsdp2_state_is_sharded_like_the_parameters(fsdp):
    local = [rank["local_numels"] for rank in fsdp]
    full = [p.numel() for p in workers.mlp().parameters()]
    assert [a + b for a, b in zip(*local)] == full and local[0] != full  # sharded, unevenly
    assert 0 in local[1]  # the 1×7 weight leaves rank 1 an empty shard
    for rank in fsdp:
        for name, layout in rank["layout"].items():
            keys = {key for per_param in layout for key in per_param}
            assert keys == ({"first_moment"} if name == "sgd_momentum" else {"first_moment", "noise_moment"})
            assert all(flags == (True, True, True) for per_param in layout for flags in per_param.values())


def test_fsdp2_step_communicates_only_the_nonfinite_flag(fsdp):
    """The update runs on local shards; the one collective is the flag's all-reduce (one mesh dimension). Testing
    the DTensor gradients directly would all-reduce every gradient's norm (6 collectives here)."""
    for rank in fsdp:
        assert rank["step_collectives"] == {"raise": 1, "ignore": 0}


def test_fsdp2_checkpoint_resumes_bit_identically(fsdp):
    for rank in fsdp:
        assert rank["resumed_steps"] == [8.0]  # the saved counters, not those of DCP's zero-gradient init step
        assert rank["resumed_state_is_sharded"]
        assert rank["resumed_bias_metric"] == repr(Power(1.0) + 1e-6)  # restored, not the fresh Power(0.5)
        assert rank["resume_bit_identical"], rank["resume_diffs"]


def test_fsdp2_nan_in_one_shard_stops_every_rank(fsdp):
    rank0, rank1 = (rank["nonfinite"] for rank in fsdp)
    assert rank0["raise_local_grads_finite"] and not rank1["raise_local_grads_finite"]
    for rank in (rank0, rank1):
        assert rank["raise_raised"] == "NonFiniteGradientError"
        assert rank["raise_moved"] == 0.0
        assert rank["skip_raised"] is None and rank["skip_skipped_steps"] == 1 and rank["skip_moved"] == 0.0


def test_ddp_nan_on_one_rank_stops_every_rank(ddp):
    rank0, rank1 = (rank["nonfinite"] for rank in ddp)
    # Rank 0's own loss was finite; the NaN reached its gradients through DDP's all-reduce.
    assert rank0["raise_local_loss_finite"] and not rank1["raise_local_loss_finite"]
    assert not rank0["raise_local_grads_finite"]
    for rank in (rank0, rank1):
        assert rank["raise_raised"] == "NonFiniteGradientError" and rank["raise_moved"] == 0.0
        assert rank["skip_raised"] is None and rank["skip_skipped_steps"] == 1 and rank["skip_moved"] == 0.0


def test_nonfinite_group_makes_plain_tensor_ranks_agree(world):
    """Without DDP the ranks' gradients differ: alone, rank 0 would step while rank 1 refuses."""
    alone = [rank["plain"]["no_group"] for rank in world]
    assert alone[0]["raise_raised"] is None and alone[0]["raise_moved"] > 0.0
    assert alone[1]["raise_raised"] == "NonFiniteGradientError"
    for rank in (rank["plain"]["world_group"] for rank in world):
        assert rank["raise_raised"] == "NonFiniteGradientError" and rank["raise_moved"] == 0.0
        assert rank["skip_raised"] is None and rank["skip_skipped_steps"] == 1 and rank["skip_moved"] == 0.0


@pytest.mark.parametrize("name", sorted(workers.structured_factories()))
def test_kron_and_full_refuse_fsdp2(fsdp, name):
    message = fsdp[0]["refusals"][name]
    assert message is not None and message.startswith("TypeError: ")
    assert "DTensor" in message and "DistributedDataParallel" in message and "\n" not in message


def test_fsdp2_compiled_step_matches_single_process(world, references):
    """``compiled=True`` under FSDP2: the fused kernel is compiled for each rank's local shard shapes. It equals
    the foreach step to round-off (tests/optim/test_compiled.py), hence the same bound."""
    for rank in world:
        assert rank["compiled"]["error"] is None, rank["compiled"]["error"]
        assert _max_diff(rank["compiled"]["params"], references["three_regime"]) < PARITY_TOL

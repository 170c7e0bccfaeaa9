"""geodyn.optim.distributed in this process: plain tensors pass untouched, and on a 1-rank mesh DTensors are
unwrapped to aliasing local tensors, mislaid state is refused, and KronCGD/FullCGD refuse DTensor parameters."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from geodyn.metric import ThreeRegime
from geodyn.optim import CGD, FullCGD, KronCGD
from geodyn.optim.distributed import any_across_ranks, has_dtensor, local_views

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"
)


def test_plain_tensors_pass_through_without_communication():
    params = [torch.zeros(3), torch.ones(2)]
    grads = [torch.ones(3), torch.ones(2)]
    first = [torch.zeros(3), torch.zeros(2)]
    assert not has_dtensor(params)
    out_params, out_grads, (out_first, out_noise) = local_views(params, grads, first, [None, None])
    assert all(a is b for a, b in zip(out_params + out_grads + out_first, params + grads + first))
    assert out_noise == [None, None]
    # No mesh and no group: returns the flags as they are (no process group exists here).
    assert any_across_ranks([True, False]) == [True, False]


@pytest.fixture
def one_rank_mesh(tmp_path):
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def test_local_views_alias_the_shards_and_refuse_mislaid_state(one_rank_mesh):
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    param = distribute_tensor(torch.arange(6.0).reshape(3, 2), one_rank_mesh, [Shard(0)])
    grad = distribute_tensor(torch.ones(3, 2), one_rank_mesh, [Shard(0)])
    state = torch.zeros_like(param)
    assert has_dtensor([torch.zeros(1), param])
    (local_param,), (local_grad,), ((local_state,),) = local_views([param], [grad], [state])
    assert type(local_param) is torch.Tensor and type(local_state) is torch.Tensor
    local_param.add_(local_grad)  # an in-place update of the view lands in the DTensor
    local_state.fill_(2.0)
    assert torch.equal(param.to_local(), torch.arange(6.0).reshape(3, 2) + 1)
    assert torch.equal(state.to_local(), torch.full((3, 2), 2.0))

    with pytest.raises(TypeError, match="placements"):
        local_views([param], [grad], [torch.zeros(3, 2)])  # a plain tensor as a DTensor's state
    with pytest.raises(TypeError, match="placements"):
        local_views([param], [grad], [distribute_tensor(torch.zeros(3, 2), one_rank_mesh, [Replicate()])])


def test_cgd_steps_dtensors_as_their_local_tensors(one_rank_mesh):
    """On one rank the shard is the whole tensor: the DTensor step equals the plain-tensor step bit for bit, and
    the state is a DTensor laid out like its parameter."""
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    gen = torch.Generator().manual_seed(0)
    plain = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    sharded = torch.nn.Parameter(distribute_tensor(plain.detach().clone(), one_rank_mesh, [Shard(0)]))
    opts = [CGD([p], lr=1e-2, metric=ThreeRegime(1e-8, 2.0), weight_decay=1e-3) for p in (plain, sharded)]
    for _ in range(5):
        g = torch.randn(5, 3, generator=gen, dtype=torch.float64)
        plain.grad = g.clone()
        sharded.grad = distribute_tensor(g.clone(), one_rank_mesh, [Shard(0)])
        for opt in opts:
            opt.step()
    assert torch.equal(sharded.to_local(), plain.detach())
    for key in ("first_moment", "noise_moment"):
        value = opts[1].state[sharded][key]
        assert isinstance(value, DTensor) and value.placements == sharded.placements
        assert torch.equal(value.to_local(), opts[0].state[plain][key])


@pytest.mark.parametrize("optimizer", [KronCGD, FullCGD])
def test_structured_optimizers_refuse_dtensors(one_rank_mesh, optimizer):
    from torch.distributed.tensor import Shard, distribute_tensor

    param = torch.nn.Parameter(distribute_tensor(torch.zeros(4, 4), one_rank_mesh, [Shard(0)]))
    with pytest.raises(TypeError, match=f"^{optimizer.__name__} .*DTensor.*DistributedDataParallel"):
        optimizer([param])
    with pytest.raises(TypeError, match="DTensor"):
        optimizer([torch.nn.Parameter(torch.zeros(2, 2))]).add_param_group({"params": [param]})

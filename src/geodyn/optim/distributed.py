"""The optimizers under torch.distributed: DTensor parameters (FSDP2) and one non-finite decision for all ranks.

Diagonal CGD is elementwise, so each rank can step its own shard of every parameter without talking to the
others: :func:`local_views` hands the step the local tensors of DTensor parameters, gradients and state (they
alias the DTensors, so in-place updates land in the sharded state). This needs no communication and skips
DTensor's dispatch (sharding propagation) on each of the step's ~20 multi-tensor operations, which makes the
step of a 1 M-parameter, 8-tensor MLP 1.2–2× slower on a CPU (benchmarks/distributed_overhead.py). Testing
the DTensor gradients for NaN directly would be worse: their norms come out as partial sums, and each one is
all-reduced on its own (one collective per gradient instead of one per step).

Only the non-finite check needs the other ranks: a NaN in one shard has to stop every rank, or the shards of
one parameter would drift apart. :func:`any_across_ranks` all-reduces the per-group flags (one small
all-reduce per device-mesh dimension per step). Under DistributedDataParallel no communication is needed:
gradients are all-reduced before the step, a NaN or inf on one rank reaches every rank through that sum, and
each rank decides the same from its own copy. For plain-tensor parameters whose gradients differ between
ranks (pipeline stages, hand-made sharding) the optimizers take ``nonfinite_group``, a process group to
reduce the flags over.

Detection costs nothing when torch.distributed is not used: a DTensor can only exist once
``torch.distributed.tensor`` has been imported, so :func:`dtensor_class` looks in ``sys.modules`` rather than
importing it (which takes over a second).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "any_across_ranks",
    "device_meshes",
    "dtensor_class",
    "has_dtensor",
    "is_dtensor",
    "local_tensor",
    "local_views",
    "refuse_dtensors",
]


def dtensor_class() -> type | None:
    """``torch.distributed.tensor.DTensor`` if that module is loaded, else None (then no DTensor exists)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None) if module is not None else None


def is_dtensor(tensor: Any) -> bool:
    """True for a DTensor (also a DTensor wrapped as ``nn.Parameter``)."""
    cls = dtensor_class()
    return cls is not None and isinstance(tensor, cls)


def has_dtensor(tensors: Iterable[Any]) -> bool:
    """True when any of ``tensors`` is a DTensor; free (no loop) while ``torch.distributed.tensor`` is not loaded."""
    cls = dtensor_class()
    return cls is not None and any(isinstance(t, cls) for t in tensors)


def local_tensor(tensor: Tensor) -> Tensor:
    """The local shard of a DTensor (aliasing it), or the tensor itself."""
    return tensor.to_local() if is_dtensor(tensor) else tensor


def device_meshes(tensors: Iterable[Any]) -> list[Any]:
    """The distinct device meshes of the DTensors among ``tensors``, in order of first appearance."""
    cls = dtensor_class()
    meshes: list[Any] = []
    if cls is None:
        return meshes
    for t in tensors:
        if isinstance(t, cls) and not any(t.device_mesh is m or t.device_mesh == m for m in meshes):
            meshes.append(t.device_mesh)
    return meshes


def _same_layout(a: Any, b: Any) -> bool:
    return (a.device_mesh is b.device_mesh or a.device_mesh == b.device_mesh) and a.placements == b.placements


def local_views(
    params: Sequence[Tensor], grads: Sequence[Tensor], *states: Sequence[Tensor | None]
) -> tuple[list[Tensor], list[Tensor], list[list[Tensor | None]]]:
    """Plain-tensor views for an elementwise step: the local shards of DTensor parameters, of their gradients
    and of their state; plain tensors pass through.

    The local shards of tensors with one mesh and placements hold the same elements of the global tensor, so an
    elementwise update of the shards is the update of the global tensors. A gradient laid out differently from
    its parameter (e.g. a ``Partial`` gradient under tensor parallelism) is redistributed to the parameter's
    placements first. State must already be laid out like its parameter (the optimizers create it with
    ``zeros_like(param)``, and distributed checkpoint loading keeps that layout); a mismatch is a TypeError,
    since updating a redistributed copy would lose the update.
    """
    cls = dtensor_class()
    out_params: list[Tensor] = []
    out_grads: list[Tensor] = []
    out_states: list[list[Tensor | None]] = [[] for _ in states]
    for i, param in enumerate(params):
        grad = grads[i]
        if cls is None or not isinstance(param, cls):
            out_params.append(param)
            out_grads.append(grad)
            for column, values in zip(out_states, states):
                column.append(values[i])
            continue
        if not isinstance(grad, cls):
            raise TypeError(f"the gradient of a DTensor parameter is a {type(grad).__name__}, expected a DTensor")
        if not _same_layout(grad, param):
            grad = grad.redistribute(param.device_mesh, param.placements)
        out_params.append(param.to_local())
        out_grads.append(grad.to_local())
        for column, values in zip(out_states, states):
            value = values[i]
            if value is not None:
                if not isinstance(value, cls) or not _same_layout(value, param):
                    layout = getattr(value, "placements", type(value).__name__)
                    raise TypeError(
                        f"optimizer state of a DTensor parameter must be a DTensor with the parameter's placements "
                        f"{param.placements}, got {layout}; load checkpoints with torch.distributed.checkpoint"
                    )
                value = value.to_local()
            column.append(value)
    return out_params, out_grads, out_states


def any_across_ranks(
    flags: Sequence[bool], *, meshes: Sequence[Any] = (), group: Any = None, device: torch.device | None = None
) -> list[bool]:
    """Elementwise OR of boolean flags over the ranks of every mesh in ``meshes`` and of ``group``.

    One all-reduce (MAX) per mesh dimension, which covers all ranks of the mesh, and one over ``group`` if given.
    Every rank of those meshes and that group must call it, with flags of the same length. The tensor lives on
    ``device`` (the gradients' device: NCCL reduces only GPU tensors).
    """
    import torch.distributed as dist

    if not flags or (not meshes and group is None):
        return list(flags)
    values = torch.tensor([float(f) for f in flags], dtype=torch.float32, device=device)
    for mesh in meshes:
        for dim in range(mesh.ndim):
            dist.all_reduce(values, op=dist.ReduceOp.MAX, group=mesh.get_group(dim))
    if group is not None:
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=group)
    return [bool(v) for v in values.tolist()]


def refuse_dtensors(optimizer: str, params: Iterable[Any]) -> None:
    """Raise a one-line TypeError when ``params`` holds DTensors: for optimizers that need whole tensors."""
    if has_dtensor(params):
        raise TypeError(
            f"{optimizer} needs whole weight matrices on every rank and does not take DTensor parameters "
            "(FSDP2 fully_shard, tensor parallel); supported: a single process or DistributedDataParallel. "
            "Under FSDP2 use the diagonal geodyn.optim.CGD"
        )

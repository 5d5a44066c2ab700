"""Data-parallel runs under torchrun: one experiment, K processes, one run folder.

    torchrun --nproc_per_node=2 -m kexue_runs.cli experiment=fsq_vs_vq

Rank 0 is a normal Hydra run: it creates the run folder and writes every file in it. The other
ranks compose the same config without Hydra's app (so they create no folders), receive rank 0's
run folder over the process group, train their shard of each global batch, and write nothing.
Each rank seeds torch with seed + rank (so dropout and noise differ across ranks) while the batch
order still comes from the base seed, so a K-process run sees the same global batches as a
single-process one; DDP averages the gradients, so the two follow the same trajectory up to
floating-point reduction order.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: `kexue-run --help` and `list` never load it
    import torch
    from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (its size divides by world_size: validated)."""
        if not self.enabled:
            return batch
        per_rank = batch.shape[0] // self.world_size
        return batch[self.rank * per_rank:(self.rank + 1) * per_rank]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DDP around the model when there is more than one process; the model itself otherwise."""
        if not self.enabled:
            return model
        from torch import nn

        ids = [device.index] if device.type == "cuda" else None
        # 1x1 convolutions get transposed-stride grads; DDP copies them into its buckets, correctly.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over ranks (every rank must call it): the global-batch value."""
        if not self.enabled:
            return value
        import torch.distributed as tdist

        value = value.detach().clone()
        tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
        return value / self.world_size

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as tdist

        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]


def from_env() -> Dist:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK; a single process when they are absent."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    return Dist(rank=int(env.get("RANK", "0")), world_size=world, local_rank=int(env.get("LOCAL_RANK", "0")),
                local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))))


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def start(dist: Dist, device_name: str) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU) and return this rank's device."""
    import torch
    import torch.distributed as tdist

    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    if dist.enabled and not tdist.is_initialized():
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop(dist: Dist) -> None:
    import torch.distributed as tdist

    if dist.enabled and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()

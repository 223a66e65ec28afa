"""One `setup()` for every way a stage is started: plain `python -m pae ...` (one process), `torchrun` and SLURM
(through submitit, which exports the same variables). It reads RANK / LOCAL_RANK / WORLD_SIZE, picks the device and
uses gloo on CPU and nccl on GPU.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pae.device import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Initialise torch.distributed when the environment describes several processes; return this process's place."""
    if "RANK" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR") == "slurm" \
            and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        # A multi-task SLURM job started by submitit: derive MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK from it.
        import submitit
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=dev if dev.type == "cuda" else None)
        log.info("torch.distributed: rank %d/%d (local %d), backend %s, device %s", rank, world_size, local_rank,
                 backend, dev)
    return DistInfo(rank, local_rank, world_size, dev)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def collective_device() -> torch.device:
    """Where tensors for collectives must live: the GPU with nccl, the CPU with gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (no-op in one process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj):
    if is_distributed():
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]

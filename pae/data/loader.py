"""The in-RAM batch loader: batches are drawn from a uint8 tensor by tensor indexing (no per-item __getitem__,
no worker processes), converted to float in [-0.5, 0.5] as in the PAE paper, and sharded across DDP ranks.

Sharding keeps the global batch: global batch i is perm[i*B:(i+1)*B] on every rank, and rank r takes its r-th of
world_size equal parts. With gradients averaged by DDP this is the same optimisation as one process with batch B.
The shuffle order depends only on (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

from typing import Iterator

import torch


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [-0.5, 0.5] (the PAE paper's scaling)."""
    return images_u8.float().div_(255.0).sub_(0.5)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_float`, clamped."""
    return ((x.detach().float() + 0.5).clamp_(0, 1) * 255.0).round_().to(torch.uint8)


class BatchLoader:
    def __init__(self, images: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, device: torch.device | str = "cpu",
                 channels_last: bool = False):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by world_size={world_size}")
        self.device = torch.device(device)
        # Kept as uint8 (4x smaller than float); on a GPU the whole array moves there once.
        self.images = images.to(self.device)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.channels_last = channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def indices(self, start: int = 0) -> Iterator[torch.Tensor]:
        """This rank's index tensor for each global batch, from batch `start` on."""
        n = len(self.images)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        order = order.to(self.device)
        for i in range(start, len(self)):
            batch = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield torch.tensor_split(batch, self.world_size)[self.rank]

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.batches()

    def batches(self, start: int = 0, with_index: bool = False) -> Iterator:
        """The float batches of this epoch from batch `start` on (a run resumed mid-epoch skips the done ones);
        with_index: (batch, the items' positions in `images`) pairs."""
        for idx in self.indices(start):
            x = to_float(self.images[idx])
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield (x, idx) if with_index else x

"""Missing-completely-at-random (MCAR) pixel masks, 1 = observed. A mask is a pure function of (seed, item, pixel,
epoch): a counter-based hash, so "fixed" masks (the same for an item in every epoch) need no storage, "random" masks
are redrawn each epoch, and every rank, a resumed run and the evaluation see exactly the same masks.
"""
from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 (C. Wellons): a well-mixed 32-bit integer hash, on int64 tensors (low 32 bits kept)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def uniform(seed: int, items: torch.Tensor, n_pixels: int, epoch: int = 0) -> torch.Tensor:
    """Deterministic U[0, 1) of shape (len(items), n_pixels)."""
    pix = torch.arange(n_pixels, device=items.device, dtype=torch.int64)
    key = _hash32(torch.tensor(seed * 0x9E3779B1 + epoch * 0x85EBCA77 + 0x165667B1, dtype=torch.int64)).item()
    h = _hash32(_hash32(items.to(torch.int64)[:, None] ^ key) + pix[None, :] * 0x27D4EB2F)
    return h.to(torch.float32) / 2.0 ** 32


def mcar_mask(seed: int, items: torch.Tensor, shape: tuple[int, int], ratio: float, epoch: int = 0) -> torch.Tensor:
    """(N, 1, H, W) float mask with each pixel missing with probability `ratio` (shared across channels)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"missing ratio must be in [0, 1), got {ratio}")
    h, w = shape
    return (uniform(seed, items, h * w, epoch) >= ratio).to(torch.float32).view(-1, 1, h, w)

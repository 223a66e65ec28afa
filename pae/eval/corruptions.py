"""Corruptions of test images for inpainting and denoising (the posterior stage): solid masks, random sparse masks,
additive Gaussian noise, and noise with a sparse mask.

Pixels are on the PAE paper's [-0.5, 0.5] scale (pae.data.loader.to_float). A mask is (N, 1, H, W) float, 1 =
observed, shared across channels; missing pixels are set to 0 (mid-grey) in the observed image, so nothing of them
leaks into an encoder or a figure. Noise is N(0, noise_sigma^2) per pixel and channel, drawn from a torch.Generator
seeded with `seed`, and is not clipped: clipping would make the Gaussian likelihood of the posterior stage wrong, so a
noisy pixel can leave [-0.5, 0.5]. Sparse masks are pae.data.masks.mcar_mask of the images' positions with `seed`.

Kinds (CORRUPTIONS):
  left_half     the left W // 2 columns missing
  center_box    a centred box of round(box_fraction * H) x round(box_fraction * W) pixels missing
  sparse        each pixel missing with probability sparse_ratio
  noise         every pixel observed, with additive noise of std noise_sigma
  noise_sparse  sparse, and the observed pixels noisy
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pae.data.loader import to_float
from pae.data.masks import mcar_mask
from pae.io import PaeError


@dataclass(frozen=True)
class Settings:
    box_fraction: float
    sparse_ratio: float
    noise_sigma: float
    seed: int


Corrupted = tuple[torch.Tensor, torch.Tensor, float]  # observed x, mask (N, 1, H, W), noise sigma used


def _full_mask(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(len(x), 1, *x.shape[2:], dtype=x.dtype, device=x.device)


def _left_half_mask(x: torch.Tensor, s: Settings) -> torch.Tensor:
    mask = _full_mask(x)
    mask[..., :x.shape[-1] // 2] = 0
    return mask


def _center_box_mask(x: torch.Tensor, s: Settings) -> torch.Tensor:
    if not 0 < s.box_fraction < 1:
        raise PaeError(f"box_fraction must be in (0, 1), got {s.box_fraction}")
    mask = _full_mask(x)
    h, w = x.shape[-2:]
    bh, bw = round(s.box_fraction * h), round(s.box_fraction * w)
    top, left = (h - bh) // 2, (w - bw) // 2
    mask[..., top:top + bh, left:left + bw] = 0
    return mask


def _sparse_mask(x: torch.Tensor, s: Settings) -> torch.Tensor:
    if not 0 <= s.sparse_ratio < 1:
        raise PaeError(f"sparse_ratio must be in [0, 1), got {s.sparse_ratio}")
    return mcar_mask(s.seed, torch.arange(len(x)), tuple(x.shape[-2:]), s.sparse_ratio).to(x)


def _noisy(x: torch.Tensor, s: Settings) -> torch.Tensor:
    if not s.noise_sigma > 0:
        raise PaeError(f"noise_sigma must be positive, got {s.noise_sigma}")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(s.seed), dtype=x.dtype)
    return x + s.noise_sigma * noise.to(x.device)


def _left_half(x: torch.Tensor, s: Settings) -> Corrupted:
    mask = _left_half_mask(x, s)
    return x * mask, mask, 0.0


def _center_box(x: torch.Tensor, s: Settings) -> Corrupted:
    mask = _center_box_mask(x, s)
    return x * mask, mask, 0.0


def _sparse(x: torch.Tensor, s: Settings) -> Corrupted:
    mask = _sparse_mask(x, s)
    return x * mask, mask, 0.0


def _noise(x: torch.Tensor, s: Settings) -> Corrupted:
    return _noisy(x, s), _full_mask(x), float(s.noise_sigma)


def _noise_sparse(x: torch.Tensor, s: Settings) -> Corrupted:
    mask = _sparse_mask(x, s)
    return _noisy(x, s) * mask, mask, float(s.noise_sigma)


# kind -> corruption(x float on [-0.5, 0.5], settings) -> (observed x, mask, noise sigma)
CORRUPTIONS: dict[str, Callable[[torch.Tensor, Settings], Corrupted]] = {
    "left_half": _left_half,
    "center_box": _center_box,
    "sparse": _sparse,
    "noise": _noise,
    "noise_sparse": _noise_sparse,
}


def corrupt(kind: str, images: torch.Tensor, *, box_fraction: float, sparse_ratio: float, noise_sigma: float,
            seed: int) -> Corrupted:
    """Corrupt images (uint8 (N, C, H, W), or float on [-0.5, 0.5]): (observed x float on [-0.5, 0.5] with missing
    pixels 0, mask (N, 1, H, W) float 1 = observed, the std of the added noise (0.0 for mask-only kinds))."""
    if kind not in CORRUPTIONS:
        raise PaeError(f"unknown corruption {kind!r}; known: {sorted(CORRUPTIONS)}")
    if images.ndim != 4:
        raise PaeError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    x = to_float(images) if images.dtype == torch.uint8 else images.clone()
    return CORRUPTIONS[kind](x, Settings(box_fraction, sparse_ratio, noise_sigma, seed))

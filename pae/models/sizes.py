"""Spatial sizes of the stride-2 pyramids shared by the convolutional architectures (conv, resnet)."""
from __future__ import annotations


def spatial_sizes(size: int, n: int) -> list[int]:
    """Sizes after each 4x4 stride-2 padding-1 convolution: s -> floor(s / 2), e.g. 28 -> 14 -> 7 -> 3.
    Decoders go back up this list exactly, so odd sizes come back to the image's size."""
    sizes = [size]
    for _ in range(n):
        sizes.append((sizes[-1] + 2 - 4) // 2 + 1)
    if sizes[-1] < 1:
        raise ValueError(f"{n} stride-2 convolutions are too many for images of size {size}")
    return sizes

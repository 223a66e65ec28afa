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


def decoder_stages(image_shape, channels, out_channels=None):
    """How a decoder walks back up the encoder's pyramid: the feature map it starts from, (C, H, W), and per stage
    (channels in, channels out, (h, w) it starts at, (h, w) it must end at); the last stage outputs `out_channels`
    (default: the image's)."""
    c_img, h, w = image_shape
    n = len(channels)
    hs, ws = spatial_sizes(h, n), spatial_sizes(w, n)
    outs = list(channels[-2::-1]) + [out_channels or c_img]
    stages = [(c_in, c, (hs[n - i], ws[n - i]), (hs[n - 1 - i], ws[n - 1 - i]))
              for i, (c_in, c) in enumerate(zip(channels[::-1], outs))]
    return (channels[-1], hs[-1], ws[-1]), stages

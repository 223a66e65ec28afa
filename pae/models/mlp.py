"""Fully connected encoder/decoder: the image is flattened, passed through hidden layers of widths `channels` (the
decoder mirrors them), with `hidden` as the width next to the latent, the same role it has in the conv and resnet
architectures: encoder  C*H*W -> channels[0] -> ... -> channels[-1] -> hidden -> out_features,
decoder  latent_dim -> hidden -> channels[-1] -> ... -> channels[0] -> out_channels*H*W.
A baseline without spatial structure; its first/last layers hold C*H*W * channels[0] weights, so it wants wider
`channels` than the convolutional architectures (e.g. [512, 256])."""
from __future__ import annotations

import math

from torch import nn


def _mlp(widths: list[int]) -> list[nn.Module]:
    """Linear layers through `widths` with LeakyReLU(0.2) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return layers


class MLPEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_features)."""

    def __init__(self, image_shape, out_features, channels, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *_mlp([math.prod(image_shape), *channels, hidden, out_features]))

    def forward(self, x):
        return self.net(x)


class MLPDecoder(nn.Module):
    """(N, latent_dim) -> (N, out_channels, H, W); out_channels defaults to the image's channels. No output
    activation."""

    def __init__(self, image_shape, latent_dim, channels, hidden, out_channels=None):
        super().__init__()
        c_img, h, w = image_shape
        self.out_shape = (out_channels or c_img, h, w)
        self.net = nn.Sequential(*_mlp([latent_dim, hidden, *channels[::-1], math.prod(self.out_shape)]))

    def forward(self, z):
        return self.net(z).view(-1, *self.out_shape)

"""Residual convolutional encoder/decoder in the style of the ResNet auto-encoders used for 64x64 images (CelebA):
stages of stride-2 downsampling to the `channels` widths, each followed by a pre-activation residual block (two 3x3
convolutions with an identity skip), then fully connected layers to `hidden` and the output; the decoder mirrors it
with nearest-neighbour upsampling + 3x3 convolution. The spatial sizes are those of the conv architecture
(pae.models.sizes), so odd sizes (28 -> 14 -> 7 -> 3 and back) come out at the image's size.

Normalisation is GroupNorm, which is per sample: the model is the same function of each image whatever the batch,
so one process and several DDP ranks compute the same thing (BatchNorm would not)."""
from __future__ import annotations

import math

from torch import nn

from pae.models.sizes import decoder_stages, spatial_sizes


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(c, 8), c)  # up to 8 groups of at least c/8 channels


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), 3x3 convolutions keeping width and size."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c), _act(), nn.Conv2d(c, c, 3, 1, 1),
                                  _norm(c), _act(), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x):
        return x + self.body(x)


class ResNetEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_features)."""

    def __init__(self, image_shape, out_features, channels, hidden):
        super().__init__()
        c, h, w = image_shape
        hs, ws = spatial_sizes(h, len(channels)), spatial_sizes(w, len(channels))
        layers: list[nn.Module] = []
        for i, ch in enumerate(channels):
            if i:  # the residual stream is not activated; activate before each further downsampling
                layers.append(_act())
            layers += [nn.Conv2d(c, ch, 4, 2, 1), ResBlock(ch)]
            c = ch
        layers += [_norm(c), _act()]
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * hs[-1] * ws[-1], hidden), _act(),
                                nn.Linear(hidden, out_features))

    def forward(self, x):
        return self.fc(self.conv(x))


class ResNetDecoder(nn.Module):
    """(N, latent_dim) -> (N, out_channels, H, W); out_channels defaults to the image's channels. No output
    activation."""

    def __init__(self, image_shape, latent_dim, channels, hidden, out_channels=None):
        super().__init__()
        self.start, stages = decoder_stages(image_shape, channels, out_channels)
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), _act(), nn.Linear(hidden, math.prod(self.start)))
        layers: list[nn.Module] = []
        for c_in, c, _, size in stages:
            layers += [ResBlock(c_in), _norm(c_in), _act(), nn.Upsample(size=size, mode="nearest"),
                       nn.Conv2d(c_in, c, 3, 1, 1)]
        self.deconv = nn.Sequential(*layers)  # ends on the last convolution: no output activation

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, *self.start))

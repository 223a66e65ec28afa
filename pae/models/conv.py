"""Convolutional encoder/decoder in the InfoGAN style used by the PAE paper (Böhm & Seljak 2022, appendix):
stride-2 4x4 convolutions, a fully connected layer, the latent; the decoder mirrors it with transposed convolutions.
No batch normalisation, so one process and several DDP ranks compute the same function of the same global batch.
"""
from __future__ import annotations

import math

from torch import nn

from pae.models.sizes import decoder_stages, spatial_sizes


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_features)."""

    def __init__(self, image_shape, out_features, channels, hidden):
        super().__init__()
        c, h, w = image_shape
        layers, hs, ws = [], spatial_sizes(h, len(channels)), spatial_sizes(w, len(channels))
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = ch
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * hs[-1] * ws[-1], hidden), nn.LeakyReLU(0.2),
                                nn.Linear(hidden, out_features))

    def forward(self, x):
        return self.fc(self.conv(x))


class ConvDecoder(nn.Module):
    """(N, latent_dim) -> (N, out_channels, H, W); out_channels defaults to the image's channels (a likelihood with a
    per-pixel scale asks for more)."""

    def __init__(self, image_shape, latent_dim, channels, hidden, out_channels=None):
        super().__init__()
        self.start, stages = decoder_stages(image_shape, channels, out_channels)
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
                                nn.Linear(hidden, math.prod(self.start)), nn.LeakyReLU(0.2))
        layers = []
        for i, (c_in, c, (h0, w0), (h1, w1)) in enumerate(stages):
            # output_padding: odd sizes need one more row/column than 2x
            layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1, output_padding=(h1 - 2 * h0, w1 - 2 * w0)))
            if i < len(stages) - 1:  # no activation on the output
                layers.append(nn.LeakyReLU(0.2))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, *self.start))

"""Convolutional encoder/decoder in the InfoGAN style used by the PAE paper (Böhm & Seljak 2022, appendix):
stride-2 4x4 convolutions, a fully connected layer, the latent; the decoder mirrors it with transposed convolutions.
No batch normalisation, so one process and several DDP ranks compute the same function of the same global batch.
"""
from __future__ import annotations

from torch import nn

from pae.models.sizes import spatial_sizes


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
        c_img, h, w = image_shape
        c_out = out_channels or c_img
        hs, ws = spatial_sizes(h, len(channels)), spatial_sizes(w, len(channels))
        self.start = (channels[-1], hs[-1], ws[-1])
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
                                nn.Linear(hidden, channels[-1] * hs[-1] * ws[-1]), nn.LeakyReLU(0.2))
        layers = []
        outs = list(channels[-2::-1]) + [c_out]
        for i, (c_in, c) in enumerate(zip(channels[::-1], outs)):
            k = len(channels) - i  # spatial index this layer goes back to
            pad = (hs[k - 1] - 2 * hs[k], ws[k - 1] - 2 * ws[k])  # odd sizes need one more row/column
            layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1, output_padding=pad))
            if i < len(channels) - 1:  # no activation on the output
                layers.append(nn.LeakyReLU(0.2))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, *self.start))

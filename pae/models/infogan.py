"""The PAE authors' InfoGAN networks as their code builds them (github.com/VMBoehm/PAE, pae/networks.py with
util_2stageVAE.py), for reproducing their numbers:

- encoder: 4x4 stride-2 convolutions (the first followed by LeakyReLU 0.2; later ones by a per-channel affine map,
  dropout and LeakyReLU 0.2), a fully connected layer (affine, dropout, LeakyReLU 0.2), a linear output; spectral
  normalisation (one power iteration per step) on every encoder layer;
- decoder: a fully connected layer (affine, ReLU), a fully connected layer to the first feature map (affine, ReLU,
  dropout), 4x4 stride-2 transposed convolutions (affine, ReLU, dropout; none on the last), and sigmoid - 0.5 on the
  image channels, so outputs lie in the [-0.5, 0.5] pixel range;
- weights drawn from N(0, 0.02^2), biases zero.

Their batch normalisation runs with training=False throughout (tf.layers.batch_normalization's default), so it never
normalises: it is a learnt per-channel scale and shift, which `Affine` is. With no batch statistics, one process and
several DDP ranks still compute the same function. Dropout (train.dropout; theirs is 0.25) is the one stochastic part.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pae.models.sizes import decoder_stages, spatial_sizes


class Affine(nn.Module):
    """y = gamma * x + beta per channel (dim 1): batch normalisation with fixed statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * self.gamma.view(shape) + self.beta.view(shape)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, _SpectralNorm):
            m.reset_singular_vectors()


# pae's names of a spectrally normalised layer's tensors -> their keys under torch's spectral_norm parametrization
TORCH_SPECTRAL_NORM_KEYS = {"weight": "parametrizations.weight.original", "_u": "parametrizations.weight.0._u",
                            "_v": "parametrizations.weight.0._v"}


class _SpectralNorm:
    """A layer whose weight W acts as W / sigma, sigma its largest singular value estimated by power iteration (one
    step per forward in training mode): torch.nn.utils.parametrizations.spectral_norm's estimate, its u and v drawn
    and iterated as it does. The layer's output is divided by sigma instead of its weight: the same function and
    gradients, without materialising W / sigma and its gradient, two elementwise passes over every weight per step
    (for the 6.4M weights of the encoder's fully connected layer, a quarter of a CPU training step)."""
    eps = 1e-12

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # the layer's own (nn.Linear, nn.Conv2d)
        rows, cols = self.weight.shape[0], self.weight[0].numel()
        self.register_buffer("_u", self.weight.new_empty(rows))
        self.register_buffer("_v", self.weight.new_empty(cols))
        self.reset_singular_vectors()
        # torch's parametrized layers list the bias before the weight: the same order here keeps an optimizer state
        # saved with them (a training checkpoint) aligned with the parameters
        weight = self.weight
        del self.weight
        self.weight = weight

    @torch.no_grad()
    def reset_singular_vectors(self) -> None:
        """Random unit u, v, then 15 power iterations; again whenever the weight is drawn anew."""
        self._u.copy_(F.normalize(torch.empty_like(self._u).normal_(0, 1), dim=0, eps=self.eps))
        self._v.copy_(F.normalize(torch.empty_like(self._v).normal_(0, 1), dim=0, eps=self.eps))
        self._power_iteration(15)

    @torch.no_grad()
    def _power_iteration(self, steps: int, w: torch.Tensor | None = None) -> None:
        w = self.weight.flatten(1) if w is None else w
        for _ in range(steps):  # in place: DDP broadcasts these buffers
            F.normalize(torch.mv(w, self._v), dim=0, eps=self.eps, out=self._u)
            F.normalize(torch.mv(w.T, self._u), dim=0, eps=self.eps, out=self._v)

    def sigma(self) -> torch.Tensor:
        """The estimate u^T W v, differentiable in W; takes a power-iteration step first in training mode."""
        w = self.weight.flatten(1)
        if self.training:
            self._power_iteration(1, w)
        # copies: the next step updates the buffers in place, and this step's backward still needs these
        u, v = self._u.clone(), self._v.clone()
        return torch.vdot(u, torch.mv(w, v))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a model saved under torch's spectral_norm parametrization loads too
        for name, key in TORCH_SPECTRAL_NORM_KEYS.items():
            if prefix + key in state_dict:
                state_dict[prefix + name] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SNLinear(_SpectralNorm, nn.Linear):
    def forward(self, x):
        return torch.addcdiv(self.bias, F.linear(x, self.weight), self.sigma())


class SNConv2d(_SpectralNorm, nn.Conv2d):
    def forward(self, x):
        out = self._conv_forward(x, self.weight, None) / self.sigma()
        return out + self.bias.view(1, -1, 1, 1)


class InfoGANEncoder(nn.Module):
    """(N, C, H, W) -> (N, out_features)."""

    def __init__(self, image_shape, out_features, channels, hidden, dropout=0.0):
        super().__init__()
        c, h, w = image_shape
        hs, ws = spatial_sizes(h, len(channels)), spatial_sizes(w, len(channels))
        layers = []
        for i, ch in enumerate(channels):
            layers.append(SNConv2d(c, ch, 4, 2, 1))
            if i > 0:
                layers += [Affine(ch), nn.Dropout(dropout)]
            layers.append(nn.LeakyReLU(0.2))
            c = ch
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), SNLinear(c * hs[-1] * ws[-1], hidden), Affine(hidden),
                                nn.Dropout(dropout), nn.LeakyReLU(0.2), SNLinear(hidden, out_features))
        _init(self)

    def forward(self, x):
        return self.fc(self.conv(x))


class InfoGANDecoder(nn.Module):
    """(N, latent_dim) -> (N, out_channels, H, W); the image's channels pass through sigmoid - 0.5, any further
    channels (a likelihood's per-pixel scale) stay linear."""

    def __init__(self, image_shape, latent_dim, channels, hidden, out_channels=None, dropout=0.0):
        super().__init__()
        self.image_channels = image_shape[0]
        self.start, stages = decoder_stages(image_shape, channels, out_channels)
        n_start = math.prod(self.start)
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), Affine(hidden), nn.ReLU(),
                                nn.Linear(hidden, n_start), Affine(n_start), nn.ReLU(), nn.Dropout(dropout))
        layers = []
        for i, (c_in, c, (h0, w0), (h1, w1)) in enumerate(stages):
            layers.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1, output_padding=(h1 - 2 * h0, w1 - 2 * w0)))
            if i < len(stages) - 1:
                layers += [Affine(c), nn.ReLU(), nn.Dropout(dropout)]
        self.deconv = nn.Sequential(*layers)
        _init(self)

    def forward(self, z):
        out = self.deconv(self.fc(z).view(-1, *self.start))
        image = torch.sigmoid(out[:, :self.image_channels]) - 0.5
        if out.shape[1] == self.image_channels:
            return image
        return torch.cat([image, out[:, self.image_channels:]], dim=1)

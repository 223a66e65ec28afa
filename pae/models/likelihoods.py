"""Likelihoods p(x | z) of the decoder's output: the proper negative log-likelihood in nats (so ELBOs compare
across models), the reconstruction mean and the per-pixel scale. Pixels are on the [-0.5, 0.5] scale (the PAE
paper's); an optional mask (1 = observed) restricts the NLL to observed pixels (training on data with missing
values, as in the Variational Auto-Decoder paper).

Kinds (LIKELIHOODS registry):
- gaussian_fixed: N(x; mu, sigma^2), sigma from the config.
- gaussian_learned: one learned sigma for all pixels (homoscedastic).
- gaussian_image: one sigma per image (image-wise heteroscedastic), the spatial mean of an extra decoder channel.
- gaussian_pixel: one sigma per pixel (pixel-wise heteroscedastic), from C extra decoder channels; with beta_nll > 0
  the training loss weights each pixel's NLL by stop_grad(sigma^2)^beta (Seitzer et al. 2022, "beta-NLL").
- bernoulli: Bernoulli(x + 0.5; sigmoid(logits)); for (near-)binary images. On grayscale data the targets are
  treated as probabilities, which is the usual practice but not a normalised density over [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pae.config import default

LOG_2PI = math.log(2 * math.pi)
MIN_LOG_SIGMA = -7.0  # sigma >= ~1e-3 on the [-0.5, 0.5] scale: keeps the NLL bounded on constant pixels


@dataclass(frozen=True)
class LikelihoodSpec:
    kind: str = default("train.likelihood.kind")
    sigma: float = default("train.likelihood.sigma")
    beta_nll: float = default("train.likelihood.beta_nll")


def _masked_sum(per_pixel: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sum over (C, H, W) per sample; mask (N, 1 or C, H, W) of 0/1 keeps observed pixels only."""
    if mask is not None:
        per_pixel = per_pixel * mask
    return per_pixel.flatten(1).sum(1)


class Likelihood(nn.Module):
    """Base: subclasses set `extra` (decoder channels per image channel beyond the mean) and implement _params."""
    extra = 0  # 0: C channels; 1: C + 1 (image-wise); C: 2C (pixel-wise)
    gaussian = True  # p(x | z) is N(mean, scale^2) per pixel, so it has central intervals mean +- k scale
    scale_varies = False  # the scale is predicted per image or pixel (not one number for all): worth a picture

    def __init__(self, spec: LikelihoodSpec, channels: int):
        super().__init__()
        self.spec, self.c = spec, channels

    def decoder_channels(self) -> int:
        return self.c + self.extra

    def _params(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder output -> (mean, log sigma), both broadcastable to (N, C, H, W)."""
        raise NotImplementedError

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return self._params(out)[0]

    def scale(self, out: torch.Tensor) -> torch.Tensor:
        mu, log_sigma = self._params(out)
        return log_sigma.exp().expand_as(mu)

    def nll(self, out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(x | z) per sample (N,), nats, over observed pixels."""
        mu, log_sigma = self._params(out.float())
        per_pixel = 0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * LOG_2PI
        return _masked_sum(per_pixel, mask)

    def loss(self, out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss per sample; the NLL unless a subclass reweights it."""
        return self.nll(out, x, mask)


class GaussianFixed(Likelihood):
    def __init__(self, spec, channels):
        super().__init__(spec, channels)
        if spec.sigma <= 0:
            raise ValueError(f"likelihood sigma must be positive, got {spec.sigma}")
        self.register_buffer("log_sigma", torch.tensor(math.log(spec.sigma)))

    def _params(self, out):
        return out, self.log_sigma


class GaussianLearned(Likelihood):
    def __init__(self, spec, channels):
        super().__init__(spec, channels)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(spec.sigma)))  # starts at the configured sigma

    def _params(self, out):
        return out, self.log_sigma.clamp(min=MIN_LOG_SIGMA)


class GaussianImage(Likelihood):
    extra = 1
    scale_varies = True

    def _params(self, out):
        log_sigma = out[:, self.c:].mean(dim=(1, 2, 3), keepdim=True).clamp(min=MIN_LOG_SIGMA)
        return out[:, :self.c], log_sigma


class GaussianPixel(Likelihood):
    scale_varies = True

    def __init__(self, spec, channels):
        super().__init__(spec, channels)
        self.extra = channels

    def _params(self, out):
        return out[:, :self.c], out[:, self.c:].clamp(min=MIN_LOG_SIGMA)

    def loss(self, out, x, mask=None):
        if self.spec.beta_nll == 0:
            return self.nll(out, x, mask)
        mu, log_sigma = self._params(out.float())
        per_pixel = 0.5 * ((x - mu) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * LOG_2PI
        weight = torch.exp(2 * log_sigma.detach() * self.spec.beta_nll)  # stop_grad(sigma^2)^beta
        return _masked_sum(per_pixel * weight, mask)


class Bernoulli(Likelihood):
    gaussian = False
    scale_varies = True  # the std sqrt(p (1 - p)) follows the mean

    def _params(self, out):
        raise NotImplementedError("a Bernoulli likelihood has no (mean, log sigma) parametrisation")

    def mean(self, out):
        return torch.sigmoid(out.float()) - 0.5

    def scale(self, out):
        p = torch.sigmoid(out.float())
        return (p * (1 - p)).sqrt()

    def nll(self, out, x, mask=None):
        per_pixel = F.binary_cross_entropy_with_logits(out.float(), (x + 0.5).clamp(0, 1), reduction="none")
        return _masked_sum(per_pixel, mask)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    "gaussian_fixed": GaussianFixed,
    "gaussian_learned": GaussianLearned,
    "gaussian_image": GaussianImage,
    "gaussian_pixel": GaussianPixel,
    "bernoulli": Bernoulli,
}


def build_likelihood(spec: LikelihoodSpec, channels: int) -> Likelihood:
    if spec.kind not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {spec.kind!r}; known: {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[spec.kind](spec, channels)

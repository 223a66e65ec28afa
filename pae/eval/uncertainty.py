"""The decoder's own uncertainty: the likelihood p(x | z) as a predictive distribution of the pixels (as in the
heteroscedastic VAE of github.com/Sheev13/vae), and the latent traversal of its figures.

Calibration of a Gaussian likelihood N(mu(z), sigma(z)^2): per level, the fraction of test pixels x inside the central
interval |x - mu| <= k sigma, k = Phi^-1(1/2 + level/2) (0.9945 for 68%, 1.960 for 95%). A calibrated model has those
fractions at the levels. The latent z is either one draw from q(z | x) (the setting the likelihood was trained in:
the ELBO's expected log-likelihood) or the posterior mean (the reconstruction). A Bernoulli likelihood on grey levels
has no such intervals (its support is {0, 1}); its moments are still compared: the root mean square of the predicted
std sqrt(p (1 - p)) against that of the residuals x - p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pae.data.loader import BatchLoader

LEVELS = (0.68, 0.95)


def interval_k(level: float) -> float:
    """Half-width of the central `level` interval of a Gaussian in standard deviations (0.9945 for 0.68)."""
    return math.sqrt(2.0) * torch.special.erfinv(torch.tensor(level, dtype=torch.float64)).item()


def has_likelihood(model: nn.Module) -> bool:
    """Whether the model decodes to a likelihood p(x | z) (VAE, beta-VAE, VAD) rather than a point (AE)."""
    return hasattr(model, "likelihood")


@torch.no_grad()
def predictive(model: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The likelihood's per-pixel mean and standard deviation at latents z, each (N, C, H, W), pixels on the
    [-0.5, 0.5] scale (a Bernoulli's std is sqrt(p (1 - p)), the same on that scale as on [0, 1])."""
    out = model.decoder(z)
    return model.likelihood.mean(out).float(), model.likelihood.scale(out).float()


@dataclass
class _Tally:
    """Running sums over pixels for one choice of latent."""
    inside: dict[float, int]
    n: int = 0
    sq_residual: float = 0.0
    sq_std: float = 0.0

    def add(self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, ks: dict[float, float] | None) -> None:
        residual = (x - mu).abs()
        for level, k in (ks or {}).items():
            self.inside[level] += int((residual <= k * sigma).sum())
        self.n += x.numel()
        self.sq_residual += residual.double().pow(2).sum().item()
        self.sq_std += sigma.double().pow(2).sum().item()

    def result(self, intervals: bool) -> dict:
        return {"coverage": {f"{level:g}": self.inside[level] / self.n for level in self.inside} if intervals else None,
                "rms_residual": math.sqrt(self.sq_residual / self.n), "rms_std": math.sqrt(self.sq_std / self.n)}


def calibration_counts(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, levels: tuple[float, ...] = LEVELS
                       ) -> dict[float, float]:
    """Per level, the fraction of pixels of x inside the central interval of N(mu, sigma^2) (shapes broadcast)."""
    tally = _Tally({level: 0 for level in levels})
    tally.add(*torch.broadcast_tensors(x, mu, sigma), {level: interval_k(level) for level in levels})
    return {level: tally.inside[level] / tally.n for level in levels}


@torch.no_grad()
def calibration(model: nn.Module, images: torch.Tensor, params: torch.Tensor, device: torch.device,
                batch_size: int = 1000, seed: int = 0, levels: tuple[float, ...] = LEVELS) -> dict:
    """The likelihood's calibration over uint8 images (N, C, H, W) with their posterior parameters (N, P): for z one
    draw from q(z | x) (`sample`) and z the posterior mean (`mean`), the fraction of pixels inside each central
    interval (`coverage`, {"0.68": ..., "0.95": ...}; None for a non-Gaussian likelihood), and the root mean square of
    the residuals x - mean and of the predicted std. The draws are seeded without moving the caller's random stream."""
    model.eval()
    intervals = model.likelihood.gaussian
    ks = {level: interval_k(level) for level in levels} if intervals else None
    tallies = {which: _Tally({level: 0 for level in (levels if intervals else ())}) for which in ("sample", "mean")}
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i, x in enumerate(BatchLoader(images, batch_size, shuffle=False, device=device)):
            p = params[i * batch_size:(i + 1) * batch_size].to(device)
            latents = {"sample": model.posterior.distribution(p).sample(), "mean": model.posterior.mean(p).float()}
            for which, z in latents.items():
                tallies[which].add(x, *predictive(model, z), ks)
    return {which: t.result(intervals) for which, t in tallies.items()} | {"n_pixels": tallies["mean"].n}


@torch.no_grad()
def posterior_draws(model: nn.Module, params: torch.Tensor, device: torch.device, seed: int = 0) -> torch.Tensor:
    """One seeded draw from each posterior q(z | x) of `params` (N, P) -> (N, D), on `device`."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return model.posterior.distribution(params.to(device)).sample()


def corner_images(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Indices of four images for the traversal's corners, drawn with `seed`, of four different labels where the
    labels allow (else the first four drawn)."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    picked, seen = [], set()
    for i in order.tolist():
        if labels[i].item() not in seen:
            picked.append(i)
            seen.add(labels[i].item())
        if len(picked) == 4:
            return torch.tensor(picked)
    rest = [i for i in order.tolist() if i not in picked]
    return torch.tensor((picked + rest)[:4])


def bilinear_grid(corners: torch.Tensor, steps: int) -> torch.Tensor:
    """Latents (steps, steps, D) interpolated bilinearly between four corner latents (4, D), in the order top-left,
    top-right, bottom-left, bottom-right: row i, column j is at (u, v) = (j, i) / (steps - 1)."""
    t = torch.linspace(0, 1, steps, dtype=corners.dtype)
    u, v = t.view(1, steps, 1), t.view(steps, 1, 1)
    tl, tr, bl, br = corners
    return (1 - v) * ((1 - u) * tl + u * tr) + v * ((1 - u) * bl + u * br)

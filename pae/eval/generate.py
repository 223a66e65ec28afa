"""Encoding, reconstruction and generation with a trained auto-encoder (and its flow, for the PAE)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from tqdm import tqdm

from pae.data.loader import BatchLoader, to_uint8
from pae.flows import LatentFlow
from pae.io import progress_kwargs


MaskFn = Callable[[torch.Tensor], torch.Tensor]  # item positions (B,) -> their masks (B, 1, H, W), 1 = observed


def _masked_batches(images: torch.Tensor, batch_size: int, device, mask_fn: MaskFn | None):
    for x, idx in BatchLoader(images, batch_size, shuffle=False, device=device).batches(with_index=True):
        yield x, (None if mask_fn is None else mask_fn(idx).to(x.device))


@torch.no_grad()
def encode_images(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1000,
                  mask_fn: MaskFn | None = None) -> torch.Tensor:
    """Latents (N, D) of uint8 images (N, C, H, W), in order: the code of an AE, the posterior mean otherwise.
    With mask_fn the encoder sees each image with its missing pixels (mask 0) set to 0."""
    model.eval()
    batches = _masked_batches(images, batch_size, device, mask_fn)
    return torch.cat([model.encode(x, m).float().cpu() for x, m in batches])


def latents(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1000
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(z, posterior params or None) of uint8 images, as the encode stage finds them: the encoder's latent of an AE;
    for a VAE, beta-VAE or VAD the posterior once (a VAD optimises it) and its mean as z."""
    if hasattr(model, "posterior"):
        params = posterior_params(model, images, device, batch_size)
        return model.posterior.mean(params), params
    return encode_images(model, images, device, batch_size), None


@torch.no_grad()
def posterior_params(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1000,
                     mask_fn: MaskFn | None = None) -> torch.Tensor:
    """Posterior parameters (N, P) of a VAE (encoder) or a VAD (test-time optimisation, observed pixels only),
    in order."""
    model.eval()
    out = [model.posterior_params(x, m).float().cpu()
           for x, m in tqdm(_masked_batches(images, batch_size, device, mask_fn), desc="posteriors",
                            total=-(-len(images) // batch_size), **progress_kwargs())]
    return torch.cat(out)


@torch.no_grad()
def elbo(model: nn.Module, images: torch.Tensor, params: torch.Tensor, device: torch.device, samples: int = 8,
         batch_size: int = 500, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per image: -E_q log p(x | z) (`nll`, `samples` draws), KL(q || N(0, I)) and the ELBO, in nats."""
    model.eval()
    nll, kl = [], []
    with torch.random.fork_rng(devices=[device] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(seed)  # the posterior draws, without moving the caller's random stream
        for i, x in enumerate(BatchLoader(images, batch_size, shuffle=False, device=device)):
            n, k = model.elbo_terms(x, params[i * batch_size:(i + 1) * batch_size].to(device), samples=samples)
            nll.append(n.cpu())
            kl.append(k.cpu())
    nll, kl = torch.cat(nll), torch.cat(kl)
    return {"nll": nll, "kl": kl, "elbo": -(nll + kl)}


@torch.no_grad()
def reconstruction_errors(model: nn.Module, images: torch.Tensor, z: torch.Tensor, device: torch.device,
                          batch_size: int = 1000) -> torch.Tensor:
    """Per-image mean squared error per pixel on the [-0.5, 0.5] scale of decode(z) against the images, (N,);
    z are the images' latents from the encode stage (a VAD's come from test-time optimisation, done once)."""
    model.eval()
    errs = [(model.decode(z[i * batch_size:(i + 1) * batch_size].to(device)).float() - x).pow(2).flatten(1).mean(1)
            .cpu() for i, x in enumerate(BatchLoader(images, batch_size, shuffle=False, device=device))]
    return torch.cat(errs)


@torch.no_grad()
def decode_to_uint8(model: nn.Module, z: torch.Tensor, device: torch.device) -> torch.Tensor:
    model.eval()
    return to_uint8(model.decode(z.to(device))).cpu()


@torch.no_grad()
def flow_latents(flow: LatentFlow, n: int, temperature: float, device: torch.device, seed: int = 0) -> torch.Tensor:
    """n latents of the PAE's sampler, on `device`: u ~ N(0, T^2 I) (a CPU generator seeded with `seed`, so the draws
    are the same on every device) -> flow inverse."""
    return flow.to(device).sample(n, temperature, generator=torch.Generator().manual_seed(seed))


def prior_latents(latent_dim: int, n: int, seed: int = 0) -> torch.Tensor:
    """n latents z ~ N(0, I) on the CPU, from a generator seeded with `seed`."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def pae_samples(model: nn.Module, flow: LatentFlow, n: int, temperature: float, device: torch.device,
                seed: int = 0) -> torch.Tensor:
    """PAE samples: u ~ N(0, T^2 I) -> flow inverse -> decoder (Böhm & Seljak 2022, sec. 2.3)."""
    return decode_to_uint8(model, flow_latents(flow, n, temperature, device, seed), device)


@torch.no_grad()
def prior_samples(model: nn.Module, latent_dim: int, n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """z ~ N(0, I) through the decoder: what a plain AE gives without a density on its latents (for contrast)."""
    return decode_to_uint8(model, prior_latents(latent_dim, n, seed), device)


@torch.no_grad()
def interpolations(model: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, steps: int, device: torch.device
                   ) -> torch.Tensor:
    """Decoded linear interpolations between latent pairs: (P, steps, C, H, W) uint8."""
    w = torch.linspace(0, 1, steps).view(1, steps, 1)
    z = (1 - w) * z_a[:, None] + w * z_b[:, None]
    imgs = decode_to_uint8(model, z.flatten(0, 1), device)
    return imgs.view(len(z_a), steps, *imgs.shape[1:])

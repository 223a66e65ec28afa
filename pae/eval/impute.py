"""Missing-data imputation: test images with pixels missing completely at random (MCAR, each pixel missing with
probability r, shared across channels), filled in by each model's way of inferring a latent from the observed pixels,
scored by the mean squared error per pixel on the missing pixels only ([-0.5, 0.5] pixel scale), and on all pixels
(`mse_all`: the reconstruction against the clean image, the VAD authors' "clean loss").

Methods (`methods_for`):
  encoder    AE, VAE, beta-VAE: the encoder's latent of the image with missing pixels set to 0 (as in training with
             missing data), decoded.
  vad_infer  VAD: test-time optimisation of the posterior parameters on the observed pixels (decoder frozen),
             the posterior mean decoded.
  pae_map    every model with a flow on its latents: the latent MAP under the flow prior and a Gaussian likelihood on
             the observed pixels (per-pixel sigma from validation residuals), started from the latent above and from
             flow samples (pae.eval.posterior.map_estimate).
Test masks are a pure function of (seed, test item, pixel) (pae.data.masks), so every model sees the same masks.
"""
from __future__ import annotations

import logging
import time
from typing import Iterator

import torch
from torch import nn

from pae.data.loader import to_float
from pae.data.masks import mcar_mask
from pae.eval.posterior import map_estimate
from pae.flows import LatentFlow

log = logging.getLogger(__name__)

# Images per batch of the impute stage: the batch's position seeds the MAP's prior draws (impute_batches), so pae.api
# imputes in the same batches to give the stage's numbers.
BATCH_SIZE = 250


def methods_for(model: nn.Module) -> list[str]:
    """The imputation methods that apply to a model, the model's own first."""
    return ["vad_infer" if getattr(model, "needs_index", False) else "encoder", "pae_map"]


def imputation_masks(seed: int, items: torch.Tensor, shape: tuple[int, int], ratio: float) -> torch.Tensor:
    """(N, 1, H, W) MCAR masks (1 = observed) of test items at a missing ratio; never all-missing per image."""
    mask = mcar_mask(seed, items, shape, ratio)
    empty = mask.flatten(1).sum(1) == 0
    mask[empty, 0, 0, 0] = 1.0  # ratio 0.9 on tiny images could hide every pixel; keep one observed
    return mask


def missing_mse(recon: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: the mean squared error per pixel over its missing pixels (mask 0), all channels; (N,)."""
    missing = (1 - mask).expand_as(truth)
    err = (recon.float() - truth.float()).pow(2) * missing
    return err.flatten(1).sum(1) / missing.flatten(1).sum(1).clamp(min=1)


def _latent(model: nn.Module, method: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if method == "vad_infer":
        return model.posterior.mean(model.infer(x, mask))
    with torch.no_grad():
        return model.encode(x, mask)


def impute_batch(model: nn.Module, flow: LatentFlow | None, x: torch.Tensor, mask: torch.Tensor, sigma: torch.Tensor,
                 restarts: int, steps: int, lr: float, generator: torch.Generator | None = None,
                 methods: list[str] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Reconstructions (N, C, H, W) of one batch by the `methods` (default: every method of `methods_for(model)`),
    and the seconds each took (pae_map's includes the latent it starts from); x is the clean batch (float,
    [-0.5, 0.5]); methods see it only through the mask. flow None: pae_map's prior is N(0, I)."""
    own, _ = methods_for(model)
    methods = methods_for(model) if methods is None else methods
    observed = x * mask
    t0 = time.perf_counter()
    z0 = _latent(model, own, observed, mask)
    t1 = time.perf_counter()
    z, took = {own: z0}, {own: t1 - t0}
    if "pae_map" in methods:
        z["pae_map"], _ = map_estimate(model, flow, observed, mask, sigma, restarts=restarts, steps=steps, lr=lr,
                                       init=z0, generator=generator)
        took["pae_map"] = time.perf_counter() - t0
    with torch.no_grad():
        return {m: model.decode(z[m]) for m in methods}, {m: took[m] for m in methods}


def impute_batches(model: nn.Module, flow: LatentFlow | None, images: torch.Tensor, masks: torch.Tensor,
                   sigma: torch.Tensor, *, seed: int, restarts: int, steps: int, lr: float, batch_size: int,
                   device: torch.device, methods: list[str] | None = None
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], dict[str, float]]]:
    """impute_batch over uint8 images (N, C, H, W) with their masks (N, 1, H, W), `batch_size` at a time: per batch
    (the clean batch x, its mask, reconstructions by method, seconds by method), on `device`. The MAP's prior draws
    of the batch starting at image i come from a generator seeded with seed + i. The impute stage (impute_sweep) and
    pae.api's impute call this one function."""
    model.eval()
    for i in range(0, len(images), batch_size):
        x = to_float(images[i:i + batch_size]).to(device)
        mask = masks[i:i + batch_size].to(device)
        recons, took = impute_batch(model, flow, x, mask, sigma, restarts, steps, lr,
                                    generator=torch.Generator().manual_seed(seed + i), methods=methods)
        yield x, mask, recons, took


def impute_sweep(model: nn.Module, flow: LatentFlow | None, images: torch.Tensor, items: torch.Tensor,
                 ratios: list[float], sigma: torch.Tensor, *, seed: int, restarts: int, steps: int, lr: float,
                 batch_size: int, device: torch.device) -> list[dict]:
    """For each ratio and method: the mean over images of the missing-pixel MSE, its standard error and the seconds
    taken. images: uint8 test images (N, C, H, W); items: their positions in the test split (mask keys)."""
    rows = []
    for ratio in ratios:
        errs = {m: [] for m in methods_for(model)}
        errs_all = {m: [] for m in errs}
        seconds = dict.fromkeys(errs, 0.0)
        masks = imputation_masks(seed, items, tuple(images.shape[2:]), ratio)
        for x, mask, recons, took in impute_batches(model, flow, images, masks, sigma, seed=seed, restarts=restarts,
                                                    steps=steps, lr=lr, batch_size=batch_size, device=device):
            for method, recon in recons.items():
                errs[method].append(missing_mse(recon, x, mask).cpu())
                errs_all[method].append(missing_mse(recon, x, torch.zeros_like(mask)).cpu())  # all pixels
                seconds[method] += took[method]
        for method, parts in errs.items():
            e, e_all = torch.cat(parts).double(), torch.cat(errs_all[method]).double()
            rows.append({"ratio": ratio, "method": method, "mse_missing": e.mean().item(),
                         "mse_missing_se": (e.std() / len(e) ** 0.5).item() if len(e) > 1 else None,
                         "mse_all": e_all.mean().item(), "n_images": len(e), "seconds": seconds[method]})
            log.info("missing ratio %.2f, %-9s: MSE on missing pixels %.5f", ratio, method, e.mean().item())
    return rows

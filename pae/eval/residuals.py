"""The decoder's own per-pixel error: sigma_pix, the root mean square of the residuals x - decode(z) of held-out
images at their latents. It is the std of the Gaussian pixel likelihood of the posterior (pae.eval.posterior), of
imputation (pae.eval.impute) and of the OoD score pae_marginal (pae.eval.ood); a property of the trained model measured
on data, not of any one of those methods.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from pae.data.latents import split_with_latents
from pae.data.loader import BatchLoader

# sigma_pix floor, on the [-0.5, 0.5] scale (about 2.5 grey levels of 255): pixels that are constant in the
# validation set (an MNIST digit's border) have ~0 residual, and a ~0 sigma would pin the posterior to the decoder's
# tiny errors there.
SIGMA_FLOOR = 1e-2


@torch.no_grad()
def residual_sigma(model: nn.Module, images_u8: torch.Tensor, z: torch.Tensor, device: torch.device | str,
                   batch_size: int = 500, floor: float = SIGMA_FLOOR) -> torch.Tensor:
    """sigma_pix (C, H, W): per pixel, the root mean square over the images of the residual x - decode(z) (the
    maximum-likelihood std of a zero-mean Gaussian error), floored at `floor`. z are the images' latents (the
    validation latents of latents.h5)."""
    if len(z) != len(images_u8):
        raise ValueError(f"{len(z)} latents for {len(images_u8)} images")
    total = torch.zeros(images_u8.shape[1:], dtype=torch.float64, device=device)
    for i, x in enumerate(BatchLoader(images_u8, batch_size, shuffle=False, device=device)):
        mean = model.decode(z[i * batch_size:(i + 1) * batch_size].to(device))
        total += (mean.double() - x.double()).pow(2).sum(0)
    return (total / len(images_u8)).sqrt().clamp_min(floor).float()


def validation_sigma(model: nn.Module, data, latents_path: str | os.PathLike, device: torch.device | str
                     ) -> torch.Tensor:
    """sigma_pix of a run: residual_sigma of its dataset's validation images (`data`, a pae.data.store.Dataset) at
    their latents in the run's latents.h5 (the encode stage's); the likelihood sigma of the posterior and impute
    stages and of pae.api's posterior and impute."""
    return residual_sigma(model, *split_with_latents(latents_path, data, "val"), device)

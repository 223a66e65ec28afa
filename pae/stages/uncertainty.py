"""Stage uncertainty: the decoder's predicted uncertainty (pae.eval.uncertainty), the heteroscedastic VAE's pictures
(github.com/Sheev13/vae) as arrays for the report, and a latent traversal for every model.

metrics/uncertainty.json:
    model, likelihood (null for an AE: no likelihood), beta_nll, gaussian, scale_varies, n_test, pixel_scale, spec,
    levels, k ({"0.68": 0.9945, "0.95": 1.96}: the intervals' half-widths in stds),
    calibration (null for an AE): {sample | mean: {coverage ({"0.68": fraction, "0.95": fraction} of the test pixels
        inside the likelihood's central intervals, z one draw from q(z | x) | the posterior mean; null for a
        Bernoulli likelihood), rms_residual, rms_std}, n_pixels},
    note (why a number is absent).

panels (HDF5, uncertainty.h5; the report draws them, loading no model). Images uint8 on the 0-255 scale, std float32
on the [-0.5, 0.5] pixel scale:
    traversal (S, S, C, H, W): decoded bilinear interpolation between the latents (latents.h5: the posterior mean, an
        AE's code) of the four test images corner_images (4, C, H, W) (top-left, top-right, bottom-left,
        bottom-right; their indices in the test split: corner_index (4,));
    models with a likelihood: originals (K, C, H, W) test images, latents (K, D) one draw from each one's q(z | x),
        reconstructions (K, C, H, W) the likelihood's mean at that draw, std (K, C, H, W) its predicted std;
    likelihoods whose scale varies (scale_varies: image-wise, pixel-wise Gaussian, Bernoulli): prior_samples,
        prior_std (z ~ N(0, I)) and pae_samples, pae_std (z from the flow at T = 1), M each.
    File attrs: format, model, likelihood ("" for an AE), beta_nll, scale_varies, gaussian.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import h5py
import torch

from pae.config import default
from pae.data.latents import read_params, split_with_latents
from pae.data.loader import to_uint8
from pae.eval.uncertainty import (LEVELS, bilinear_grid, calibration, corner_images, has_likelihood, interval_k,
                                  posterior_draws, predictive)
from pae.io import PaeError, atomic_path, write_json
from pae.stages.args import add_run_inputs
from pae.stages.common import Run, load_run

log = logging.getLogger(__name__)

PANELS_FORMAT = "pae-uncertainty-panels/1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.uncertainty config section", latents=True)
    p.add_argument("--panels-out", type=Path, required=True, help="HDF5 file of the figures' arrays")
    p.add_argument("--batch-size", type=int, default=default("eval.batch_size"),
                   help="test images per forward pass (eval.batch_size)")


def run(a: argparse.Namespace) -> None:
    uncertainty(a.spec, a.model, a.flow, a.data, a.latents, a.out, a.panels_out, a.device, a.batch_size)


def uncertainty(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path, out: Path,
                panels_out: Path, device: str, batch_size: int) -> None:
    """Calibration of the run's likelihood on its test images -> `out`; the figures' arrays -> `panels_out`."""
    r = load_run(model_path, flow_path, data_path, device)
    images, z_test = split_with_latents(latents_path, r.data, "test")
    labels = r.data.split("test")[1]
    has = has_likelihood(r.model)
    likelihood = r.model.likelihood if has else None
    params = read_params(latents_path, "test")
    if has and (params is None or len(params) != len(images)):
        raise PaeError(f"{latents_path}: no posterior parameters for the {len(images)} test images of a "
                       f"{r.spec.kind}; rerun the encode stage")
    result = {"model": r.spec.kind, "likelihood": r.spec.likelihood.kind if has else None,
              "beta_nll": r.spec.likelihood.beta_nll if has else None, "gaussian": has and likelihood.gaussian,
              "scale_varies": has and likelihood.scale_varies, "n_test": len(images),
              "pixel_scale": "[-0.5, 0.5]", "spec": spec, "levels": list(LEVELS),
              "k": {f"{level:g}": interval_k(level) for level in LEVELS}, "calibration": None, "note": None}
    if not has:
        result["note"] = "no likelihood: the auto-encoder decodes to a point (trained on squared error)"
    else:
        result["calibration"] = calibration(r.model, images, params, r.device, batch_size, seed=spec["seed"])
        if not likelihood.gaussian:
            result["note"] = (f"{r.spec.likelihood.kind} likelihood: no central intervals on grey levels (its "
                              "support is {0, 1}); the test NLL (elbo.json) and the rms of predicted std and "
                              "residuals only")
        _log(result)
    panels = _panels(spec, r, images, labels, z_test, params)
    write_json(out, result)
    with atomic_path(panels_out, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        for key, value in panels.items():
            f[key] = value.numpy()
        f.attrs.update(format=PANELS_FORMAT, model=r.spec.kind, likelihood=result["likelihood"] or "",
                       beta_nll=result["beta_nll"] or 0.0, scale_varies=result["scale_varies"],
                       gaussian=result["gaussian"])


def _log(result: dict) -> None:
    for which, c in result["calibration"].items():
        if which == "n_pixels":
            continue
        inside = c["coverage"]
        log.info("%s, z = %s: %s; rms residual %.4f, rms predicted std %.4f", result["likelihood"],
                 "a draw from q(z | x)" if which == "sample" else "the posterior mean",
                 "no intervals" if inside is None else ", ".join(
                     f"{float(level):.0%} interval holds {v:.3f} of the test pixels" for level, v in inside.items()),
                 c["rms_residual"], c["rms_std"])


@torch.no_grad()
def _panels(spec: dict, r: Run, images: torch.Tensor, labels: torch.Tensor, z_test: torch.Tensor,
            params: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The figures' arrays (see the module docstring), on the CPU."""
    model, dev, seed = r.model, r.device, spec["seed"]
    model.eval()
    corners = corner_images(labels, seed)
    grid = bilinear_grid(z_test[corners], spec["traversal_steps"])
    decoded = to_uint8(model.decode(grid.flatten(0, 1).to(dev))).cpu()
    panels = {"traversal": decoded.view(*grid.shape[:2], *decoded.shape[1:]), "corner_images": images[corners],
              "corner_index": corners}
    if not has_likelihood(model):
        return panels
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:spec["n_images"]]
    z = posterior_draws(model, params[pick], dev, seed)
    mu, std = predictive(model, z)
    panels.update(originals=images[pick], latents=z.cpu(), reconstructions=to_uint8(mu).cpu(), std=std.cpu())
    if model.likelihood.scale_varies:
        n = spec["n_samples"]
        g = torch.Generator().manual_seed(seed)
        for name, z in (("prior", torch.randn(n, r.spec.latent_dim, generator=g).to(dev)),
                        ("pae", r.flow.to(dev).sample(n, 1.0, generator=g))):
            mu, std = predictive(model, z)
            panels.update({f"{name}_samples": to_uint8(mu).cpu(), f"{name}_std": std.cpu()})
    return panels

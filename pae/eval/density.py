"""The PAE density of an image: the flow's density of its latent carried onto the decoder's manifold (Böhm & Seljak
2022, sec. 2).

The decoder g: R^d -> R^n (n = C*H*W pixels, d <= n) maps the latent space onto a d-dimensional manifold of image
space. For an injective g the change of variables to the manifold's own volume element gives, at x = g(z),

    log p(x) = log p(z) - 1/2 log det(J^T J),    J = dg/dz  (n x d),

where p(z) is the flow's density of the latent and sqrt(det(J^T J)) is the volume by which g stretches an
infinitesimal latent cube (for d = n it is |det J|, the usual change of variables). The density is with respect to
the d-dimensional volume on the manifold, measured in pixel units of the [-0.5, 0.5] scale; the off-manifold part
(the likelihood's noise) is left out, so it compares images under one model but is not a density on R^n. Units:
nats per image. The decoder's output is `model.decode(z)`: the image for an AE, the likelihood's mean for a VAE,
beta-VAE or VAD.

J is computed in forward mode (torch.func.jacfwd: d decoder passes per latent) and vmapped over the latents of a
chunk; 1/2 log det(J^T J) = sum_i log s_i over J's singular values s_i, taken as the log-diagonal of the Cholesky
factor of J^T J in float64, and from torch.linalg.svdvals of J for the latents whose J^T J is numerically singular
(where it may be -inf: the decoder collapses a direction there).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.func import jacfwd, vmap

from pae.flows import LatentFlow

Decode = Callable[[torch.Tensor], torch.Tensor]  # latents (B, d) -> images (B, C, H, W)


def half_log_det_gram(jac: torch.Tensor) -> torch.Tensor:
    """1/2 log det(J^T J) of each Jacobian of a batch (B, n, d), float64: the sum of log singular values of J."""
    jac = jac.double()
    chol, info = torch.linalg.cholesky_ex(jac.mT @ jac)
    out = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    singular = info > 0
    if singular.any():  # one host sync per chunk; the SVD only for the (rare) numerically singular Grams
        out[singular] = torch.linalg.svdvals(jac[singular]).log().sum(-1)
    return out


def decoder_jacobians(decode: Decode, z: torch.Tensor) -> torch.Tensor:
    """dg/dz (B, n, d) of the flattened decoder output at each latent of z (B, d), in forward mode."""
    def one(z1: torch.Tensor) -> torch.Tensor:
        return decode(z1.unsqueeze(0)).flatten().float()

    return vmap(jacfwd(one))(z)


@torch.no_grad()
def decoder_log_det(decode: Decode, z: torch.Tensor, chunk_size: int = 8) -> torch.Tensor:
    """1/2 log det(J^T J) per latent (N,), float64, on z's device; `chunk_size` latents per vmapped call (each costs
    d decoder passes)."""
    if z.ndim != 2:
        raise ValueError(f"expected latents of shape (N, d), got {tuple(z.shape)}")
    return torch.cat([half_log_det_gram(decoder_jacobians(decode, z[i:i + chunk_size]))
                      for i in range(0, len(z), chunk_size)])


@torch.no_grad()
def pae_log_density(model: nn.Module, flow: LatentFlow, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """log p(x) on the decoder's manifold at x = model.decode(z): flow.log_prob(z) - 1/2 log det(J^T J), nats per
    image (N,), float64, on z's device (model and flow on the same device). `batch_size` bounds the decoder passes
    per call: batch_size // d latents at a time."""
    model.eval()
    flow.eval()
    chunk = max(1, batch_size // z.shape[1])
    return flow.log_prob(z).double() - decoder_log_det(model.decode, z, chunk)


@torch.no_grad()
def pae_log_marginal(model: nn.Module, flow: LatentFlow, z: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor,
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(manifold density, marginal likelihood) per image (N,), float64, from one Jacobian per latent.

    The marginal likelihood of the image x itself under the PAE with a Gaussian pixel likelihood N(x; g(z), sigma^2)
    (sigma per pixel, e.g. from validation residuals), by Laplace's approximation around the encoder's latent z:
        log p(x) ~ log N(x; g(z), sigma^2) + log p(z) + d/2 log 2 pi - 1/2 log det(J^T diag(sigma^-2) J),
    the Gauss-Newton curvature of the likelihood (the prior's curvature is neglected beside it). Unlike the manifold
    density it counts how far x lies off the decoder's manifold; it is a density on R^n, in nats per image."""
    model.eval()
    flow.eval()
    chunk = max(1, batch_size // z.shape[1])
    inv_sigma = sigma.flatten().double().reciprocal()
    manifold, marginal = [], []
    for i in range(0, len(z), chunk):
        zc, xc = z[i:i + chunk], x[i:i + chunk]
        jac = decoder_jacobians(model.decode, zc).double()
        log_pz = flow.log_prob(zc).double()
        resid = (xc.flatten(1).double() - model.decode(zc).flatten(1).double()) * inv_sigma
        loglik = -0.5 * resid.pow(2).sum(1) + inv_sigma.log().sum() - 0.5 * resid.shape[1] * math.log(2 * math.pi)
        manifold.append(log_pz - half_log_det_gram(jac))
        marginal.append(loglik + log_pz + 0.5 * zc.shape[1] * math.log(2 * math.pi)
                        - half_log_det_gram(jac * inv_sigma[:, None]))
    return torch.cat(manifold), torch.cat(marginal)

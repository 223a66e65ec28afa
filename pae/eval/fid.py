"""FID: the Fréchet distance between Inception pool3 features (2048-d) of two image sets (Heusel et al. 2017),
through pytorch-fid's Inception and its Fréchet distance, so figures compare with the literature.

The Inception weights (pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`) are never downloaded here: they are
taken from a path the config names, else from the torch hub cache ($TORCH_HOME/hub/checkpoints/), else the stage
fails with a message saying which file to put where.

Protocol for images (stated here and written into every metrics file by the caller): uint8 pixels -> [0, 1];
one-channel images repeated to three channels; pytorch-fid then resizes bilinearly to 299x299 and scales to
[-1, 1]; real and generated images go through exactly the same path.
"""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid import inception as fid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

from pae.io import PaeError

WEIGHTS_NAME = Path(fid_inception.FID_WEIGHTS_URL).name
PROTOCOL = ("uint8 -> [0, 1]; 1 channel repeated to 3; bilinear resize to 299x299 and scaling to [-1, 1] by "
            "pytorch-fid's InceptionV3; pool3 features (2048-d); real and generated images identically")


def weights_candidates(weights: str | os.PathLike | None) -> list[Path]:
    """Where the Inception weights are looked for, in order."""
    found = [Path(weights)] if weights else []
    return found + [Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME]


def load_inception(weights: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (pool3 output) with its FID weights read from a file, never downloaded."""
    candidates = weights_candidates(weights)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise PaeError(
            "FID needs pytorch-fid's Inception weights, which are not on this machine. Download "
            f"{fid_inception.FID_WEIGHTS_URL} where there is internet and put it at "
            f"{candidates[-1]} (or name it in the config: eval.fid_weights: /path/to/{WEIGHTS_NAME}). "
            f"Looked in: {', '.join(map(str, candidates))}.")

    def from_file(url, *args, **kwargs):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise PaeError(f"{path}: cannot read Inception weights ({type(e).__name__}: {e})") from None

    with mock.patch.object(fid_inception, "load_state_dict_from_url", from_file):
        try:
            model = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        except RuntimeError as e:  # load_state_dict: missing or unexpected keys, wrong shapes
            raise PaeError(f"{path}: not pytorch-fid's Inception weights ({str(e).splitlines()[0]})") from None
    return model.to(device).eval()


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
                       batch_size: int = 100) -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 images (N, C, H, W), C = 1 or 3."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float() / 255.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out.append(model(x)[0].flatten(1).double().cpu())
    return torch.cat(out).numpy()


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features (N, D)."""
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between the Gaussians fitted to two feature sets."""
    return float(calculate_frechet_distance(*statistics(a), *statistics(b)))

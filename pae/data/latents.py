"""latents.h5: the encoder's latents of every split, with labels, written atomically.

Layout: /{split}/z float32 (N, D) (the AE's code or the posterior mean), /{split}/labels int64 (N,), and for models
with a posterior /{split}/params float32 (N, P) (its parameters), for split in train, val, test; attrs: format, model.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from pae.io import PaeError, atomic_path

FORMAT = "pae-latents/1"


def write_latents(path: str | os.PathLike, splits: dict[str, dict[str, torch.Tensor]], attrs: dict) -> None:
    """splits: name -> {"z": (N, D), "labels": (N,), optionally "params": (N, P)}."""
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, arrays in splits.items():
                f.create_dataset(f"{name}/z", data=arrays["z"].detach().cpu().float().numpy())
                f.create_dataset(f"{name}/labels", data=arrays["labels"].cpu().numpy().astype(np.int64))
                if arrays.get("params") is not None:
                    f.create_dataset(f"{name}/params", data=arrays["params"].detach().cpu().float().numpy())
            f.attrs.update({"format": FORMAT, **attrs})


def _open(path: Path) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise PaeError(f"{path}: cannot open latents file ({e}); rerun the encode stage") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise PaeError(f"{path}: not a pae latents file (format {f.attrs.get('format')!r}, expected {FORMAT!r})")
    return f


def read_latents(path: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, labels) of one split."""
    path = Path(path)
    with _open(path) as f:
        if f"{split}/z" not in f:
            raise PaeError(f"{path}: no latents for split {split!r}")
        return torch.from_numpy(f[f"{split}/z"][...]), torch.from_numpy(f[f"{split}/labels"][...])


def read_params(path: str | os.PathLike, split: str) -> torch.Tensor | None:
    """The posterior parameters of one split, or None for a model without a posterior (the AE)."""
    with _open(Path(path)) as f:
        key = f"{split}/params"
        return torch.from_numpy(f[key][...]) if key in f else None


def split_with_latents(path: str | os.PathLike, data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images, latents) of one split of a Dataset (pae.data.store) and the latents file written from it;
    a PaeError when their counts differ (the latents are stale)."""
    images, _ = data.split(split)
    z, _ = read_latents(path, split)
    if len(z) != len(images):
        raise PaeError(f"{path}: {len(z)} {split} latents but {data.path} has {len(images)} {split} images; rerun "
                       "the encode stage")
    return images, z

"""latents.h5: the encoder's latents of every split, with labels, written atomically.

Layout: /{split}/z float32 (N, D), /{split}/labels int64 (N,) for split in train, val, test; attrs: format, model.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from pae.io import PaeError, atomic_path

FORMAT = "pae-latents/1"


def write_latents(path: str | os.PathLike, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], attrs: dict) -> None:
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, (z, labels) in splits.items():
                f.create_dataset(f"{name}/z", data=z.detach().cpu().float().numpy())
                f.create_dataset(f"{name}/labels", data=labels.cpu().numpy().astype(np.int64))
            f.attrs.update({"format": FORMAT, **attrs})


def read_latents(path: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise PaeError(f"{path}: cannot open latents file ({e}); rerun the encode stage") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise PaeError(f"{path}: not a pae latents file (format {f.attrs.get('format')!r}, expected {FORMAT!r})")
        if f"{split}/z" not in f:
            raise PaeError(f"{path}: no latents for split {split!r}")
        return torch.from_numpy(f[f"{split}/z"][...]), torch.from_numpy(f[f"{split}/labels"][...])

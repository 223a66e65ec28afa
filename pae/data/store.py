"""The HDF5 dataset store: one file per dataset holding uint8 images (N, C, H, W), int64 labels and the
train/val/test index splits, with the source and a SHA-256 checksum in the attributes.

Layout (FORMAT = "pae-dataset/1"):
    /images            uint8 (N, C, H, W): the official train part first, then the official test part
    /labels            int64 (N,)
    /splits/train      int64 indices into /images (train part minus the validation carve-out)
    /splits/val        int64 indices (carved from the official train part with a fixed seed)
    /splits/test       int64 indices (the official test part)
    attrs: format, dataset, source, source_detail, classes (JSON), split_seed, sha256
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from pae.data.sources import RawDataset
from pae.io import PaeError, atomic_path

FORMAT = "pae-dataset/1"
SPLITS = ("train", "val", "test")


def _checksum(images: np.ndarray, labels: np.ndarray, splits: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).data)
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    for name in SPLITS:
        h.update(np.ascontiguousarray(splits[name], dtype=np.int64).data)
    return h.hexdigest()


def make_splits(n_train: int, n_test: int, val_size: int, seed: int, limit_train: int | None = None,
                limit_test: int | None = None) -> dict[str, np.ndarray]:
    """Carve `val_size` items out of the official train part with a fixed seed; optionally keep only the first
    `limit_train` / `limit_test` items of the (seeded) order, for quick runs."""
    if not 0 < val_size < n_train:
        raise PaeError(f"val_size={val_size} must be between 1 and the train part's size minus one ({n_train - 1})")
    perm = np.random.default_rng(seed).permutation(n_train)
    val, train = np.sort(perm[:val_size]), perm[val_size:]
    test = np.arange(n_train, n_train + n_test)
    if limit_train is not None:
        train = train[:limit_train]
    if limit_test is not None:
        test = np.random.default_rng(seed + 1).permutation(test)[:limit_test]
    return {"train": np.sort(train).astype(np.int64), "val": val.astype(np.int64),
            "test": np.sort(test).astype(np.int64)}


def write_dataset(path: str | os.PathLike, dataset: str, raw: RawDataset, val_size: int, split_seed: int,
                  limit_train: int | None = None, limit_test: int | None = None) -> dict:
    """Write `raw` to `path` atomically; returns the attributes written."""
    images = np.concatenate([raw.train_images, raw.test_images])
    labels = np.concatenate([raw.train_labels, raw.test_labels]).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise PaeError(f"{dataset}: images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    try:
        splits = make_splits(len(raw.train_images), len(raw.test_images), val_size, split_seed, limit_train,
                             limit_test)
    except PaeError as e:
        raise PaeError(f"{path}: {dataset}: {e}") from None
    attrs = {"format": FORMAT, "dataset": dataset, "source": raw.source, "source_detail": raw.detail,
             "classes": json.dumps(raw.classes), "split_seed": split_seed,
             "sha256": _checksum(images, labels, splits)}
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            # One chunk per 1024 images keeps whole-array reads fast; no compression (uint8 images load in ms).
            f.create_dataset("images", data=images, chunks=(min(1024, len(images)),) + images.shape[1:])
            f.create_dataset("labels", data=labels)
            for name, idx in splits.items():
                f.create_dataset(f"splits/{name}", data=idx)
            f.attrs.update(attrs)
    return attrs


@dataclass
class Dataset:
    """A dataset read whole into RAM: `images` uint8 (N, C, H, W), `labels` int64, `splits` name -> index tensor."""
    path: Path
    images: torch.Tensor
    labels: torch.Tensor
    splits: dict[str, torch.Tensor]
    attrs: dict

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of one split, uint8 and int64, in RAM."""
        if name not in self.splits:
            raise PaeError(f"{self.path}: no split {name!r}; has {sorted(self.splits)}")
        idx = self.splits[name]
        return self.images[idx], self.labels[idx]


def open_dataset(path: str | os.PathLike, verify: bool = True) -> Dataset:
    """Read a pae dataset file whole into RAM, checking its format and (by default) its checksum."""
    path = Path(path)
    if not path.is_file():
        raise PaeError(f"{path}: dataset file not found (run the prepare stage)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise PaeError(f"{path}: not a readable HDF5 file, perhaps truncated ({e}); delete it and rerun prepare") \
            from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise PaeError(f"{path}: not a pae dataset file (attribute 'format' is {f.attrs.get('format')!r}, "
                           f"expected {FORMAT!r})")
        missing = [k for k in ["images", "labels"] + [f"splits/{s}" for s in SPLITS] if k not in f]
        if missing:
            raise PaeError(f"{path}: missing HDF5 dataset(s) {missing}")
        try:
            images, labels = f["images"][...], f["labels"][...]
            splits = {s: f[f"splits/{s}"][...] for s in SPLITS}
        except OSError as e:
            raise PaeError(f"{path}: cannot read data, the file is damaged ({e}); delete it and rerun prepare") \
                from None
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),):
        raise PaeError(f"{path}: expected uint8 images (N, C, H, W) and N labels, got images {images.dtype} "
                       f"{images.shape} and labels {labels.shape}")
    for s, idx in splits.items():
        if len(idx) and (idx.min() < 0 or idx.max() >= len(images)):
            raise PaeError(f"{path}: split {s!r} indexes outside 0..{len(images) - 1}")
    if verify and _checksum(images, labels, splits) != attrs.get("sha256"):
        raise PaeError(f"{path}: checksum mismatch, the file is corrupted; delete it and rerun prepare")
    attrs["classes"] = json.loads(attrs["classes"])
    return Dataset(path, torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                   {s: torch.from_numpy(idx.astype(np.int64)) for s, idx in splits.items()}, attrs)


def pick(n: int, max_images: int, seed: int = 0) -> torch.Tensor:
    """The positions of at most `max_images` of `n` items, drawn with a seeded generator, in increasing order."""
    if n <= max_images:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images].sort().values

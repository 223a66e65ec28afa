"""Folders of image files (JPEG, PNG, ...) -> uint8 arrays (N, 3, S, S), for CelebA and any ImageFolder-style set.

Each image is converted to RGB, centre-cropped to a square and resized to S x S with PIL's bilinear (antialiased)
filter, which gives the same pixels as torchvision's `Compose([CenterCrop(c), Resize(S)])`. Decoding runs in a thread
pool (PIL releases the GIL while decoding and resizing), so 200k CelebA images take minutes rather than an hour.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from pae.io import PaeError, progress_kwargs

log = logging.getLogger(__name__)

# torchvision's IMG_EXTENSIONS, plus .gif; compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The image files in `folder` (and below it if `recursive`), sorted by path so that the order is reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PaeError(f"{folder}: not a folder (expected a folder of image files)")
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if is_image(p))
    if not files:
        raise PaeError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return files


def crop_box(width: int, height: int, crop: int | None = None) -> tuple[int, int, int, int]:
    """The central square (left, top, right, bottom) of side `crop`, clamped to the shorter side (None: the shorter
    side). Offsets are rounded as torchvision's CenterCrop rounds them."""
    side = min(width, height) if crop is None else min(crop, width, height)
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    return left, top, left + side, top + side


def load_image(path: str | os.PathLike, size: int = 64, crop: int | None = None) -> np.ndarray:
    """One image file -> uint8 (3, size, size): RGB, central square crop, bilinear resize."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")  # also decodes; grayscale, palette and RGBA images become RGB
            img = img.crop(crop_box(img.width, img.height, crop))
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except Exception as e:  # PIL's plugins raise many kinds on damaged files (OSError, SyntaxError, struct.error...)
        raise PaeError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def default_workers() -> int:
    """Threads for decoding: torch's thread count, which the launchers set from the job's CPUs (OMP_NUM_THREADS
    locally, cpus_per_task under SLURM), so a prepare job uses what it was given."""
    import torch

    return max(1, torch.get_num_threads())


def load_images(paths: Sequence[str | os.PathLike], size: int = 64, crop: int | None = None,
                workers: int | None = None, desc: str = "decoding images") -> np.ndarray:
    """Image files -> uint8 (N, 3, size, size), decoded in a thread pool with a progress bar."""
    if not paths:
        raise PaeError("no image files to load")
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = workers or default_workers()

    def one(i: int) -> None:
        out[i] = load_image(paths[i], size, crop)

    with tqdm(total=len(paths), desc=desc, unit="img", **progress_kwargs()) as bar:
        if workers == 1:
            for i in range(len(paths)):
                one(i)
                bar.update()
        else:
            pool = ThreadPoolExecutor(workers)
            try:
                for _ in pool.map(one, range(len(paths))):
                    bar.update()
            finally:  # on an error, drop the queued images instead of decoding them all first
                pool.shutdown(wait=True, cancel_futures=True)
    return out


def scan_image_folder(folder: str | os.PathLike) -> tuple[list[Path], np.ndarray, list[str]]:
    """torchvision's ImageFolder layout (one subfolder per class, labels by sorted subfolder name, images found
    recursively inside each) or a flat folder of images (label 0, class "image"). Returns (files, labels, classes)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PaeError(f"{folder}: not a folder (expected a folder of images, or of class subfolders of images)")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        files = list_images(folder)
        return files, np.zeros(len(files), dtype=np.int64), ["image"]
    loose = [p for p in folder.iterdir() if is_image(p)]
    if loose:
        raise PaeError(f"{folder}: has both image files ({loose[0].name}, ...) and subfolders ({subdirs[0].name}, "
                       "...); use either a flat folder of images or one subfolder per class")
    files, labels = [], []
    for label, sub in enumerate(subdirs):
        found = list_images(sub, recursive=True)  # raises, naming the subfolder, when a class is empty
        files += found
        labels += [label] * len(found)
    return files, np.array(labels, dtype=np.int64), [p.name for p in subdirs]


def seeded_split(n: int, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays, each sorted: round(n * test_fraction) items (at least 1) drawn with `seed`."""
    if n < 2:
        raise PaeError(f"need at least 2 images to split into train and test parts, got {n}")
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])

"""Image-folder decoding throughput (pae/data/images.py): JPEG decode, RGB, CelebA's 140x140 centre crop, resize to 64.

Generates N CelebA-sized (178x218) JPEGs in a temporary folder, smooth faces-like pictures (low-resolution noise
upsampled, plus a little grain) so that the files are about as large as CelebA's (~8 KB on average), then times
`load_images` with each number of worker threads given.

    .venv/bin/python bench/image_decoding.py [--n 2000] [--workers 1 2 4] [--size 64]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pae.data.images import load_images
from pae.data.sources import CELEBA_CROP


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (15, 12, 3), dtype=np.uint8))
        img = np.asarray(small.resize((178, 218), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i + 1:06d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--size", type=int, default=64)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp), a.n)
        kb = sum(os.path.getsize(q) for q in paths) / len(paths) / 1024
        print(f"{a.n} JPEGs 178x218, {kb:.1f} KB each on average; {os.cpu_count()} CPUs")
        load_images(paths[:200], a.size, CELEBA_CROP, workers=1, desc="warm-up")  # page cache, imports
        for w in a.workers:
            t0 = time.perf_counter()
            load_images(paths, a.size, CELEBA_CROP, workers=w)
            dt = time.perf_counter() - t0
            print(f"workers {w:2d}: {a.n / dt:7.0f} images/s  ({dt:.2f} s; 202,599 CelebA images ~ "
                  f"{202599 / (a.n / dt) / 60:.1f} min)")


if __name__ == "__main__":
    main()

"""`python -m pae inpaint RUN_DIR IMAGES --mask MASK --out inpainted.png`: the missing pixels of the user's images
filled in by a trained run's posterior (pae.api's TrainedRun.posterior: the posterior stage's MAP, Laplace or NUTS
with the flow as the prior). Not a workflow stage: it runs in the user's process.

IMAGES as `python -m pae score` reads them (a folder of image files, an image file, a pae dataset file, an IDX file).
MASK: an image file of the run's height and width, one mask for every image (non-zero = observed, 0 = missing), or a
.npy array of 0/1 (N, 1, H, W), (N, H, W) or (H, W) (pae.api.as_mask).

--out by its suffix: .png a grid with one column per image and the rows observed (missing pixels mid-grey), filled
(the observed pixels, the missing ones from the posterior mean) and, for laplace and nuts, the posterior std (scaled
so that its largest value is white; the log gives that value); .npz the arrays: filled, mean (uint8 (N, C, H, W)),
std (float32, on the [-0.5, 0.5] scale), samples (uint8 (S, N, C, H, W)), mask, and files / index of the images.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pae.api import POSTERIOR_METHODS, as_mask, image_grid, load_run, read_images
from pae.config import default
from pae.io import PaeError, atomic_path

log = logging.getLogger(__name__)

FORMATS = (".png", ".npz")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a trained run: results/{experiment}/{run}")
    p.add_argument("images", type=Path, metavar="IMAGES",
                   help="a folder of image files, an image file, a pae dataset file (HDF5) or an IDX file")
    p.add_argument("--mask", type=Path, required=True,
                   help="an image file (non-zero = observed) for every image, or a .npy array of 0/1")
    p.add_argument("--out", type=Path, required=True, help=f"the file written, by its suffix: {', '.join(FORMATS)}")
    p.add_argument("--method", choices=list(POSTERIOR_METHODS), default="laplace")
    p.add_argument("--noise-sigma", type=float, default=None,
                   help="the std of noise on the observed pixels ([-0.5, 0.5] scale), for noisy images")
    p.add_argument("--samples", type=int, default=None, help="posterior samples (default: the run's)")
    p.add_argument("--seed", type=int, default=None, help="default: the run's posterior seed")
    p.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="of a pae dataset file, this split only (default: all its images)")
    p.add_argument("--data", type=Path, default=None,
                   help="the run's prepared dataset, where it is not at the path model.pt records (sigma_pix)")
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    inpaint(a.run_dir, a.images, a.mask, a.out, method=a.method, noise_sigma=a.noise_sigma, n_samples=a.samples,
            seed=a.seed, split=a.split, data=a.data, device=a.device)


def read_mask(path: Path, n: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The mask file: a .npy array, or an image file (converted to grey; non-zero = observed) for every image."""
    if not path.is_file():
        raise PaeError(f"{path}: mask file not found")
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as img:
                array = (np.asarray(img.convert("L")) > 0).astype(np.uint8)
    except (OSError, ValueError) as e:
        raise PaeError(f"{path}: cannot read the mask ({type(e).__name__}: {e})") from None
    try:
        return as_mask(array, n, image_shape)
    except PaeError as e:
        raise PaeError(f"{path}: {e}") from None


def inpaint(run_dir: Path, images: Path, mask: Path, out: Path, method: str = "laplace",
            noise_sigma: float | None = None, n_samples: int | None = None, seed: int | None = None,
            split: str | None = None, data: Path | None = None, device: str = default("device")) -> None:
    """Fill in the missing pixels of the images at `images` -> `out` (.png grid or .npz arrays)."""
    if out.suffix.lower() not in FORMATS:
        raise PaeError(f"{out}: unknown format {out.suffix!r}; --out must end in {', '.join(FORMATS)}")
    trained = load_run(run_dir, device, data)
    pixels, files, index = read_images(images, trained.image_shape, split)
    m = read_mask(mask, len(pixels), trained.image_shape)
    log.info("%s posterior of %d images of %s (%.0f%% of pixels missing) with %s", method, len(pixels), images,
             100 * (1 - m.mean().item()), trained)
    post = trained.posterior(pixels, m, noise_sigma=noise_sigma, method=method, n_samples=n_samples, seed=seed)
    observed = m.bool().expand_as(pixels)
    filled = torch.where(observed, pixels, post.mean)
    with atomic_path(out, suffix=out.suffix) as tmp:
        if out.suffix.lower() == ".png":
            rows = [torch.where(observed, pixels, torch.full_like(pixels, 128)), filled]
            if method != "map":
                top = post.std.max().item()
                log.info("posterior std: white = %.4g ([-0.5, 0.5] scale)", top)
                rows.append((post.std / max(top, 1e-12) * 255).round().to(torch.uint8))
            Image.fromarray(image_grid(torch.cat(rows), columns=len(pixels))).save(tmp, format="PNG")
        else:
            with open(tmp, "wb") as f:  # a file object: np.savez appends .npz to other names
                np.savez(f, filled=filled.numpy(), mean=post.mean.numpy(), std=post.std.numpy(),
                         samples=post.samples.numpy(), mask=m.numpy(), files=np.array(files), index=np.array(index))
    log.info("wrote %s", out)

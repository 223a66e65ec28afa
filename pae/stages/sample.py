"""`python -m pae sample RUN_DIR -n 64 --temperature 0.9 --out samples.png`: samples of a trained run (pae.api's
TrainedRun.sample: the flow's samples at a temperature, decoded; --prior: N(0, I) latents, decoded). Not a workflow
stage: it runs in the user's process.

--out by its suffix: .png a grid of the images (ceil(sqrt(n)) columns, or --columns); .npy the uint8 images
(n, C, H, W) as the run's data stores them; .npz images and their latents z (n, D) and the seed. The seed drawn when
--seed is not given is logged, so that a sample can be drawn again; the evaluate stage's samples.h5 holds
`-n n_samples --temperature T --seed 0`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from pae.api import image_grid, load_run
from pae.config import default
from pae.io import PaeError, atomic_path

log = logging.getLogger(__name__)

FORMATS = (".png", ".npy", ".npz")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a trained run: results/{experiment}/{run}")
    p.add_argument("-n", type=int, default=64, help="how many samples (default 64)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="the flow's base is N(0, T^2 I) (default 1; below 1 trades variety for quality)")
    p.add_argument("--prior", action="store_true", help="N(0, I) latents through the decoder instead of the flow")
    p.add_argument("--seed", type=int, default=None, help="default: a random seed, which is logged")
    p.add_argument("--out", type=Path, required=True, help=f"the file written, by its suffix: {', '.join(FORMATS)}")
    p.add_argument("--columns", type=int, default=None, help="columns of a .png grid (default: ceil(sqrt(n)))")
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    sample(a.run_dir, a.n, a.out, temperature=a.temperature, prior=a.prior, seed=a.seed, columns=a.columns,
           device=a.device)


def sample(run_dir: Path, n: int, out: Path, temperature: float = 1.0, prior: bool = False, seed: int | None = None,
           columns: int | None = None, device: str = default("device")) -> None:
    """n samples of the run at `run_dir` -> `out` (.png grid, .npy images, .npz images and latents)."""
    if out.suffix.lower() not in FORMATS:
        raise PaeError(f"{out}: unknown format {out.suffix!r}; --out must end in {', '.join(FORMATS)}")
    if prior and temperature != 1.0:
        raise PaeError("--temperature is the flow's; --prior draws z ~ N(0, I)")
    trained = load_run(run_dir, device)
    drawn = trained.prior_sample(n, seed) if prior else trained.sample(n, temperature, seed)
    log.info("%d %s samples of %s, seed %d", n, "N(0, I)" if prior else f"flow (T = {temperature:g})", run_dir,
             drawn.seed)
    images = drawn.images.numpy()
    with atomic_path(out, suffix=out.suffix) as tmp:
        if out.suffix.lower() == ".png":
            Image.fromarray(image_grid(images, columns)).save(tmp, format="PNG")
        else:
            with open(tmp, "wb") as f:  # a file object: np.save and np.savez append their suffix to other names
                if out.suffix.lower() == ".npy":
                    np.save(f, images)
                else:
                    np.savez(f, images=images, z=drawn.z.numpy(), seed=drawn.seed)
    log.info("wrote %s", out)

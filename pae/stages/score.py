"""`python -m pae score RUN_DIR IMAGES --out scores.csv`: the ood stage's per-image scores of a trained run for the
user's own images (pae.api's TrainedRun.score). Not a workflow stage: it runs in the user's process, with progress
bars on the long work (reading image files, the decoder's Jacobians).

IMAGES: a folder of image files (searched recursively, read as the ood stage reads eval.ood.folders: centre-cropped,
resized to the run's size, converted to its channels), one image file, a pae dataset file (HDF5; --split picks a
split) or an IDX file (pae.api.read_images).

scores.csv: one row per image: file (the image file's path below the folder, or the dataset or IDX file's name),
index (its position: in the folder's sorted list of image files, in the dataset's /images, in the IDX file), then one
column per score (pae.eval.ood.SCORES; higher = more out-of-distribution), written as ood_scores.csv writes them, so
that the same image has the same numbers in both.
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from pae.api import load_run, read_images
from pae.config import default
from pae.eval.ood import NONFINITE_SCORE, SCORES
from pae.io import atomic_path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a trained run: results/{experiment}/{run}")
    p.add_argument("images", type=Path, metavar="IMAGES",
                   help="a folder of image files, an image file, a pae dataset file (HDF5) or an IDX file")
    p.add_argument("--out", type=Path, required=True, help="the CSV file: file, index and every score per image")
    p.add_argument("--scores", nargs="+", choices=list(SCORES), default=None, metavar="SCORE",
                   help=f"the scores to compute, of {', '.join(SCORES)} (default: those of the run's ood stage)")
    p.add_argument("--split", choices=("train", "val", "test"), default=None,
                   help="of a pae dataset file, score this split only (default: all its images)")
    p.add_argument("--data", type=Path, default=None,
                   help="the run's prepared dataset, where it is not at the path model.pt records (pae_marginal's "
                        "sigma comes from its validation images)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's eval.ood.batch_size")
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    score(a.run_dir, a.images, a.out, scores=a.scores, split=a.split, data=a.data, batch_size=a.batch_size,
          device=a.device)


def score(run_dir: Path, images: Path, out: Path, scores: list[str] | None = None, split: str | None = None,
          data: Path | None = None, batch_size: int | None = None, device: str = default("device")) -> None:
    """Score the images at `images` with the run at `run_dir` -> `out` (CSV; layout in the module docstring)."""
    trained = load_run(run_dir, device, data)
    pixels, files, index = read_images(images, trained.image_shape, split)
    log.info("scoring %d images of %s with %s", len(pixels), images, trained)
    result = trained.score(pixels, scores, batch_size)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "index", *result])
        for row in zip(files, index, *(v.tolist() for v in result.values())):
            w.writerow([*row[:2], *(f"{v:.9g}" for v in row[2:])])
    for name, values in result.items():
        log.info("%s: median %.6g, range %.6g to %.6g%s", name, values.median(), values.min(), values.max(),
                 f" (+-{NONFINITE_SCORE:g}: non-finite)" if (values.abs() >= NONFINITE_SCORE).any() else "")
    log.info("wrote %s (%d rows)", out, len(pixels))

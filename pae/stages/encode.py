"""The encode stage: the latents of every split of a run's dataset -> latents.h5."""
from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

import torch

from pae.config import default
from pae.data.latents import write_latents
from pae.data.masks import mcar_mask
from pae.eval import generate
from pae.stages.args import json_object
from pae.stages.common import load_run

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=default("device"))
    p.add_argument("--missing", type=json_object, default=default("train.missing"),
                   help="train.missing of the run: its train and val images are encoded with their missing pixels")
    p.add_argument("--seed", type=int, default=0, help="the run's seed (its missing-pixel masks)")


def run(a: argparse.Namespace) -> None:
    encode(a.model, a.data, a.out, a.device, a.missing, a.seed)


def _split_masks(seed: int, shape: tuple[int, int], ratio: float, idx: torch.Tensor) -> torch.Tensor:
    return mcar_mask(seed, idx.cpu(), shape, ratio)


def encode(model_path: Path, data_path: Path, out: Path, device: str, missing: dict | None = None,
           seed: int = 0) -> None:
    """Latents of every split. A model trained with missing pixels (train.missing) sees its train and val images as
    the data it had: the train items with their epoch-0 training masks, the val items with masks of the same ratio
    (seed + 1); test images are encoded whole (the evaluation stages corrupt them as they need)."""
    r = load_run(model_path, None, data_path, device)
    model, spec, data, dev = r.model, r.spec, r.data, r.device
    ratio = (missing or default("train.missing"))["ratio"]
    mask_seeds = {"train": seed, "val": seed + 1} if ratio > 0 else {}
    splits = {}
    for name in ("train", "val", "test"):
        images, labels = data.split(name)
        mask_fn = partial(_split_masks, mask_seeds[name], tuple(spec.image_shape[1:]), ratio) \
            if name in mask_seeds else None
        if not hasattr(model, "posterior"):  # the AE: its code
            splits[name] = {"z": generate.encode_images(model, images, dev, mask_fn=mask_fn), "labels": labels}
        else:  # VAE: the encoder's posterior; VAD: its learnt table for the train split, inference for the others
            params = model.latents.detach().cpu() if model.needs_index and name == "train" else \
                generate.posterior_params(model, images, dev, mask_fn=mask_fn)
            splits[name] = {"z": model.posterior.mean(params), "labels": labels, "params": params}
        log.info("encoded %s: %d latents of size %d%s", name, len(labels), spec.latent_dim,
                 f" ({ratio:.0%} of pixels missing)" if mask_fn else "")
    write_latents(out, splits, {"model": str(model_path), "dataset_sha256": data.attrs["sha256"],
                                "missing_ratio": ratio})

"""Encode throughput: the encode stage's path (pae.stages.encode.encode -> pae.eval.generate) for the conv AE and VAE.

The AE is encoded with generate.encode_images (its code), the VAE with generate.posterior_params and the posterior's
mean, exactly as the encode stage does for each split; the models are built by build_model at the schema's default
widths (channels [32, 64], hidden 256) with fresh weights (the time does not depend on the values). Images: all 70,000
real Fashion-MNIST images (train and test parts; the stage encodes train, val and test, the same 70,000), or --synthetic
random pixels. Each (model, batch size) is run --repeats times after one untimed warm-up pass over 2 batches; the
median and best are printed.

    .venv/bin/python bench/encode.py [--models ae vae] [--latent 32] [--batch-sizes 500 1000] [--repeats 3]
        [--threads N] [--idx-dir /usr/share/datasets/fashion-mnist] [--synthetic]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, read_idx_folder
from pae.eval import generate
from pae.models import ModelSpec, build_model


def encode_all(model, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """What pae.stages.encode.encode computes for one split (no missing-data masks)."""
    device = torch.device("cpu")
    if not hasattr(model, "posterior"):
        return generate.encode_images(model, images, device, batch_size=batch_size)
    return model.posterior.mean(generate.posterior_params(model, images, device, batch_size=batch_size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["ae", "vae"], choices=["ae", "vae", "beta_vae"])
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[500, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--idx-dir", type=Path, default=DEBIAN_FASHION_MNIST)
    ap.add_argument("--synthetic", action="store_true", help="70,000 random-pixel images instead of Fashion-MNIST")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    torch.set_num_threads(args.threads)
    if args.synthetic:
        images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (70000, 1, 28, 28), dtype=np.uint8))
        source = "synthetic random pixels"
    else:
        raw = read_idx_folder(args.idx_dir, FASHION_MNIST_CLASSES, "bench")
        images = torch.from_numpy(np.concatenate([raw.train_images, raw.test_images]))
        source = f"Fashion-MNIST train + test from {args.idx_dir}"
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f} at start")
    print(f"data: {source}, {tuple(images.shape)} uint8; conv models, latent {args.latent}, channels [32, 64], "
          f"hidden 256; {args.repeats} timed pass(es) each")
    print()
    print(f"{'model':<9s} {'batch':>6s} {'median img/s':>13s} {'best img/s':>11s} {'median s':>9s} {'load':>5s}")
    for kind in args.models:
        torch.manual_seed(0)
        model = build_model(ModelSpec(kind, "conv", (1, 28, 28), args.latent, (32, 64), 256))
        for batch in args.batch_sizes:
            encode_all(model, images[:2 * batch], batch)  # warm-up
            seconds = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                z = encode_all(model, images, batch)
                seconds.append(time.perf_counter() - t0)
            assert z.shape == (len(images), args.latent)
            med = statistics.median(seconds)
            print(f"{kind:<9s} {batch:>6d} {len(images) / med:>13,.0f} {len(images) / min(seconds):>11,.0f} "
                  f"{med:>9.2f} {os.getloadavg()[0]:>5.2f}", flush=True)
    print()
    print("img/s: images encoded per second over all 70,000 (the encode stage's whole work for Fashion-MNIST); "
          "load: 1-minute load average after the row.")


if __name__ == "__main__":
    main()

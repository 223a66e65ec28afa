"""How much FID depends on the protocol: the same image sets through Inception with each preprocessing
(eval.fid.preprocessing: pytorch-fid's, or the original TensorFlow graph's resize and scaling) and each scaling (pixels
as they are, or each image min-max stretched first, the PAE authors' notebook), against the same test images.

Sets: --n Fashion-MNIST training images (the floor); with --run, also --n PAE samples at T = 1 and --n N(0, I) samples
of that run (its model/model.pt and flow/flow.pt). FID is biased upwards at small n, so compare the protocols at one n,
not these values with n = 10,000 figures.

    .venv/bin/python bench/fid_protocols.py [--n 500] [--run results/EXP/RUN --data resources/data/DATA.h5]
        [--threads N] [--device auto] [--idx-dir /usr/share/datasets/fashion-mnist]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, read_idx_folder
from pae.data.store import pick
from pae.device import resolve_device
from pae.eval import fid, inception
from pae.eval.fid import minmax_per_image
from pae.eval.sample_quality import decode, flow_latents
from pae.stages.common import load_run


def _samples(run_dir: Path, data: Path, n: int, device: str) -> dict[str, torch.Tensor]:
    """The run's PAE samples at T = 1 and N(0, I) samples (n each, the same base draws), as uint8 images."""
    r = load_run(run_dir / "model" / "model.pt", run_dir / "flow" / "flow.pt", data, device)
    u = torch.randn(n, r.spec.latent_dim, generator=torch.Generator().manual_seed(0))
    r.flow.eval()
    return {"PAE T=1": decode(r.model, flow_latents(r.flow, u, 1.0, 500), r.device, 500),
            "N(0, I)": decode(r.model, u, r.device, 500)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="images per set")
    ap.add_argument("--run", type=Path, default=None, help="a run folder (model/model.pt, flow/flow.pt)")
    ap.add_argument("--data", type=Path, default=None, help="the run's prepared dataset (with --run)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--idx-dir", type=Path, default=DEBIAN_FASHION_MNIST)
    args = ap.parse_args()
    if (args.run is None) != (args.data is None):
        ap.error("--run and --data go together")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    raw = read_idx_folder(args.idx_dir, FASHION_MNIST_CLASSES, "bench")
    test = torch.from_numpy(raw.test_images)[pick(len(raw.test_images), args.n, 1)]
    sets = {"train (floor)": torch.from_numpy(raw.train_images)[pick(len(raw.train_images), args.n, 0)]}
    if args.run is not None:
        sets.update(_samples(args.run, args.data, args.n, str(device)))
    weights = inception.find_weights(None)
    model = inception.load(weights, device)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); weights {weights.path} ({weights.obtained})")
    print(f"FID against {args.n} Fashion-MNIST test images, {args.n} images per set"
          + (f"; run {args.run}" if args.run else ""))
    protocols = [(prep, scaling) for prep in ("pytorch", "tensorflow") for scaling in ("uint8", "minmax")]
    print(f"{'set':16s}" + "".join(f"{r + ', ' + s:>22s}" for r, s in protocols))
    start = time.perf_counter()
    real = {}
    for prep, scaling in protocols:
        scale = minmax_per_image if scaling == "minmax" else (lambda x: x)
        real[prep, scaling] = fid.inception_features(model, scale(test), device, args.batch_size, preprocessing=prep)
    for name, images in sets.items():
        values = []
        for prep, scaling in protocols:
            scale = minmax_per_image if scaling == "minmax" else (lambda x: x)
            a = fid.inception_features(model, scale(images), device, args.batch_size, preprocessing=prep)
            values.append(fid.frechet_bootstrap(a, real[prep, scaling], 0, 0)["value"])
        print(f"{name:16s}" + "".join(f"{v:22.3f}" for v in values), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

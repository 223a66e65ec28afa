"""FID's Inception on this machine: images/s of pool3 features in fp32 in the default (contiguous) layout, in fp32
channels-last (the fid stage's path) and with bf16 autocast + channels-last, and each path's FID difference from the
first on the same images (real Fashion-MNIST: --n train images against --n test images).

The fid stage runs fp32 channels-last (the same values up to round-off); bf16 would be used only where its FID
difference were below 0.1. Weights: the ones the fid stage would use (pae.eval.inception.find_weights).

    .venv/bin/python bench/inception.py [--n 500] [--batch-size 50] [--device auto] [--threads N]
        [--idx-dir /usr/share/datasets/fashion-mnist]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, read_idx_folder
from pae.data.store import pick
from pae.device import resolve_device
from pae.eval import fid, inception


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="images per set (train subset vs test subset)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--idx-dir", type=Path, default=DEBIAN_FASHION_MNIST)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    raw = read_idx_folder(args.idx_dir, FASHION_MNIST_CLASSES, "bench")
    train = torch.from_numpy(raw.train_images)[pick(len(raw.train_images), args.n, 0)]
    test = torch.from_numpy(raw.test_images)[pick(len(raw.test_images), args.n, 1)]
    weights = inception.find_weights(None)
    model = inception.load(weights, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"machine: {platform.platform()}, {name}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f} at start")
    print(f"weights: {weights.path} ({weights.obtained}); images: Fashion-MNIST, {args.n} train vs {args.n} test "
          f"(28x28 grey -> 3 x 299 x 299), batch {args.batch_size}")
    fids = {}
    for label, channels_last, bf16 in (("fp32", False, False), ("fp32 + channels_last", True, False),
                                       ("bf16 + channels_last", True, True)):
        net = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

        def features(images, net=net, channels_last=channels_last, bf16=bf16):
            return fid.inception_features(net, images, device, args.batch_size, bf16, channels_last=channels_last)

        features(train[:args.batch_size])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a = features(train)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        b = features(test)
        fids[label] = fid.frechet_bootstrap(a, b, 0, 0)["value"]
        print(f"{label:22s} {args.n / seconds:8.1f} images/s   FID(train {args.n}, test {args.n}) = {fids[label]:.4f}"
              f"   (difference from fp32: {fids[label] - fids['fp32']:+.4f})")


if __name__ == "__main__":
    main()

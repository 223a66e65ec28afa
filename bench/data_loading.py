"""Data-loading throughput: pae's in-RAM BatchLoader against torchvision's FashionMNIST + DataLoader.

Both read the real Fashion-MNIST train set (60,000 images of 28x28) and hand out shuffled float batches in
[-0.5, 0.5]: pae's loader indexes a uint8 tensor and converts each batch (exactly what training does);
torchvision goes image by image through PIL and ToTensor, then collates (num_workers 0 and 2). One warm-up epoch per
loader is run and not timed, then at least `--epochs` full epochs (and `--min-seconds`) are timed.

    .venv/bin/python bench/data_loading.py [--epochs 1] [--batch-size 128] [--idx-dir /usr/share/datasets/fashion-mnist]
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from pae.data.loader import BatchLoader
from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, read_idx_folder

IDX_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def torchvision_root(idx_dir: Path, tmp: Path) -> Path:
    """Lay the IDX files out as torchvision wants them: ROOT/FashionMNIST/raw/<stem>, unzipped."""
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in IDX_STEMS:
        if (idx_dir / stem).is_file():
            shutil.copyfile(idx_dir / stem, raw / stem)
        elif (idx_dir / (stem + ".gz")).is_file():
            with gzip.open(idx_dir / (stem + ".gz"), "rb") as src, open(raw / stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            sys.exit(f"error: {idx_dir}: missing {stem} (or {stem}.gz)")
    return tmp


def time_epochs(make_epoch: Callable[[int], Iterable], epochs: int, min_seconds: float) -> tuple[float, int]:
    """Run one untimed warm-up epoch, then at least `epochs` timed ones, more (whole epochs) until `min_seconds`
    have passed; returns (seconds, images) of the timed part."""
    for _ in make_epoch(0):
        pass
    n, epoch, t0 = 0, 0, time.perf_counter()
    while epoch < epochs or time.perf_counter() - t0 < min_seconds:
        epoch += 1
        for x in make_epoch(epoch):
            n += len(x)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs per loader (after one warm-up epoch)")
    ap.add_argument("--min-seconds", type=float, default=2.0,
                    help="keep timing whole epochs until this long has passed (steadies the fast loader's figure)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--idx-dir", type=Path, default=DEBIAN_FASHION_MNIST,
                    help="folder with the four Fashion-MNIST IDX files, gzipped or not (default: Debian's)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="torchvision DataLoader num_workers")
    args = ap.parse_args()
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")

    import torchvision
    from torchvision import transforms

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.2f}), Python {platform.python_version()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision {torchvision.__version__}")
    raw = read_idx_folder(args.idx_dir, FASHION_MNIST_CLASSES, "bench")
    images = torch.from_numpy(raw.train_images)
    print(f"data: {args.idx_dir}: {tuple(images.shape)} uint8 train images; batch size {args.batch_size}, "
          f"one warm-up epoch, then at least {args.epochs} timed epoch(s) and {args.min_seconds:g} s per loader")

    results: dict[str, float] = {}

    def report(name: str, seconds: float, n: int) -> None:
        results[name] = n / seconds
        print(f"{name:<40s} {n / seconds:>12,.0f} images/s  ({n:,} images in {seconds:.2f} s)", flush=True)

    pae_loader = BatchLoader(images, args.batch_size, shuffle=True, seed=0)

    def pae_epoch(epoch: int):
        pae_loader.set_epoch(epoch)
        return iter(pae_loader)

    report("pae BatchLoader (in RAM)", *time_epochs(pae_epoch, args.epochs, args.min_seconds))

    with tempfile.TemporaryDirectory(prefix="pae-bench-") as tmp:
        root = torchvision_root(args.idx_dir, Path(tmp))
        dataset = torchvision.datasets.FashionMNIST(str(root), train=True, download=False,
                                                    transform=transforms.ToTensor())
        # Same pixels, same scaling: torchvision's [0, 1] minus 0.5 is pae's [-0.5, 0.5].
        first = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))[0] - 0.5
        assert torch.equal(first, next(iter(BatchLoader(images[:8], 8, shuffle=False)))), "loaders disagree"
        for workers in args.workers:
            loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                                 num_workers=workers, persistent_workers=workers > 0,
                                                 generator=torch.Generator().manual_seed(0))

            def tv_epoch(epoch: int, loader=loader):
                return (x.sub_(0.5) for x, _ in loader)

            report(f"torchvision DataLoader, num_workers={workers}",
                   *time_epochs(tv_epoch, args.epochs, args.min_seconds))
            del loader

    best = max((k for k in results if k.startswith("torchvision")), key=results.get)
    print(f"speed-up of pae over the best torchvision variant ({best.split(', ')[1]}): "
          f"{results['pae BatchLoader (in RAM)'] / results[best]:.1f}x")


if __name__ == "__main__":
    main()

"""Training throughput: pae's trainer (pae.train.loop.train, the code the train stage runs) against the plain PyTorch
loop a typical user writes, on the same model and batch size.

Model: build_model of the conv AE on 28x28x1 images, latent 32, the schema's default widths (channels [32, 64],
hidden 256), or with --arch infogan the paper's InfoGAN AE of configs/reproduce_fashion_mnist.yaml (channels
[64, 128], hidden 1024, dropout 0.25, 13.2M parameters); Adam lr 1e-3, batch 128, the same initial weights. Data: the
real Fashion-MNIST train split (55,000 images after the schema's 5,000-image validation carve-out), prepared into a
pae HDF5 store in a temporary folder by the prepare stage's own function (pae.stages.prepare.prepare); --synthetic
uses blob images instead.

  reference  a per-item torch Dataset (tensor from the uint8 item, float conversion per item), a DataLoader
             (shuffle=True, num_workers=0), contiguous NCHW fp32, optimizer.zero_grad(), loss.item() every step.
  pae        pae.train.loop.train with epochs=--epochs, in each configuration: fp32, channels_last, bf16 (autocast),
             channels_last+bf16, and on a GPU fp32 and channels_last+bf16 with the step replayed as a CUDA graph
             (+cuda_graph). Its figure comes from the history's per-epoch "seconds" minus the time of the
             end-of-epoch validation pass (measured by wrapping pae.train.loop.mean_squared_error), so both sides
             count training steps only; the figure with validation included is printed too.

Both run in this process on --device (cpu, cuda) with the same torch thread count (--threads), in --repeats rounds
that each run every loop once in turn, so that other work on the machine slows all loops alike; the median and the
best round of each loop are printed, with the speed-ups over the reference. Each run starts from fresh weights; the
last of its --epochs epochs is reported (a first epoch includes the few warm-up steps of each side, and a CUDA graph's
capture). Figures only; nothing is asserted.

    .venv/bin/python bench/trainer.py [--epochs 1] [--repeats 3] [--threads N] [--batch-size 128] [--limit-train N]
        [--configs fp32 channels_last bf16 channels_last+bf16] [--idx-dir /usr/share/datasets/fashion-mnist]
        [--synthetic] [--device cuda] [--arch infogan]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pae.train.loop as loop
from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, RawDataset
from pae.data.store import open_dataset, write_dataset
from pae.models import ModelSpec, build_model
from pae.stages.prepare import prepare
from pae.train.distributed import DistInfo

# name -> (train.precision, train.channels_last, train.cuda_graph)
CONFIGS = {"fp32": ("fp32", False, False), "channels_last": ("fp32", True, False), "bf16": ("bf16", False, False),
           "channels_last+bf16": ("bf16", True, False), "fp32+cuda_graph": ("fp32", False, True),
           "channels_last+bf16+cuda_graph": ("bf16", True, True)}
LATENT, LR, SEED, VAL_SIZE = 32, 1e-3, 0, 5000
ARCHS = {"conv": {"channels": (32, 64), "hidden": 256, "dropout": 0.0},  # the schema's default widths
         "infogan": {"channels": (64, 128), "hidden": 1024, "dropout": 0.25}}  # configs/reproduce_fashion_mnist.yaml


def synthetic_raw(n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> RawDataset:
    """Fashion-MNIST-shaped uint8 images of one Gaussian blob each, labels 0..9."""
    rng = np.random.default_rng(seed)

    def blobs(n):
        yy, xx = np.mgrid[0:28, 0:28]
        c = rng.uniform(7, 21, (n, 2))
        img = np.exp(-((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2) / 32.0)
        return (img * 255).astype(np.uint8)[:, None]

    return RawDataset(blobs(n_train), rng.integers(0, 10, n_train), blobs(n_test), rng.integers(0, 10, n_test),
                      FASHION_MNIST_CLASSES, "synthetic", "bench/trainer.py blobs")


class ItemDataset(torch.utils.data.Dataset):
    """What a torchvision-style dataset does per item, minus PIL: the uint8 item as a tensor, converted to float
    in [-0.5, 0.5]."""

    def __init__(self, images_u8: np.ndarray):
        self.images = images_u8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i]).float().div(255.0).sub(0.5)


def reference_epochs(images_u8: np.ndarray, batch_size: int, epochs: int, arch: str, device: torch.device
                     ) -> tuple[float, int]:
    """The plain loop; returns (seconds, images) of its last epoch."""
    torch.manual_seed(SEED)  # same initial weights as pae's train()
    a = ARCHS[arch]
    model = build_model(ModelSpec("ae", arch, (1, 28, 28), LATENT, a["channels"], a["hidden"],
                                  dropout=a["dropout"])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loader = torch.utils.data.DataLoader(ItemDataset(images_u8), batch_size=batch_size, shuffle=True,
                                         num_workers=0, generator=torch.Generator().manual_seed(SEED))
    model.train()
    for _ in range(epochs):
        t0, n, total = time.perf_counter(), 0, 0.0
        for x in loader:
            x = x.to(device)
            opt.zero_grad()
            loss = model.loss(x)
            loss.backward()
            opt.step()
            total += loss.item()  # the usual running loss: a host sync every step
            n += len(x)
        seconds = time.perf_counter() - t0
    return seconds, n


def pae_epochs(data, config: str, batch_size: int, epochs: int, arch: str, device: torch.device, tmp: Path
               ) -> tuple[float, float, int]:
    """pae.train.loop.train in one configuration; returns (train seconds, seconds with validation, images) of the
    last epoch."""
    precision, channels_last, cuda_graph = CONFIGS[config]
    a = ARCHS[arch]
    spec = loop.TrainSpec.from_dict({"model": "ae", "latent_dim": LATENT, "seed": SEED, "arch": arch,
                                     "channels": list(a["channels"]), "hidden": a["hidden"], "dropout": a["dropout"],
                                     "epochs": epochs, "batch_size": batch_size, "lr": LR, "precision": precision,
                                     "channels_last": channels_last, "cuda_graph": cuda_graph})
    val_seconds: list[float] = []
    original = loop.mean_squared_error

    def timed_validation(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            val_seconds.append(time.perf_counter() - t0)

    out = tmp / config
    out.mkdir(parents=True)
    loop.mean_squared_error = timed_validation
    try:
        history = loop.train(spec, data, out / "model.pt", out / "history.json", out / "checkpoint.pt",
                             DistInfo(0, 0, 1, device))
    finally:
        loop.mean_squared_error = original
    n_train = len(data.splits["train"])
    images = n_train // batch_size * batch_size  # drop_last=True
    with_val = history[-1]["seconds"]
    return with_val - val_seconds[-1], with_val, images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1, help="epochs per side; the last one is reported")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for both sides")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="rounds; the median and best of each loop are reported")
    ap.add_argument("--limit-train", type=int, default=None, help="train on only this many images (quick runs)")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                    help="default: all (on a CPU, all but the +cuda_graph ones)")
    ap.add_argument("--idx-dir", type=Path, default=DEBIAN_FASHION_MNIST,
                    help="folder with the four Fashion-MNIST IDX files (default: Debian's)")
    ap.add_argument("--synthetic", action="store_true", help="blob images instead of Fashion-MNIST")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ap.add_argument("--arch", default="conv", choices=list(ARCHS))
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.configs is None:
        args.configs = [c for c in CONFIGS if device.type == "cuda" or not CONFIGS[c][2]]
    if device.type != "cuda" and any(CONFIGS[c][2] for c in args.configs):
        ap.error("the +cuda_graph configurations need --device cuda")
    if args.epochs < 1 or args.repeats < 1:
        ap.error("--epochs and --repeats must be at least 1")
    torch.set_num_threads(args.threads)

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{os.getloadavg()[0]:.2f} at start"
          + (f"; device {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    with tempfile.TemporaryDirectory(prefix="pae-bench-trainer-") as tmp:
        tmp = Path(tmp)
        h5 = tmp / "fashion_mnist.h5"
        data_spec = {"val_size": VAL_SIZE, "split_seed": 0, "limit_train": args.limit_train}
        if args.synthetic:
            write_dataset(h5, "fashion_mnist", synthetic_raw(), **data_spec)
        else:
            prepare("fashion_mnist", {"source": str(args.idx_dir), **data_spec}, h5, tmp / "raw")
        data = open_dataset(h5)
        train_u8 = data.split("train")[0].numpy()
        print(f"data: {data.attrs['source']} ({data.attrs['source_detail']}), {len(train_u8):,} train images "
              f"{train_u8.shape[1:]}; {args.arch} AE latent {LATENT}, {ARCHS[args.arch]}, batch "
              f"{args.batch_size}, Adam lr {LR}; {args.epochs} epoch(s) per side, the last one reported")
        print()
        print(f"{args.repeats} round(s), each running every loop once in turn (so that a change in the machine's "
              f"load hits all loops alike)")
        print()
        loops = ["reference (DataLoader)"] + [f"pae train() {c}" for c in args.configs]
        rates: dict[str, list[float]] = {name: [] for name in loops}
        loads: dict[str, list[float]] = {name: [] for name in loops}
        for r in range(args.repeats):
            for name in loops:
                if name.startswith("reference"):
                    seconds, n = reference_epochs(train_u8, args.batch_size, args.epochs, args.arch, device)
                    extra = ""
                else:
                    seconds, with_val, n = pae_epochs(data, name.split()[-1], args.batch_size, args.epochs,
                                                      args.arch, device, tmp / f"round{r}")
                    extra = f" ({with_val:.1f} s with its validation pass)"
                rates[name].append(n / seconds)
                loads[name].append(os.getloadavg()[0])
                print(f"  round {r + 1}: {name:<32s} {n / seconds:>7,.0f} images/s, {seconds:.1f} s{extra}, "
                      f"load {loads[name][-1]:.2f}", flush=True)
    ref_median, ref_best = statistics.median(rates[loops[0]]), max(rates[loops[0]])
    print()
    print(f"{'loop':<32s} {'median img/s':>12s} {'speed-up':>9s} {'best img/s':>11s} {'speed-up':>9s} "
          f"{'load':>10s}")
    for name in loops:
        med, best = statistics.median(rates[name]), max(rates[name])
        print(f"{name:<32s} {med:>12,.0f} {med / ref_median:>8.2f}x {best:>11,.0f} {best / ref_best:>8.2f}x "
              f"{min(loads[name]):>4.2f}-{max(loads[name]):<4.2f}")
    print()
    print("images/s: training steps only (pae: the epoch's history seconds minus its validation pass); speed-up: "
          "over the reference's median (best) figure; load: range of the 1-minute load average after the loop's "
          "runs (the machine has {} CPUs; a load above that means the loops shared them with other work).".format(
              os.cpu_count()))


if __name__ == "__main__":
    main()

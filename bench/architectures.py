"""Training throughput of each registered architecture (pae.models.ARCHITECTURES): AE steps (forward, pixel MSE,
backward, Adam) on a fixed batch of synthetic images, at the config schema's default widths. Prints parameter counts
and images/s per architecture.

    .venv/bin/python bench/architectures.py [--size 28] [--channels-in 1] [--batch 128] [--seconds 3]
        [--threads 1] [--device cpu] [--arch conv mlp resnet] [--channels 32 64] [--hidden 256]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pae.data.loader import to_float
from pae.models import ARCHITECTURES
from pae.models.autoencoder import AutoEncoder


def blobs(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """n uint8 images of one Gaussian blob each (what the tests train on)."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.uniform(0.25, 0.75, (n, 2)) * [h, w]
    img = np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / 32.0)
    return torch.from_numpy(np.repeat((img * 255).astype(np.uint8)[:, None], c, axis=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--channels-in", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", nargs="+", default=sorted(ARCHITECTURES))
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--latent", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    shape = (a.channels_in, a.size, a.size)
    x = to_float(blobs(a.batch, shape)).to(a.device)
    print(f"{shape}, batch {a.batch}, channels {a.channels}, hidden {a.hidden}, latent {a.latent}, "
          f"{a.device}, {torch.get_num_threads()} thread(s)")
    for arch in a.arch:
        torch.manual_seed(0)
        enc_cls, dec_cls = ARCHITECTURES[arch]
        args = (shape, a.latent, tuple(a.channels), a.hidden)
        model = AutoEncoder(enc_cls(*args), dec_cls(*args)).to(a.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            loss = model.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        for _ in range(2):  # warm up
            step()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            step()
            n += 1
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        n_params = sum(q.numel() for q in model.parameters())
        print(f"{arch:8s} {n_params:>10,} parameters  {n * a.batch / dt:>9,.0f} images/s  {1000 * dt / n:7.1f} ms/step")


if __name__ == "__main__":
    main()

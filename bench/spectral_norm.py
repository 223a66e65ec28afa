"""Spectral normalisation in the InfoGAN encoder: pae's layers (pae.models.infogan.SNLinear / SNConv2d, which divide
the layer's output by sigma) against torch's spectral_norm parametrization (which divides the weight), in a training
step of the paper's AE (latent 32, channels 64/128, hidden 1024, dropout 0.25, 13.2M parameters): forward, loss,
backward, fused Adam, on one fixed batch of images in channels_last. Both models live in this process and run in
alternating rounds, so other work on the machine slows both alike; the median and every round are printed.

    .venv/bin/python bench/spectral_norm.py [--threads 2] [--batch 128] [--rounds 5] [--steps 6]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from pae.models import ModelSpec, build_model
from pae.models.infogan import TORCH_SPECTRAL_NORM_KEYS, SNConv2d, SNLinear
from pae.models.likelihoods import LikelihoodSpec


def with_torch_spectral_norm(module: nn.Module) -> nn.Module:
    """`module` with each pae SN layer replaced by the plain layer under torch's parametrization (same weights)."""
    for name, child in module.named_children():
        if isinstance(child, SNLinear):
            plain = nn.Linear(child.in_features, child.out_features)
        elif isinstance(child, SNConv2d):
            plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding)
        else:
            with_torch_spectral_norm(child)
            continue
        spectral_norm(plain)
        plain.load_state_dict({TORCH_SPECTRAL_NORM_KEYS.get(k, k): t for k, t in child.state_dict().items()})
        setattr(module, name, plain)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="training steps per round")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = ModelSpec("ae", "infogan", (1, 28, 28), 32, (64, 128), 1024,
                     likelihood=LikelihoodSpec("gaussian_fixed", 0.1, 0.0), dropout=0.25)
    ours = build_model(spec).train()
    models = {"torch spectral_norm (divides W)": with_torch_spectral_norm(copy.deepcopy(ours)),
              "pae SNLinear/SNConv2d (divides the output)": ours}
    x = (torch.rand(a.batch, 1, 28, 28) - 0.5).contiguous(memory_format=torch.channels_last)
    steps, seconds = {}, {name: [] for name in models}
    for name, model in models.items():
        model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)

        def step(model=model, opt=opt):
            loss = model.loss(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps[name] = step
        for _ in range(3):  # warm-up
            step()
    for _ in range(a.rounds):
        for name, step in steps.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                step()
            seconds[name].append((time.perf_counter() - t) / a.steps)
    print(f"{a.threads} thread(s), batch {a.batch}, {a.rounds} rounds of {a.steps} steps; load {os.getloadavg()[0]:.2f}")
    base = statistics.median(seconds[next(iter(models))])
    for name, s in seconds.items():
        med = statistics.median(s)
        print(f"{name:45s} median {med * 1e3:7.1f} ms/step ({a.batch / med:6.0f} images/s, {base / med:.2f}x)  "
              f"rounds {' '.join(f'{v * 1e3:.0f}' for v in s)}")


if __name__ == "__main__":
    main()

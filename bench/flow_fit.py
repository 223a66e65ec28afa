"""Flow-fit time per epoch: pae.flows.fit_flow (what the fit_flow stage runs) for each flow kind and latent size, with
the config schema's default `flow:` settings (layers, hidden, blocks, bins, tail_bound, batch_size, lr).

The latents are synthetic: N training and --val validation latents drawn from a mixture of 10 Gaussians with random
means, scales and a random linear mixing (non-Gaussian and correlated, like an auto-encoder's codes; the time per
epoch does not depend on the values anyway). Each (kind, latent size) runs fit_flow for --epochs epochs and reports
its last epoch from the returned history: seconds (the epoch's Adam steps plus the validation log-likelihood pass,
exactly what the stage spends per epoch) and training latents per second. Multiply by the epochs early stopping
lets run (flow.epochs = 100 at most, flow.patience = 10) for a stage's time.

    .venv/bin/python bench/flow_fit.py [--kinds nsf realnvp maf hybrid] [--latent 8 32 128] [--n 55000] [--val 5000]
        [--epochs 2] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import platform

import torch

from pae.config import resolve
from pae.flows import FlowSpec, fit_flow
from pae.flows.latent_flow import FLOWS


def mixture_latents(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, dim, generator=g) * 2.0
    scales = torch.rand(10, dim, generator=g) * 0.9 + 0.1
    comp = torch.randint(0, 10, (n,), generator=g)
    z = means[comp] + scales[comp] * torch.randn(n, dim, generator=g)
    mixing = torch.eye(dim) + 0.3 * torch.randn(dim, dim, generator=g) / dim ** 0.5
    return z @ mixing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", nargs="+", default=sorted(FLOWS), choices=sorted(FLOWS))
    ap.add_argument("--latent", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--n", type=int, default=55000, help="training latents (Fashion-MNIST's train split: 55,000)")
    ap.add_argument("--val", type=int, default=5000, help="validation latents")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per fit; the last one is reported")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.epochs < 1:
        ap.error("--epochs must be at least 1")
    torch.set_num_threads(args.threads)
    defaults = resolve({})["flow"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f} at start")
    print(f"flow settings (schema defaults): {', '.join(f'{k}={v}' for k, v in defaults.items())}")
    print(f"{args.n:,} training + {args.val:,} validation synthetic latents; {args.epochs} epoch(s) per fit, the last "
          f"one reported")
    print()
    print(f"{'kind':<8s} {'latent':>6s} {'parameters':>11s} {'s/epoch':>8s} {'latents/s':>10s} "
          f"{'100 epochs':>11s} {'load':>5s}")
    for kind in args.kinds:
        for dim in args.latent:
            z = mixture_latents(args.n + args.val, dim, seed=dim)
            spec = FlowSpec.from_dict({**defaults, "kind": kind, "epochs": args.epochs, "seed": 0})
            flow, history = fit_flow(spec, z[:args.n], z[args.n:], "cpu")
            seconds = history[-1]["seconds"]
            n_params = sum(p.numel() for p in flow.parameters())
            print(f"{kind:<8s} {dim:>6d} {n_params:>11,d} {seconds:>8.2f} {args.n / seconds:>10,.0f} "
                  f"{100 * seconds / 60:>9.1f} m {os.getloadavg()[0]:>5.2f}"
                  + ("" if len(history) == args.epochs else f"  (stopped after {len(history)} epochs)"),
                  flush=True)
    print()
    print("s/epoch: the last epoch's Adam steps over the training latents plus its validation pass; latents/s: "
          "training latents / s/epoch; 100 epochs: the time flow.epochs=100 would take without early stopping; "
          "load: 1-minute load average after the fit.")


if __name__ == "__main__":
    main()

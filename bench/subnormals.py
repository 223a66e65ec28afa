"""Training steps of a VAD with subnormal floats flushed to zero (what every pae stage sets) and without.

A VAD's Adam updates its whole latent table every step. For the items outside the batch the gradient is zero, so
their first moments decay by beta1 = 0.9 per step and pass through the subnormal range (below 1.2e-38) on their way
to zero; x86 arithmetic on subnormals is many times slower. The model and optimiser are those of
configs/reproduce_vad.yaml's Fashion-MNIST runs (latent 50, MLP 3 x 200, batch 32, one latent per training image),
with synthetic pixels (the step time does not depend on them). Each setting runs --warmup steps (at least one pass
over the table, so that the moments reach the subnormal range) and times the next --steps.

    .venv/bin/python bench/subnormals.py [--config configs/reproduce_vad.yaml] [--items 55000] [--warmup 2000]
        [--steps 500] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import yaml

from pae.config import resolve
from pae.models import build_model
from pae.train.loop import TrainSpec, _param_groups


def ms_per_step(spec: TrainSpec, items: int, warmup: int, steps: int, flush: bool) -> float:
    torch.set_flush_denormal(flush)
    torch.manual_seed(0)
    model = build_model(spec.model_spec((1, 28, 28), n_items=items))
    opt = torch.optim.Adam(_param_groups(model, spec), lr=spec.lr, fused=True)
    images = torch.rand(items, 1, 28, 28) - 0.5
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        idx = torch.randint(0, items, (spec.batch_size,))
        opt.zero_grad(set_to_none=True)
        model.loss(images[idx], None, idx).backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/reproduce_vad.yaml")
    ap.add_argument("--items", type=int, default=55000, help="training items (latent table rows)")
    ap.add_argument("--warmup", type=int, default=2000, help="untimed steps first (>= items / batch size)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        config = resolve(yaml.safe_load(f))
    spec = TrainSpec.from_dict({**config["train"], "model": "vad", "latent_dim": config["latent_sizes"][0],
                                "seed": 0})
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}; "
          f"VAD latent {spec.latent_dim}, {args.items} items, batch {spec.batch_size}")
    for flush in (True, False):
        ms = ms_per_step(spec, args.items, args.warmup, args.steps, flush)
        print(f"flush subnormals {str(flush):5}: {ms:.2f} ms per step")


if __name__ == "__main__":
    main()

"""The flow fit's training step and epochs: ATen ops and milliseconds per step of pae.flows' layers against nflows'
own implementations of the same layers (the code before: masked spline, index-based coupling split, numpy-indexed LU
map, and clipping and Adam over each parameter tensor where pae's run over one flat buffer), measured in the same
run on the same machine; optionally the time per epoch of pae.flows.fit_flow (what the fit_flow stage runs) for each
flow kind and latent size.

Step table. One training step of FlowSteps (pae.flows.latent_flow; what fit_flow runs per batch): -mean log p(z),
backward, gradient clipping, fused Adam. The flow is configs/paper.yaml's (hybrid, 8 layers, hidden 128, the
schema's blocks, bins and tail bound) at latent 32 and batch 512 unless told otherwise. For each layer set:
  ops       ATen ops per step as torch.profiler records them: every aten:: event, ops called inside other ops
            included (the count the issue quotes), split into forward, backward, and clipping plus Adam;
  top       the top-level ones: those not inside another ATen op (what Python and autograd dispatch);
  ms/step   the median over --rounds rounds of --steps steps each, after 3 warm-up steps; the rounds alternate
            between the rows (a shared machine's load changes weigh on all alike); best: the fastest round.
With --device cuda the step also runs as a CUDA graph (pae's layers; the profiler then sees the few ops that launch
it, not the kernels the graph replays). With --compile, also pae's layers with the loss (forward and, through
AOTAutograd, backward) compiled by torch.compile (default mode), on CUDA also inside the CUDA graph; the warm-up's
time with the compilation is printed, not counted in ms/step.

Epoch table (--epochs N > 0): fit_flow for --epochs epochs per (kind, latent size) with the schema's default `flow:`
settings, on N training and --val validation latents drawn from a mixture of 10 Gaussians with random means, scales
and a random linear mixing (non-Gaussian and correlated, like an auto-encoder's codes; the time per epoch does not
depend on the values anyway). It reports the last epoch from the returned history: seconds (the epoch's Adam steps
plus the validation log-likelihood pass, what the stage spends per epoch) and training latents per second.

    .venv/bin/python bench/flow_fit.py [--threads N] [--device cpu|cuda] [--batch 512] [--latent-step 32]
        [--steps 10] [--rounds 5] [--compile] [--epochs 0] [--kinds ...] [--latent 8 32 128] [--n 55000] [--val 5000]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from pae.config import resolve
from pae.flows import FlowSpec, fit_flow
from pae.flows.latent_flow import FLOWS, FlowSteps, build_flow

PHASES = ("forward", "backward", "clip+adam")


def mixture_latents(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(10, dim, generator=g) * 2.0
    scales = torch.rand(10, dim, generator=g) * 0.9 + 0.1
    comp = torch.randint(0, 10, (n,), generator=g)
    z = means[comp] + scales[comp] * torch.randn(n, dim, generator=g)
    mixing = torch.eye(dim) + 0.3 * torch.randn(dim, dim, generator=g) / dim ** 0.5
    return z @ mixing


def _is_top(event) -> bool:
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith("aten::"):
        parent = parent.cpu_parent
    return parent is None


def count_ops(steps: FlowSteps, z: torch.Tensor) -> dict[str, int]:
    """ATen events of one step, per phase (eager) or in all (a CUDA graph's replay), and the top-level ones."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        if steps.graphed:
            with record_function("step"):
                steps(z)
        else:
            with record_function("forward"):
                loss = steps.loss(z)
            steps.zero_grad()
            with record_function("backward"):
                loss.backward()
            with record_function("clip+adam"):
                steps.clip_gradients()
                steps.opt.step()
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    counts = {"ops": len(aten), "top": sum(_is_top(e) for e in aten)}
    for phase in PHASES:
        ranges = [e.time_range for e in events if e.name == phase]
        counts[phase] = sum(1 for e in aten for r in ranges
                            if r.start <= e.time_range.start and e.time_range.end <= r.end)
    return counts


def time_round(steps: FlowSteps, z: torch.Tensor, n_steps: int) -> float:
    """Milliseconds per step over `n_steps` steps."""
    sync = torch.cuda.synchronize if z.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        steps(z)
    sync()
    return (time.perf_counter() - t0) / n_steps * 1e3


def step_table(args, spec: FlowSpec) -> None:
    device = torch.device(args.device)
    z = mixture_latents(args.batch, args.latent_step, seed=1).to(device)
    print(f"step: {spec.kind}, {spec.layers} layers, hidden {spec.hidden}, blocks {spec.blocks}, bins {spec.bins}, "
          f"tail bound {spec.tail_bound}; latent {args.latent_step}, batch {args.batch}, {device}")
    print(f"{'layers':<8s} {'mode':<13s} {'ops':>6s} {'forward':>8s} {'backward':>9s} {'clip+adam':>10s} {'top':>5s} "
          f"{'ms/step':>8s} {'best':>7s}")
    cuda = device.type == "cuda"
    runs = [("nflows", "eager"), ("pae", "eager")] + ([("pae", "graph")] if cuda else []) \
        + ([("pae", "compile")] + ([("pae", "compile+graph")] if cuda else []) if args.compile else [])
    built = []
    for layers, mode in runs:
        flow = build_flow(spec, args.latent_step, z.mean(0).cpu(), z.std(0).cpu(), layers=layers).to(device)
        # before: nflows' layers and Adam and clipping over each parameter tensor; after: pae's, over one flat buffer
        steps = FlowSteps(flow, spec, cuda_graph="graph" in mode, flat=layers == "pae")
        t0 = time.perf_counter()
        if "compile" in mode:
            steps.loss = torch.compile(steps.loss)
        for _ in range(3):  # warm-up (and the graph's capture, the compilation)
            steps(z)
        built.append((layers, mode, steps, time.perf_counter() - t0, count_ops(steps, z)))
    # the timed rounds alternate between the rows, so that a shared machine's load changes weigh on all alike
    times = [[] for _ in built]
    for _ in range(args.rounds):
        for i, (_, _, steps, _, _) in enumerate(built):
            times[i].append(time_round(steps, z, args.steps))
    for (layers, mode, steps, warm_up, ops), ms in zip(built, times):
        phases = [f"{ops[p]:>8d}" if not steps.graphed else f"{'-':>8s}" for p in PHASES]
        print(f"{layers:<8s} {mode:<13s} {ops['ops']:>6d} {phases[0]} {phases[1]:>9s} {phases[2]:>10s} "
              f"{ops['top']:>5d} {statistics.median(ms):>8.2f} {min(ms):>7.2f}"
              + (f"  (warm-up with compilation {warm_up:.0f} s)" if "compile" in mode else ""))
    print(f"load average {os.getloadavg()[0]:.2f} after the timed rounds")


def epoch_table(args, defaults: dict) -> None:
    print(f"epochs: {args.n:,} training + {args.val:,} validation synthetic latents; {args.epochs} epoch(s) per fit, "
          f"the last one reported; the schema's default flow settings: "
          f"{', '.join(f'{k}={v}' for k, v in defaults.items())}")
    print(f"{'kind':<8s} {'latent':>6s} {'parameters':>11s} {'s/epoch':>8s} {'latents/s':>10s} "
          f"{'100 epochs':>11s} {'load':>5s}")
    for kind in args.kinds:
        for dim in args.latent:
            z = mixture_latents(args.n + args.val, dim, seed=dim)
            spec = FlowSpec.from_dict({**defaults, "kind": kind, "epochs": args.epochs, "seed": 0})
            flow, history = fit_flow(spec, z[:args.n], z[args.n:], args.device)
            seconds = history[-1]["seconds"]
            n_params = sum(p.numel() for p in flow.parameters())
            print(f"{kind:<8s} {dim:>6d} {n_params:>11,d} {seconds:>8.2f} {args.n / seconds:>10,.0f} "
                  f"{100 * seconds / 60:>9.1f} m {os.getloadavg()[0]:>5.2f}"
                  + ("" if len(history) == args.epochs else f"  (stopped after {len(history)} epochs)"),
                  flush=True)
    print("s/epoch: the last epoch's Adam steps over the training latents plus its validation pass; latents/s: "
          "training latents / s/epoch; 100 epochs: the time flow.epochs=100 would take without early stopping; "
          "load: 1-minute load average after the fit.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=512, help="step table: batch size (configs/paper.yaml's: 512)")
    ap.add_argument("--latent-step", type=int, default=32, help="step table: latent size")
    ap.add_argument("--steps", type=int, default=10, help="step table: steps per timed round")
    ap.add_argument("--rounds", type=int, default=5, help="step table: timed rounds (the median is reported)")
    ap.add_argument("--compile", action="store_true", help="step table: also pae's layers under torch.compile")
    ap.add_argument("--epochs", type=int, default=0, help="epoch table: epochs per fit (0: no epoch table)")
    ap.add_argument("--kinds", nargs="+", default=sorted(FLOWS), choices=sorted(FLOWS))
    ap.add_argument("--latent", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--n", type=int, default=55000, help="training latents (Fashion-MNIST's train split: 55,000)")
    ap.add_argument("--val", type=int, default=5000, help="validation latents")
    args = ap.parse_args()
    if args.epochs < 0 or args.steps < 1 or args.rounds < 1:
        ap.error("--epochs must be >= 0, --steps and --rounds >= 1")
    torch.set_num_threads(args.threads)
    defaults = resolve({})["flow"]
    paper = resolve({"flow": {"kind": "hybrid", "layers": 8, "hidden": 128}})["flow"]
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f} at start"
          + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""))
    print()
    step_table(args, dataclasses.replace(FlowSpec.from_dict(paper), batch_size=args.batch))
    print("ops: ATen ops per step (torch.profiler; ops inside ops included), by phase; top: those not inside another "
          "ATen op; ms/step: median of the timed rounds; best: the fastest round.")
    if args.epochs:
        print()
        epoch_table(args, defaults)


if __name__ == "__main__":
    main()

"""The Fréchet distance's bootstrap on this machine: seconds per resample of two (N, D) float64 feature sets (the fid
stage's 10,000 x 2048 by default), with the resample indexed explicitly (a[rows]) and factorised on its distinct
rows weighted by their counts (pae.eval.fid, the stage's route), plus the time of the pieces (the QR of N and of
~0.632 N rows, the D x D SVD) and the two routes' relative difference.

    .venv/bin/python bench/frechet.py [--n 10000] [--d 2048] [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from pae.eval import fid


def seconds(f, repeats: int) -> float:
    """The best of `repeats` timings of f() (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.2f} at start")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(args.n, args.d, dtype=torch.float64, generator=g)
    b = torch.randn(args.n, args.d, dtype=torch.float64, generator=g) * 1.1 + 0.1
    rng = np.random.default_rng(0)
    rows_a = torch.as_tensor(rng.integers(0, args.n, args.n))
    rows_b = torch.as_tensor(rng.integers(0, args.n, args.n))
    distinct = int((torch.bincount(rows_a, minlength=args.n) > 0).sum())
    print(f"features: {args.n} x {args.d} float64 per set; a resample has {distinct} distinct rows "
          f"({distinct / args.n:.3f} of them)")
    indexed = fid._frechet(a[rows_a], b[rows_b]).item()
    weighted = fid._frechet(a, b, rows_a, rows_b).item()
    print(f"distance of the resample: indexed {indexed:.10g}, distinct rows {weighted:.10g} "
          f"(relative difference {abs(indexed - weighted) / indexed:.1e})")
    t_indexed = seconds(lambda: fid._frechet(a[rows_a], b[rows_b]), args.repeats)
    t_weighted = seconds(lambda: fid._frechet(a, b, rows_a, rows_b), args.repeats)
    print(f"one resample: indexed {t_indexed:.2f} s, distinct rows {t_weighted:.2f} s "
          f"({t_indexed / t_weighted:.2f}x)")
    r = torch.linalg.qr(a, mode="r").R
    print(f"pieces: QR of {args.n} rows {seconds(lambda: torch.linalg.qr(a, mode='r'), args.repeats):.2f} s, "
          f"of {distinct} rows {seconds(lambda: torch.linalg.qr(a[:distinct], mode='r'), args.repeats):.2f} s; "
          f"SVD values of {args.d} x {args.d} {seconds(lambda: torch.linalg.svdvals(r @ r.T), args.repeats):.2f} s")


if __name__ == "__main__":
    main()

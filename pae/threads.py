"""A fixed torch thread count for computations whose result depends on the order of float sums.

Chaotic computations (a NUTS chain, whose tree-building decisions follow the last bits of every gradient; a classifier
trained for several epochs) end elsewhere when the thread count changes, since float32 reductions are split per
thread. The thread count comes from the launcher (snakemake sets OMP_NUM_THREADS to the rule's threads, SLURM to the
CPUs of the job, a direct run uses every core), so these computations run with one thread whatever launched them."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

CHAOTIC_THREADS = 1


@contextlib.contextmanager
def fixed(n: int = CHAOTIC_THREADS) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

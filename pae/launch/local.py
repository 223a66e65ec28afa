"""The local launcher: the stage runs inside the snakemake job; several tasks on this machine go through torchrun."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from pae.io import PaeError
from pae.launch import Job

log = logging.getLogger(__name__)


def run(job: Job, argv: list[str]) -> int:
    if job.nodes > 1:
        raise PaeError(f"job resources: nodes={job.nodes}, but the local launcher runs on this machine only "
                       "(use the slurm launcher, e.g. snakemake --profile cluster/slurm)")
    if job.tasks_per_node == 1:
        from pae.__main__ import run_stage
        return run_stage(argv)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.tasks_per_node}",
           "-m", "pae", *argv]
    log.info("running %d local processes with torchrun", job.tasks_per_node)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, job.threads // job.tasks_per_node))}
    return subprocess.run(cmd, env=env).returncode

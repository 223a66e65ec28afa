"""The local launcher of several tasks on this machine: torchrun runs `python -m pae STAGE ...` once per task. (One
task needs no launcher: `python -m pae` runs the stage in its own process, pae.stages.run_parsed.)"""
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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.tasks_per_node}",
           "-m", "pae", *argv]
    log.info("running %d local processes with torchrun", job.tasks_per_node)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, job.threads // job.tasks_per_node))}
    return subprocess.run(cmd, env=env).returncode

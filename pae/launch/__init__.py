"""Launchers: where a stage runs. Every workflow rule calls `python -m pae --launcher NAME --job JSON STAGE ...`;
the job description (threads, runtime, memory, GPUs, nodes, tasks per node, SLURM partition/account/extra options)
comes from the rule's snakemake `resources:` and the profile's `set-resources`, never from the science config.

- local: run the stage in this process (or under torchrun when tasks_per_node > 1).
- slurm: submit it with submitit, wait, stream its log, fail with the SLURM state and the log's tail. Its process
  (one per job in flight, on the login node) imports the standard library, submitit and pae's light modules only.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from pae.io import PaeError, write_json

# The workflow sets this variable to one id per snakemake run (its onstart handler); the rules' commands inherit it.
RUN_ENV = "PAE_RUN"
# In a job's folder: the snakemake run that last started the rule's command and how many times it did.
ATTEMPTS = "attempts.json"


def _doc(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Job:
    """What a stage asks of the machine it runs on (snakemake resource names)."""
    name: str = "pae"
    folder: str = _doc("logs/submitit", "submitit's job files and logs")
    threads: int = _doc(1, "CPUs per task")
    runtime: int = _doc(60, "minutes")
    mem_mb: int = _doc(4000, "per node")
    gpus: int = _doc(0, "per node")
    nodes: int = 1
    tasks_per_node: int = 1
    slurm_partition: str = ""
    slurm_account: str = ""
    slurm_extra: str = _doc("", 'further sbatch options, e.g. "--qos=high --constraint=a100"')
    slurm_signal_delay_s: int = _doc(90, "the pre-timeout signal comes this long before the time limit")
    attempt: int = _doc(1, "the attempt of the rule's command within one snakemake run (1, then 2... on retries); "
                        "counted by count_attempt under the workflow")

    @classmethod
    def describe(cls) -> str:
        """The fields, their defaults and meanings, for `--job`'s help."""
        return ", ".join(f"{f.name}={f.default!r}" + (f" ({f.metadata['doc']})" if "doc" in f.metadata else "")
                         for f in fields(cls))

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise PaeError(f"job resources: unknown keys {unknown}; known: {sorted(known)}")
        values = {}
        for key, value in d.items():
            default = getattr(cls, key)
            try:
                values[key] = type(default)(value) if value is not None else default
            except (TypeError, ValueError):
                raise PaeError(f"job resources: {key}={value!r} is not a {type(default).__name__}") from None
        job = cls(**values)
        for key in ("threads", "runtime", "nodes", "tasks_per_node", "attempt"):
            if getattr(job, key) < 1:
                raise PaeError(f"job resources: {key} must be at least 1, got {getattr(job, key)}")
        return job

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node


def new_run_id() -> str:
    """An id for one snakemake run: host, pid and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}"


def count_attempt(job: Job) -> Job:
    """The job with its attempt counted within the snakemake run named by $PAE_RUN: 1 for the run's first start of
    the rule's command, then 2... for snakemake's retries. snakemake passes a retry the --job JSON of the first
    attempt (params are not evaluated again, and `attempt` reaches only resources), so the count is kept in the
    job's folder (ATTEMPTS). Without $PAE_RUN (the launcher called by hand) the job's own attempt stands."""
    run = os.environ.get(RUN_ENV)
    if not run:
        return job
    path = Path(job.folder) / ATTEMPTS
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: a first attempt
        record = {}
    previous = record.get("attempt") if isinstance(record, dict) and record.get("run") == run else 0
    attempt = max((previous if isinstance(previous, int) else 0) + 1, job.attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"run": run, "attempt": attempt})
    return dataclasses.replace(job, attempt=attempt)


def _local(job: Job, argv: list[str]) -> int:
    from pae.launch.local import run
    return run(job, argv)


def _slurm(job: Job, argv: list[str]) -> int:
    from pae.launch.slurm import run
    return run(job, argv)


# name -> function(job, stage argv) returning the exit code
LAUNCHERS: dict[str, Callable[[Job, list[str]], int]] = {"local": _local, "slurm": _slurm}

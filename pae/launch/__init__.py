"""Launchers: where a stage runs. Every workflow rule calls `python -m pae --launcher NAME --job JSON STAGE ...`;
the job description (threads, runtime, memory, GPUs, nodes, tasks per node, SLURM partition/account/extra options)
comes from the rule's snakemake `resources:` and the profile's `set-resources`, never from the science config.

- local: run the stage in this process (or under torchrun when tasks_per_node > 1).
- slurm: submit it with submitit, wait, stream its log, fail with the SLURM state and the log's tail. Its process
  (one per job in flight, on the login node) imports the standard library, submitit and pae's light modules only.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable

from pae.io import PaeError


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
    attempt: int = _doc(1, "snakemake's attempt of the rule (1, then 2... on retries), shown in the log's header")

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


def _local(job: Job, argv: list[str]) -> int:
    from pae.launch.local import run
    return run(job, argv)


def _slurm(job: Job, argv: list[str]) -> int:
    from pae.launch.slurm import run
    return run(job, argv)


# name -> function(job, stage argv) returning the exit code
LAUNCHERS: dict[str, Callable[[Job, list[str]], int]] = {"local": _local, "slurm": _slurm}

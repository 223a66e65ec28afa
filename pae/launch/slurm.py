"""The SLURM launcher: the stage runs as a SLURM job submitted with submitit; this process (the snakemake job)
waits for it, streams its log into the rule's log, and fails with the job id, its SLURM state and the log's tail.

Training is preemption-safe: the task is a submitit `Checkpointable`. SLURM's pre-timeout signal (USR2, sent
`slurm_signal_delay_s` before the limit) reaches the stage's handler (pae.train.interrupt), the training loop saves
its rolling checkpoint at the next step boundary, and the task hands over to submitit's own handler, which requeues
the job; the requeued job resumes from the checkpoint.
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path

import submitit

from pae.io import PaeError
from pae.launch import Job

log = logging.getLogger(__name__)

POLL_S = 2.0
TAIL_LINES = 40
MAX_REQUEUES = 50  # timeouts a job may checkpoint-and-requeue through (training resumes each time)


class StageTask(submitit.helpers.Checkpointable):
    """`python -m pae STAGE ...` inside a SLURM job; requeued (same arguments) when SLURM signals a timeout."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self) -> int:
        import signal

        from pae.stages import run_stage  # imported in the SLURM task: the launcher's process loads no stage code
        from pae.train import interrupt

        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            import torch
            torch.set_num_threads(int(cpus))
        submitit_handlers = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
        try:
            code = run_stage(self.argv, raise_interrupt=True)
        except interrupt.Interrupted as e:
            log.warning("%s; submitit requeues the job", e)
            handler = submitit_handlers.get(e.signum)
            if callable(handler):
                handler(e.signum, None)  # submitit: checkpoint() -> requeue -> exit (returns on ranks > 0)
            return 128 + e.signum
        if code != 0:
            raise RuntimeError(f"pae {self.argv[0]} exited with status {code} (its log above says why)")
        return code


def _sbatch_options(extra: str) -> dict[str, str | bool]:
    """'--qos=high --constraint a100 --exclusive' -> {'qos': 'high', 'constraint': 'a100', 'exclusive': True}."""
    options, words = {}, shlex.split(extra)
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise PaeError(f"slurm_extra: expected --option[=value] items, got {word!r} in {extra!r}")
        key, eq, value = word[2:].partition("=")
        if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
            value, i = words[i + 1], i + 1
        options[key.replace("-", "_")] = value if (eq or value) else True
        i += 1
    return options


def executor_for(job: Job) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=job.folder, cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES)
    params = {"name": job.name, "timeout_min": job.runtime, "nodes": job.nodes, "tasks_per_node": job.tasks_per_node,
              "cpus_per_task": job.threads, "slurm_mem": f"{job.mem_mb}M",
              "slurm_signal_delay_s": job.slurm_signal_delay_s}
    if job.gpus:
        params["gpus_per_node"] = job.gpus
    if job.slurm_partition:
        params["slurm_partition"] = job.slurm_partition
    if job.slurm_account:
        params["slurm_account"] = job.slurm_account
    if job.slurm_extra:
        params["slurm_additional_parameters"] = _sbatch_options(job.slurm_extra)
    executor.update_parameters(**params)
    return executor


class _Follower:
    """Copies what a file gains to a stream, from where it last stopped."""

    def __init__(self, path: Path, stream):
        self.path, self.stream, self.offset = path, stream, 0

    def pump(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        if data:
            self.offset += len(data)
            self.stream.write(data.decode(errors="replace"))
            self.stream.flush()


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return f"(no log file {path})"


def _final_state(sjob, wait_s: float = 30.0) -> str:
    """The job's state from sacct, waiting for accounting to record its end (it lags the job by seconds)."""
    deadline = time.time() + wait_s
    state = "UNKNOWN"
    while time.time() < deadline:
        state = sjob.get_info(mode="force").get("State", "UNKNOWN")
        if state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "UNKNOWN", "CONFIGURING"):
            break
        time.sleep(1.0)
    return state


def run(job: Job, argv: list[str]) -> int:
    Path(job.folder).mkdir(parents=True, exist_ok=True)
    try:
        sjob = executor_for(job).submit(StageTask(argv))
    except Exception as e:  # sbatch refused: bad partition, account, limits...
        raise PaeError(f"sbatch refused the job for stage {argv[0]!r}: {e}") from None
    log.info("submitted SLURM job %s (%s: %d node(s) x %d task(s), %d CPU(s)/task, %d min); its files: %s",
             sjob.job_id, job.name, job.nodes, job.tasks_per_node, job.threads, job.runtime, job.folder)
    followers = [_Follower(sjob.paths.stdout, sys.stdout), _Follower(sjob.paths.stderr, sys.stderr)]
    while not sjob.done():
        for f in followers:
            f.pump()
        time.sleep(POLL_S)
    for f in followers:
        f.pump()
    try:
        results = sjob.results()
    except Exception:  # the job failed, was cancelled, timed out for good, or its node died
        state = _final_state(sjob)
        logs = [sjob.task(t).paths.stderr for t in range(job.tasks)]
        causes = [line for p in logs for line in _tail(p, 10_000).splitlines() if " ERROR pae" in line]
        cause = f"; {causes[-1].split(' ERROR ', 1)[1]}" if causes else ""
        tails = "\n".join(f"--- {p} (last {TAIL_LINES} lines) ---\n{_tail(p)}" for p in logs)
        raise PaeError(f"SLURM job {sjob.job_id} ({job.name}) ended in state {state}{cause}\n{tails}") from None
    log.info("SLURM job %s (%s) finished successfully", sjob.job_id, job.name)
    return max(int(r or 0) for r in results)

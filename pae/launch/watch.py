"""What the SLURM jobs of a snakemake run wait for, on snakemake's terminal.

Each launcher logs its own job's pending reason into its rule's log, which no one watches while the run goes on; and
SLURM gives the real reason (a drained node, a busy partition) to the first job in the queue only: the jobs behind it
read `Priority`. So the workflow (its onstart handler) starts a QueueWatch thread in the snakemake process: every
INTERVAL_S it asks squeue once for the user's pending jobs, keeps those of this run (the job ids the launchers record
in the experiment's job folders, pae.launch.slurm.RECORD), and prints one line on snakemake's stderr when what they
wait for changes: how many wait, for which reasons, and the partitions' nodes that are down or drained, with SLURM's
reason for it. A job counts as waiting once it has been pending at two looks in a row, so jobs that start within
INTERVAL_S print nothing. One squeue and one sinfo per INTERVAL_S for the whole run, whatever its number of jobs.
"""
from __future__ import annotations

import getpass
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

INTERVAL_S = 30.0
SHOW_JOBS = 3  # job names shown per reason; the rest are counted

# SLURM's pending reasons (squeue's %r; https://slurm.schedmd.com/job_reason_codes.html) in words that follow
# "because".
GLOSS = {"Priority": "they are queued behind jobs of higher priority",
         "Resources": "the CPUs, memory or GPUs they ask for are in use",
         "ReqNodeNotAvail": "a node they need is down, drained or reserved",
         "BeginTime": "their start time has not come",
         "Dependency": "they wait for the jobs they depend on",
         "JobHeldUser": "they are held by their user (scontrol hold)",
         "JobHeldAdmin": "they are held by an administrator",
         "QOSMaxJobsPerUserLimit": "the QOS's limit of jobs per user is reached",
         "AssocGrpCpuLimit": "the account's CPU limit is reached",
         "AssocGrpJobsLimit": "the account's limit of running jobs is reached"}
# squeue gives the first job held by an unavailable node this text, the jobs behind it ReqNodeNotAvail
_NODES_DOWN_TEXT = "Nodes required for job are DOWN, DRAINED or reserved"


def reason_code(reason: str) -> str:
    """squeue's reason as SLURM's code: 'ReqNodeNotAvail, UnavailableNodes:vm' -> 'ReqNodeNotAvail'."""
    return "ReqNodeNotAvail" if reason.startswith(_NODES_DOWN_TEXT) else reason.split(",")[0].strip()


def gloss(reason: str) -> str:
    """A pending reason in words, its SLURM code in brackets."""
    code = reason_code(reason)
    return f"{GLOSS[code]} ({code})" if code in GLOSS else f"of SLURM's reason {code}"


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def recorded_jobs(folder: Path) -> set[str]:
    """The SLURM job ids the launchers of an experiment have recorded (one per rule in flight)."""
    from pae.launch.slurm import RECORD  # light: the launcher module imports no stage code

    ids = set()
    for path in folder.glob(f"*/{RECORD}"):
        try:
            ids.add(str(json.loads(path.read_text())["job_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being rewritten, or a cancelled job's record
    return ids


def pending_jobs() -> dict[str, tuple[str, str, str]] | None:
    """The user's pending jobs: id -> (reason, name, partition); None when squeue does not answer."""
    out = _run(["squeue", "-h", "-u", getpass.getuser(), "-t", "PENDING", "-o", "%i|%r|%j|%P"])
    if out is None:
        return None
    jobs = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            jobs[parts[0]] = (parts[1], parts[2], parts[3])
    return jobs


def unavailable_nodes(partitions: set[str]) -> list[str]:
    """The partitions' nodes that are down, drained or failing, with SLURM's reason: ['vm drained: maintenance']."""
    out = _run(["sinfo", "-R", "-h", "-p", ",".join(sorted(partitions)), "-o", "%n|%T|%E"]) if partitions else None
    nodes = []
    for line in (out or "").splitlines():
        name, state, reason = (line.split("|", 2) + ["", ""])[:3]
        nodes.append(f"{name} {state}" + (f": {reason}" if reason and reason != "none" else ""))
    return sorted(set(nodes))


def describe(waiting: dict[str, tuple[str, str, str]], nodes: list[str]) -> str:
    """The line the terminal gets: how many of the run's jobs wait, grouped by reason, and the unavailable nodes."""
    groups: dict[str, list[str]] = {}
    for job_id, (reason, name, _) in sorted(waiting.items(), key=lambda kv: int(kv[0].split("_")[0])):
        groups.setdefault(gloss(reason), []).append(f"{name} ({job_id})")
    parts = []
    for words, jobs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(jobs[:SHOW_JOBS]) + (f" and {len(jobs) - SHOW_JOBS} more" if len(jobs) > SHOW_JOBS else "")
        parts.append(f"{len(jobs)} because {words}: {shown}")
    n = len(waiting)
    line = f"pae: {n} SLURM job{'s' if n > 1 else ''} of this run waiting. " + "; ".join(parts) + "."
    if nodes:
        line += f" Unavailable nodes: {'; '.join(nodes)}."
    return line


class QueueWatch(threading.Thread):
    """Prints a line on `stream` whenever the reasons this run's SLURM jobs wait for change (see the module)."""

    def __init__(self, job_folder: str | Path, interval_s: float = INTERVAL_S, stream=None,
                 clock: Callable[[float], None] = time.sleep):
        super().__init__(name="pae-queue-watch", daemon=True)  # ends with snakemake
        self.folder, self.interval_s, self.stream, self.sleep = Path(job_folder), interval_s, stream, clock
        self.seen: set[str] = set()  # pending at the last look
        self.shown: tuple | None = None  # what the last line said (reasons and nodes), or None: nothing waits

    def look(self) -> str | None:
        """One look at the queue: the line to print, if what the run's jobs wait for has changed."""
        ours = recorded_jobs(self.folder)
        pending = pending_jobs() if ours else {}
        if pending is None:  # squeue did not answer: look again later
            return None
        pending = {i: v for i, v in pending.items() if i.split("_")[0] in ours}
        waiting = {i: v for i, v in pending.items() if i in self.seen}
        self.seen = set(pending)
        if not waiting:
            if self.shown is None:
                return None
            self.shown = None
            return "pae: no SLURM job of this run is waiting now"
        nodes = unavailable_nodes({p for _, _, p in waiting.values()})
        state = (frozenset(reason_code(r) for r, _, _ in waiting.values()), tuple(nodes))
        if state == self.shown:
            return None
        self.shown = state
        return describe(waiting, nodes)

    def run(self) -> None:
        while True:
            self.sleep(self.interval_s)
            try:
                line = self.look()
            except Exception as e:  # never let the watch stop the run; say once why it stopped
                print(f"pae: the watch of SLURM's queue stopped: {e!r}", file=self.stream or sys.stderr, flush=True)
                return
            if line:
                print(line, file=self.stream or sys.stderr, flush=True)


def start(job_folder: str | Path) -> QueueWatch | None:
    """Start watching the queue for the jobs recorded under `job_folder` (where squeue exists)."""
    import shutil

    if shutil.which("squeue") is None:
        return None
    watch = QueueWatch(job_folder)
    watch.start()
    return watch

"""The SLURM launcher: the stage runs as a SLURM job submitted with submitit; this process (the snakemake job, on the
login node) waits for it, streams its log into the rule's log, and fails with the job id, its SLURM state and the
stage's own error (the other tasks' log tails, not streamed, go into the rule's log).

The login side imports the standard library, submitit and pae's light modules only (no torch, no stage code: the
stage's arguments are parsed in the job), so each job in flight costs the login node ~20 MB
(bench/slurm_launcher.py).

Waiting: the job's result file is looked for every RESULT_POLL_S (a stat: the rule ends as soon as the job does);
SLURM is asked for the job's state and pending reason with squeue at growing intervals (SQUEUE_FIRST_S, doubling up
to SQUEUE_MAX_S), so that hundreds of launchers do not flood the controller. A new pending reason is logged; one
that can never clear (a request the partition, account or QOS can never satisfy) cancels the job and fails at once,
naming the request and what the partition offers.

Stopping and rerunning: SIGTERM, SIGINT or SIGHUP to this process cancels its job (scancel) and fails the rule. The
job's id is recorded in its folder (RECORD); a rerun of the rule whose recorded job is still queued or running
attaches to it instead of submitting another (and tells the launcher it replaces, found by the pid in the record, to
stop waiting without cancelling), so no two jobs ever run one rule's command. A recorded job running another
command for the same outputs (an older config) is cancelled before the new one is submitted. A job cancelled with
scancel is recorded so; snakemake's retry of the rule in the same run (attempt > 1, pae.launch.count_attempt) then
fails without submitting it again, and a new snakemake run starts it anew.

In the job (StageTask): SLURM's pre-timeout signal (USR2, `slurm_signal_delay_s` before the limit) or a preemption
(SIGTERM while SLURM has not cancelled the job) -> the training writes its checkpoint at the next step boundary and
submitit requeues the job, which resumes from it. scancel (SIGTERM, the job's state CANCELLED) -> the checkpoint is
written and the job stops, logging where the training stopped; the launcher reports CANCELLED with the job id and
that cause as the rule's error.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import submitit

from pae.io import PaeError, log_errors, write_json
from pae.launch import Job

log = logging.getLogger(__name__)

RESULT_POLL_S = 0.25
SQUEUE_FIRST_S, SQUEUE_MAX_S = 1.0, 30.0
TAIL_LINES = 40
MAX_REQUEUES = 50  # timeouts a job may checkpoint-and-requeue through (training resumes each time)
RECORD = "slurm_job.json"  # in the job's folder: the job running the rule's command, for a rerun to attach to
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
DETACH_SIGNAL = signal.SIGUSR1  # sent by a newer launcher that attached to this one's job

# squeue states of a job that may still run (or is ending); others are final.
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "PREEMPTED"}
# Pending reasons that never clear by themselves: the request exceeds what the partition, account or QOS allows.
NEVER_CLEARS = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS",
                "AccountNotAllowed", "QOSNotAllowed", "BadConstraints", "DependencyNeverSatisfied"}
_PER_JOB_LIMIT = re.compile(r"^(QOS|Assoc)Max\w*PerJob\w*$")  # e.g. QOSMaxCpuPerJobLimit, AssocMaxNodePerJobLimit


def never_clears(reason: str) -> bool:
    return reason in NEVER_CLEARS or bool(_PER_JOB_LIMIT.match(reason))


class JobCancelled(RuntimeError):
    """The stage stopped because its SLURM job was cancelled (scancel)."""


def _sacct(job_id: str) -> str:
    """The job's state as accounting holds it now ("CANCELLED by 0", "RUNNING"...); "" before it has a record, or
    when sacct does not answer."""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0] if out else ""


def _cancelled_by_slurm(job_id: str, tries: int = 3) -> bool:
    """Whether SLURM accounts the job as CANCELLED (scancel), as opposed to a preemption or a signal of its own."""
    for _ in range(tries):
        state = _sacct(job_id)
        if state:
            return state.startswith("CANCELLED")
        time.sleep(0.5)
    return False


class StageTask(submitit.helpers.Checkpointable):
    """`python -m pae STAGE ...` inside a SLURM job; requeued (same arguments) when SLURM signals a timeout or a
    preemption, stopped when the job is cancelled."""

    def __init__(self, argv: list[str]):
        self.argv = list(argv)

    def __call__(self) -> int:
        from pae.stages import run_stage  # imported in the SLURM task: the launcher's process loads no stage code
        from pae.train import interrupt

        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus:
            import torch
            torch.set_num_threads(int(cpus))
        submitit_handlers = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
        try:
            code = run_stage(self.argv, raise_interrupt=True)
        except SystemExit as e:  # argparse: the stage's arguments are checked here, in the job
            raise RuntimeError(f"pae {self.argv[0]}: bad arguments (exit status {e.code}): the usage message above "
                               "says which") from None
        except interrupt.Interrupted as e:
            job_id = os.environ.get("SLURM_JOB_ID", "")
            if e.signum != signal.SIGUSR2 and job_id and _cancelled_by_slurm(job_id):
                # logged as pae's error, for the launcher to name as the cause (submitit's traceback follows)
                message = f"SLURM job {job_id} was cancelled: {e}; a rerun resumes from it"
                log.error("%s", message)
                raise JobCancelled(message) from None
            log.warning("%s; submitit requeues the job", e)
            requeue = submitit_handlers.get(signal.SIGUSR2)  # submitit's checkpoint-and-requeue handler
            if callable(requeue):
                requeue(signal.SIGUSR2, None)  # requeues and exits (returns on ranks > 0)
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


# ---- SLURM's view of a job ----


@dataclass(frozen=True)
class Queued:
    """A job as squeue shows it."""
    state: str
    reason: str
    partition: str
    name: str
    nodes: str


UNANSWERED = Queued("UNKNOWN", "", "", "", "")  # the controller did not answer: ask again later


def ended(q: Queued | None) -> bool:
    """Whether a job squeue showed so (or no longer shows) has ended; UNANSWERED is not an end."""
    return q is None or (q.state not in ACTIVE and q is not UNANSWERED)


def squeue(job_id: str) -> Queued | None:
    """The job as SLURM's queue holds it; None once it has left the queue (or never was in it); a Queued of state
    UNANSWERED when the controller does not answer (the caller waits and asks again)."""
    try:
        proc = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T|%r|%P|%j|%N"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("squeue failed (%s); asking again later", e)
        return UNANSWERED
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return None
        log.warning("squeue failed (%s); asking again later", proc.stderr.strip())
        return UNANSWERED
    line = proc.stdout.strip().splitlines()
    if not line:
        return None
    state, reason, partition, name, nodes = (line[0].split("|") + [""] * 5)[:5]
    return Queued(state, reason, partition, name, nodes)


def sacct_state(job_id: str, wait_s: float = 30.0) -> str:
    """The job's final state from accounting ("CANCELLED by 0", "FAILED", "TIMEOUT"...), waiting for it to record
    the job's end (it lags the job by a second or two); the last state seen when it does not within wait_s."""
    deadline, state = time.monotonic() + wait_s, "UNKNOWN"
    while True:
        now = _sacct(job_id)
        if now:
            state = now
            if state.split()[0] not in ACTIVE:
                return state
        if time.monotonic() > deadline:
            return state
        time.sleep(1.0)


def scancel(job_id: str) -> None:
    try:
        proc = subprocess.run(["scancel", str(job_id)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PaeError(f"could not cancel SLURM job {job_id}: {e}; cancel it with: scancel {job_id}") from None
    if proc.returncode != 0:
        raise PaeError(f"could not cancel SLURM job {job_id}: {proc.stderr.strip()}; cancel it with: scancel {job_id}")


def _wait_gone(job_id: str, timeout_s: float = 300.0) -> None:
    """Wait until a cancelled job's processes are gone (squeue: no longer COMPLETING), so no two jobs overlap."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        q = squeue(job_id)
        if ended(q):
            return
        time.sleep(1.0)
    raise PaeError(f"SLURM job {job_id} is still {q.state} {timeout_s:.0f} s after scancel")


def _partition_offers(partition: str) -> str:
    """What a partition offers, for the message of a request it can never satisfy."""
    try:
        info = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%D|%c|%m|%G|%l"], capture_output=True,
                              text=True, timeout=60).stdout.split()
        part = subprocess.run(["scontrol", "show", "partition", partition, "-o"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return f"partition {partition}: (sinfo did not answer)"
    nodes = sum(int(line.split("|")[0]) for line in info if line.split("|")[0].isdigit())
    cpus = sorted({line.split("|")[1] for line in info if "|" in line})
    mems = sorted({line.split("|")[2] for line in info if "|" in line})
    gres = sorted({line.split("|")[3] for line in info if "|" in line} - {"(null)"})
    limits = {k: v for k, v in re.findall(r"\b(MaxNodes|MaxTime|MaxCPUsPerNode|MaxMemPerNode)=(\S+)", part)
              if v != "UNLIMITED"}
    return (f"partition {partition} offers {nodes} node(s) with {'/'.join(cpus) or '?'} CPUs and "
            f"{'/'.join(mems) or '?'} MB each" + (f", GPUs {'/'.join(gres)}" if gres else ", no GPUs")
            + "".join(f", {k} {v}" for k, v in limits.items()))


def _request(job: Job) -> str:
    return (f"{job.nodes} node(s) x {job.tasks_per_node} task(s), {job.threads} CPU(s) per task, {job.mem_mb} MB "
            f"per node, {job.gpus} GPU(s) per node, {job.runtime} min"
            + (f", account {job.slurm_account}" if job.slurm_account else "")
            + (f", sbatch options {job.slurm_extra!r}" if job.slurm_extra else ""))


# ---- The record of the job running a rule's command ----


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):  # none, or unreadable: as if none
        return None


def _write_record(folder: Path, job_id: str, job: Job, argv: list[str], submitted: str) -> None:
    write_json(folder / RECORD, {"job_id": job_id, "name": job.name, "argv": argv, "submitted": submitted,
                                 "launcher": {"host": socket.gethostname(), "pid": os.getpid()}})


def _write_cancelled(folder: Path, job_id: str, state: str) -> None:
    write_json(folder / RECORD, {"cancelled": job_id, "state": state, "at": time.strftime("%Y-%m-%d %H:%M:%S")})


def _check_not_cancelled(job: Job, folder: Path) -> None:
    """A job cancelled with scancel stays cancelled through snakemake's retries of its rule (attempt > 1); a new
    snakemake run (attempt 1) starts it again."""
    record = _read_record(folder)
    if record is None or "cancelled" not in record:
        return
    if job.attempt > 1:
        raise PaeError(f"not resubmitting {job.name} on snakemake's retry (attempt {job.attempt}): the previous "
                       f"attempt's SLURM job {record['cancelled']} was {record.get('state', 'CANCELLED')} at "
                       f"{record.get('at', '?')}; run snakemake again to start it anew")
    (folder / RECORD).unlink(missing_ok=True)


def _remove_record(folder: Path, job_id: str) -> None:
    record = _read_record(folder)
    if record is not None and record.get("job_id") == job_id:
        (folder / RECORD).unlink(missing_ok=True)


def _is_launcher_of(pid: int, name: str) -> bool:
    """Whether process `pid` on this machine is a pae launcher of the job named `name` (its --job JSON names it)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return pid != os.getpid() and b"pae" in cmdline and f'"name": "{name}"'.encode() in cmdline


def _attach(job: Job, argv: list[str], folder: Path) -> str | None:
    """The id of the recorded job of this rule if it still runs the same command (this launcher attaches to it);
    a recorded job running another command is cancelled. None when there is no job to attach to."""
    record = _read_record(folder)
    if record is None:
        return None
    job_id = str(record.get("job_id", ""))
    q = squeue(job_id) if job_id else None
    if ended(q) or (q is not UNANSWERED and q.name != job.name):
        _remove_record(folder, job_id)  # ended (its result, if any, is an earlier attempt's) or not ours
        return None
    # An unanswered squeue attaches too: submitting now could run a second job beside a live one.
    if record.get("argv") != argv:
        log.warning("cancelling SLURM job %s (%s): it runs another command for the same outputs (an earlier config)",
                    job_id, q.state)
        scancel(job_id)
        _wait_gone(job_id)
        _remove_record(folder, job_id)
        return None
    log.info("attaching to SLURM job %s (%s), submitted at %s by an earlier launcher: not submitting another",
             job_id, q.state, record.get("submitted", "?"))
    old = record.get("launcher") or {}
    if old.get("host") == socket.gethostname() and _is_launcher_of(int(old.get("pid", 0)), job.name):
        os.kill(int(old["pid"]), DETACH_SIGNAL)  # that launcher stops waiting; the job goes on
    _write_record(folder, job_id, job, argv, record.get("submitted", "?"))
    return job_id


# ---- The launcher ----


class _Detached(Exception):
    """A newer launcher (a rerun of the rule) attached to this launcher's job."""


class _Signals:
    """Records stop and detach signals for the wait loop (which acts on them within RESULT_POLL_S)."""

    def __init__(self):
        self.received: list[int] = []
        from pae.train.interrupt import not_ignored  # signal only: no stage code in the launcher

        for s in not_ignored((*STOP_SIGNALS, DETACH_SIGNAL)):  # nohup: a closed terminal cancels nothing
            signal.signal(s, self._record)

    def _record(self, signum, frame) -> None:
        self.received.append(signum)

    def check(self, job_id: str, folder: Path) -> None:
        if not self.received:
            return
        signum = self.received[0]
        if signum == DETACH_SIGNAL:
            raise _Detached(job_id)
        name = signal.Signals(signum).name
        log.warning("stopped by %s: cancelling SLURM job %s", name, job_id)
        scancel(job_id)
        _remove_record(folder, job_id)
        raise PaeError(f"stopped by {name}: SLURM job {job_id} cancelled")


class _Follower:
    """Copies what a file gains to a stream, from where it last stopped, whole lines only: the job's stdout and
    stderr go to one stream, and a line still being written to one of them must not run into the other's next line.
    The last pump (final=True) copies a last unfinished line too, ended with a newline."""

    def __init__(self, path: Path, stream):
        self.path, self.stream, self.offset = path, stream, 0

    def pump(self, final: bool = False) -> None:
        if self.stream is None:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        if not final:
            data = data[:data.rfind(b"\n") + 1]
        elif data and not data.endswith(b"\n"):
            self.offset -= 1  # the newline added below is not the file's
            data += b"\n"
        if data:
            self.offset += len(data)
            try:
                self.stream.write(data.decode(errors="replace"))
                self.stream.flush()
            except BrokenPipeError:  # the reader is gone (stopped with us): copying ends, cancelling must not
                self.stream = None


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return f"(no log file {path})"


def _has_results(sjob: submitit.SlurmJob, job: Job) -> bool:
    """Whether every task of the job has written its result file (the job's end, seen without asking SLURM)."""
    return all(sjob.task(t).paths.result_pickle.exists() for t in range(job.tasks))


def _report(q: Queued, job_id: str, job: Job, folder: Path) -> None:
    """Log a job's new state or pending reason; cancel it and fail when it is pending for a reason that never
    clears."""
    if q is UNANSWERED:
        return
    if q.state != "PENDING":
        log.info("SLURM job %s %s%s", job_id, q.state, f" on {q.nodes}" if q.nodes else "")
        return
    if q.reason != "None":  # None: not yet looked at by the scheduler
        log.info("SLURM job %s pending (reason: %s)", job_id, q.reason)
    if never_clears(q.reason):
        scancel(job_id)
        _remove_record(folder, job_id)
        raise PaeError(f"SLURM job {job_id} ({job.name}) can never start: pending reason {q.reason}. It asks for "
                       f"{_request(job)}; {_partition_offers(q.partition)}. The job was cancelled; change the rule's "
                       "resources (the profile's set-resources) or the partition.")


def _wait(sjob: submitit.SlurmJob, job: Job, signals: _Signals, folder: Path) -> None:
    """Stream the job's log until it ends: its result file appears, or it leaves the queue (failed, cancelled,
    its node died). Fails at once on a pending reason that never clears."""
    followers = [_Follower(sjob.paths.stdout, sys.stdout), _Follower(sjob.paths.stderr, sys.stderr)]
    interval, next_ask, seen = SQUEUE_FIRST_S, time.monotonic() + SQUEUE_FIRST_S, None
    while True:
        signals.check(sjob.job_id, folder)  # first: a stop signal may also have stopped our log's reader
        for f in followers:
            f.pump()
        if _has_results(sjob, job):
            break
        if time.monotonic() >= next_ask:
            q = squeue(sjob.job_id)
            if ended(q):
                break
            now = (q.state, q.reason if q.state == "PENDING" else q.nodes)
            if now != seen:
                seen, interval = now, SQUEUE_FIRST_S  # something changed: look again soon
                _report(q, sjob.job_id, job, folder)
            else:
                interval = min(2 * interval, SQUEUE_MAX_S)
            next_ask = time.monotonic() + interval
        time.sleep(RESULT_POLL_S)
    for f in followers:
        f.pump(final=True)


def _failure(sjob: submitit.SlurmJob, job: Job, folder: Path, state: str | None = None) -> PaeError:
    """The rule's error for a job that ended without success; `state`: its final state, when already read."""
    state = state or sacct_state(sjob.job_id)
    if state.startswith("CANCELLED"):  # for snakemake's retry of this rule not to undo the scancel
        _write_cancelled(folder, sjob.job_id, state)
    logs = [sjob.task(t).paths.stderr for t in range(job.tasks)]
    # The first task's log is in the rule's log already (streamed); the others' tails are added to it here.
    for p in logs[1:]:
        log.info("--- %s (last %d lines) ---\n%s", p, TAIL_LINES, _tail(p))
    # The cause: the stage's own last error (pae's ERROR records; else a traceback's last line), from any task.
    causes = [c for p in logs for c in log_errors(p)]
    cause = f": {causes[-1]}" if causes else ""
    return PaeError(f"SLURM job {sjob.job_id} ({job.name}) ended in state {state}{cause} (its log: {logs[0]})")


def run(job: Job, argv: list[str]) -> int:
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    signals = _Signals()
    _check_not_cancelled(job, folder)
    job_id = _attach(job, argv, folder)
    if job_id is None:
        try:
            sjob = executor_for(job).submit(StageTask(argv))
        except Exception as e:  # sbatch refused: bad partition, account, limits...
            raise PaeError(f"sbatch refused the job for stage {argv[0]!r}: {e}") from None
        job_id = sjob.job_id
        _write_record(folder, job_id, job, argv, time.strftime("%Y-%m-%d %H:%M:%S"))
        log.info("attempt %d: submitted SLURM job %s (%s: %s); its files: %s", job.attempt, job_id, job.name,
                 _request(job), folder)
    else:
        sjob = submitit.SlurmJob(folder=folder, job_id=job_id, tasks=tuple(range(job.tasks)))
        log.info("attempt %d: waiting for SLURM job %s (%s)", job.attempt, job_id, job.name)
    try:
        _wait(sjob, job, signals, folder)
    except _Detached:  # a warning, not an error: this launcher's rule is gone, the job and the new one go on
        log.warning("a rerun of the rule attached to SLURM job %s; this launcher stops waiting, the job goes on",
                    job_id)
        return 1
    if not _has_results(sjob, job):
        state = sacct_state(job_id)
        if state.split()[0] != "COMPLETED":
            _remove_record(folder, job_id)
            raise _failure(sjob, job, folder, state)
        deadline = time.monotonic() + 60  # completed: a shared filesystem can show its result files late
        while not _has_results(sjob, job) and time.monotonic() < deadline:
            time.sleep(1.0)
    _remove_record(folder, job_id)
    try:
        results = sjob.results()
    except Exception:  # the stage failed or was cancelled (its task raised), or the result never appeared
        raise _failure(sjob, job, folder) from None
    log.info("SLURM job %s (%s) finished successfully", job_id, job.name)
    return max(int(r or 0) for r in results)

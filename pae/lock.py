"""One run per experiment: the workflow's own lock on an experiment's results folder.

snakemake's locks (.snakemake/locks) do not keep two runs of an experiment apart: snakemake 9 deletes the whole folder
when any real run started in the same directory ends, whatever it ran (another experiment, a target that failed at
once), and on --unlock; and a run started from another directory (or another host, on a shared filesystem) never
sees them. Two live runs of one experiment then
train the same model and write the same files. So the workflow (its `onstart` handler, workflow/rules/common.smk)
takes an flock on RESULTS_DIR/EXPERIMENT/.pae-run.lock before its first job and holds it until snakemake exits: the
kernel releases it then, however snakemake ends (an error, Ctrl-C, kill -9), so a lock file left behind never blocks
a later run. The file itself says who holds the lock (host, pid, start time, directory, command), for the error that
a second run gets.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pae.io import PaeError

LOCK_NAME = ".pae-run.lock"

# The open lock files of this process, kept referenced: closing one (or its garbage collection) drops its lock.
_HELD: dict[Path, int] = {}


def lock_path(results_dir: str | os.PathLike, experiment: str) -> Path:
    return Path(results_dir) / experiment / LOCK_NAME


def command_line(argv: list[str] | None = None) -> str:
    """The command as its user typed it: `snakemake ARGS` for `python -m snakemake` (whose argv[0] is snakemake's
    __main__.py) and for the snakemake script."""
    argv = list(sys.argv if argv is None else argv)
    first = Path(argv[0]) if argv else Path()
    if first.name == "snakemake" or (first.name == "__main__.py" and first.parent.name == "snakemake"):
        argv[0] = "snakemake"
    return shlex.join(argv)


def _holder_text(path: Path) -> dict[str, Any] | None:
    """The holder's record in the lock file, or None while it is empty or half-written (the holder writes it just
    after taking the lock) or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe_holder(record: dict[str, Any] | None, now: float | None = None) -> str:
    """The holder of a lock in words: 'pid 123 on host node1, started 2026-12-06 05:14:51 (3 min ago) in /work/x,
    command: snakemake --cores 2'."""
    if record is None:
        return "a process that has not (yet) written its details into the lock file"
    parts = [f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"]
    started = record.get("started")
    if isinstance(started, (int, float)):
        when = datetime.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
        minutes = int(((time.time() if now is None else now) - started) // 60)
        parts.append(f"started {when} ({f'{minutes} min ago' if minutes > 0 else 'less than a minute ago'})")
    if record.get("cwd"):
        parts.append(f"in {record['cwd']}")
    text = ", ".join(parts)
    if record.get("command"):
        text += f", command: {record['command']}"
    return text


def hold(results_dir: str | os.PathLike, experiment: str, command: str | None = None) -> Path:
    """Take the run lock of `experiment` for the rest of this process's life and write who holds it into the lock
    file; returns the lock file's path. Raises PaeError naming the run that holds it (host, pid, start time,
    directory, command) when another process does, and PaeError naming the folder when the lock file cannot be
    written. A filesystem without locks (some NFS, Lustre or GPFS mounts) gives a warning on stderr, not an error:
    the run goes on unprotected, as it would without pae's lock."""
    path = lock_path(results_dir, experiment)
    if path in _HELD:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC (Python's default): jobs started by snakemake do not inherit the lock, so a job left running by
        # a killed snakemake does not keep the experiment locked.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise PaeError(f"cannot write the experiment's lock file {path} ({e.strerror}): the folder "
                       f"{path.parent} must be writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise PaeError(running_elsewhere(path, experiment)) from None
        print(f"warning: cannot lock {path} ({e.strerror}); this filesystem does not support file locks, so a second "
              f"run of experiment {experiment!r} would not be stopped: do not start one while this one runs",
              file=sys.stderr)
        return path
    record = {"experiment": experiment, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
              "cwd": os.getcwd(), "command": command_line() if command is None else command}
    # Rewritten in place, never deleted: a lock file removed and created anew would let two processes lock two
    # different files of the same name.
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _HELD[path] = fd
    return path


def running_elsewhere(path: Path, experiment: str, wait_s: float = 2.0) -> str:
    """The error for a lock held by another process, naming it from the lock file (given `wait_s` for a holder
    that has just taken the lock to write its details)."""
    deadline = time.monotonic() + wait_s
    record = _holder_text(path)
    while record is None and time.monotonic() < deadline:
        time.sleep(0.1)
        record = _holder_text(path)
    stop = ""
    if record and record.get("pid") is not None:
        stop = f" or stop it (kill {record['pid']}" + (f" on {record['host']}" if record.get("host") else "") + ")"
    return (f"experiment {experiment!r} is already being run by another snakemake: {describe_holder(record)}. Two "
            f"runs of one experiment would write the same files; wait for that run to end{stop}, then start this "
            f"one again (lock: {path})")


def release(path: str | os.PathLike) -> None:
    """Drop a lock this process holds (the workflow never does: its lock ends with snakemake; for tests and for
    Python callers)."""
    fd = _HELD.pop(Path(path), None)
    if fd is not None:
        os.close(fd)

"""The rolling training checkpoint: model, optimizer, epoch, per-rank RNG states, loss history and the training
spec's identity, in one file written atomically by rank 0 at the end of every epoch.

It lives outside the rule's declared outputs (snakemake deletes those before rerunning a rule), so a rerun after a
kill, a snakemake retry or a SLURM requeue resumes from it. It is deleted once the final model is written. A lock
file beside it (`exclusive`) makes a second training of the same checkpoint fail at once instead of writing it too.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import socket
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from pae.config import merge
from pae.io import PaeError, torch_load, torch_save

log = logging.getLogger(__name__)


def rng_state() -> dict:
    """This process's RNG states as tensors and plain data, which torch.load(weights_only=True) accepts (numpy's
    state holds an ndarray and Python's is a tuple of ints: both are stored as tensors)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss": python_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | os.PathLike, **fields) -> None:
    torch_save(path, {"kind": "checkpoint", **fields})


def load_compatible(path: str | os.PathLike, identity: dict, epochs: int, defaults: dict | None = None
                    ) -> dict | None:
    """The checkpoint at `path` if it belongs to the same training spec and can be continued, else None. A setting
    the checkpoint's spec lacks (one added to pae after it was written) counts as its value in `defaults`: the
    behaviour the checkpoint was trained with."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch_load(path, "checkpoint")
    except PaeError as e:
        log.warning("ignoring unreadable checkpoint: %s", e)
        return None
    stored = ckpt.get("identity")
    if stored is not None and defaults is not None:
        stored = merge({k: v for k, v in defaults.items() if k in identity}, stored)
    if stored != identity:
        log.warning("%s: checkpoint belongs to another training spec; starting from scratch", path)
        return None
    if ckpt["epoch"] > epochs:
        log.warning("%s: checkpoint is at epoch %d, beyond the %d asked for; starting from scratch", path,
                    ckpt["epoch"], epochs)
        return None
    return ckpt


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold the checkpoint's lock (`path`.lock, an flock) while training: another training of the same checkpoint (a
    second SLURM job, a run started by hand) fails at once naming the holder. The lock goes when the process does,
    however it ends; the lock file is removed with the checkpoint."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "holder unknown"
        f.close()
        raise PaeError(f"{path} is being written by another training ({holder}); two trainings must never write one "
                       "checkpoint: wait for that one to end, or stop it") from None
    except OSError as e:  # a filesystem mounted without locks
        log.warning("%s: cannot lock (%s); going on without the guard against a second training", lock, e)
    else:
        job = os.environ.get("SLURM_JOB_ID")
        f.seek(0)
        f.truncate()
        f.write(f"host {socket.gethostname()}, pid {os.getpid()}" + (f", SLURM job {job}" if job else "") + "\n")
        f.flush()
    try:
        yield
    finally:
        if not path.exists():  # the training ended and removed its checkpoint: the lock file goes too
            lock.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        f.close()


def remove(path: str | os.PathLike) -> None:
    """Delete the checkpoint once the final model is written (and its folder, when empty)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # not empty, or already gone
        pass

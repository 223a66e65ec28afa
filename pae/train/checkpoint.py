"""The rolling training checkpoint: model, optimizer, epoch, per-rank RNG states, loss history and the training
spec's identity, in one file written atomically by rank 0 at the end of every epoch.

It lives outside the rule's declared outputs (snakemake deletes those before rerunning a rule), so a rerun after a
kill, a snakemake retry or a SLURM requeue resumes from it. It is deleted once the final model is written.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

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


def load_compatible(path: str | os.PathLike, identity: dict, epochs: int) -> dict | None:
    """The checkpoint at `path` if it belongs to the same training spec and can be continued, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch_load(path, "checkpoint")
    except PaeError as e:
        log.warning("ignoring unreadable checkpoint: %s", e)
        return None
    if ckpt.get("identity") != identity:
        log.warning("%s: checkpoint belongs to another training spec; starting from scratch", path)
        return None
    if ckpt["epoch"] > epochs:
        log.warning("%s: checkpoint is at epoch %d, beyond the %d asked for; starting from scratch", path,
                    ckpt["epoch"], epochs)
        return None
    return ckpt


def remove(path: str | os.PathLike) -> None:
    """Delete the checkpoint once the final model is written (and its folder, when empty)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # not empty, or already gone
        pass

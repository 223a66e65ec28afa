"""The device a stage runs on: `--device auto|cpu|cuda` (the config's `device`) -> a torch.device."""
from __future__ import annotations

import torch

from pae.io import PaeError


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """auto: CUDA when torch sees a GPU, else the CPU; cuda: this process's GPU (local_rank, for torchrun) or an
    error when there is none."""
    if preference not in ("auto", "cpu", "cuda"):
        raise PaeError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise PaeError("device=cuda was asked for but torch sees no CUDA device")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")

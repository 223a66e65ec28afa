"""The train stage: an auto-encoder from its train spec (pae.train.loop), resuming from its rolling checkpoint; the
same command runs under torchrun (pae.train.distributed)."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from pae.config import default
from pae.data.store import open_dataset
from pae.stages.args import json_object
from pae.train import checkpoint as ckpt
from pae.train import distributed, interrupt
from pae.train.loop import TrainSpec, train


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json_object, required=True, help="train spec (see pae/train/loop.py TrainSpec)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--model-out", type=Path, required=True)
    p.add_argument("--history-out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True, help="rolling checkpoint (outside declared outputs)")
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    train_stage(a.spec, a.data, a.model_out, a.history_out, a.checkpoint, a.device)


def train_stage(spec: dict, data_path: Path, model_out: Path, history_out: Path, checkpoint: Path,
                device: str) -> None:
    previous = interrupt.install()  # TERM, INT, HUP, SLURM's USR signals: checkpoint at the next step, then stop
    info = distributed.setup(device)
    try:
        # Rank 0 writes the checkpoint, and holds its lock: no two trainings ever write one checkpoint.
        with ckpt.exclusive(checkpoint) if info.is_main else contextlib.nullcontext():
            data = open_dataset(data_path)
            train(TrainSpec.from_dict(spec), data, model_out, history_out, checkpoint, info)
    finally:
        distributed.cleanup()
        interrupt.restore(previous)

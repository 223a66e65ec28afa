"""Checks the workflow makes before its first job (its onstart handler, workflow/rules/common.smk), so that a run
that cannot write its outputs stops at once with one line saying why, not after a job with snakemake's traceback.

- check_writable: every folder the jobs write into (the experiment's results, the prepared data, the logs and the
  benchmarks) exists or can be created, and a file can be created in it.
- space_warning: the free space of the results folder's filesystem against an estimate of what the jobs about to
  run will write there (space_needed). Only a warning: the estimate is rough, and a full disk is reported clearly
  when it happens (pae.io.storage_error), but only after hours of training.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pae.config
from pae.io import PaeError

# Every run writes more than its weights: latents, flow, samples, FID features, posterior and uncertainty panels,
# metrics. Their size depends on the dataset's size, the latent size and the eval settings; a flat allowance per run
# stands for them (Fashion-MNIST's 70,000 latents of size 32 with a VAE's means and log-variances: 27 MB).
OTHER_OUTPUTS_BYTES = 50_000_000
# Weights are float32. The training writes model.pt (the weights) and keeps checkpoint/train.pt (the weights and
# Adam's two moments: three times the weights), so a trained run holds four times its weights.
BYTES_PER_PARAMETER = 4
TRAIN_COPIES = 4
# Training items per dataset when the config does not limit them (limit_train), for the VAD's per-item latents (the
# official train parts; image_folder is unknown before it is read and counted as none).
TRAIN_ITEMS = {"fashion_mnist": 60_000, "mnist": 60_000, "celeba": 162_770}


@dataclass(frozen=True)
class Folder:
    path: str
    what: str  # e.g. "results folder"
    setting: str  # where its path comes from, for the error


def output_folders(config: dict[str, Any]) -> list[Folder]:
    """The folders the workflow's jobs write into, for a resolved config (pae.config.PATHS, log_path,
    benchmark_path)."""
    exp = config["experiment"]
    return [Folder(f"{config['results_dir']}/{exp}", "results folder", f"results_dir: {config['results_dir']}"),
            Folder(f"{config['resources_dir']}/data", "prepared-data folder",
                   f"resources_dir: {config['resources_dir']}"),
            Folder("logs", "log folder", "the rules' logs, under the working directory"),
            Folder("benchmarks", "benchmark folder", "the rules' benchmarks, under the working directory")]


def _file_in_the_way(path: Path) -> str | None:
    """Why folder `path` cannot exist because a file stands at its place or at one of its parents', or None."""
    if path.exists() and not path.is_dir():
        return "it exists and is not a folder"
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    return None if blocker is None else f"cannot create it: {blocker} is a file"


def unwritable(path: str | os.PathLike, create: bool = True) -> str | None:
    """Why no file can be written in folder `path`, or None when one can. With `create`, the folder is created if
    missing and a file is written in it and removed (permission bits say nothing about a read-only mount, ACLs,
    NFS's root squash or a root user); without, only a file standing where the folder or one of its parents should
    be is found (nothing is written: for dry runs, whose DAG snakemake cannot even build then)."""
    path = Path(path)
    blocked = _file_in_the_way(path)
    if blocked or not create:
        return blocked
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create it: {e.strerror}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pae-write-test-", dir=path)
    except OSError as e:
        return f"cannot create a file in it: {e.strerror}"
    os.close(fd)
    os.unlink(tmp)
    return None


def check_writable(folders: Iterable[Folder], create: bool = True) -> None:
    """Raise one PaeError naming every folder in which no file can be written (`unwritable`), with why and where its
    path comes from."""
    problems = []
    for folder in folders:
        why = unwritable(folder.path, create)
        if why is not None:
            problems.append(f"the {folder.what} {folder.path} ({folder.setting}) is not writable: {why}")
    if problems:
        raise PaeError("; ".join(problems) + ". Nothing was run: every job writes there (point the config's "
                       "results_dir or resources_dir at a writable folder, or run from a writable directory)")


def _weights(run: dict[str, Any], config: dict[str, Any]) -> int:
    """Parameters of the run's model, built on torch's meta device (no memory, no computation)."""
    import torch  # imported here: only a run with a training to do pays for torch in snakemake's process

    from pae.models import build_model
    from pae.train.loop import TrainSpec

    dataset = run["dataset"]
    data = pae.config.dataset_spec(config, dataset)
    size = data.get("image_size")
    shape = (3, size, size) if size else (1, 28, 28)  # celeba, image_folder: RGB at image_size; else 28x28 grey
    n_items = data.get("limit_train") or max(0, TRAIN_ITEMS.get(dataset, 0) - data["val_size"])
    spec = TrainSpec.from_dict(pae.config.train_spec(run)).model_spec(shape, n_items)
    with torch.device("meta"):
        model = build_model(spec)
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Estimate:
    bytes: int
    trainings: int
    runs: int
    largest_model: int  # parameters

    def explain(self) -> str:
        text = f"{self.runs} run(s) x {size_text(OTHER_OUTPUTS_BYTES)} for latents, flow, samples, panels and metrics"
        if self.trainings:
            text = (f"{self.trainings} training(s) x {TRAIN_COPIES} x the model's float32 weights (model.pt, and "
                    f"checkpoint/train.pt with Adam's two moments; largest model {self.largest_model:,} "
                    f"parameters), plus " + text)
        return text


def space_needed(config: dict[str, Any], runs: dict[str, dict[str, Any]], pending: dict[str, set[str]]) -> Estimate:
    """An estimate of what the pending jobs write into the results folder: `pending` maps a run id (of `runs`,
    pae.config.runs) to the rules of its jobs about to run. Each run with a pending training gets TRAIN_COPIES times
    its weights, each run with any pending job OTHER_OUTPUTS_BYTES."""
    total, trainings, largest, weights = 0, 0, 0, {}
    for run_id, rules in pending.items():
        total += OTHER_OUTPUTS_BYTES
        if "train" in rules:
            run = runs[run_id]
            # what decides the model's size: the dataset (image shape, items) and the training spec but its seed
            key = json.dumps([run["dataset"], {**pae.config.train_spec(run), "seed": None}], sort_keys=True)
            if key not in weights:
                try:
                    weights[key] = _weights(run, config)
                except PaeError:  # a model that cannot be built: its train job says why; counted as none here
                    weights[key] = 0
            trainings += 1
            largest = max(largest, weights[key])
            total += TRAIN_COPIES * BYTES_PER_PARAMETER * weights[key]
    return Estimate(total, trainings, len(pending), largest)


def free_bytes(path: str | os.PathLike) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def size_text(n: int) -> str:
    """Bytes in words: 20 MB, 3.4 GB, 20.1 TB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e6:.0f} MB"


def space_warning(folder: str | os.PathLike, estimate: Estimate, free: int | None = None) -> str | None:
    """The warning when `folder`'s filesystem has less free space than `estimate`, else None."""
    free = free_bytes(folder) if free is None else free
    if free >= estimate.bytes:
        return None
    return (f"only {size_text(free)} free on the filesystem of {folder}, and the jobs about to run may write about "
            f"{size_text(estimate.bytes)} there (an estimate: {estimate.explain()}). Jobs will fail when it is full "
            "(their checkpoints let them resume); free some space or point results_dir at a larger filesystem")

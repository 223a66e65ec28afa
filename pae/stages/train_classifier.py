"""The train_classifier stage (once per dataset): the domain classifier (pae.eval.classifier) whose penultimate
features give the domain Fréchet distance of the fid stage."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from pae import threads
from pae.config import default
from pae.data.store import open_dataset
from pae.device import resolve_device
from pae.eval.classifier import ROTATION_CLASSES, rotation_task, save_classifier
from pae.eval.classifier import train_classifier as fit_classifier
from pae.io import PaeError
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json_object, required=True, help="the eval.classifier config section")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    train_classifier(a.spec, a.data, a.out, a.device)


def train_classifier(spec: dict, data_path: Path, out: Path, device: str) -> None:
    """The dataset's domain classifier (spec = config eval.classifier) -> `out`, its accuracies in the file's meta.
    A dataset with fewer than two classes is given the rotation task instead (rotation_task), said in the meta."""
    dev = resolve_device(device)
    data = open_dataset(data_path)
    splits = {s: data.split(s) for s in ("train", "val", "test")}
    classes, task = data.attrs["classes"], "classes"
    h, w = data.image_shape[1:]
    if len(classes) < 2 or len(torch.unique(splits["train"][1])) < 2:
        if h != w:
            raise PaeError(f"{data_path}: one class and non-square {h}x{w} images: neither the classes nor the "
                           "rotation task can train a domain classifier")
        splits = {s: rotation_task(x, spec["seed"] + i) for i, (s, (x, _)) in enumerate(splits.items())}
        classes, task = ROTATION_CLASSES, "rotation by k x 90 degrees (the dataset has one class)"
        log.info("%s has one class: the domain classifier learns to tell 4 rotations apart", data_path)
    try:
        with threads.fixed():  # many epochs of float32 sums: one thread, so that the launcher does not matter
            model, meta = fit_classifier(splits["train"], splits["val"], splits["test"], len(classes), spec, dev)
    except PaeError as e:
        raise PaeError(f"{data_path}: {e}") from None
    meta.update(dataset=data.attrs["dataset"], dataset_sha256=data.attrs["sha256"], spec=spec, task=task)
    save_classifier(out, model, meta)
    log.info("domain classifier of %s (%s): accuracy train %.4f, val %.4f, test %.4f (epoch %d of %d, %d features, "
             "%.0f s) -> %s", data.attrs["dataset"], task, meta["train_accuracy"], meta["val_accuracy"],
             meta["test_accuracy"], meta["best_epoch"], meta["epochs"], meta["features"], meta["seconds"], out)

"""The prepare stage: a raw dataset -> its HDF5 store (uint8 images, labels, train/val/test splits, source and
checksum attributes)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pae.config import default_data_entry
from pae.data.sources import load_raw
from pae.data.store import open_dataset, write_dataset
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--spec", type=json_object, default={},
                   help="the dataset's config entry (source, val_size, split_seed, limit_train, limit_test, "
                        "image_size); keys left out take the schema's defaults")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--download-root", type=Path, default=Path("resources/raw"))


def run(a: argparse.Namespace) -> None:
    prepare(a.dataset, a.spec, a.out, a.download_root)


def prepare(dataset: str, spec: dict, out: Path, download_root: Path) -> None:
    """Raw data -> HDF5 store (uint8 images, labels, train/val/test splits, source and checksum attributes)."""
    spec = {**default_data_entry(), **spec}
    raw = load_raw(dataset, spec["source"], download_root, image_size=spec["image_size"])
    attrs = write_dataset(out, dataset, raw, val_size=spec["val_size"], split_seed=spec["split_seed"],
                          limit_train=spec["limit_train"], limit_test=spec["limit_test"])
    data = open_dataset(out)  # read back: the file opens and its checksum verifies before the stage succeeds
    log.info("wrote %s: %s from %s (%s); train %d, val %d, test %d images of shape %s; sha256 %s", out, dataset,
             attrs["source"], attrs["source_detail"], *(len(data.splits[s]) for s in ("train", "val", "test")),
             data.image_shape, attrs["sha256"])

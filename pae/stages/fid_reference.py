"""The fid_reference stage (once per dataset and eval.fid settings): the real test images' features in the domain
classifier's and Inception's features, and the train-vs-test floor compared with them -> the reference file every
run's fid stage reads (layout and what it depends on: pae/eval/sample_quality.py).

With --partial (the workflow passes the file's name with .partial) each finished piece is kept there (the real
images' features per extractor, the floor's features and distances), so a rerun after a stop computes only what is
left; the folder is removed once the reference is written.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from pae.config import default, fid_reference_spec
from pae.data.store import open_dataset
from pae.device import resolve_device
from pae.eval import inception
from pae.eval.classifier import load_classifier
from pae.eval.sample_quality import (Pieces, check_classifier, fingerprint, load_inception, make_reference,
                                     write_reference)
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json_object, required=True,
                   help="the eval.fid config section (its temperatures, if there, are not used)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True, help="the dataset's domain classifier")
    p.add_argument("--out", type=Path, required=True, help="the reference file (HDF5)")
    p.add_argument("--partial", type=Path, default=None,
                   help="folder keeping the finished pieces, so that a rerun after a stop resumes")
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    fid_reference(a.spec, a.data, a.classifier, a.out, a.device, partial=a.partial)


def fid_reference(spec: dict, data_path: Path, classifier_path: Path, out: Path, device: str,
                  partial: Path | None = None) -> None:
    """The reference of the dataset `data_path` for eval.fid settings `spec` -> `out`."""
    spec = fid_reference_spec(spec)
    dev = resolve_device(device)
    data = open_dataset(data_path)
    with torch.random.fork_rng(devices=[]):  # building the networks draws initial weights: leave the global RNG
        classifier, cmeta = load_classifier(classifier_path, dev)
        network = load_inception(spec, dev)
    check_classifier(data, classifier, cmeta, classifier_path)
    pieces = Pieces(partial, "" if partial is None else fingerprint(spec, [data_path, classifier_path],
                                                                      network.weights))
    reference = make_reference(spec, data, classifier, inception.sha256(classifier_path), network, dev, pieces)
    write_reference(out, reference)
    pieces.remove()
    log.info("wrote %s: %d real test images of %s (%s; %d through Inception), the train-vs-test floor", out,
             reference.n_real, data_path, ", ".join(reference.features),
             reference.n_fid if network.network is not None else 0)

"""The ood stage: out-of-distribution detection of one run -> metrics/ood.json and metrics/ood_scores.csv.

The run's test images are in-distribution (the negatives), each OoD set in turn the positives; sets, scores and
metrics: pae/eval/ood.py (higher score = more OoD; OoD = positive class). Set names: each dataset's name (its test
split), "hflip" / "vflip" (the in-distribution test images flipped) and "folder:<name>".

Layout of ood.json:
    {"in_distribution": {"dataset": file, "source", "n", "n_available", "nonfinite": {score: count}},
     "sets": {set: {"source", "n", "n_available", "nonfinite": {score: count}}},
     "scores": {score: one-line description},
     "metrics": {set: {score: {"auroc" | "aupr" | "fpr95": {"value", "low", "high", "n_boot", "level"}}}},
     "model", "flow", "model_kind", "latent_dim", "max_images", "bootstrap", "convention",
     "spec": the eval.ood section it ran with (pae.api scores new images with its batch_size and jacobian)}
`nonfinite` counts the images whose score was infinite or NaN before it became +-NONFINITE_SCORE; low / high are the
bootstrap interval (null with bootstrap 0).

ood_scores.csv has one row per image: set ("in" for the in-distribution test images, else the set's name), index (the
image's position in its source: the run's test split for "in", "hflip" and "vflip", the OoD dataset's file (its
/images) for another dataset, the sorted list of a folder's image files for a folder), then one column per
score, as used for the metrics (for ROC curves).
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import torch

from pae.eval.ood import (NONFINITE_SCORE, SCORES, SIGMA_IMAGES, ImageSet, build_sets, finite_scores, image_scores,
                          marginal_sigma, metrics_table, score_names)
from pae.io import atomic_path, write_json
from pae.stages.args import add_run_inputs, named_path
from pae.stages.common import load_run

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.ood config section", latents=False)
    p.add_argument("--ood-data", action="append", default=[], type=named_path, metavar="NAME=FILE",
                   help="a prepared dataset whose images are an OoD set: its test split, topped up to max_images with "
                        "its validation and training images (repeatable)")
    p.add_argument("--scores-out", type=Path, required=True)


def run(a: argparse.Namespace) -> None:
    ood(a.spec, a.model, a.flow, a.data, dict(a.ood_data), a.out, a.scores_out, a.device)


def _write_scores(path: Path, sets: dict[str, ImageSet], scores: dict[str, dict[str, torch.Tensor]],
                  names: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "index", *names])
        for name, s in sets.items():
            columns = [scores[name][k].tolist() for k in names]
            for i, row in zip(s.index.tolist(), zip(*columns)):
                w.writerow([name, i, *(f"{v:.9g}" for v in row)])


def _auroc_table(metrics: dict[str, dict[str, dict]], names: list[str]) -> str:
    """AUROC [bootstrap interval] per set (rows) and score (columns), as text for the log."""
    def cell(m: dict) -> str:
        return f"{m['value']:.3f}" + ("" if m["low"] is None else f" [{m['low']:.3f}, {m['high']:.3f}]")

    width = max([len("set"), *map(len, metrics)])
    lines = ["  ".join([f"{'set':<{width}}", *(f"{k:<21}" for k in names)])]
    lines += ["  ".join([f"{name:<{width}}", *(f"{cell(m[k]['auroc']):<21}" for k in names)])
              for name, m in metrics.items()]
    return "\n".join(line.rstrip() for line in lines)


def ood(spec: dict, model_path: Path, flow_path: Path, data_path: Path, ood_data: dict[str, Path], out: Path,
        scores_out: Path, device: str) -> None:
    """Score the run's test images and every OoD set (the datasets of `ood_data`, spec's transforms and folders;
    spec["datasets"] is already resolved into `ood_data`) and write ood.json and ood_scores.csv."""
    r = load_run(model_path, flow_path, data_path, device)
    model, mspec, flow, data, dev = r.model, r.spec, r.flow, r.data, r.device
    in_set, ood_sets = build_sets(data.split("test")[0], data_path, ood_data, spec["transforms"], spec["folders"],
                                  spec["max_images"])
    sets = {"in": in_set, **ood_sets}
    names = score_names(model, spec["jacobian"])
    sigma = None
    if spec["jacobian"]:  # pae_marginal's pixel sigma: validation residuals at the model's latents
        val = data.split("val")[0]
        sigma = marginal_sigma(model, val, dev, spec["batch_size"])
        log.info("pixel sigma of pae_marginal from %d validation images: median %.4f", min(len(val), SIGMA_IMAGES),
                 sigma.median())
    raw = {name: image_scores(model, flow, s.images, dev, spec["batch_size"], spec["jacobian"], sigma)
           for name, s in sets.items()}
    scores = {name: {k: finite_scores(v) for k, v in r.items()} for name, r in raw.items()}
    nonfinite = {name: {k: int((~torch.isfinite(v)).sum()) for k, v in r.items()} for name, r in raw.items()}
    for name, counts in nonfinite.items():
        if any(counts.values()):
            log.warning("set %s: non-finite scores %s, counted as +-%g", name, counts, NONFINITE_SCORE)
    metrics = metrics_table(scores["in"], {name: scores[name] for name in ood_sets}, spec["bootstrap"])

    def describe(name: str) -> dict:
        s = sets[name]
        return {"source": s.source, "n": len(s.images), "n_available": s.n_available, "nonfinite": nonfinite[name]}

    _write_scores(scores_out, sets, scores, names)
    write_json(out, {
        "in_distribution": {"dataset": str(data_path), **describe("in")},
        "sets": {name: describe(name) for name in ood_sets},
        "scores": {k: SCORES[k] for k in names},
        "metrics": metrics,
        "model": str(model_path), "flow": str(flow_path), "model_kind": mspec.kind, "latent_dim": mspec.latent_dim,
        "max_images": spec["max_images"], "bootstrap": spec["bootstrap"], "spec": spec,
        "convention": "OoD images are the positive class; a higher score means more out-of-distribution"})
    log.info("OoD detection, %d in-distribution test images; AUROC%s:\n%s", len(in_set.images),
             " [95% bootstrap interval]" if spec["bootstrap"] else "", _auroc_table(metrics, names))

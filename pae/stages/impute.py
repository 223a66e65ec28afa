"""The impute stage: the missing-data imputation sweep of one run -> metrics/impute.json.

A run trained on complete images is tested at every ratio of eval.impute.ratios (train and test missingness
mismatched); a run trained with missing pixels (a matched-imputation run, or a grid with train.missing) is tested at
its own training ratio (matched). Layout of impute.json: {"train_missing": {"ratio", "mode"}, "matched": bool,
"n_images", "seed", "sigma": {per-pixel likelihood sigma summary}, "map": {restarts, steps, lr}, "spec" (the
eval.impute section it ran with: pae.api imputes with its settings), "results": [{"ratio", "method", "mse_missing",
"mse_missing_se", "n_images", "seconds"}]}; methods and the MSE: pae/eval/impute.py.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pae.config import default
from pae.data.store import pick
from pae.eval.impute import BATCH_SIZE, impute_sweep
from pae.eval.residuals import validation_sigma
from pae.io import write_json
from pae.stages.args import add_run_inputs, json_object
from pae.stages.common import load_run

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.impute config section", latents=True)
    p.add_argument("--train-missing", type=json_object, default=default("train.missing"),
                   help="the missingness the model was trained with (train.missing)")


def run(a: argparse.Namespace) -> None:
    impute(a.spec, a.model, a.flow, a.data, a.latents, a.train_missing, a.out, a.device)


def impute(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path, train_missing: dict,
           out: Path, device: str) -> None:
    r = load_run(model_path, flow_path, data_path, device)
    model, flow, data, dev = r.model, r.flow, r.data, r.device
    sigma = validation_sigma(model, data, latents_path, dev)

    test_images, _ = data.split("test")
    n = min(spec["n_images"], len(test_images))
    items = pick(len(test_images), n, spec["seed"])
    train_missing = {**default("train.missing"), **train_missing}
    trained_ratio = float(train_missing["ratio"])
    matched = trained_ratio > 0
    ratios = [trained_ratio] if matched else list(spec["ratios"])
    log.info("imputation on %d test images at missing ratios %s (%s: trained with %.0f%% missing)", n, ratios,
             "matched" if matched else "mismatched", 100 * trained_ratio)
    rows = impute_sweep(model, flow, test_images[items], items, ratios, sigma, seed=spec["seed"],
                        restarts=spec["restarts"], steps=spec["map_steps"], lr=spec["map_lr"], batch_size=BATCH_SIZE,
                        device=dev)
    write_json(out, {"train_missing": {"ratio": trained_ratio, "mode": train_missing["mode"]},
                     "matched": matched, "n_images": n, "seed": spec["seed"],
                     "sigma": {"median": sigma.median().item(), "min": sigma.min().item(), "max": sigma.max().item(),
                               "source": "per-pixel std of validation residuals"},
                     "map": {"restarts": spec["restarts"], "steps": spec["map_steps"], "lr": spec["map_lr"]},
                     "pixel_scale": "[-0.5, 0.5]", "spec": spec, "results": rows})

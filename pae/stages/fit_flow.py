"""The fit_flow stage: the normalizing flow (pae.flows) on a run's train latents, its best validation epoch kept."""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pae.config import default
from pae.data.latents import read_latents
from pae.device import resolve_device
from pae.flows import FlowSpec, fit_flow, save_flow
from pae.io import write_json
from pae.stages.args import json_object

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", type=json_object, required=True, help="flow spec (see pae/flows/latent_flow.py FlowSpec)")
    p.add_argument("--latents", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--history-out", type=Path, required=True)
    p.add_argument("--device", default=default("device"))


def run(a: argparse.Namespace) -> None:
    fit_flow_stage(a.spec, a.latents, a.out, a.history_out, a.device)


def fit_flow_stage(spec: dict, latents_path: Path, out: Path, history_out: Path, device: str) -> None:
    dev = resolve_device(device)
    fspec = FlowSpec.from_dict(spec)
    train_z, _ = read_latents(latents_path, "train")
    val_z, _ = read_latents(latents_path, "val")
    t0 = time.perf_counter()
    flow, history = fit_flow(fspec, train_z, val_z, dev)
    best = max(history, key=lambda h: h["val_logp"])
    meta = {"best_epoch": best["epoch"], "val_logp": best["val_logp"], "epochs_run": len(history),
            "fit_seconds": time.perf_counter() - t0, "latent_dim": flow.dim}
    save_flow(out, flow, fspec, meta)
    write_json(history_out, {"meta": meta, "epochs": history})
    log.info("flow: best val log p(z) %.4f at epoch %d of %d", best["val_logp"], best["epoch"], len(history))

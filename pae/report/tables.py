"""Tables of an experiment. `runs.csv`: one row per run with its grid coordinates, metrics and per-stage wall times.
recon_mse is per pixel on the [-0.5, 0.5] scale; test_elbo / test_nll / test_kl are nats per image (models with a
posterior; empty for the AE, whose likelihood column says mse)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from pae.io import PaeError, atomic_path, read_json

STAGES = ("prepare", "train", "encode", "fit_flow", "evaluate")


def _benchmark_seconds(path: str | os.PathLike) -> float | None:
    """Wall seconds from a snakemake benchmark file (column `s`); None when the file is absent."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
    except (KeyError, IndexError, ValueError, pd.errors.ParserError) as e:
        raise PaeError(f"{path}: not a snakemake benchmark file ({e})") from None


def runs_table(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        files = run["files"]
        history = read_json(files["history"])
        flow = read_json(files["flow_history"])["meta"]
        recon = read_json(files["recon"])
        flow_metrics = read_json(files["flow_metrics"])
        row = {"run": run["run"], "dataset": run["dataset"], "model": run["model"], "latent_dim": run["latent_dim"],
               "seed": run["seed"], "epochs": history["meta"]["epochs"],
               "recon_mse": recon["test_mse_per_pixel"], "val_mse": history["meta"]["final_val_mse"],
               "flow_val_logp": flow["val_logp"], "flow_test_logp": flow_metrics["test_logp_mean"],
               "flow_epochs": flow["epochs_run"], "likelihood": "mse", "posterior": "", "test_elbo": None,
               "test_nll": None, "test_kl": None}
        if Path(files["elbo"]).exists():  # models with a posterior
            elbo = read_json(files["elbo"])
            row.update(likelihood=elbo["likelihood"], posterior=elbo["posterior"], test_elbo=elbo["test_elbo"],
                       test_nll=elbo["test_nll"], test_kl=elbo["test_kl"])
        for stage in STAGES:
            row[f"time_{stage}_s"] = _benchmark_seconds(files["benchmarks"][stage])
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    if not rows:
        raise PaeError(f"{path}: no runs to tabulate")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "" if v is None else v) for k, v in row.items()})

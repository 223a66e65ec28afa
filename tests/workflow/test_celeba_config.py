"""configs/celeba_vae.yaml (the CelebA VAE notebook's model) end to end through snakemake. CelebA is not on these
machines: generated 178x218 images in torchvision's CelebA layout stand in for it (the CelebA source tests' generator,
smoothed so that there is something to learn), and a derived config shrinks the data, the epochs and the evaluation
while keeping every model setting of the shipped file."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from pae.models import load_model
from tests.helpers import REPO, write_celeba

CONFIG = REPO / "configs" / "celeba_vae.yaml"
RUN = "celeba-vae-z100-s0"


def derived_config(shipped: dict, source: Path) -> dict:
    """The shipped config with the generated data and a run of about a minute on 2 cores: 2 epochs, a small flow,
    small evaluation sizes, no Inception. Model settings (`train` but its epochs, models, latent sizes) are
    the shipped ones."""
    cfg = yaml.safe_load(yaml.safe_dump(shipped))
    cfg["datasets"]["celeba"].update(source=str(source), val_size=40, limit_train=None, limit_test=None)
    cfg["train"]["epochs"] = 2
    cfg["flow"] = {**cfg.get("flow", {}), "layers": 2, "hidden": 32, "blocks": 1, "epochs": 3, "patience": 2}
    cfg["eval"] = {
        "n_samples": 16, "n_interpolations": 2, "interp_steps": 4, "elbo_samples": 2,
        "classifier": {"epochs": 1, "batch_size": 64, "features": 16},
        "fid": {"n_samples": 60, "temperatures": [1.0, 0.7], "bootstrap": 5, "inception": "never"},
        "ood": {"max_images": 60, "bootstrap": 10, "jacobian": False},
        "posterior": {"n_images": 2, "corruptions": ["left_half"], "restarts": 1, "map_steps": 15,
                      "posterior_samples": 8, "mcmc_images": 1, "mcmc_warmup": 10, "mcmc_max_tree_depth": 3,
                      "figure_images": 2},
        "impute": {"ratios": [0.5], "n_images": 20, "restarts": 1, "map_steps": 15},
    }
    return cfg


def _finite(value: str) -> bool:
    return value not in ("", None) and math.isfinite(float(value))


@pytest.mark.integration
def test_celeba_vae_config_end_to_end(tmp_path):
    shipped = yaml.safe_load(CONFIG.read_text())
    raw = tmp_path / "raw"
    write_celeba(raw, parts=(260, 40, 60), smooth=24)  # official train, valid, test parts
    cfg = derived_config(shipped, raw)
    assert {k: v for k, v in cfg["train"].items() if k != "epochs"} == \
        {k: v for k, v in shipped["train"].items() if k != "epochs"}
    assert (cfg["models"], cfg["latent_sizes"]) == (["vae"], [100])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))

    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
           "--cores", "2", "--configfile", str(tmp_path / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    work = tmp_path / "work"
    res = work / "results" / shipped["experiment"]
    (data,) = (work / "resources" / "data").glob("celeba-*.h5")
    with h5py.File(data) as f:
        assert f["images"].shape[1:] == (3, 64, 64) and f.attrs["source"] == "celeba-official"
        assert len(f["splits/train"]) == 260 and len(f["splits/val"]) == 40 and len(f["splits/test"]) == 60

    # The model is the notebook's: a conv VAE at latent 100 with a fixed sigma, trained at the shipped settings.
    model, spec, _ = load_model(res / RUN / "model" / "model.pt")
    assert (spec.kind, spec.arch, spec.latent_dim, spec.image_shape) == ("vae", "conv", 100, (3, 64, 64))
    assert spec.channels == (32, 32, 64, 64) and spec.hidden == 256
    assert (spec.likelihood.kind, spec.likelihood.sigma) == ("gaussian_fixed", 0.1581)
    assert sum(p.numel() for p in model.parameters()) == 835_595

    # It trains: the ELBO loss and the validation MSE fall from the first epoch to the second (16 steps: too few for
    # the reconstructions to beat the mean image, so that is not asked).
    epochs = json.loads((res / RUN / "model" / "history.json").read_text())["epochs"]
    assert len(epochs) == 2 and all(math.isfinite(e["train_loss"]) for e in epochs)
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"] and epochs[1]["val_mse"] < epochs[0]["val_mse"], epochs

    (row,) = list(csv.DictReader(open(res / "tables" / "runs.csv")))
    assert (row["run"], row["dataset"], row["model"], row["latent_dim"], row["epochs"]) == \
        (RUN, "celeba", "vae", "100", "2")
    for column in ("recon_mse", "val_mse", "flow_val_logp", "flow_test_logp", "test_elbo", "test_nll", "test_kl",
                   "domain_fd_pae_T1", "domain_fd_prior"):
        assert _finite(row[column]), (column, row[column])

    # Every table of the report has rows, and their numbers are finite.
    for name, columns in {"samplers": ["domain_fd"], "ood": ["auroc", "aupr", "fpr95"],
                          "posterior": ["mse_all"], "impute": ["mse_missing"],
                          "table1": ["recon_mse", "domain_fd_pae_T1"], "table2": ["auroc"]}.items():
        rows = list(csv.DictReader(open(res / "tables" / f"{name}.csv")))
        assert rows, name
        for r in rows:
            assert all(_finite(r[c]) for c in columns), (name, r)
    figures = {p.name for p in (res / "figures").glob("*.png")}
    assert {f"{RUN}_samples.png", f"{RUN}_posterior_left_half.png", f"{RUN}_ood_roc.png", "samples_celeba.png"} <= figures
    assert (res / "report.md").is_file()

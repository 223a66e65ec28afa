"""tables.impute_table: the imputation sweep over seeds (Student's t) or, with one seed, over images (1.96 SE)."""
from __future__ import annotations

import pytest

from pae.io import write_json
from pae.report.tables import impute_table


def _run(tmp_path, seed, mse, se, model="ae"):
    path = tmp_path / f"{model}-s{seed}.json"
    write_json(path, {"train_missing": {"ratio": 0.0, "mode": "fixed"},
                      "results": [{"ratio": 0.5, "method": "pae_map", "mse_missing": mse, "mse_missing_se": se,
                                   "n_images": 100}]})
    return {"dataset": "mnist", "model": model, "latent_dim": 8, "seed": seed, "files": {"impute": str(path)}}


def test_impute_table_intervals_over_seeds_or_images(tmp_path):
    runs = [_run(tmp_path, 0, 0.010, 0.001), _run(tmp_path, 1, 0.014, 0.001), _run(tmp_path, 0, 0.02, 0.002, "vae")]
    rows = {r["model"]: r for r in impute_table(runs)}
    ae, vae = rows["ae"], rows["vae"]
    # float64 arithmetic on two values (equal here): pytest's default rel=1e-6
    assert ae["mse_missing"] == pytest.approx(0.012) and ae["n_seeds"] == 2 and ae["interval"] == "t95 over 2 seeds"
    # t(0.975, 1) * sd / sqrt(2), with t = 12.7062 written to 5 digits (1.6e-5 relative)
    assert ae["mse_high"] - ae["mse_missing"] == pytest.approx(12.706 * 0.002, rel=1e-4)
    assert (vae["mse_low"], vae["mse_high"]) == pytest.approx((0.02 - 1.96 * 0.002, 0.02 + 1.96 * 0.002))
    assert vae["interval"] == "one seed, 1.96 se over images" and vae["train_missing"] == "clean"


def test_a_run_that_skips_the_ood_stage_has_no_ood_rows(tmp_path):
    from pae.report.tables import ood_table
    path = tmp_path / "ood.json"
    auroc = {"auroc": {"value": 0.9, "low": 0.8, "high": 0.95}, "aupr": {"value": 0.9, "low": 0.8, "high": 0.95},
             "fpr95": {"value": 0.3, "low": 0.2, "high": 0.4}}
    write_json(path, {"metrics": {"mnist": {"flow_logp": auroc}}, "in_distribution": {"n": 10},
                      "sets": {"mnist": {"n": 12}}})
    grid = {"dataset": "mnist", "model": "ae", "seed": 0}
    runs = [{**grid, "run": "a", "latent_dim": 8, "files": {"ood": str(path)}},
            {**grid, "run": "b", "latent_dim": 16, "files": {}}]  # its grid block skips ood: no ood files
    assert [(r["run"], r["ood_set"], r["auroc"], r["n_out"]) for r in ood_table(runs)] == [("a", "mnist", 0.9, 12)]

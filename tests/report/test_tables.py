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

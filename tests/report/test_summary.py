"""Paper-style summaries over seeds (pae/report/summary.py) on hand-made rows with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pae.io import PaeError
from pae.report import summary

REFS = [{"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "metric": "fid",
         "value": 28.0, "source": "paper"},
        {"table": "table2", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "ood_set": "mnist",
         "score": "flow_logp", "metric": "auroc", "value": 0.997, "source": "paper"}]


def _run(model, seed, mse, z=32, dataset="fashion_mnist"):
    return {"run": f"{dataset}-{model}-z{z}-s{seed}", "dataset": dataset, "model": model, "latent_dim": z,
            "seed": seed, "recon_mse": mse}


def _sampler(run, name, value, temperature=None):
    return {"run": run["run"], "dataset": run["dataset"], "model": run["model"], "latent_dim": run["latent_dim"],
            "seed": run["seed"], "set": name, "temperature": temperature, "domain_fd": value,
            "domain_fd_low": value - 1, "domain_fd_high": value + 1, "fid": None, "fid_low": None, "fid_high": None}


def test_interval_is_student_t_over_seeds_or_the_runs_own():
    values = [1.0, 2.0, 4.0]
    mean, low, high, how = summary.interval(values)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    # float64 arithmetic on 3 numbers (equal here): pytest's default rel=1e-6 is ample, a wrong quantile is not
    assert (mean, low, high) == pytest.approx((7 / 3, 7 / 3 - half, 7 / 3 + half)) and how == "t95 over 3 seeds"
    assert summary.interval([5.0], [4.0], [6.5]) == (5.0, 4.0, 6.5, "one seed, bootstrap")
    mean, low, high, how = summary.interval([5.0])
    assert mean == 5.0 and math.isnan(low) and math.isnan(high) and how == "one seed"


def test_table1_averages_seeds_picks_the_best_temperature_and_joins_the_paper():
    runs = [_run("ae", 0, 0.010), _run("ae", 1, 0.012), _run("vae", 0, 0.020)]
    samplers = []
    for r, shift in zip(runs, (0.0, 2.0, 10.0)):
        samplers += [_sampler(r, "prior", 100 + shift), _sampler(r, "pae_T1.0", 20 + shift, 1.0),
                     _sampler(r, "pae_T0.8", 18 + shift, 0.8), _sampler(r, "reconstructions", 5 + shift),
                     _sampler(r, "train_vs_test", 0.5)]
    rows = {(r["model"], r["latent_dim"]): r for r in summary.table1(runs, samplers, REFS)}
    ae, vae = rows[("ae", 32)], rows[("vae", 32)]
    # means and t intervals of two float64 values (equal here): pytest's default rel=1e-6 throughout
    assert ae["n_seeds"] == 2 and ae["recon_mse"] == pytest.approx(0.011)
    half = stats.t.ppf(0.975, 1) * np.std([0.010, 0.012], ddof=1) / math.sqrt(2)
    assert (ae["recon_mse_low"], ae["recon_mse_high"]) == pytest.approx((max(0.011 - half, 0), 0.011 + half))
    assert ae["domain_fd_pae_T1"] == pytest.approx(21.0) and ae["domain_fd_pae_best"] == pytest.approx(19.0)
    assert ae["domain_fd_pae_best_T"] == "0.8" and ae["domain_fd_prior"] == pytest.approx(101.0)
    assert ae["paper_fid"] == 28.0 and ae["interval"] == "t95 over 2 seeds"
    # one seed: the run's own bootstrap interval for distances, none for the MSE; no reference for the VAE
    assert (vae["domain_fd_pae_T1"], vae["domain_fd_pae_T1_low"], vae["domain_fd_pae_T1_high"]) == (30, 29, 31)
    assert math.isnan(vae["recon_mse_low"]) and vae["paper_fid"] is None and vae["fid_pae_T1"] is None


def test_table2_per_score_with_reference():
    rows = []
    for seed, auroc in ((0, 0.90), (1, 0.94)):
        for score, shift in (("flow_logp", 0.0), ("recon_mse", -0.2)):
            rows.append({"run": f"r{seed}", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "seed": seed,
                         "ood_set": "mnist", "score": score, "n_in": 100, "n_out": 50, "auroc": auroc + shift,
                         "auroc_low": 0.0, "auroc_high": 1.0, "aupr": 0.5, "aupr_low": 0.4, "aupr_high": 0.6,
                         "fpr95": 0.1, "fpr95_low": 0.05, "fpr95_high": 0.2})
    got = {r["score"]: r for r in summary.table2(rows, REFS)}
    # float64 means of two values (1e-16 seen): pytest's default rel=1e-6
    assert got["flow_logp"]["auroc"] == pytest.approx(0.92) and got["recon_mse"]["auroc"] == pytest.approx(0.72)
    assert got["flow_logp"]["paper_auroc"] == 0.997 and got["recon_mse"]["paper_auroc"] is None
    # the t interval of two seeds (0.92 +- 0.25), not the runs' bootstrap [0, 1], clipped to [0, 1]
    half = stats.t.ppf(0.975, 1) * np.std([0.90, 0.94], ddof=1) / math.sqrt(2)
    assert got["flow_logp"]["auroc_low"] == pytest.approx(0.92 - half) and got["flow_logp"]["auroc_high"] == 1.0


def test_shipped_references_load_and_bad_ones_are_named(tmp_path):
    refs = summary.load_references()
    assert summary.reference(refs, "table1", "fid", dataset="fashion_mnist", model="ae", latent_dim=32)["value"] \
        == 28.0
    bad = tmp_path / "refs.yaml"
    bad.write_text("references:\n  - {table: table1, metric: fid, value: 1}\n")
    with pytest.raises(PaeError, match=r"refs.yaml: references\[0\] needs the keys"):
        summary.load_references(bad)
    bad.write_text("- 1\n")
    with pytest.raises(PaeError, match="a `references` list"):
        summary.load_references(bad)


def test_intervals_are_clipped_to_the_metrics_range():
    rows = [{"run": f"r{s}", "dataset": "d", "model": "ae", "latent_dim": 4, "seed": s, "ood_set": "o",
             "score": "flow_logp", "n_in": 10, "n_out": 10, "auroc": a, "aupr": a, "fpr95": 1 - a}
            for s, a in ((0, 0.2), (1, 0.99))]
    (row,) = summary.table2(rows, [])
    assert (row["auroc_low"], row["auroc_high"]) == (0.0, 1.0) and 0 < row["auroc"] < 1
    (fd,) = summary.over_seeds([{"k": 1, "domain_fd": 1.0}, {"k": 1, "domain_fd": 50.0}], ("k",), ("domain_fd",))
    assert fd["domain_fd_low"] == 0.0 and fd["domain_fd_high"] > 50

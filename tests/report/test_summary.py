"""Paper-style summaries over seeds (pae/report/summary.py) on hand-made rows with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pae.io import PaeError
from pae.report import summary

REFS = [{"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "metric": "fid",
         "value": 28.0, "n": None, "protocol": None, "source": "paper", "cited_as": "paper, Table 1"},
        {"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "metric": "recon_mse",
         "value": 0.0105, "source": "a notebook", "cited_as": "authors' notebook, cell 12"},
        {"table": "table2", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "ood_set": "mnist",
         "score": "flow_logp", "metric": "auroc", "value": 0.997, "source": "paper", "cited_as": "paper, Table 2"}]


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
    assert ae["interval"] == "t95 over 2 seeds" and ae["seeds"] == "0,1"
    # beside the interval over seeds, the runs' own intervals over images (bootstrap), averaged: 20 +- 1 and 22 +- 1
    assert (ae["domain_fd_pae_T1_images_low"], ae["domain_fd_pae_T1_images_high"]) == (20.0, 22.0)
    assert ae["recon_mse_images_low"] is None  # the MSE has no interval over images
    # the references at these coordinates, each with its source and verdict (no FID was computed here)
    assert (ae["ref_fid"], ae["ref_fid_source"], ae["ref_fid_verdict"]) == (28.0, "paper, Table 1", "no value of ours")
    assert ae["ref_recon_mse_verdict"] == "met (interval covers it)" and ae["ref_fid_minmax"] is None
    # one seed: the run's own bootstrap interval for distances, none for the MSE; no reference for the VAE
    assert (vae["domain_fd_pae_T1"], vae["domain_fd_pae_T1_low"], vae["domain_fd_pae_T1_high"]) == (30, 29, 31)
    assert (vae["domain_fd_pae_T1_images_low"], vae["domain_fd_pae_T1_images_high"]) == (29, 31)
    assert math.isnan(vae["recon_mse_low"]) and vae["ref_fid"] is None and vae["fid_pae_T1"] is None
    assert vae["ref_fid_verdict"] is None and vae["interval"].startswith("one seed")


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
    assert got["flow_logp"]["ref_auroc"] == 0.997 and got["recon_mse"]["ref_auroc"] is None
    # the interval over seeds [0.67, 1] covers 0.997
    assert got["flow_logp"]["ref_auroc_verdict"] == "met (interval covers it)"
    assert got["flow_logp"]["ref_auroc_source"] == "paper, Table 2"
    # the t interval of two seeds (0.92 +- 0.25), not the runs' bootstrap [0, 1], clipped to [0, 1]
    half = stats.t.ppf(0.975, 1) * np.std([0.90, 0.94], ddof=1) / math.sqrt(2)
    assert got["flow_logp"]["auroc_low"] == pytest.approx(0.92 - half) and got["flow_logp"]["auroc_high"] == 1.0


def test_shipped_references_load_and_bad_ones_are_named(tmp_path):
    refs = summary.load_references()
    assert summary.reference(refs, "table1", "fid", dataset="fashion_mnist", model="ae", latent_dim=32)["value"] \
        == 28.0
    # every shipped FID reference states its n and protocol, or says (null) that its source does not
    assert all({"n", "protocol"} <= set(r) for r in refs if r["metric"].startswith("fid"))
    bad = tmp_path / "refs.yaml"
    bad.write_text("references:\n  - {table: table1, metric: fid, value: 1}\n")
    with pytest.raises(PaeError, match=r"refs.yaml: references\[0\] needs the keys"):
        summary.load_references(bad)
    bad.write_text("- 1\n")
    with pytest.raises(PaeError, match="a `references` list"):
        summary.load_references(bad)
    entry = "{table: table1, dataset: d, model: ae, latent_dim: 4, value: 1, source: s, cited_as: c, "
    for extra, message in (("metric: speed}", "references\\[0\\]: metric 'speed': unknown direction"),
                           ("metric: fid}", "references\\[0\\]: an FID reference needs the keys n"),
                           ("metric: fid, n: 10000, protocol: tf}", "references\\[0\\]: protocol 'tf' of metric fid"),
                           # a min-max protocol for the FID of pixels as they are
                           ("metric: fid, n: 10000, protocol: 'tensorflow, minmax'}",
                            "protocol 'tensorflow, minmax' of metric fid is not one of \\['pytorch, uint8'"),
                           ("metric: fid, n: ten, protocol: null}", "references\\[0\\]: n 'ten' is not a number"),
                           ("metric: auroc}", "references\\[0\\]: a table2 reference needs")):
        table = "table2" if "auroc" in extra else "table1"
        bad.write_text(f"references:\n  - {entry.replace('table1', table)}{extra}\n")
        with pytest.raises(PaeError, match=message):
            summary.load_references(bad)


FID_REF = {"table": "table1", "metric": "fid_minmax", "value": 30.0, "n": 10000, "protocol": "tensorflow, minmax"}


def test_verdict_met_only_when_the_interval_covers_or_we_are_better():
    auroc = {"table": "table2", "metric": "auroc", "value": 0.997}
    # higher is better for AUROC: an interval below the reference misses it, one above is better
    assert summary.verdict(auroc, 0.995, 0.9947, 0.9962) == "missed by 0.002"
    assert summary.verdict(auroc, 0.9985, 0.998, 0.999) == "better by 0.0015"
    assert summary.verdict(auroc, 0.996, 0.995, 0.998) == "met (interval covers it)"
    # lower is better for FID and MSE
    assert summary.verdict(FID_REF, 28.0, 27.0, 29.0, 10000, "tensorflow, minmax") == "better by 2"
    assert summary.verdict(FID_REF, 32.0, 31.0, 33.0, 10000, "tensorflow, minmax") == "missed by 2"
    assert summary.verdict(FID_REF, 30.5, 29.5, 31.0, 10000, "tensorflow, minmax") == "met (interval covers it)"
    # no interval: never met, the gap and its direction given (0.00646 against 0.006417: 0.67% above)
    mse = {"table": "table1", "metric": "recon_mse", "value": 0.006417}
    assert summary.verdict(mse, 0.00646) == "no interval: worse by 4.3e-05 (0.67%)"
    assert summary.verdict(mse, 0.006, float("nan"), float("nan")) == "no interval: better by 0.000417 (6.5%)"
    assert summary.verdict(mse, None) == "no value of ours"


def test_verdict_of_an_fid_at_another_n_or_protocol_is_not_comparable():
    assert summary.verdict(FID_REF, 108.3, 100.0, 115.0, 200, "tensorflow, minmax") == \
        "not comparable (n = 200 vs 10,000)"
    assert summary.verdict(FID_REF, 31.0, 30.5, 31.5, 10000, "pytorch, minmax") == \
        "not comparable (protocol pytorch, minmax vs tensorflow, minmax)"
    assert summary.verdict(FID_REF, 31.0, 30.5, 31.5, None, None) == (
        "not comparable (our n is not one recorded number (the reference's: 10,000); our protocol is not recorded "
        "(the reference's: tensorflow, minmax))")
    # a reference that states neither (a third party's listing of a paper's table) compares with no FID of ours
    paper = {"table": "table1", "metric": "fid", "value": 28.0, "n": None, "protocol": None}
    assert summary.verdict(paper, 34.1, 33.4, 34.7, 10000, "tensorflow, uint8") == \
        "not comparable (the reference states no n or protocol; ours: n = 10,000; tensorflow, uint8)"


def test_table1_names_each_fids_n_and_protocol_and_judges_references_by_them():
    run = {**_run("ae", 0, 0.0065), "fid_n": 200, "fid_preprocessing": "pytorch"}
    samplers = [{**_sampler(run, "pae_T1.0", 5.0, 1.0), "fid": 108.3, "fid_low": 100.0, "fid_high": 115.0,
                 "n_generated": 10000, "n_real": 10000}]
    ref = {**FID_REF, "dataset": "fashion_mnist", "model": "ae", "latent_dim": 32, "metric": "fid",
           "protocol": "pytorch, uint8", "source": "s", "cited_as": "authors' notebook, cell 20"}
    mse = {**ref, "metric": "recon_mse", "value": 0.0064, "cited_as": "authors' notebook, cell 12"}
    run.update(recon_mse_low=0.0064 + 1e-5, recon_mse_high=0.0066, recon_n=10000)  # its interval over images
    (row,) = summary.table1([run], samplers, [ref, mse])
    assert (row["fid_n"], row["domain_fd_n"], row["fid_protocol"]) == ("200", "10000", "pytorch, uint8")
    # one seed: the MSE's interval over its 10,000 test images, which excludes the reference on the worse side
    assert (row["recon_n"], row["recon_mse_low"]) == ("10000", 0.0064 + 1e-5)
    assert row["ref_recon_mse_verdict"] == "missed by 0.0001"
    assert row["fid_minmax_protocol"] is None  # no min-max FID was computed
    assert row["ref_fid_verdict"] == "not comparable (n = 200 vs 10,000)"


def test_intervals_are_clipped_to_the_metrics_range():
    rows = [{"run": f"r{s}", "dataset": "d", "model": "ae", "latent_dim": 4, "seed": s, "ood_set": "o",
             "score": "flow_logp", "n_in": 10, "n_out": 10, "auroc": a, "aupr": a, "fpr95": 1 - a}
            for s, a in ((0, 0.2), (1, 0.99))]
    (row,) = summary.table2(rows, [])
    assert (row["auroc_low"], row["auroc_high"]) == (0.0, 1.0) and 0 < row["auroc"] < 1
    (fd,) = summary.over_seeds([{"k": 1, "domain_fd": 1.0}, {"k": 1, "domain_fd": 50.0}], ("k",), ("domain_fd",))
    assert fd["domain_fd_low"] == 0.0 and fd["domain_fd_high"] > 50
    # a Gaussian likelihood's NLL in nats and a KID can be below 0: their intervals are not clipped at 0
    seeds = [{"k": 1, "test_nll": -300.0, "fid_kid_prior": -0.01}, {"k": 1, "test_nll": -100.0, "fid_kid_prior": 0.2}]
    (nll,) = summary.over_seeds(seeds, ("k",), ("test_nll", "fid_kid_prior"))
    assert nll["test_nll"] == -200.0 and nll["test_nll_low"] < -300
    assert nll["fid_kid_prior_low"] < -0.01

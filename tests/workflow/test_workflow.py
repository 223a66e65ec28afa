"""The tiny workflow (tests/workflow/config.yaml) end to end with snakemake on real Fashion-MNIST: every stage, the
runs table and figures; a second run does nothing; a changed setting reruns only what depends on it; a bad config
stops before any job."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pae.report.tables import UNCERTAINTY_COLUMNS
from tests.helpers import REPO, TINY_CONFIG, TINY_RUN, as_from_a_terminal
from tests.helpers import tiny_snakemake as snakemake

# tiny_workflow (tests/conftest.py): the tiny workflow run once per session, shared with the tests of pae.api


@pytest.mark.integration
def test_tiny_workflow_end_to_end(tiny_workflow):
    tmp_path, proc = tiny_workflow
    assert proc.returncode == 0, proc.stderr[-4000:]

    res = tmp_path / "results" / "tiny"
    rows = list(csv.DictReader(open(res / "tables" / "runs.csv")))
    assert len(rows) == 1
    row = rows[0]
    assert (row["run"], row["dataset"], row["model"], row["latent_dim"], row["seed"], row["epochs"]) == \
        (TINY_RUN, "fashion_mnist", "ae", "4", "0", "2")
    # Two short epochs on 2,000 real images: far from converged but well below predicting the mean image (~0.1).
    assert 0.005 < float(row["recon_mse"]) < 0.08
    assert float(row["flow_val_logp"]) > -20
    for stage in ("prepare", "train", "encode", "fit_flow", "evaluate"):
        assert float(row[f"time_{stage}_s"]) > 0
    figures = {p.name for p in (res / "figures").glob("*.png")}
    assert {f"{TINY_RUN}_samples.png", f"{TINY_RUN}_reconstructions.png", f"{TINY_RUN}_interpolations.png",
            "training_curves.png", f"{TINY_RUN}_interpolation_grid.png"} <= figures
    # every figure with the data it is drawn from, so that `python -m pae report --from` redraws it
    assert {p.stem for p in (res / "figures" / "data").glob("*.h5")} == {name[:-len(".png")] for name in figures}
    assert f"{TINY_RUN}_uncertainty.png" not in figures  # an AE has no likelihood: no uncertainty figure nor row
    # its table has its header and no row (a file pandas reads as an empty table)
    assert (res / "tables" / "uncertainty.csv").read_text().splitlines() == [",".join(UNCERTAINTY_COLUMNS)]
    assert row["likelihood_coverage68"] == ""
    _check_evaluation_battery(res)
    data = next((tmp_path / "resources" / "data").glob("fashion_mnist-*.h5"))
    import h5py
    with h5py.File(data) as f:
        assert f.attrs["source"] == "debian" and len(f["splits/train"]) == 2000
    assert "debian" in (tmp_path / "logs" / "prepare" / f"{data.stem}.log").read_text()
    assert not (res / TINY_RUN / "checkpoint" / "train.pt").exists()
    # The real test images' features and the floor: one reference of the dataset, which the run's fid stage read
    (reference,) = (res / "fid_reference").rglob("*.h5")
    assert reference.parent.name == data.stem and not list((res / "fid_reference").rglob("*.partial"))
    fid_log = (tmp_path / "logs" / "tiny" / TINY_RUN / "fid.log").read_text()
    assert f"FID reference: {reference.relative_to(tmp_path)}" in fid_log
    assert "train_vs_test (reference)" in fid_log

    again = snakemake(tmp_path, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # A flow setting changed: the flow, the evaluation and the report rerun; training and encoding do not.
    changed = snakemake(tmp_path, "--dry-run", "--config", "flow={'layers': 3, 'hidden': 32, 'blocks': 1, "
                        "'epochs': 5, 'patience': 2}")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    assert "rule fit_flow:" in out and "rule evaluate:" in out and "rule report:" in out
    assert all(f"rule {r}:" in out for r in ("fid", "ood", "posterior", "impute"))
    assert "rule train:" not in out and "rule encode:" not in out and "rule prepare:" not in out
    assert "rule train_classifier:" not in out  # the domain classifier depends on the data only
    assert "rule fid_reference:" not in out  # the real images' features and the floor neither depend on the run

    # A posterior setting changed: only the posterior stage and the report rerun.
    changed = snakemake(tmp_path, "--dry-run", "--config", "eval={'posterior': {'n_images': 5}}")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    assert "rule posterior:" in out and "rule report:" in out
    assert not any(f"rule {r}:" in out for r in ("fid", "ood", "impute", "evaluate", "fit_flow", "train"))

    # A grid block's own FID setting: that run's fid stage gets it and reruns with the report; nothing else does.
    changed = snakemake(tmp_path, "--dry-run", "-p", "--config",
                        "grid=[{'datasets': ['fashion_mnist'], 'eval': {'fid': {'bootstrap': 3}}}]")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    assert "rule fid:" in out and "rule report:" in out and '"bootstrap": 3' in out
    assert "rule fid_reference:" in out  # the floor's interval is bootstrapped too
    assert not any(f"rule {r}:" in out for r in ("posterior", "ood", "impute", "evaluate", "fit_flow", "train"))

    # Runs of one dataset share its FID reference unless their eval.fid settings differ in more than the
    # temperatures: blocks t and n add two runs (with their fid jobs) and one reference (n's).
    changed = snakemake(tmp_path, "--dry-run", "--config", "grid=[{'datasets': ['fashion_mnist']}, "
                        "{'datasets': ['fashion_mnist'], 'name': 't', 'eval': {'fid': {'temperatures': [0.9]}}}, "
                        "{'datasets': ['fashion_mnist'], 'name': 'n', 'eval': {'fid': {'n_samples': 400}}}]")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    assert (jobs["fid"], jobs["fid_reference"]) == ("2", "1"), out[-3000:]

    # A grid block that skips the ood stage: only the report reruns, without the run's OoD files.
    changed = snakemake(tmp_path, "--dry-run", "--config", "grid=[{'datasets': ['fashion_mnist'], 'skip': ['ood']}]")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    assert "rule report:" in out, out[-3000:]
    assert not any(f"rule {r}:" in out for r in ("ood", "fid", "posterior", "impute", "uncertainty", "evaluate",
                                                   "fit_flow", "encode", "train"))


def _check_evaluation_battery(res: Path):
    """The tables and figures of the evaluation battery (issue 4) from the tiny run, with sanity bounds that a broken
    metric would cross (measured values in comments)."""
    tables = {name: list(csv.DictReader(open(res / "tables" / f"{name}.csv")))
              for name in ("runs", "samplers", "ood", "posterior", "impute")}
    row = tables["runs"][0]
    # PAE samples are closer to the test images than N(0, I) through the same decoder (1.2 vs 4.5), and both are
    # farther than the train-vs-test floor (0.14).
    fd = {k: float(row[f"domain_fd_{k}"]) for k in ("prior", "pae_T1", "recon", "floor")}
    assert fd["floor"] < fd["pae_T1"] < fd["prior"], fd
    assert 0.5 < float(row["classifier_test_accuracy"]) <= 1  # two epochs on 2,000 images (~0.8)
    assert {r["set"] for r in tables["samplers"]} == {"prior", "pae_T1.0", "pae_T0.7", "reconstructions",
                                                      "train_vs_test"}
    # FID with the weights make venv installs, on the first 10 images of each set (eval.fid.fid_samples): a value,
    # labelled with its n, and far above the domain FD's scale at this n
    assert all(float(r["fid"]) > 0 and r["fid_n"] == "10" for r in tables["samplers"])
    assert all(r["fid_n"] == "10" for r in tables["runs"])

    ood = {(r["ood_set"], r["score"]): r for r in tables["ood"]}
    assert set(ood) == {(s, k) for s in ("mnist", "hflip", "vflip") for k in ("flow_logp", "recon_mse", "pae_density",
                                                                               "pae_marginal")}
    for r in ood.values():
        assert 0 <= float(r["auroc_low"]) <= float(r["auroc"]) <= float(r["auroc_high"]) <= 1
    assert float(ood["mnist", "recon_mse"]["auroc"]) > 0.7  # MNIST digits are far from clothing even here (0.86)

    post = {(r["corruption"], r["method"]): r for r in tables["posterior"]}
    assert set(post) == {(c, m) for c in ("left_half", "noise_sparse") for m in ("map", "laplace", "mcmc")}
    for (c, m), r in post.items():
        assert 0 < float(r["mse_all"]) < 0.2
        if m != "map":
            assert 0 <= float(r["coverage95_all"]) <= 1 and float(r["posterior_std_all"]) > 0

    imp = {(r["train_missing"], r["test_ratio"], r["method"]): float(r["mse_missing"]) for r in tables["impute"]}
    assert set(imp) == {("clean", "0.3", m) for m in ("encoder", "pae_map")} | \
        {("clean", "0.7", m) for m in ("encoder", "pae_map")} | \
        {(f"{r}/fixed", r, m) for r in ("0.3", "0.7") for m in ("encoder", "pae_map")}
    # An encoder trained on whole images sees 70% of pixels missing for the first time; the MAP under the flow prior
    # uses only the observed pixels (0.050 vs 0.074).
    assert imp["clean", "0.7", "pae_map"] < imp["clean", "0.7", "encoder"]

    figures = {p.name for p in (res / "figures").glob("*.png")}
    assert {f"{TINY_RUN}_ood_roc.png", f"{TINY_RUN}_posterior_left_half.png", f"{TINY_RUN}_posterior_noise_sparse.png",
            "fd_vs_temperature.png",
            "impute_mse_vs_ratio.png", "fd_vs_latent.png", "samples_fashion_mnist.png"} <= figures

    # The paper-style summaries (one seed: the run's own numbers) and report.md linking drawn figures only.
    (t1,) = list(csv.DictReader(open(res / "tables" / "table1.csv")))
    assert float(t1["recon_mse"]) == float(row["recon_mse"]) and t1["n_seeds"] == "1"
    assert float(t1["domain_fd_pae_T1"]) == float(row["domain_fd_pae_T1"])
    t2 = {(r["ood_set"], r["score"]): r for r in csv.DictReader(open(res / "tables" / "table2.csv"))}
    assert float(t2["mnist", "recon_mse"]["auroc"]) == float(ood["mnist", "recon_mse"]["auroc"])
    report = (res / "report.md").read_text()
    assert "## Out-of-distribution detection (Table 2 style)" in report and "FID was computed" in report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert "figures/fd_vs_latent.png" in links and all((res / link).is_file() for link in links)


@pytest.mark.integration
def test_html_report_of_the_tiny_workflow(tiny_workflow):
    """`snakemake --report report.html` gathers the tables, figures and report.md into one HTML file."""
    workdir, proc = tiny_workflow
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = workdir / "report.html"
    made = snakemake(workdir, "--report", str(html))
    assert made.returncode == 0, (made.stdout + made.stderr)[-4000:]
    text = html.read_text()
    assert "runs.csv" in text and "table2.csv" in text  # the tables
    assert "fd_vs_latent.png" in text and f"{TINY_RUN}_samples.png" in text  # the figures
    assert "report.md" in text


def test_dry_run_prints_each_stages_shell_command(tmp_path):
    """Every rule is a shell command that `snakemake -n -p` prints: the launcher, the job and the stage's arguments
    (no `Shell command: None` but for the target rule `all`, which runs nothing)."""
    proc = snakemake(tmp_path, "-n", "-p")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    commands = re.findall(r"^Shell command: (.*)$", out, flags=re.MULTILINE)
    stages = [c for c in commands if c != "None"]
    assert len(commands) - len(stages) <= 1  # rule all
    assert len(stages) == 22, out[-3000:]  # 2 prepare, 3 train, encode, fit_flow, impute, 1 of each other rule
    for command in stages:
        assert command.startswith("set -o pipefail; OMP_NUM_THREADS=") and " -m pae --launcher local --job '{" in command, command
        assert " > logs/" in command and "pae.io.log_errors" in command, command
    assert any(" train --spec '{" in c and "--model-out results/tiny/fashion_mnist-ae-z4-s0/model/model.pt" in c
               for c in stages)
    (reference,) = [c for c in stages if " fid_reference --spec '{" in c]  # the spec without the temperatures
    assert "temperatures" not in reference and "--out results/tiny/fid_reference/fashion_mnist-" in reference
    assert any(" fid --spec '{" in c and "--reference results/tiny/fid_reference/fashion_mnist-" in c for c in stages)


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_the_process_group_checkpoints_the_training(fashion_mnist_dir, tmp_path, signum):
    """Ctrl-C (SIGINT to snakemake's whole process group) or `kill -TERM -PGID` mid-training: the training saves its
    checkpoint and logs why it stopped (the log's tee outlives the signal), and the same command resumes from it."""
    target = f"results/tiny/{TINY_RUN}/model/model.pt"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
           "--configfile", str(TINY_CONFIG), "--config", "train={'epochs': 60}", "--", target]
    log = tmp_path / "logs" / "tiny" / TINY_RUN / "train.log"
    proc = subprocess.Popen(as_from_a_terminal(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while not (log.exists() and "epoch 3/60: train loss" in log.read_text()):
            assert proc.poll() is None and time.time() < deadline, "the training did not reach its third epoch"
            time.sleep(0.1)
        os.killpg(proc.pid, signum)  # the group this test started: snakemake, the stage and the log's tee
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert f"stopped by {signal.Signals(signum).name}" in text and "the checkpoint holds the state" in text, text[-2000:]
    assert not (tmp_path / target).exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    text = log.read_text()
    assert "resuming from" in text and "epoch 60/60: train loss" in text
    assert "epoch 1/60: train loss" not in text  # the log holds the last attempt: it began past epoch 3


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: bad\nlatent_sizes: [4]\ntrain: {epochs: 2, bacth_size: 10}\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
           "--configfile", str(bad)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "train: Additional properties are not allowed ('bacth_size' was unexpected)" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


@pytest.mark.integration
def test_model_zoo_workflow(fashion_mnist_dir, tmp_path):
    """AE, VAE, beta-VAE and VAD through the whole pipeline; runs.csv gains the likelihood, posterior and ELBO."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(REPO / "tests" / "workflow" / "zoo.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "results" / "zoo" / "tables" / "runs.csv"))}
    assert set(rows) == {"ae", "vae", "beta_vae", "vad"}
    assert rows["ae"]["likelihood"] == "mse" and rows["ae"]["test_elbo"] == ""
    for model in ("vae", "beta_vae", "vad"):
        row = rows[model]
        assert (row["likelihood"], row["posterior"]) == ("gaussian_learned", "diag")
        elbo, nll, kl = float(row["test_elbo"]), float(row["test_nll"]), float(row["test_kl"])
        # runs.csv holds 6 significant digits: each of the three is off by <= 5e-6 of itself (the float32 sum per image
        # adds 6e-8). Bounded by the terms, not by the ELBO alone, which may lie near 0; a missing or rescaled KL is
        # off by far more.
        assert elbo == pytest.approx(-(nll + kl), rel=0, abs=5e-5 * (abs(elbo) + abs(nll) + kl)) and kl >= 0
    for row in rows.values():
        assert 0 < float(row["recon_mse"]) < 0.2
    # Every model goes through the evaluation battery; models with a posterior are scored by their ELBO too.
    ood_scores = {(r["model"], r["score"]) for r in csv.DictReader(open(tmp_path / "results" / "zoo" / "tables" /
                                                                         "ood.csv"))}
    assert ("ae", "elbo") not in ood_scores and all((m, "elbo") in ood_scores for m in ("vae", "beta_vae", "vad"))
    methods = {(r["model"], r["method"]) for r in csv.DictReader(open(tmp_path / "results" / "zoo" / "tables" /
                                                                       "impute.csv"))}
    assert methods == {("ae", "encoder"), ("vae", "encoder"), ("beta_vae", "encoder"), ("vad", "vad_infer")} | \
        {(m, "pae_map") for m in rows}
    # The decoder's uncertainty: a row per model with a likelihood, its coverages in [0, 1]; its uncertainty figure
    # but no sample-uncertainty figure (one learned sigma: the std is constant); every model's interpolation grid.
    res = tmp_path / "results" / "zoo"
    uncertainty = {r["model"]: r for r in csv.DictReader(open(res / "tables" / "uncertainty.csv"))}
    assert set(uncertainty) == {"vae", "beta_vae", "vad"}
    for model, r in uncertainty.items():
        assert r["likelihood"] == "gaussian_learned" and float(r["rms_std_sample"]) > 0
        assert 0 < float(r["coverage68_sample"]) <= float(r["coverage95_sample"]) <= 1
        assert float(rows[model]["likelihood_coverage95"]) == float(r["coverage95_sample"])
    figures = {p.name for p in (res / "figures").glob("*.png")}
    assert {f"fashion_mnist-{m}-z4-s0_interpolation_grid.png" for m in rows} <= figures
    assert {f"fashion_mnist-{m}-z4-s0_uncertainty.png" for m in uncertainty} <= figures
    assert "fashion_mnist-ae-z4-s0_uncertainty.png" not in figures
    assert not any(name.endswith("_sample_uncertainty.png") for name in figures)
    train_log = (tmp_path / "logs" / "zoo" / "fashion_mnist-vad-z4-s0" / "train.log").read_text()
    assert "epoch 2/2: train loss" in train_log

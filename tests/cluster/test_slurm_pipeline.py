"""pae on a real SLURM cluster (cluster/local-slurm/): the tiny workflow through the README's first commands
(install-profile, then `snakemake --profile slurm`: tests/cluster/conftest.py's slurm_workflow), 2-node DDP training
through submitit, a training job that outlives its time limit (signalled, checkpointed, requeued, resumed), and a
failing stage's message. Needs the cluster (PAE_SLURM=1), as tests/cluster/conftest.py says."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pae.io import torch_load
from tests.cluster.conftest import COMPUTE_RULES, profile_run, train_mem_mb
from tests.helpers import DDP_RTOL, DDP_RTOL_FIRST, TINY_RUN, epochs_lasting, run_pae, train_argv

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

TRAIN = {"model": "ae", "latent_dim": 8, "seed": 1, "arch": "conv", "channels": [16, 32], "hidden": 64,
         "epochs": 2, "batch_size": 64, "lr": 0.001, "weight_decay": 0.0, "precision": "fp32",
         "channels_last": False}


def test_the_readmes_first_commands_run_the_tiny_workflow_through_slurm(slurm_workflow, site):
    """`python -m pae install-profile`, then `snakemake --profile slurm --configfile tests/workflow/config.yaml`, as
    the README has them: install-profile fits the rules' CPUs per task to the 2-CPU nodes (train asked for 8), and
    every rule's job runs on the default partition with the packaged profile's runtime and memory; the results match
    a local run's."""
    local, remote, jobs, installed = slurm_workflow
    assert "fitted to this cluster: train: CPUs per task 8 -> 2 (partition debug's largest node has 2 CPUs)" \
        in installed.splitlines(), installed
    assert "use it: snakemake --profile slurm" in installed
    ours = [j for j in jobs if j["JobName"].startswith("pae-")]
    for rule, count in COMPUTE_RULES.items():
        rows = [j for j in ours if j["JobName"] == f"pae-{rule}" or j["JobName"].startswith(f"pae-{rule}-")]
        assert len(rows) == count, f"{rule}: expected {count} SLURM job(s), sacct shows {rows}"
        assert all(r["State"] == "COMPLETED" and r["Partition"] == "debug" for r in rows), rows
    assert len(ours) == sum(COMPUTE_RULES.values()), ours
    train = [j for j in ours if j["JobName"].startswith("pae-train-")]
    mem = train_mem_mb(site, "debug")
    assert {(j["Timelimit"], j["ReqMem"], j["ReqCPUS"]) for j in train} == {("04:00:00", f"{mem}M", "2")}, train

    table = lambda d: list(csv.DictReader(open(d / "results" / "tiny" / "tables" / "runs.csv")))  # noqa: E731
    a, b = table(local), table(remote)
    assert len(a) == len(b) == 1
    for key in ("run", "dataset", "model", "latent_dim", "seed", "epochs", "flow_epochs"):
        assert a[0][key] == b[0][key]
    for key in ("recon_mse", "val_mse", "flow_val_logp", "flow_test_logp"):
        # Same seeds, data and thread counts: equal up to float32 summation order (a 1.5e-5 relative difference in
        # val_mse was seen once, with other jobs of the DAG sharing the machine).
        assert float(b[0][key]) == pytest.approx(float(a[0][key]), rel=1e-4), key
    # The domain FD also goes through a separately trained classifier, which amplifies those differences (7.5e-4
    # relative seen); AUROCs are rank statistics.
    assert float(b[0]["domain_fd_pae_T1"]) == pytest.approx(float(a[0]["domain_fd_pae_T1"]), rel=1e-2)
    for key in ("auroc_mnist_recon_mse", "auroc_vflip_pae_density"):
        assert float(b[0][key]) == pytest.approx(float(a[0][key]), abs=2e-3), key
    wa = torch_load(local / "results" / "tiny" / TINY_RUN / "model" / "model.pt", "model")["state_dict"]
    wb = torch_load(remote / "results" / "tiny" / TINY_RUN / "model" / "model.pt", "model")["state_dict"]
    for k in wa:
        # The two trainings may run with other thread counts (the rule's threads locally, the job's CPUs on SLURM),
        # so float32 sums are split differently and the weights drift apart slightly (max |diff| up to ~1e-3): they
        # are compared by relative norm; a wrong data order, seed or spec gives differences of order 1.
        diff = (wb[k].double() - wa[k].double()).norm() / wa[k].double().norm().clamp(min=1e-12)
        assert diff < 2e-2, (k, diff.item())
    log = (remote / "logs" / "tiny" / TINY_RUN / "train.log").read_text()
    assert re.search(r"submitted SLURM job \d+", log) and "epoch 2/2: train loss" in log


def test_failing_stage_reports_job_id_state_and_the_stages_error(slurm_workflow, site):
    """A corrupt dataset file: the train rule fails with the SLURM job id, its state and the stage's own error, once
    on the terminal."""
    _, remote, _, _ = slurm_workflow
    data = next((remote / "resources" / "data").glob("fashion_mnist-*.h5"))
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 3])  # newer than the model: train reruns, prepare does not
    model = remote / "results" / "tiny" / TINY_RUN / "model" / "model.pt"
    proc = profile_run(remote, site, "slurm", "--retries", "0", str(model.relative_to(remote)))
    assert proc.returncode != 0
    log = (remote / "logs" / "tiny" / TINY_RUN / "train.log").read_text()
    match = re.search(r"ERROR pae: SLURM job (\d+) \(pae-train-[^)]*\) ended in state (\w+): (.*) \(its log: (\S+)\)$",
                      log, flags=re.M)
    assert match, log[-3000:]
    assert match.group(2) == "FAILED"
    cause = f"{data.relative_to(remote)}: not a readable HDF5 file"
    assert cause in match.group(3), "the stage's own error comes with the state"
    assert cause in log.split(match.group(0))[0], "the job's log, streamed into the rule's log, comes before"
    assert Path(match.group(4)).name == f"{match.group(1)}_0_log.err"
    # On the terminal: the rule's error once, on its own line (not followed by submitit's lines)
    shown = [i for i, line in enumerate(proc.stderr.splitlines()) if line.startswith("error in rule train: ")]
    assert len(shown) == 1 and match.group(0).split("ERROR pae: ")[1] in proc.stderr.splitlines()[shown[0]], \
        proc.stderr[-3000:]
    assert proc.stderr.splitlines()[shown[0] + 1].startswith("(log: "), proc.stderr[-3000:]
    assert not model.exists()
    assert not list(model.parent.glob(".model.pt.*")), "no temporary file left behind"
    data.write_bytes(content)


def _launch(job: dict, argv: list[str], env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pae", "--launcher", "slurm", "--job", json.dumps(job), *argv],
                          capture_output=True, text=True, env=env, timeout=900)


def _steps(out: Path) -> np.ndarray:
    hist = json.loads((out / "history.json").read_text())
    return np.concatenate([h["step_losses"] for h in hist["epochs"]]), hist["meta"]["world_size"]


def test_two_node_ddp_through_submitit_matches_one_process(slurm_env, mnist_5k_h5, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_pae(*train_argv(mnist_5k_h5, one, TRAIN))
    job = {"name": "pae-ddp-test", "folder": str(tmp_path / "submitit"), "threads": 1, "runtime": 10,
           "mem_mb": 1000, "nodes": 2, "tasks_per_node": 1, "slurm_partition": "multi"}
    proc = _launch(job, train_argv(mnist_5k_h5, two, TRAIN), slurm_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "backend gloo" in proc.stderr and "rank 1/2" in (tmp_path / "submitit").joinpath(
        next(p.name for p in (tmp_path / "submitit").glob("*_1_log.err"))).read_text()
    s1, w1 = _steps(one)
    s2, w2 = _steps(two)
    assert (w1, w2) == (1, 2)
    np.testing.assert_allclose(s2[:10], s1[:10], rtol=DDP_RTOL_FIRST)
    np.testing.assert_allclose(s2, s1, rtol=DDP_RTOL)


def test_time_limit_checkpoint_requeue_resume(slurm_env, mnist_5k_h5, tmp_path):
    """A 2-minute job whose training needs longer: SLURM's signal (60 s before the limit at the latest: the
    controller checks limits periodically and may send it earlier) makes it checkpoint at a step and requeue, until
    it finishes with the weights of an uninterrupted run (trained meanwhile, locally). The training is sized to 100 s
    of work on this machine's CPU, so the first signal always finds it running."""
    spec = {**TRAIN, "batch_size": 50}
    spec["epochs"] = epochs_lasting(100, mnist_5k_h5, spec, tmp_path / "timing")
    ref, out = tmp_path / "ref", tmp_path / "slurm"
    reference = subprocess.Popen([sys.executable, "-m", "pae", *train_argv(mnist_5k_h5, ref, spec)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
    job = {"name": "pae-requeue-test", "folder": str(tmp_path / "submitit"), "threads": 1, "runtime": 2,
           "mem_mb": 1000, "slurm_signal_delay_s": 60, "slurm_partition": "debug"}
    t0 = time.time()
    proc = _launch(job, train_argv(mnist_5k_h5, out, spec), slurm_env)
    print(f"{spec['epochs']} epochs through SLURM with requeues: {time.time() - t0:.0f} s")
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-2000:]
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stderr
    stops = re.findall(r"stopped by SIGUSR2 at epoch \d+[^;]*", log)
    print("\n".join(stops))
    assert stops, log[-3000:]
    assert len(re.findall(r"resuming from \S+ at epoch", log)) == len(stops)
    a = torch_load(ref / "model.pt", "model")["state_dict"]
    b = torch_load(out / "model.pt", "model")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after requeue"

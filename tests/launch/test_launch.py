"""Launcher pieces that need no cluster: job resources from snakemake, sbatch options, the local launcher's limits,
the SLURM launcher's light process, its pending reasons and its record of a cancelled job."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from pae.io import PaeError
from pae.launch import ATTEMPTS, RUN_ENV, Job, count_attempt, slurm
from pae.launch.local import run as run_local
from pae.launch.slurm import _sbatch_options, never_clears
from tests.helpers import REPO


def test_job_from_snakemake_resources_converts_types():
    job = Job.from_dict({"threads": 4, "runtime": "30", "mem_mb": 2000.0, "nodes": 2, "slurm_partition": "gpu",
                         "slurm_extra": ""})
    assert (job.threads, job.runtime, job.mem_mb, job.nodes, job.tasks) == (4, 30, 2000, 2, 2)
    assert job.slurm_partition == "gpu" and job.slurm_account == ""


@pytest.mark.parametrize("given, message", [
    ({"thread": 2}, "unknown keys ['thread']"),
    ({"runtime": "soon"}, "runtime='soon' is not a int"),
    ({"nodes": 0}, "nodes must be at least 1"),
])
def test_bad_job_resources_are_named(given, message):
    with pytest.raises(PaeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Job.from_dict(given)


def test_sbatch_options_parsing():
    assert _sbatch_options("--qos=high --constraint a100 --exclusive --mail-type END") == \
        {"qos": "high", "constraint": "a100", "exclusive": True, "mail_type": "END"}
    assert _sbatch_options("") == {}
    with pytest.raises(PaeError, match="expected --option"):
        _sbatch_options("qos=high")


def test_local_launcher_runs_on_one_node_only():
    with pytest.raises(PaeError, match="local launcher runs on this machine only"):
        run_local(Job(nodes=2), ["check-config", "x.yaml"])


def test_slurm_launcher_process_imports_no_torch_nor_stage_code(tmp_path):
    """`python -m pae --launcher slurm ... STAGE ...` (what every rule runs on a login node) reaches the SLURM
    launcher's run() with the stage's argv, having imported neither torch, numpy nor any stage's module: the stage's
    own arguments are parsed in the job."""
    code = (
        "import sys, json, pae.launch.slurm as s\n"
        "def fake_run(job, argv):\n"
        "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'h5py', 'nflows', 'pyro')"
        " or (m.startswith('pae.stages.') and m != 'pae.stages.args'))\n"
        "    print(json.dumps({'argv': argv, 'attempt': job.attempt, 'heavy': heavy}))\n"
        "    return 0\n"
        "s.run = fake_run\n"
        "import pae.__main__\n"
        "sys.exit(pae.__main__.main(sys.argv[1:]))\n")
    job = json.dumps({"name": "pae-train-x", "folder": str(tmp_path), "attempt": 2})
    argv = ["train", "--spec", "{}", "--data", "d.h5", "--model-out", "m.pt", "--history-out", "h.json",
            "--checkpoint", "c.pt"]
    proc = subprocess.run([sys.executable, "-c", code, "--launcher", "slurm", "--job", job, *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"argv": argv, "attempt": 2, "heavy": []}
    assert "==== attempt 2 of pae-train-x (launcher slurm)" in proc.stderr  # the log section's header


def test_slurm_launcher_still_rejects_an_unknown_stage_before_submitting():
    proc = subprocess.run([sys.executable, "-m", "pae", "--launcher", "slurm", "trian", "--spec", "{}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'trian'" in proc.stderr


@pytest.mark.parametrize("reason, fatal", [
    ("PartitionConfig", True), ("PartitionNodeLimit", True), ("PartitionTimeLimit", True), ("InvalidAccount", True),
    ("QOSMaxCpuPerJobLimit", True), ("AssocMaxNodePerJobLimit", True),
    ("Resources", False), ("Priority", False), ("BeginTime", False), ("ReqNodeNotAvail, UnavailableNodes:n1", False),
    ("QOSMaxJobsPerUserLimit", False), ("AssocGrpCpuLimit", False), ("None", False),
])
def test_pending_reasons_that_never_clear(reason, fatal):
    assert never_clears(reason) is fatal


def test_a_cancelled_job_is_not_resubmitted_by_snakemakes_retry_but_by_a_new_run(tmp_path):
    slurm._write_cancelled(tmp_path, "41", "CANCELLED by 1000")
    with pytest.raises(PaeError, match=r"not resubmitting pae-x on snakemake's retry \(attempt 2\): the previous "
                                       r"attempt's SLURM job 41 was CANCELLED by 1000"):
        slurm._check_not_cancelled(Job(name="pae-x", attempt=2), tmp_path)
    assert (tmp_path / slurm.RECORD).exists()
    slurm._check_not_cancelled(Job(name="pae-x", attempt=1), tmp_path)  # a new snakemake run
    assert not (tmp_path / slurm.RECORD).exists()


def test_a_rerun_attaches_to_its_recorded_job_when_squeue_does_not_answer(tmp_path, monkeypatch):
    """The controller down for a moment must not make a rerun submit a second job beside a live one."""
    job = Job(name="pae-x", folder=str(tmp_path))
    slurm._write_record(tmp_path, "41", job, ["train"], "then")
    monkeypatch.setattr(slurm, "squeue", lambda job_id: slurm.UNANSWERED)
    assert slurm._attach(job, ["train"], tmp_path) == "41"
    monkeypatch.setattr(slurm, "squeue", lambda job_id: None)  # left the queue: the record goes
    assert slurm._attach(job, ["train"], tmp_path) is None and not (tmp_path / slurm.RECORD).exists()


def test_attempts_are_counted_per_snakemake_run(tmp_path, monkeypatch):
    """snakemake gives a retry its first attempt's --job JSON (attempt 1): the launcher counts attempts per run."""
    job = Job(name="pae-x", folder=str(tmp_path / "job"))
    monkeypatch.delenv(RUN_ENV, raising=False)
    assert count_attempt(job).attempt == 1 and not (tmp_path / "job").exists()  # by hand: the job's own attempt
    monkeypatch.setenv(RUN_ENV, "host:1:100.0")
    assert [count_attempt(job).attempt for _ in range(3)] == [1, 2, 3]  # the first start of the run, two retries
    monkeypatch.setenv(RUN_ENV, "host:2:200.0")
    assert count_attempt(job).attempt == 1  # a new run starts at 1
    assert count_attempt(Job(name="pae-x", folder=str(tmp_path / "job"), attempt=5)).attempt == 5
    (tmp_path / "job" / ATTEMPTS).write_text("{not json")
    assert count_attempt(job).attempt == 1


def test_attempt_headers_through_the_command_line(tmp_path):
    """The rule's log header names the counted attempt: two starts in one run read attempt 1 and attempt 2."""
    folder = tmp_path / "job"
    job = json.dumps({"name": "pae-x", "folder": str(folder), "attempt": 1})
    env = {**os.environ, RUN_ENV: "host:1:100.0"}
    cmd = [sys.executable, "-m", "pae", "--job", job, "check-config", str(REPO / "configs" / "demo.yaml")]
    headers = [re.search(r"==== attempt (\d+) of pae-x", subprocess.run(cmd, capture_output=True, text=True, env=env,
                                                                        timeout=120).stderr)[1] for _ in range(2)]
    assert headers == ["1", "2"]

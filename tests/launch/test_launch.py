"""Launcher pieces that need no cluster: job resources from snakemake, sbatch options, the local launcher's limits."""
from __future__ import annotations

import pytest

from pae.io import PaeError
from pae.launch import Job
from pae.launch.local import run as run_local
from pae.launch.slurm import _sbatch_options


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

"""The README's multi-node site profile on a real SLURM cluster (cluster/local-slurm/), its commands as written:
`python -m pae install-profile slurm-2nodes --set-resources train:nodes=2 train:tasks_per_node=1
train:slurm_partition=multi`, then `snakemake --profile slurm-2nodes`: train on 2 nodes of partition multi, the
profile's other train resources kept, its CPUs per task fitted to the nodes. HOME and XDG_CONFIG_HOME point to the
test's own folder (tests/cluster/conftest.py's site), so the profiles land there and nothing of the user's is read or
written. The README's first commands (install-profile, `snakemake --profile slurm`) are tests/cluster/conftest.py's
slurm_workflow. Needs the cluster (PAE_SLURM=1), as tests/cluster/conftest.py says."""
from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.cluster.conftest import jobs_in, pae_command, profile_run, train_mem_mb
from tests.helpers import TINY_RUN

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

MODEL = f"results/tiny/{TINY_RUN}/model/model.pt"


def test_multi_node_site_profile(slurm_workflow, site, tmp_path):
    """The README's example: train on 2 nodes of partition multi; the rest of train's entry (runtime 240, mem_mb
    16000) and every other rule's stay as the packaged profile has them; train's 8 threads fitted to the nodes' 2
    CPUs."""
    out = pae_command(site, "install-profile", "slurm-2nodes", "--set-resources", "train:nodes=2",
                      "train:tasks_per_node=1", "train:slurm_partition=multi")
    assert "fitted to this cluster: train: CPUs per task 8 -> 2 (partition multi's largest node has 2 CPUs)" \
        in out.splitlines(), out
    assert "use it: snakemake --profile slurm-2nodes" in out
    _, prepared, _, _ = slurm_workflow
    workdir = tmp_path / "work"
    shutil.copytree(prepared / "resources", workdir / "resources")  # the data: only train runs here
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    t0 = time.time()
    proc = profile_run(workdir, site, "slurm-2nodes", MODEL)
    print(f"snakemake --profile slurm-2nodes (train on 2 nodes): {time.time() - t0:.1f} s")
    assert proc.returncode == 0, proc.stderr[-5000:]
    (train,) = jobs_in(workdir, site, since, 1)
    assert train["JobName"].startswith("pae-train") and train["State"] == "COMPLETED", train
    assert (train["Partition"], train["NNodes"], train["NodeList"]) == ("multi", "2", "n[1-2]"), train
    # sacct's ReqMem and ReqCPUS are the job's totals: the memory per node (16000 MB, or a smaller node's) and 2 CPUs
    # per node
    mem = 2 * train_mem_mb(site, "multi")
    assert (train["Timelimit"], train["ReqMem"], train["ReqCPUS"]) == ("04:00:00", f"{mem}M", "4"), train
    history = json.loads((workdir / f"results/tiny/{TINY_RUN}/model/history.json").read_text())
    assert history["meta"]["world_size"] == 2
    assert (workdir / MODEL).exists()

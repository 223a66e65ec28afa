"""Named profiles on a real SLURM cluster (cluster/local-slurm/): `snakemake --profile slurm` as typed, after
`python -m pae install-profile`, and the README's multi-node site profile (train on 2 nodes of partition multi, the
profile's other train resources kept). HOME and XDG_CONFIG_HOME point to the test's own folder, so the profiles land
there and nothing of the user's is read or written. Needs the cluster (PAE_SLURM=1), as tests/cluster/conftest.py
says."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG, TINY_RUN

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

MODEL = f"results/tiny/{TINY_RUN}/model/model.pt"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
FIELDS = ("JobID", "JobName", "State", "Partition", "NNodes", "NodeList", "Timelimit", "ReqMem", "WorkDir")
# One core: each job asks SLURM for one CPU per task, so it also runs beside other tests' jobs on the 2-CPU nodes.
CORES = ["--set", "cores=1"]


def pae(env, *args) -> str:
    proc = subprocess.run([sys.executable, "-m", "pae", *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def snakemake(workdir: Path, env, profile: str) -> subprocess.CompletedProcess:
    """`snakemake --profile PROFILE` in `workdir`, the workflow and the tiny config named since it is elsewhere."""
    return subprocess.run([SNAKEMAKE, "--profile", profile, MODEL, "-s", str(Path(__file__).parents[2] / "Snakefile"),
                           "--configfile", str(TINY_CONFIG)], cwd=workdir, capture_output=True, text=True, env=env,
                          timeout=600)


def jobs_in(workdir: Path, env, since: str, count: int) -> list[dict]:
    """The SLURM jobs submitted from `workdir` (other tests' jobs may share the cluster), once `count` have ended:
    accounting records an end a second or two after it."""
    deadline = time.time() + 60
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "-o", ",".join(FIELDS)], capture_output=True,
                             text=True, env=env, timeout=60, check=True).stdout
        rows = [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines() if line.strip()]
        rows = [r for r in rows if Path(r["WorkDir"]) == workdir]
        ended = [r for r in rows if r["State"] not in ("PENDING", "RUNNING", "REQUEUED")]
        if len(ended) >= count or time.time() > deadline:
            return rows
        time.sleep(1)


@pytest.fixture(scope="module")
def site(slurm_env, tmp_path_factory) -> dict[str, str]:
    """The environment of a user whose HOME and XDG_CONFIG_HOME are the test's: profiles go to XDG_CONFIG_HOME."""
    root = tmp_path_factory.mktemp("site")
    env = {**slurm_env, "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "xdg")}
    (root / "home").mkdir()
    return env


@pytest.fixture(scope="module")
def named_slurm_run(site, fashion_mnist_dir, tmp_path_factory):
    """`python -m pae install-profile` (partition debug, 1 GB) then `snakemake --profile slurm`: the tiny run's
    data prepared and its model trained through SLURM."""
    out = pae(site, "install-profile", *CORES, "--default-resources", "slurm_partition=debug", "mem_mb=1000",
              "--set-resources", "prepare:mem_mb=1000", "train:mem_mb=1000")
    installed = Path(site["XDG_CONFIG_HOME"]) / "snakemake" / "slurm" / "config.yaml"
    assert f"wrote: {installed}" in out and "use it: snakemake --profile slurm" in out
    workdir = tmp_path_factory.mktemp("work")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    t0 = time.time()
    proc = snakemake(workdir, site, "slurm")
    print(f"snakemake --profile slurm (prepare, train): {time.time() - t0:.1f} s")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return workdir, jobs_in(workdir, site, since, 2)


def test_snakemake_profile_slurm_after_install_profile(named_slurm_run):
    workdir, rows = named_slurm_run
    assert (workdir / MODEL).exists()
    names = sorted(r["JobName"].split("-")[1] for r in rows)
    assert names == ["prepare", "train"], rows
    for r in rows:
        assert r["State"] == "COMPLETED" and r["Partition"] == "debug", r
        assert r["ReqMem"] == "1000M", r  # the installed overrides
    train = next(r for r in rows if r["JobName"].startswith("pae-train"))
    assert train["Timelimit"] == "04:00:00", "train's runtime (240) kept from the packaged profile"


def test_multi_node_site_profile(named_slurm_run, site, tmp_path):
    """The README's example: train on 2 nodes of partition multi; the rest of train's entry (runtime 240, mem_mb
    16000) and every other rule's stay as the packaged profile has them."""
    out = pae(site, "install-profile", "slurm-2nodes", *CORES, "--set-resources", "train:nodes=2",
              "train:tasks_per_node=1", "train:slurm_partition=multi")
    assert "use it: snakemake --profile slurm-2nodes" in out
    prepared, _ = named_slurm_run
    workdir = tmp_path / "work"
    shutil.copytree(prepared / "resources", workdir / "resources")  # the data: only train runs here
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    t0 = time.time()
    proc = snakemake(workdir, site, "slurm-2nodes")
    print(f"snakemake --profile slurm-2nodes (train on 2 nodes): {time.time() - t0:.1f} s")
    assert proc.returncode == 0, proc.stderr[-5000:]
    (train,) = jobs_in(workdir, site, since, 1)
    assert train["JobName"].startswith("pae-train") and train["State"] == "COMPLETED", train
    assert (train["Partition"], train["NNodes"], train["NodeList"]) == ("multi", "2", "n[1-2]"), train
    # sacct's ReqMem is the job's total: 16000 MB per node
    assert train["Timelimit"] == "04:00:00" and train["ReqMem"] == "32000M", train
    history = json.loads((workdir / f"results/tiny/{TINY_RUN}/model/history.json").read_text())
    assert history["meta"]["world_size"] == 2
    assert (workdir / MODEL).exists()

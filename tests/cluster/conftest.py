"""Tests against a real local SLURM cluster (cluster/local-slurm/start.sh). They run only with PAE_SLURM=1, which
.ci/run sets after starting the cluster; with PAE_SLURM=1 and no controller answering they fail, not skip."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, TINY_CONFIG


SLURM_SKIP = ("needs the local SLURM cluster; to run this test: sudo cluster/local-slurm/install.sh && "
              "sudo cluster/local-slurm/start.sh, then PAE_SLURM=1 make test")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PAE_SLURM") == "1":
        return
    skip = pytest.mark.skip(reason=SLURM_SKIP)
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """The environment for SLURM clients; fails (not skips) when PAE_SLURM=1 but no cluster answers."""
    env = dict(os.environ)
    conf = Path(os.environ.get("PAE_SLURM_DIR", "/tmp/pae-slurm")) / "etc" / "slurm.conf"
    if "SLURM_CONF" not in env and conf.exists():
        env["SLURM_CONF"] = str(conf)
    if shutil.which("scontrol") is None:
        pytest.fail("scontrol not found: run cluster/local-slurm/install.sh")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, env=env, timeout=30)
    if "is UP" not in ping.stdout:
        pytest.fail(f"no SLURM controller answers ({ping.stdout.strip()} {ping.stderr.strip()}): "
                    "start it with cluster/local-slurm/start.sh")
    return env




# SLURM jobs per rule of the tiny workflow: Fashion-MNIST and MNIST (an OoD set) prepared; the run and two
# matched-imputation runs trained, encoded, flow-fitted and imputed; Fashion-MNIST's FID reference; one of each
# evaluation stage; one report.
COMPUTE_RULES = {"prepare": 2, "train": 3, "encode": 3, "fit_flow": 3, "evaluate": 1, "train_classifier": 1,
                 "fid_reference": 1, "fid": 1, "ood": 1, "posterior": 1, "impute": 3, "uncertainty": 1, "report": 1}
SACCT_FIELDS = ("JobID", "JobName", "State", "Partition", "NNodes", "NodeList", "Timelimit", "ReqMem", "ReqCPUS",
                "WorkDir")
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def pae_command(env, *args) -> str:
    """`python -m pae ARGS` as a user types it; its stdout."""
    proc = subprocess.run([sys.executable, "-m", "pae", *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def profile_run(workdir: Path, env, profile: str, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --profile PROFILE [ARGS] --configfile tests/workflow/config.yaml` in `workdir`, the Snakefile
    named since the working folder is not the checkout."""
    return subprocess.run([SNAKEMAKE, "--profile", profile, *args, "-s", str(REPO / "Snakefile"),
                           "--configfile", str(TINY_CONFIG)], cwd=workdir, capture_output=True, text=True, env=env,
                          timeout=1200)


def train_mem_mb(env, partition: str) -> int:
    """The memory per node a fitted profile asks for the train rule: the packaged profile's 16,000 MB, capped by
    install-profile at the partition's smallest node (the local cluster's nodes get the machine's available memory
    when it starts, which can be less)."""
    out = subprocess.run(["sinfo", "-h", "-N", "-p", partition, "-o", "%m"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    return min(16000, *(int(v) for v in out.split()))


def jobs_in(workdir: Path, env, since: str, count: int) -> list[dict]:
    """The SLURM jobs submitted from `workdir` (other tests' jobs may share the cluster), once `count` have ended:
    accounting records an end a second or two after it."""
    deadline = time.time() + 60
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "-o", ",".join(SACCT_FIELDS)],
                             capture_output=True, text=True, env=env, timeout=60, check=True).stdout
        rows = [dict(zip(SACCT_FIELDS, line.split("|"))) for line in out.splitlines() if line.strip()]
        rows = [r for r in rows if Path(r["WorkDir"]) == workdir]
        ended = [r for r in rows if r["State"] not in ("PENDING", "RUNNING", "REQUEUED")]
        if len(ended) >= count or time.time() > deadline:
            return rows
        time.sleep(1)


@pytest.fixture(scope="session")
def site(slurm_env, tmp_path_factory) -> dict[str, str]:
    """The environment of a user whose HOME and XDG_CONFIG_HOME are the test's: profiles go to XDG_CONFIG_HOME, and
    no profile of the real user's is read or written. Torch's cache (FID's Inception weights) stays where it is."""
    root = tmp_path_factory.mktemp("site")
    torch_home = os.environ.get("TORCH_HOME", str(Path.home() / ".cache" / "torch"))
    env = {**slurm_env, "HOME": str(root / "home"), "XDG_CONFIG_HOME": str(root / "xdg"), "TORCH_HOME": torch_home}
    (root / "home").mkdir()
    return env


@pytest.fixture(scope="session")
def slurm_workflow(site, fashion_mnist_dir, tmp_path_factory):
    """The tiny workflow run twice: locally, and through SLURM with the README's first commands as written,
    `python -m pae install-profile` then `snakemake --profile slurm --configfile tests/workflow/config.yaml` (the
    profile fitted to the test cluster's 2-CPU nodes by install-profile). Returns (local dir, slurm dir, the SLURM
    jobs' sacct rows, install-profile's output)."""
    local, remote = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(local),
                           "--configfile", str(TINY_CONFIG), "--cores", "2"], capture_output=True, text=True,
                          env=site, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    t1 = time.time()
    installed = pae_command(site, "install-profile")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    proc = profile_run(remote, site, "slurm")
    assert proc.returncode == 0, installed + proc.stderr[-5000:]
    t2 = time.time()
    print(f"tiny workflow wall time: local {t1 - t0:.1f} s, through SLURM {t2 - t1:.1f} s")
    return local, remote, jobs_in(remote, site, since, sum(COMPUTE_RULES.values())), installed

"""Tests against a real local SLURM cluster (cluster/local-slurm/start.sh). They run only with PAE_SLURM=1, which
.ci/run sets after starting the cluster; with PAE_SLURM=1 and no controller answering they fail, not skip."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


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



"""Tests against a real local SLURM cluster (cluster/local-slurm/start.sh). They run only with PAE_SLURM=1."""
from __future__ import annotations


def pytest_configure(config):
    # registered here as well as (ideally) in pyproject.toml, since the suite runs with --strict-markers
    config.addinivalue_line("markers", "slurm: needs the local SLURM cluster running (PAE_SLURM=1; "
                                       "cluster/local-slurm/start.sh)")

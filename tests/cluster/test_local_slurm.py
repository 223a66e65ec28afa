"""The local SLURM cluster (cluster/local-slurm/): a submitit job on partition `debug` returns its value and sacct
records it COMPLETED; a 2-node srun on partition `multi` runs one task on each of the emulated nodes n1 and n2.
Needs the cluster running (sudo cluster/local-slurm/start.sh) and PAE_SLURM=1; skipped otherwise."""
from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = pytest.mark.slurm

TIMEOUT_S = 45


def sacct_state(job_id: str, env: dict[str, str]) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                         capture_output=True, text=True, env=env, timeout=30).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


def test_submitit_job_returns_value_and_is_accounted(slurm_env, tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit", reason="submitit missing; to run this test: .venv/bin/pip install submitit")
    if "SLURM_CONF" in slurm_env:
        monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])

    def answer():  # a closure: pickled by value, so the job does not need to import this test module
        import os
        import socket
        return {"value": 42, "partition": os.environ.get("SLURM_JOB_PARTITION"), "host": socket.gethostname()}

    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    executor.update_parameters(slurm_partition="debug", timeout_min=2, slurm_job_name="pae-test-submitit")
    job = executor.submit(answer)
    deadline = time.monotonic() + TIMEOUT_S
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"job {job.job_id} not done after {TIMEOUT_S}s (state {job.state}); "
                        f"stderr: {job.stderr() or ''}")
        time.sleep(0.5)
    out = job.result()
    assert out["value"] == 42
    assert out["partition"] == "debug"

    # submitit reads the state with sacct and caches it for ~2 s: it may say UNKNOWN/RUNNING just after the result
    while (state := job.state) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "COMPLETED"
    while (state := sacct_state(job.job_id, slurm_env)) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "COMPLETED"


def test_two_node_srun_on_partition_multi(slurm_env):
    proc = subprocess.run(
        ["srun", "-p", "multi", "--nodes=2", "--ntasks-per-node=1", "--time=1", "-J", "pae-test-multi",
         "bash", "-c", 'echo "$SLURM_PROCID $SLURMD_NODENAME $SLURM_JOB_NODELIST"'],
        capture_output=True, text=True, env=slurm_env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(proc.stdout.split("\n"))
    rows = [line.split() for line in lines if line.strip()]
    assert [r[0] for r in rows] == ["0", "1"], proc.stdout
    assert {r[1] for r in rows} == {"n1", "n2"}, proc.stdout
    assert all(r[2] == "n[1-2]" for r in rows), proc.stdout

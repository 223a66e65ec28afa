"""Quality regression: a reduced smoke grid (configs/smoke.yaml, the AE at latent 16 on Fashion-MNIST and at latent 8
on MNIST, both real) through the whole pipeline, its numbers checked against the bounds recorded in
tests/workflow/regression_bounds.yaml (measured values and the margins there). A change that makes the auto-encoder,
the flow, the OoD scores, the posterior or the imputation worse fails here, not just a change that crashes."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO

BOUNDS = Path(__file__).with_name("regression_bounds.yaml")


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _matches(row: dict, where: dict) -> bool:
    return all(row[k] == str(v) for k, v in where.items())


def test_bounds_file_is_well_formed():
    spec = yaml.safe_load(BOUNDS.read_text())
    assert spec["checks"], "no checks recorded"
    for check in spec["checks"]:
        assert set(check) >= {"table", "where", "column", "measured"} and ("low" in check or "high" in check)
        assert check.get("low", -float("inf")) <= check["measured"] <= check.get("high", float("inf")), check


@pytest.mark.integration
def test_reduced_smoke_grid_stays_within_recorded_bounds(fashion_mnist_dir, tmp_path):
    spec = yaml.safe_load(BOUNDS.read_text())
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--max-threads", "1", "--configfile", str(REPO / spec["configfile"]), "--config", f"grid={spec['grid']}",
           "eval={fid: {inception: never}}"]  # FID has its own regression test (tests/eval/test_inception.py)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    tables = tmp_path / "results" / spec["experiment"] / "tables"
    failures = []
    for check in spec["checks"]:
        rows = [r for r in _rows(tables / f"{check['table']}.csv") if _matches(r, check["where"])]
        assert len(rows) == 1, f"{check['table']}.csv: {len(rows)} rows match {check['where']}"
        value = float(rows[0][check["column"]])
        low, high = check.get("low", -float("inf")), check.get("high", float("inf"))
        if not low <= value <= high:
            failures.append(f"{check['table']} {check['where']} {check['column']} = {value:.6g}, outside "
                            f"[{low}, {high}] (recorded {check['measured']})")
    assert not failures, "quality regressions:\n" + "\n".join(failures)

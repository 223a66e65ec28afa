"""With snakemake on the real Snakefile (fast: no training): a bad path in the config stops the workflow
before any job and leaves the old outputs alone; a stage that fails shows pae's error on the terminal, not only in
its log."""
from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pae.data.paths import IDX_STEMS
from tests.helpers import REPO

RUN = "fashion_mnist-ae-z4-s0"


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1",
           "--configfile", str(configfile), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def broken_idx_folder(folder: Path) -> Path:
    """The four IDX files present (the config check passes), each with a header announcing more bytes than it has
    (the prepare stage fails with a PaeError naming the file)."""
    folder.mkdir(parents=True)
    for stem in IDX_STEMS:
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + (1000).to_bytes(4, "big") + b"\0" * 10)
    return folder


def config(tmp_path: Path, **eval_) -> dict:
    return {"experiment": "tiny", "datasets": {"fashion_mnist": {"source": str(broken_idx_folder(tmp_path / "idx"))}},
            "models": ["ae"], "latent_sizes": [4], "seeds": [0],
            "eval": {"ood": {"datasets": [], **eval_}}}


@pytest.mark.integration
@pytest.mark.parametrize("bad", ["missing", "empty", "not_an_image"])
def test_bad_ood_folder_stops_before_any_job_and_keeps_old_results(tmp_path, bad):
    folder = tmp_path / "faces"
    if bad != "missing":
        folder.mkdir()
    if bad == "not_an_image":
        (folder / "a.png").write_text("a text file named like an image")
    old = tmp_path / "results" / "tiny" / RUN / "metrics"
    old.mkdir(parents=True)
    (old / "ood.json").write_text('{"old": true}')
    (old / "ood_scores.csv").write_text("old\n")
    cfg = config(tmp_path, folders={"faces": str(folder)})
    for args in (["-n"], []):  # a dry run, and a real one: neither starts a job
        proc = snakemake(tmp_path, cfg, *args)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert "eval.ood.folders.faces" in out and str(folder) in out, out[-3000:]
        assert "rule prepare" not in out and "localrule" not in out, out[-3000:]
        assert (old / "ood.json").read_text() == '{"old": true}' and (old / "ood_scores.csv").read_text() == "old\n"
    assert not (tmp_path / "logs").exists()


@pytest.mark.integration
def test_a_failing_stage_shows_paes_error_on_the_terminal(tmp_path):
    proc = snakemake(tmp_path, config(tmp_path), "--until", "prepare")
    assert proc.returncode != 0
    log = next((tmp_path / "logs" / "prepare").glob("fashion_mnist*.log"))
    assert "ERROR pae: " in log.read_text()
    # pae's one-line error (the PaeError naming the file and what is wrong) is on snakemake's terminal
    assert "error in rule prepare" in proc.stderr, proc.stderr[-3000:]
    assert "train-images-idx3-ubyte.gz: IDX header says shape (1000,)" in proc.stderr, proc.stderr[-3000:]

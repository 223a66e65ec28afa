"""Before any job (pae.preflight, the workflow's onstart and config check): a folder the jobs cannot write into stops
the workflow with one line naming it and where its path comes from (issue 33: before, snakemake's traceback from
remove_existing_output, or a WorkflowError, after a job had started); too little free space for what the jobs will
write gives a warning explaining the estimate. The tests that make a folder unwritable work as root too (a file in
the folder's place, a folder under /sys); the chmod case needs a user that permissions stop."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pae.config
import pae.preflight
from pae.data.paths import IDX_STEMS
from pae.io import PaeError
from pae.models import build_model
from pae.train.loop import TrainSpec
from tests.helpers import REPO, TINY_CONFIG, TINY_RUN

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def folders(tmp_path: Path, results: Path, resources: Path | None = None) -> list[pae.preflight.Folder]:
    config = {"experiment": "tiny", "results_dir": str(results), "resources_dir": str(resources or tmp_path / "res")}
    return [f for f in pae.preflight.output_folders(config) if f.path.startswith(str(tmp_path))]


def test_missing_folders_are_created_and_nothing_is_left_in_them(tmp_path):
    pae.preflight.check_writable(folders(tmp_path, tmp_path / "a" / "results"))
    assert sorted(p.name for p in (tmp_path / "a" / "results" / "tiny").iterdir()) == []
    assert (tmp_path / "res" / "data").is_dir()


@pytest.mark.parametrize("create", [True, False])
def test_a_file_in_a_folders_place_is_named(tmp_path, create):
    (tmp_path / "results").write_text("a file where the results folder should be")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "data").write_text("a file where the prepared-data folder should be")
    with pytest.raises(PaeError) as e:
        pae.preflight.check_writable(folders(tmp_path, tmp_path / "results"), create=create)
    assert str(e.value) == (
        f"the results folder {tmp_path}/results/tiny (results_dir: {tmp_path}/results) is not writable: cannot "
        f"create it: {tmp_path}/results is a file; the prepared-data folder {tmp_path}/res/data (resources_dir: "
        f"{tmp_path}/res) is not writable: it exists and is not a folder. Nothing was run: every job writes there "
        "(point the config's results_dir or resources_dir at a writable folder, or run from a writable directory)")


def test_without_create_nothing_is_written(tmp_path):
    pae.preflight.check_writable(folders(tmp_path, tmp_path / "results"), create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(AS_ROOT, reason="permissions do not stop root from writing: run `make test` as another user "
                                   "(test_a_folder_that_cannot_be_created_stops_the_run_before_any_job covers root)")
def test_a_read_only_results_tree_is_named(tmp_path):
    results = tmp_path / "results"
    (results / "tiny" / TINY_RUN).mkdir(parents=True)
    (results / "tiny").chmod(0o555)
    try:
        with pytest.raises(PaeError, match=r"^the results folder .*/results/tiny \(results_dir: .*/results\) is not "
                                           r"writable: cannot create a file in it: Permission denied\. Nothing"):
            pae.preflight.check_writable(folders(tmp_path, results))
    finally:
        (results / "tiny").chmod(0o755)


def tiny_config(**train) -> dict:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["train"].update(train)
    return pae.config.resolve(config, validate=True)


def test_the_space_estimate_counts_four_copies_of_each_pending_trainings_weights():
    config = tiny_config()
    runs = pae.config.runs(config)
    run = runs[TINY_RUN]
    # the model's parameters, built for real (the estimate builds it on torch's meta device)
    spec = TrainSpec.from_dict(pae.config.train_spec(run)).model_spec((1, 28, 28), 2000)
    n = sum(p.numel() for p in build_model(spec).parameters())
    estimate = pae.preflight.space_needed(config, runs, {TINY_RUN: {"train", "encode"}})
    assert (estimate.trainings, estimate.runs, estimate.largest_model) == (1, 1, n)
    assert estimate.bytes == 4 * 4 * n + pae.preflight.OTHER_OUTPUTS_BYTES
    # a run whose training is done costs its other outputs only
    assert pae.preflight.space_needed(config, runs, {TINY_RUN: {"fid"}}).bytes == pae.preflight.OTHER_OUTPUTS_BYTES


def test_the_space_warning_explains_its_estimate(tmp_path):
    estimate = pae.preflight.Estimate(bytes=3_400_000_000, trainings=2, runs=3, largest_model=200_000_000)
    assert pae.preflight.space_warning(tmp_path, estimate, free=3_500_000_000) is None
    warning = pae.preflight.space_warning(tmp_path, estimate, free=1_200_000_000)
    assert warning == (
        f"only 1.2 GB free on the filesystem of {tmp_path}, and the jobs about to run may write about 3.4 GB there "
        "(an estimate: 2 training(s) x 4 x the model's float32 weights (model.pt, and checkpoint/train.pt with "
        "Adam's two moments; largest model 200,000,000 parameters), plus 3 run(s) x 50 MB for latents, flow, "
        "samples, panels and metrics). Jobs will fail when it is full (their checkpoints let them resume); free "
        "some space or point results_dir at a larger filesystem")


# ------------------------------------------------------------------------------------ through snakemake, end to end


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    """The tiny grid on IDX files whose headers announce more bytes than they hold: the config check passes, the
    prepare job fails within seconds (these tests need runs that start, not runs that finish)."""
    folder = workdir / "idx"
    folder.mkdir(exist_ok=True)
    for stem in IDX_STEMS:
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(bytes([0, 0, 0x08, 1]) + (1000).to_bytes(4, "big") + b"\0" * 10)
    config = {"experiment": "tiny", "datasets": {"fashion_mnist": {"source": str(folder)}}, "models": ["ae"],
              "latent_sizes": [4], "seeds": [0], "eval": {"ood": {"datasets": []}}, **config}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "1",
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def no_job_and_no_traceback(out: str) -> None:
    assert "rule prepare" not in out and "localrule" not in out, out[-3000:]
    assert "Traceback" not in out and "WorkflowError" not in out, out[-3000:]


@pytest.mark.integration
def test_files_in_the_folders_places_stop_the_workflow_and_its_dry_run(tmp_path):
    (tmp_path / "results").write_text("a file")
    (tmp_path / "logs").write_text("a file")
    for args in (["-n"], []):  # before: snakemake's NotADirectoryError traceback while it built its DAG
        proc = snakemake(tmp_path, {"results_dir": "results/here"}, *args)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-3000:]
        assert ("error: the results folder results/here/tiny (results_dir: results/here) is not writable: cannot "
                "create it: results is a file; the log folder logs (the rules' logs, under the working directory) is "
                "not writable: it exists and is not a folder. Nothing was run") in out, out[-3000:]
        no_job_and_no_traceback(out)


@pytest.mark.integration
@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's /sys, where no one may create a folder: "
                                                           "run `make test` on Linux")
def test_a_folder_that_cannot_be_created_stops_the_run_before_any_job(tmp_path):
    # before: a WorkflowError "Failed to create output directory" once the first job started
    proc = snakemake(tmp_path, {"resources_dir": "/sys/pae-test-resources"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert ("error: the prepared-data folder /sys/pae-test-resources/data (resources_dir: /sys/pae-test-resources) "
            "is not writable: cannot create it: ") in out, out[-3000:]
    no_job_and_no_traceback(out)
    assert not (tmp_path / "logs" / "prepare").exists()  # no job wrote its log


@pytest.mark.integration
def test_too_little_space_for_the_trainings_is_warned_before_the_first_job(tmp_path):
    # hidden = 10^8: the model would have about 10^11 parameters (built on the meta device only); no disk holds
    # four copies. The run goes on (a warning), into its prepare job, which fails on the broken IDX files.
    proc = snakemake(tmp_path, {"train": {"hidden": 100_000_000}})
    out = proc.stdout + proc.stderr
    warning = out.find("warning: only ")
    assert warning >= 0, out[-3000:]
    assert "free on the filesystem of results/tiny, and the jobs about to run may write about " in out, out[-3000:]
    assert "(an estimate: 1 training(s) x 4 x the model's float32 weights" in out, out[-3000:]
    assert 0 <= warning < out.find("localrule prepare"), out[-3000:]

"""pae.io.log_errors: the errors a stage's log holds, which the workflow prints on the terminal when the stage fails."""
from __future__ import annotations

from pae.io import log_errors
from tests.helpers import run_pae


def test_paes_error_records_with_their_continuation_lines(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text("2025-01-31 12:00:00,001 INFO pae.data.sources: fashion_mnist: trying\n"
                   "reading: 100%|####| 4/4\n"
                   "2025-01-31 12:00:01,002 ERROR pae: could not load fashion_mnist from any source:\n"
                   "  - torchvision download: URLError: no network\n"
                   "\n"
                   "2025-01-31 12:00:01,003 WARNING pae.x: later\n"
                   "2025-01-31 12:00:01,004 ERROR other: not pae's\n")
    assert log_errors(log) == ["could not load fashion_mnist from any source:\n"
                               "  - torchvision download: URLError: no network"]


def test_a_traceback_gives_its_last_line_and_a_clean_log_nothing(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                   "    f()\nValueError: bad value\n")
    assert log_errors(log) == ["ValueError: bad value"]
    log.write_text("2025-01-31 12:00:00,001 INFO pae: fine\n")
    assert log_errors(log) == [] and log_errors(tmp_path / "absent.log") == []


def test_only_the_last_attempt_of_an_appended_log_counts(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text("2025-01-31 12:00:00,001 INFO pae: ==== attempt 1 of pae-train-r (launcher slurm) on h at t\n"
                   "2025-01-31 12:00:01,002 ERROR pae: SLURM job 7 (pae-train-r) ended in state NODE_FAIL\n"
                   "2025-01-31 12:01:00,001 INFO pae: ==== attempt 2 of pae-train-r (launcher slurm) on h at t\n"
                   "2025-01-31 12:01:01,002 ERROR pae: SLURM job 8 (pae-train-r) ended in state CANCELLED by 0\n")
    assert log_errors(log) == ["SLURM job 8 (pae-train-r) ended in state CANCELLED by 0"]
    with log.open("a") as f:
        f.write("2025-01-31 12:02:00,001 INFO pae: ==== attempt 1 of pae-train-r (launcher slurm) on h at t\n")
    assert log_errors(log) == []


def test_a_real_stage_log(tmp_path):
    """The format pae's logging writes: a stage failing on a missing folder."""
    proc = run_pae("prepare", "--dataset", "mnist", "--spec", '{"source": "%s"}' % (tmp_path / "nope"),
                   "--out", tmp_path / "out.h5", check=False)
    assert proc.returncode == 1
    (tmp_path / "stage.log").write_text(proc.stderr)
    errors = log_errors(tmp_path / "stage.log")
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'nope'}: not a folder"), proc.stderr


def test_a_slurm_jobs_error_once_and_without_submitits_lines(tmp_path):
    """A SLURM rule's log: the job's own lines (submitit's and srun's among them), then the launcher's summary, which
    quotes the stage's error: the terminal gets the summary alone, without the lines that follow the stage's error."""
    log = tmp_path / "train.log"
    log.write_text("2025-01-31 12:00:00,001 INFO pae: ==== attempt 1 of pae-x (launcher slurm) on vm\n"
                   "2025-01-31 12:00:01,002 ERROR pae: data.h5: not a readable HDF5 file\n"
                   "submitit ERROR (2025-01-31 12:00:01,003) - Submitted job triggered an exception\n"
                   "srun: error: vm: task 0: Exited with exit code 1\n"
                   "2025-01-31 12:00:02,004 ERROR pae: SLURM job 7 (pae-x) ended in state FAILED: data.h5: not a "
                   "readable HDF5 file (its log: 7_0_log.err)\n")
    assert log_errors(log) == ["SLURM job 7 (pae-x) ended in state FAILED: data.h5: not a readable HDF5 file (its "
                               "log: 7_0_log.err)"]

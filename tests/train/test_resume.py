"""A training run killed mid-epoch and rerun resumes from its rolling checkpoint and ends with exactly the weights of
an uninterrupted run with the same seed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pae.io import torch_load

from tests.helpers import run_pae

SPEC = {"model": "ae", "latent_dim": 6, "seed": 3, "arch": "conv", "channels": [16, 32], "hidden": 64, "epochs": 4,
        "batch_size": 50, "lr": 0.002, "weight_decay": 0.0, "precision": "fp32", "channels_last": False}


def _train_args(data, out, spec=SPEC):
    return ["train", "--spec", json.dumps(spec), "--data", data, "--model-out", out / "model.pt",
            "--history-out", out / "history.json", "--checkpoint", out / "ckpt" / "train.pt", "--device", "cpu"]


def _state(path):
    return torch_load(path, "model")["state_dict"]


@pytest.mark.integration
def test_kill_mid_epoch_then_resume_gives_identical_weights(mnist_5k_h5, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pae(*_train_args(mnist_5k_h5, ref))

    ckpt = killed / "ckpt" / "train.pt"
    proc = subprocess.Popen([sys.executable, "-m", "pae", *map(str, _train_args(mnist_5k_h5, killed))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not ckpt.exists():
            assert proc.poll() is None, "training ended before writing its first checkpoint"
            assert time.time() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        epoch_seconds = torch_load(ckpt, "checkpoint")["history"][0]["seconds"]
        time.sleep(epoch_seconds / 2)  # half-way through the second epoch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.pt").exists(), "the run finished before it could be killed"
    at = torch_load(ckpt, "checkpoint")["epoch"]
    assert 1 <= at < SPEC["epochs"]

    resumed = run_pae(*_train_args(mnist_5k_h5, killed))
    assert f"resuming from {ckpt} at epoch {at}/{SPEC['epochs']}" in resumed.stderr
    assert not ckpt.exists(), "the rolling checkpoint is removed once the final model is written"

    a, b = _state(ref / "model.pt"), _state(killed / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    ha = json.loads((ref / "history.json").read_text())["epochs"]
    hb = json.loads((killed / "history.json").read_text())["epochs"]
    assert [h["step_losses"] for h in ha] == [h["step_losses"] for h in hb]


def test_checkpoint_of_another_spec_is_not_resumed(synthetic_h5, tmp_path):
    spec = {**SPEC, "epochs": 1, "batch_size": 20}
    out = tmp_path / "run"
    from pae.train import checkpoint
    checkpoint.save(out / "ckpt" / "train.pt", identity={**spec, "latent_dim": 3}, epoch=1)
    proc = run_pae(*_train_args(synthetic_h5, out, spec))
    assert "belongs to another training spec; starting from scratch" in proc.stderr
    assert "resuming" not in proc.stderr
    assert (out / "model.pt").exists()


def test_unreadable_checkpoint_is_ignored_with_a_warning(synthetic_h5, tmp_path):
    spec = {**SPEC, "epochs": 1, "batch_size": 20}
    out = tmp_path / "run"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "train.pt").write_bytes(b"PK\x03\x04 truncated")
    proc = run_pae(*_train_args(synthetic_h5, out, spec))
    assert "ignoring unreadable checkpoint" in proc.stderr
    assert (out / "model.pt").exists()

"""A training run killed mid-epoch and rerun resumes from its rolling checkpoint and ends with exactly the weights of
an uninterrupted run with the same seed."""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pae.io import torch_load

from tests.helpers import TRAIN_SPEC, run_pae


def _train_args(data, out, spec=TRAIN_SPEC):
    return ["train", "--spec", json.dumps(spec), "--data", data, "--model-out", out / "model.pt",
            "--history-out", out / "history.json", "--checkpoint", out / "ckpt" / "train.pt", "--device", "cpu"]


def _state(path):
    return torch_load(path, "model")["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(mnist_5k_h5, tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref")
    run_pae(*_train_args(mnist_5k_h5, ref))
    return ref


def _assert_same_run(ref, other):
    a, b = _state(ref / "model.pt"), _state(other / "model.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    ha = json.loads((ref / "history.json").read_text())["epochs"]
    hb = json.loads((other / "history.json").read_text())["epochs"]
    assert [h["step_losses"] for h in ha] == [h["step_losses"] for h in hb]


def _start_and_wait_for_first_checkpoint(data, out):
    """Start training in a subprocess; return it half-way through its second epoch."""
    ckpt = out / "ckpt" / "train.pt"
    proc = subprocess.Popen([sys.executable, "-m", "pae", *map(str, _train_args(data, out))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not ckpt.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"no checkpoint written: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    epoch_seconds = torch_load(ckpt, "checkpoint")["history"][0]["seconds"]
    time.sleep(epoch_seconds / 2)
    return proc, ckpt


@pytest.mark.integration
def test_kill_mid_epoch_then_resume_gives_identical_weights(mnist_5k_h5, uninterrupted, tmp_path):
    """SIGKILL: nothing can be saved; the rerun resumes from the last end-of-epoch checkpoint."""
    ref, killed = uninterrupted, tmp_path / "killed"

    proc, ckpt = _start_and_wait_for_first_checkpoint(mnist_5k_h5, killed)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.pt").exists(), "the run finished before it could be killed"
    at = torch_load(ckpt, "checkpoint")["epoch"]
    assert 1 <= at < TRAIN_SPEC["epochs"]

    resumed = run_pae(*_train_args(mnist_5k_h5, killed))
    assert f"resuming from {ckpt} at epoch {at + 1}/{TRAIN_SPEC['epochs']}, batch 0/" in resumed.stderr
    assert not ckpt.exists(), "the rolling checkpoint is removed once the final model is written"

    _assert_same_run(ref, killed)


@pytest.mark.integration
def test_sigterm_mid_epoch_checkpoints_at_a_step_and_resumes_identically(mnist_5k_h5, uninterrupted, tmp_path):
    """SIGTERM (or SLURM's USR2): the run saves its exact mid-epoch position at the next step and stops."""
    out = tmp_path / "stopped"
    proc, ckpt = _start_and_wait_for_first_checkpoint(mnist_5k_h5, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    stop = re.search(r"stopped by SIGTERM at (epoch 2/\d+, batch \d+/\d+)", err)
    assert stop, err[-2000:]
    state = torch_load(ckpt, "checkpoint")
    assert state["epoch"] == 1 and 0 < state["batch"] < 3500 // TRAIN_SPEC["batch_size"]
    assert len(state["partial"]["losses"]) == state["batch"]

    resumed = run_pae(*_train_args(mnist_5k_h5, out))
    # the resume names the position as the stop did
    assert f"resuming from {ckpt} at {stop.group(1)}" in resumed.stderr
    assert stop.group(1).startswith(f"epoch 2/{TRAIN_SPEC['epochs']}, batch {state['batch']}/")
    _assert_same_run(uninterrupted, out)


def test_checkpoint_of_another_spec_is_not_resumed(synthetic_h5, tmp_path):
    spec = {**TRAIN_SPEC, "epochs": 1, "batch_size": 20}
    out = tmp_path / "run"
    from pae.train import checkpoint
    checkpoint.save(out / "ckpt" / "train.pt", identity={**spec, "latent_dim": 3}, epoch=1)
    proc = run_pae(*_train_args(synthetic_h5, out, spec))
    assert "belongs to another training spec; starting from scratch" in proc.stderr
    assert "resuming" not in proc.stderr
    assert (out / "model.pt").exists()


def test_unreadable_checkpoint_is_ignored_with_a_warning(synthetic_h5, tmp_path):
    spec = {**TRAIN_SPEC, "epochs": 1, "batch_size": 20}
    out = tmp_path / "run"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "train.pt").write_bytes(b"PK\x03\x04 truncated")
    proc = run_pae(*_train_args(synthetic_h5, out, spec))
    assert "ignoring unreadable checkpoint" in proc.stderr
    assert (out / "model.pt").exists()


def test_a_stop_at_an_epochs_end_names_the_position_its_resume_starts_from(synthetic_h5, tmp_path, monkeypatch,
                                                                           caplog):
    """A stop seen by the look after an epoch (not mid-epoch) is reported in the one convention of stop and resume
    messages: 'at epoch 2/3, batch 0/N', the position the rerun then says it resumes from."""
    from pae.data.store import open_dataset
    from pae.train import interrupt
    from pae.train.distributed import DistInfo
    from pae.train.loop import TrainSpec, train

    spec = TrainSpec.from_dict({**TRAIN_SPEC, "epochs": 3, "batch_size": 20})
    data = open_dataset(synthetic_h5)
    batches = len(data.split("train")[0]) // 20
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    out = tmp_path / "run"
    looks = {"n": 0}

    def stop_after_the_first_epoch(synchronise=False):
        # one look after each step but an epoch's last, then one after the epoch: the first epoch's last look
        looks["n"] += 1
        return signal.SIGTERM if looks["n"] == batches else 0

    monkeypatch.setattr(interrupt, "requested", stop_after_the_first_epoch)
    with pytest.raises(interrupt.Interrupted, match=rf"stopped by SIGTERM at epoch 2/3, batch 0/{batches};"):
        train(spec, data, out / "model.pt", out / "history.json", out / "ckpt.pt", info)
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="pae"):
        train(spec, data, out / "model.pt", out / "history.json", out / "ckpt.pt", info)
    assert f"resuming from {out / 'ckpt.pt'} at epoch 2/3, batch 0/{batches}" in caplog.text

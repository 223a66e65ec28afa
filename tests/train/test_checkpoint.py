"""The training checkpoint holds only tensors and plain data (it loads with weights_only=True) and restores every
random stream of the process."""
from __future__ import annotations

import random

import numpy as np
import torch

import pytest

from pae.io import PaeError, torch_load
from pae.train import checkpoint


def _draws():
    return random.random(), random.gauss(0, 1), np.random.randn(3).tolist(), torch.rand(2).tolist()


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1)
    random.gauss(0, 1)  # Python keeps the second Gaussian of a pair: part of the state
    np.random.seed(2)
    np.random.randn(1)  # numpy likewise (has_gauss, gauss)
    torch.manual_seed(3)
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, epoch=1, rng=[checkpoint.rng_state()])
    expected = _draws()
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    checkpoint.set_rng_state(torch_load(path, "checkpoint")["rng"][0])  # torch.load(weights_only=True)
    assert _draws() == expected


def test_an_old_checkpoint_with_pickled_numpy_state_is_ignored_not_run(tmp_path, caplog):
    """A checkpoint of an older pae (numpy's state as a pickled ndarray) is refused by the weights-only loader;
    training starts from scratch with a warning naming the file."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"kind": "checkpoint", "identity": {}, "epoch": 1, "rng": [{"numpy": np.random.get_state()}]}, path)
    assert checkpoint.load_compatible(path, {}, 5) is None
    assert str(path) in caplog.text and "refused" in caplog.text


def test_a_second_training_of_the_same_checkpoint_fails_at_once(tmp_path):
    """The lock is an flock of an open file: a second holder (another process, or another open file here) is
    refused with the first one named; the lock file goes with the checkpoint."""
    path = tmp_path / "checkpoint" / "train.pt"
    with checkpoint.exclusive(path):
        assert "pid" in path.with_name("train.pt.lock").read_text()
        with pytest.raises(PaeError, match=r"train.pt is being written by another training \(host .*, pid \d+"):
            with checkpoint.exclusive(path):
                pass
        checkpoint.save(path, epoch=1)
    assert path.with_name("train.pt.lock").exists()  # the checkpoint is kept, and so is its lock file
    with checkpoint.exclusive(path):  # released: the next training takes it
        checkpoint.remove(path)
    assert not path.parent.exists()  # checkpoint, lock file and folder gone once the model is written


def test_a_checkpoint_written_before_a_setting_existed_resumes_when_the_setting_is_at_its_default(tmp_path):
    """Its spec lacks the key: it trained with the behaviour the key's default names. Any other value is another
    training."""
    path = tmp_path / "train.pt"
    checkpoint.save(path, identity={"lr": 0.1, "vad": {"infer_steps": 3}}, epoch=1)
    defaults = {"lr": 0.001, "epochs": 10, "kl_weight": 1.0, "vad": {"infer_steps": 300, "init_std": None}}
    now = {"lr": 0.1, "kl_weight": 1.0, "vad": {"infer_steps": 3, "init_std": None}}
    assert checkpoint.load_compatible(path, now, 5, defaults=defaults)["epoch"] == 1
    for other in ({**now, "kl_weight": 0.0}, {**now, "vad": {"infer_steps": 3, "init_std": 0.001}}):
        assert checkpoint.load_compatible(path, other, 5, defaults=defaults) is None
    assert checkpoint.load_compatible(path, now, 5) is None  # without the defaults: the keys differ

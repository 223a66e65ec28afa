"""Two gloo DDP processes (torchrun) with global batch B follow the same loss curve as one process with batch B."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import DDP_RTOL, DDP_RTOL_FIRST, run_pae

SPEC = {"model": "ae", "latent_dim": 8, "seed": 1, "arch": "conv", "channels": [16, 32], "hidden": 64, "epochs": 2,
        "batch_size": 64, "lr": 0.001, "weight_decay": 0.0, "precision": "fp32", "channels_last": False}


def _args(data, out):
    return ["train", "--spec", json.dumps(SPEC), "--data", str(data), "--model-out", str(out / "model.pt"),
            "--history-out", str(out / "history.json"), "--checkpoint", str(out / "ckpt.pt"), "--device", "cpu"]


def _curve(out):
    hist = json.loads((out / "history.json").read_text())
    return (np.concatenate([h["step_losses"] for h in hist["epochs"]]), [h["val_mse"] for h in hist["epochs"]],
            hist["meta"]["world_size"])


@pytest.mark.integration
def test_two_process_gloo_ddp_matches_one_process(mnist_5k_h5, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_pae(*_args(mnist_5k_h5, one))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "pae", *_args(mnist_5k_h5, two)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "backend gloo" in proc.stderr

    steps1, val1, w1 = _curve(one)
    steps2, val2, w2 = _curve(two)
    assert (w1, w2) == (1, 2)
    assert len(steps1) == len(steps2) == SPEC["epochs"] * (3500 // SPEC["batch_size"])
    rel = np.abs(steps1 - steps2) / np.abs(steps1)
    print(f"max relative difference of per-step losses: {rel.max():.2e} (first step {rel[0]:.2e})")
    np.testing.assert_allclose(steps2[:10], steps1[:10], rtol=DDP_RTOL_FIRST)
    np.testing.assert_allclose(steps2, steps1, rtol=DDP_RTOL)
    np.testing.assert_allclose(val2, val1, rtol=DDP_RTOL)
    assert steps1[-1] < 0.5 * steps1[0], "the loss curve compared must actually descend"

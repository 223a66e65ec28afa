"""A training that diverges stops the run (train.divergence_factor): non-finite values, a validation MSE far above
its lowest (a mid-grey image's before the first epoch), a training loss (ELBOs in nats too, which can be negative)
far above its lowest. The train stage then fails with exit code 1 and writes no model."""
from __future__ import annotations

import json
import math

import pytest
import torch

from pae.stages import run_stage
from pae.data.store import open_dataset
from pae.io import PaeError
from pae.train.distributed import DistInfo
from pae.train.loop import TrainSpec, divergence, grey_mse, train

SPEC = {"model": "ae", "latent_dim": 3, "seed": 0, "channels": [4, 8], "hidden": 16, "epochs": 4, "batch_size": 20,
        "lr": 0.01}
ONE = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def _train(tmp_path, data, **spec):
    out = tmp_path / "run"
    return train(TrainSpec.from_dict({**SPEC, **spec}), open_dataset(data), out / "model.pt", out / "history.json",
                 out / "ckpt.pt", ONE)


def test_an_absurd_learning_rate_stops_the_training(tmp_path, synthetic_h5):
    # lr 10 reaches a finite validation MSE of ~4e25 after one epoch here (2.7e33 on Fashion-MNIST)
    with pytest.raises(PaeError) as e:
        _train(tmp_path, synthetic_h5, lr=10.0)
    msg = str(e.value)
    assert "train: the training diverged at epoch 1/4: validation MSE" in msg
    value = float(msg.split("validation MSE ")[1].split()[0])
    assert math.isfinite(value) and value > 1e10
    assert "train.divergence_factor = 100" in msg and "Lower train.lr (now 10)" in msg
    assert not (tmp_path / "run" / "model.pt").exists() and not (tmp_path / "run" / "history.json").exists()


def test_a_vad_that_diverges_is_stopped_by_its_training_loss(tmp_path, synthetic_h5):
    """The VAD validates only at its last epoch: its ELBO (nats) is what stops it."""
    vad = {"infer_steps": 5, "infer_lr": 0.05, "latent_lr": 0.05}
    with pytest.raises(PaeError, match=r"diverged at epoch 1/4: mean training loss [0-9.e+]+ is more than "
                                       r"\(train.divergence_factor - 1\)"):
        _train(tmp_path, synthetic_h5, model="vad", vad=vad, lr=10.0)


def test_a_normal_training_is_not_stopped(tmp_path, synthetic_h5):
    for model in ("ae", "vae"):
        history = _train(tmp_path / model, synthetic_h5, model=model)
        assert len(history) == 4 and (tmp_path / model / "run" / "model.pt").exists()
        assert history[-1]["val_mse"] < history[0]["val_mse"]


def test_divergence_factor_null_stops_on_non_finite_values_only(tmp_path, synthetic_h5):
    history = _train(tmp_path, synthetic_h5, lr=10.0, epochs=2, divergence_factor=None)
    assert history[-1]["val_mse"] > 1e10  # finite nonsense, let through on request
    assert divergence(None, [1.0, math.nan], 0.1, [], 0.2) == "a non-finite training loss nan"
    assert divergence(None, [1.0], math.inf, [], 0.2) == "a non-finite validation MSE inf"


def _epoch(train_loss, val_mse, first=None):
    return {"train_loss": train_loss, "val_mse": val_mse, "step_losses": [first if first is not None else train_loss]}


def test_the_rules():
    # validation MSE: factor x the lowest so far, the mid-grey image's before any epoch
    assert divergence(100, [0.1], 19.0, [], 0.2) is None
    assert "more than train.divergence_factor = 100 times a mid-grey image's (0.2)" in \
        divergence(100, [0.1], 21.0, [], 0.2)
    history = [_epoch(0.05, 0.04, first=0.2), _epoch(0.02, 0.01)]
    assert divergence(100, [0.03], 0.9, history, 0.2) is None  # noise, even large, is not a divergence
    assert "times the lowest so far (0.01)" in divergence(100, [0.03], 1.5, history, 0.2)
    # training loss in nats, negative: the ELBO of a Gaussian likelihood (first step 7,000, then -800, -900)
    elbo = [_epoch(-800.0, None, first=7000.0), _epoch(-900.0, None)]
    assert divergence(100, [-850.0], None, elbo, 0.2) is None
    assert divergence(100, [5000.0], None, elbo, 0.2) is None  # back near its start: bad, not diverged
    why = divergence(100, [1e6], None, elbo, 0.2)
    assert "mean training loss 1e+06 is more than (train.divergence_factor - 1) x 7000 above the lowest so far " \
           "(-900" in why
    # a negative start (a learned likelihood) and losses around zero
    neg = [_epoch(-50.0, None, first=-10.0), _epoch(-60.0, None)]
    assert divergence(10, [-5.0], None, neg, 0.2) is None
    assert divergence(10, [500.0], None, neg, 0.2) is not None  # 560 above -60, more than 9 x 60


def test_grey_mse_is_the_mse_of_a_zero_reconstruction():
    images = torch.randint(0, 256, (5, 1, 7, 7), dtype=torch.uint8)
    expected = (images.double() / 255 - 0.5).pow(2).mean().item()
    # the same sum in another order (counts x squares): float64 rounding
    assert grey_mse(images) == pytest.approx(expected, rel=1e-12)


def test_the_train_stage_fails_with_exit_code_1(tmp_path, synthetic_h5, capfd):
    spec = {**TrainSpec.from_dict({**SPEC, "lr": 10.0, "epochs": 2}).__dict__}
    spec["channels"] = list(spec["channels"])
    out = tmp_path / "run"
    rc = run_stage(["train", "--spec", json.dumps(spec), "--data", str(synthetic_h5), "--model-out",
                    str(out / "model.pt"), "--history-out", str(out / "history.json"), "--checkpoint",
                    str(out / "ckpt.pt"), "--device", "cpu"])
    assert rc == 1
    assert "ERROR pae: train: the training diverged at epoch 1/2" in capfd.readouterr().err
    assert not (out / "model.pt").exists()


def test_changing_the_factor_keeps_the_checkpoint_resumable():
    a = TrainSpec.from_dict(SPEC)
    b = TrainSpec.from_dict({**SPEC, "divergence_factor": 1000})
    assert a.identity() == b.identity()

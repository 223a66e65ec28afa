"""Training settings of the PAE authors' recipe: the learning-rate step decay (train.lr_drop), rolling checkpoints at
an interval (train.checkpoint_every_s), and dropout only where the architecture has it."""
from __future__ import annotations

import pytest
import torch

from pae.data.store import open_dataset
from pae.io import PaeError
from pae.models import ModelSpec, build_model
from pae.train import checkpoint
from pae.train.distributed import DistInfo
from pae.train.loop import TrainSpec, train

SPEC = {"model": "ae", "latent_dim": 3, "seed": 0, "arch": "infogan", "channels": [4, 8], "hidden": 16, "epochs": 5,
        "batch_size": 20, "lr": 0.01, "dropout": 0.25}
ONE = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def test_lr_drop_applies_from_its_epoch_on():
    spec = TrainSpec.from_dict({**SPEC, "epochs": 10, "lr_drop": {"at": 0.8, "factor": 0.1}})
    assert [spec.lr_factor(e) for e in range(10)] == [1.0] * 8 + [0.1] * 2
    assert TrainSpec.from_dict(SPEC).lr_factor(4) == 1.0  # null: constant


def _train(tmp_path, data, **spec):
    out = tmp_path / "run"
    return train(TrainSpec.from_dict({**SPEC, **spec}), open_dataset(data), out / "model.pt", out / "history.json",
                 out / "ckpt.pt", ONE)


def test_the_optimiser_follows_the_schedule(tmp_path, synthetic_h5):
    history = _train(tmp_path, synthetic_h5, lr_drop={"at": 0.6, "factor": 0.5})
    assert [h["lr"] for h in history] == [0.01, 0.01, 0.01, 0.005, 0.005]


def test_checkpoints_are_written_at_the_interval(tmp_path, synthetic_h5, monkeypatch):
    saved = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, **f: saved.append(f["epoch"]) or real_save(path, **f))
    _train(tmp_path, synthetic_h5, epochs=3)
    assert saved == [1, 2, 3]  # 0 s: after every epoch
    saved.clear()
    _train(tmp_path / "b", synthetic_h5, epochs=3, checkpoint_every_s=3600)
    assert saved == []  # none due within the hour; the final model is written all the same
    assert (tmp_path / "b" / "run" / "model.pt").exists()


def test_dropout_needs_an_architecture_that_has_it():
    with pytest.raises(PaeError, match=r"train.dropout=0.25: architecture 'conv' has no dropout layers .*infogan"):
        build_model(ModelSpec("ae", "conv", (1, 28, 28), 3, (4, 8), 16, dropout=0.25))
    model = build_model(ModelSpec("ae", "infogan", (1, 28, 28), 3, (4, 8), 16, dropout=0.25))
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.25}


def test_a_config_with_dropout_on_an_architecture_without_it_is_refused_before_any_job():
    from pae.config import resolve, runs
    config = {"datasets": {"fashion_mnist": {}}, "train": {"arch": "infogan", "dropout": 0.25},
              "grid": [{"datasets": ["fashion_mnist"]},
                       {"datasets": ["fashion_mnist"], "latent_sizes": [3], "train": {"arch": "conv"}}]}
    with pytest.raises(PaeError, match=r"grid\[1\]: train.dropout=0.25, but train.arch='conv' has no dropout"):
        runs(resolve(config))


def test_a_fixed_posterior_variance_on_a_full_covariance_is_refused_before_any_job():
    from pae.config import resolve, runs
    config = {"datasets": {"mnist": {}}, "models": ["vae"],
              "grid": [{"datasets": ["mnist"], "train": {"posterior": "full", "posterior_logvar": -14}}]}
    with pytest.raises(PaeError, match=r"grid\[0\]: train.posterior_logvar=-14 fixes a diagonal posterior's "
                                       r"variance, but train.posterior='full'"):
        runs(resolve(config))

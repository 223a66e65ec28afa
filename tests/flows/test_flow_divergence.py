"""A flow fit that diverges stops the run (flow.divergence_nats): a non-finite log-likelihood, or one far below the
best so far (the untrained flow's before the first epoch). The fit_flow stage then fails and writes no flow."""
from __future__ import annotations

import json
import math

import pytest
import torch

from pae.stages import run_stage
from pae.data.latents import write_latents
from pae.flows.latent_flow import FlowSpec, divergence, fit_flow
from pae.io import PaeError

SPEC = FlowSpec(kind="nsf", layers=2, hidden=16, blocks=1, bins=4, tail_bound=4.0, epochs=6, patience=3,
                batch_size=128, lr=5e-3, seed=0)


def latents(n: int, dim: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g) * torch.linspace(0.5, 3.0, dim) + torch.sin(torch.randn(n, dim, generator=g))


def test_a_huge_learning_rate_stops_the_fit():
    # nsf at lr 1e6: a finite validation log p of -48 after one epoch against -8.9 untrained (normal fits: -8.5)
    with pytest.raises(PaeError) as e:
        fit_flow(FlowSpec(**{**SPEC.__dict__, "lr": 1e6}), latents(2000), latents(1000, seed=1))
    msg = str(e.value)
    assert "fit_flow: the flow diverged at epoch 1/6: mean validation log p(z)" in msg
    value = float(msg.split("log p(z) ")[1].split()[0])
    assert math.isfinite(value) and value < -30
    assert "flow.divergence_nats = 5 x the latent size 4 = 20" in msg and "Lower flow.lr (now 1e+06)" in msg


@pytest.mark.parametrize("kind", ["maf", "hybrid"])
def test_a_non_finite_fit_stops_instead_of_keeping_an_earlier_state(kind):
    with pytest.raises(PaeError, match=r"diverged at epoch 1/6: a non-finite log-likelihood .* Lower flow.lr"):
        fit_flow(FlowSpec(**{**SPEC.__dict__, "kind": kind, "lr": 1e6}), latents(2000), latents(1000, seed=1))


def test_a_normal_fit_is_not_stopped():
    flow, history = fit_flow(SPEC, latents(2000), latents(1000, seed=1))
    assert len(history) == SPEC.epochs and history[-1]["val_logp"] > history[0]["val_logp"]


def test_divergence_nats_null_stops_on_non_finite_values_only():
    flow, history = fit_flow(FlowSpec(**{**SPEC.__dict__, "lr": 1e6, "divergence_nats": None, "epochs": 2}),
                             latents(2000), latents(1000, seed=1))
    assert history[0]["val_logp"] < -30  # finite nonsense, let through on request
    assert divergence(None, 4, math.nan, -5.0, [], -9.0).startswith("a non-finite log-likelihood")


def test_the_rules():
    history = [{"train_logp": -8.6, "val_logp": -8.55}, {"train_logp": -8.5, "val_logp": -8.5}]
    assert divergence(5, 4, -8.4, -8.9, history, -8.9) is None  # early stopping's kind of loss
    assert divergence(5, 4, -8.4, -28.4, history, -8.9) is None  # 19.9 nats below the best: within 5 x 4
    why = divergence(5, 4, -8.4, -28.6, history, -8.9)
    assert "mean validation log p(z) -28.6 is 20.1 nats below the best so far (-8.5)" in why
    assert "mean training log p(z) -40" in divergence(5, 4, -40.0, -8.5, history, -8.9)
    assert "below the untrained flow's (-8.9)" in divergence(5, 4, -8.0, -50.0, [], -8.9)


def test_the_fit_flow_stage_writes_no_flow(tmp_path, capfd):
    path = tmp_path / "latents.h5"
    write_latents(path, {name: {"z": latents(n, seed=i), "labels": torch.zeros(n, dtype=torch.long)}
                         for i, (name, n) in enumerate([("train", 2000), ("val", 1000), ("test", 100)])}, {})
    spec = {**SPEC.__dict__, "lr": 1e6}
    rc = run_stage(["fit_flow", "--spec", json.dumps(spec), "--latents", str(path), "--out", str(tmp_path / "flow.pt"),
                    "--history-out", str(tmp_path / "history.json"), "--device", "cpu"])
    assert rc == 1 and "ERROR pae: fit_flow: the flow diverged at epoch 1/6" in capfd.readouterr().err
    assert not (tmp_path / "flow.pt").exists() and not (tmp_path / "history.json").exists()

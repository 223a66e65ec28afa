"""train.cuda_graph: the training step replayed as one CUDA graph follows the eager loop (same weights and losses up to
round-off, the learning-rate drop included), resumes exactly, and is a no-op elsewhere. The CUDA tests run where a
GPU is (they are skipped on a CPU-only machine)."""
from __future__ import annotations

import logging

import pytest
import torch

from pae.data.store import open_dataset
from pae.io import PaeError, torch_load
from pae.train import interrupt
from pae.train.distributed import DistInfo
from pae.train.loop import TrainSpec, train

SPEC = {"model": "ae", "latent_dim": 3, "seed": 0, "arch": "infogan", "channels": [4, 8], "hidden": 16, "epochs": 4,
        "batch_size": 20, "lr": 0.01, "dropout": 0.25, "lr_drop": {"at": 0.5, "factor": 0.1}}
cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA device: `make test` on a machine with an NVIDIA GPU runs it")


def _info(device: str) -> DistInfo:
    return DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device(device))


def _train(out, data, device="cpu", **spec):
    history = train(TrainSpec.from_dict({**SPEC, **spec}), open_dataset(data), out / "model.pt",
                    out / "history.json", out / "ckpt.pt", _info(device))
    return history, torch_load(out / "model.pt", "model")["state_dict"]


def test_cuda_graph_is_not_part_of_a_checkpoints_identity():
    assert TrainSpec.from_dict({**SPEC, "cuda_graph": True}).identity() == TrainSpec.from_dict(SPEC).identity()


def test_on_a_cpu_the_steps_run_eagerly(tmp_path, synthetic_h5, caplog):
    with caplog.at_level(logging.INFO, logger="pae.train.loop"):
        history, weights = _train(tmp_path / "graph", synthetic_h5, cuda_graph=True)
    assert "train.cuda_graph applies on CUDA devices; on cpu the steps run eagerly" in caplog.text
    ref_history, ref = _train(tmp_path / "eager", synthetic_h5)
    assert [h["step_losses"] for h in history] == [h["step_losses"] for h in ref_history]
    assert all(torch.equal(weights[k], ref[k]) for k in ref)


def _relative_difference(a: dict, b: dict) -> float:
    num = sum((a[k].double() - b[k].double()).pow(2).sum() for k in a if a[k].is_floating_point())
    den = sum(b[k].double().pow(2).sum() for k in b if b[k].is_floating_point())
    return (num / den).sqrt().item()


@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_replay_follows_the_eager_loop(tmp_path, synthetic_h5, precision):
    """The graph launches the kernels the eager step launches, dropout's random numbers included; only the choice of
    kernels may differ, in the last bits. Round-off of float32 (bf16: its 8-bit mantissa, 4e-3) grows through
    Adam's updates over the 20 steps here to at most a few hundred units of it, so the weights must agree to 1e-4
    (bf16: 5e-2) in relative norm and the losses to the same relative tolerance; a wrong random stream, a missed
    learning-rate drop or a step replayed twice misses by orders of magnitude more."""
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    rtol = 1e-4 if precision == "fp32" else 5e-2
    eager_history, eager = _train(tmp_path / "eager", synthetic_h5, "cuda", precision=precision)
    graph_history, graph = _train(tmp_path / "graph", synthetic_h5, "cuda", precision=precision, cuda_graph=True)
    assert [h["lr"] for h in graph_history] == [h["lr"] for h in eager_history] == [0.01, 0.01, 0.001, 0.001]
    for he, hg in zip(eager_history, graph_history):
        assert hg["step_losses"] == pytest.approx(he["step_losses"], rel=rtol)
    assert _relative_difference(graph, eager) < rtol


@cuda
def test_a_graph_run_stopped_mid_epoch_resumes_exactly(tmp_path, synthetic_h5, monkeypatch):
    """The capture's warm-up steps are undone (weights, Adam's state, the RNG), so a run resumed from its checkpoint
    replays the same steps as an uninterrupted one, bit for bit (the same kernels on the same GPU)."""
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    ref_history, ref = _train(tmp_path / "ref", synthetic_h5, "cuda", cuda_graph=True)
    calls = {"n": 0}

    def stop_at_step_9(synchronise=False):
        calls["n"] += 1
        # the loop looks after each step but an epoch's last, and after the epoch: the 9th look follows step 4 of
        # epoch 2's 5
        return 2 if calls["n"] == 9 else 0

    monkeypatch.setattr(interrupt, "requested", stop_at_step_9)
    with pytest.raises(interrupt.Interrupted):
        _train(tmp_path / "run", synthetic_h5, "cuda", cuda_graph=True)
    monkeypatch.undo()
    history, weights = _train(tmp_path / "run", synthetic_h5, "cuda", cuda_graph=True)
    assert [h["step_losses"] for h in history] == [h["step_losses"] for h in ref_history]
    assert all(torch.equal(weights[k], ref[k]) for k in ref)


@cuda
def test_ddp_with_a_cuda_graph_is_refused(tmp_path, synthetic_h5):
    info = DistInfo(rank=0, local_rank=0, world_size=2, device=torch.device("cuda"))
    with pytest.raises(PaeError, match="train.cuda_graph: true runs in one process; this training has 2 ranks"):
        train(TrainSpec.from_dict({**SPEC, "cuda_graph": True}), open_dataset(synthetic_h5), tmp_path / "m.pt",
              tmp_path / "h.json", tmp_path / "c.pt", info)

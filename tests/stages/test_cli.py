"""The stage entry point: stages given bad inputs exit 1 with a message naming the file and leave no output behind;
every stage runs with subnormal floats flushed to zero."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import torch

from pae.stages import run_stage
from tests.helpers import TRAIN_SPEC, run_pae


def test_prepare_from_a_folder_missing_files(tmp_path):
    (tmp_path / "idx").mkdir()
    proc = run_pae("prepare", "--dataset", "fashion_mnist", "--spec", json.dumps({"source": str(tmp_path / "idx"),
                   "val_size": 10, "split_seed": 0}), "--out", tmp_path / "d.h5", check=False)
    assert proc.returncode == 1
    assert "missing train-images-idx3-ubyte" in proc.stderr and str(tmp_path / "idx") in proc.stderr
    assert not (tmp_path / "d.h5").exists()


def test_train_on_a_truncated_dataset(synthetic_h5, tmp_path):
    data = synthetic_h5.read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "model"
    proc = run_pae("train", "--spec", json.dumps(TRAIN_SPEC), "--data", bad, "--model-out", out / "model.pt",
                   "--history-out", out / "history.json", "--checkpoint", out / "ckpt.pt", "--device", "cpu",
                   check=False)
    assert proc.returncode == 1 and str(bad) in proc.stderr and "rerun prepare" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_encode_with_a_foreign_model_file(synthetic_h5, tmp_path):
    foreign = tmp_path / "model.pt"
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = [1]
    foreign.write_bytes((tmp_path / "x.h5").read_bytes())
    proc = run_pae("encode", "--model", foreign, "--data", synthetic_h5, "--out", tmp_path / "lat.h5",
                   "--device", "cpu", check=False)
    assert proc.returncode == 1 and "cannot read model" in proc.stderr and str(foreign) in proc.stderr
    assert not (tmp_path / "lat.h5").exists()


def test_bad_spec_json_is_rejected_by_the_parser(tmp_path):
    proc = run_pae("fit_flow", "--spec", "{layers: 2", "--latents", tmp_path / "l.h5", "--out", tmp_path / "f.pt",
                   "--history-out", tmp_path / "h.json", check=False)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


def test_a_stage_flushes_subnormal_floats():
    """A VAD's Adam moments for the latents outside the batch decay by beta1 per step through the subnormal range,
    where x86 arithmetic is many times slower (bench/subnormals.py); in a stage process they go straight to zero."""
    before = torch.tensor([1e-39]) * 1.0
    try:
        assert run_stage(["check-config", str(Path(__file__).parents[2] / "configs" / "demo.yaml")]) == 0
        latent = torch.nn.Parameter(torch.ones(4))
        opt = torch.optim.Adam([latent], lr=1e-3)
        latent.grad = torch.ones(4)
        opt.step()
        latent.grad = torch.zeros(4)
        for _ in range(900):  # 0.1 * 0.9^k falls below float32's smallest normal (1.2e-38) at k ~ 810
            opt.step()
        moment = opt.state[latent]["exp_avg"]
        assert torch.all(moment == 0), moment
    finally:
        torch.set_flush_denormal(bool(before.item() == 0))

"""The encode stage of a run trained with missing pixels: its train and val images are encoded with their masks (the
data it had), its test images whole."""
from __future__ import annotations

import torch

from pae.data.latents import read_latents
from pae.models import ModelSpec, build_model, save_model
from pae.stages.encode import encode


def test_missing_pixels_change_train_and_val_latents_only(tmp_path, synthetic_h5):
    spec = ModelSpec("ae", "conv", (1, 28, 28), 4, (4, 8), 16)
    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", build_model(spec), spec, {})
    encode(tmp_path / "model.pt", synthetic_h5, tmp_path / "whole.h5", "cpu")
    encode(tmp_path / "model.pt", synthetic_h5, tmp_path / "masked.h5", "cpu", {"ratio": 0.5, "mode": "fixed"}, 3)
    encode(tmp_path / "model.pt", synthetic_h5, tmp_path / "again.h5", "cpu", {"ratio": 0.5, "mode": "fixed"}, 3)
    for split in ("train", "val"):
        whole, masked = read_latents(tmp_path / "whole.h5", split)[0], read_latents(tmp_path / "masked.h5", split)[0]
        assert not torch.allclose(whole, masked)  # masking moves latents by O(0.01-0.1), far beyond the default 1e-5
        assert torch.equal(masked, read_latents(tmp_path / "again.h5", split)[0])  # the masks are a function of seed
    assert torch.equal(read_latents(tmp_path / "whole.h5", "test")[0], read_latents(tmp_path / "masked.h5", "test")[0])

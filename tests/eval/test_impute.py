"""Missing-data imputation: masks, the missing-pixel MSE, each model's methods, a linear model whose missing pixels the
PAE's MAP recovers exactly, and the impute stage (mismatched sweep over ratios, matched at the training ratio)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pae.data.loader import to_float
from pae.eval.impute import impute_sweep, methods_for, missing_mse, imputation_masks
from pae.models import ModelSpec, build_model
from pae.stages.impute import impute
from tests.helpers import write_run_files

SPEC = {"ratios": [0.3, 0.7], "modes": ["fixed"], "matched": False, "n_images": 10, "restarts": 2, "map_steps": 20,
        "map_lr": 0.05, "seed": 0}


def test_masks_have_the_ratio_are_deterministic_and_never_empty():
    items = torch.arange(400)
    mask = imputation_masks(0, items, (28, 28), 0.7)
    assert mask.shape == (400, 1, 28, 28) and abs(1 - mask.mean().item() - 0.7) < 0.01  # 313,600 pixels: sd 0.0008
    assert torch.equal(mask, imputation_masks(0, items, (28, 28), 0.7))
    assert not torch.equal(mask, imputation_masks(1, items, (28, 28), 0.7))
    assert (imputation_masks(0, items, (2, 2), 0.99).flatten(1).sum(1) >= 1).all()


def test_missing_mse_counts_missing_pixels_only():
    truth = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1  # top half observed
    recon = truth.clone()
    recon[:, :, :2] = 9.0  # wrong on observed pixels only: no imputation error
    assert torch.equal(missing_mse(recon, truth, mask), torch.zeros(2))
    recon[0, :, 2:] = 0.5  # every missing pixel of image 0 off by 0.5
    # a float32 mean of equal values 0.25 (exact here): float32 round-off at most
    assert torch.allclose(missing_mse(recon, truth, mask), torch.tensor([0.25, 0.0]), rtol=1e-6, atol=1e-8)


def test_each_model_kind_gets_its_own_method_and_the_pae_map():
    args = dict(arch="conv", image_shape=(1, 28, 28), latent_dim=2, channels=(4,), hidden=8)
    assert methods_for(build_model(ModelSpec(kind="ae", **args))) == ["encoder", "pae_map"]
    assert methods_for(build_model(ModelSpec(kind="vae", **args))) == ["encoder", "pae_map"]
    assert methods_for(build_model(ModelSpec(kind="vad", n_items=5, **args))) == ["vad_infer", "pae_map"]


class LinearModel(nn.Module):
    """x = W z + b on 1x8x8 images; a useless encoder (always 0), so only the MAP can recover the image."""
    needs_index = False

    def __init__(self, latent_dim=3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(0.1 * torch.randn(64, latent_dim, generator=g))
        self.b = nn.Parameter(torch.zeros(64))
        self.latent_dim = latent_dim

    def encode(self, x, mask=None):
        return torch.zeros(len(x), self.latent_dim)

    def decode(self, z):
        return (z @ self.w.T + self.b).view(-1, 1, 8, 8)


def test_the_map_recovers_missing_pixels_of_images_the_model_can_make():
    model = LinearModel()
    z = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = model.decode(z)
    images = ((x + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    rows = impute_sweep(model, None, images, torch.arange(20), [0.5], torch.full((1, 8, 8), 0.01), seed=0,
                        restarts=2, steps=400, lr=0.05, batch_size=8, device=torch.device("cpu"))
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"encoder", "pae_map"} and all(r["n_images"] == 20 for r in rows)
    # the encoder's zero latent decodes to b alone: its MSE over all pixels is computed here directly
    full = ((model.decode(torch.zeros(1, 3)).detach() - to_float(images)) ** 2).mean().item()
    # float32 sums of 64 squares per image, then a float64 mean of 20 (relative round-off ~1e-6)
    assert by_method["encoder"]["mse_all"] == pytest.approx(full, rel=1e-5)
    # uint8 rounding leaves ~1/255 of noise (MSE (1/255)^2 / 12 = 1.3e-6, far below 1e-4); the zero latent's decoded
    # mean misses by the images' spread
    assert by_method["pae_map"]["mse_missing"] < 1e-4 < 1e-3 < by_method["encoder"]["mse_missing"]


def test_stage_sweeps_ratios_when_trained_clean_and_its_own_ratio_when_matched(tmp_path, synthetic_h5):
    files = write_run_files(tmp_path, synthetic_h5, "ae")
    args = {k: files[k] for k in ("model_path", "flow_path", "data_path", "latents_path", "device")}
    impute(SPEC, **args, train_missing={"ratio": 0.0, "mode": "fixed"}, out=tmp_path / "clean.json")
    clean = json.loads((tmp_path / "clean.json").read_text())
    assert not clean["matched"] and clean["n_images"] == 10
    assert {(r["ratio"], r["method"]) for r in clean["results"]} == \
        {(r, m) for r in (0.3, 0.7) for m in ("encoder", "pae_map")}
    assert all(r["mse_missing"] > 0 and r["mse_missing_se"] > 0 for r in clean["results"])

    impute(SPEC, **args, train_missing={"ratio": 0.5, "mode": "random"}, out=tmp_path / "matched.json")
    matched = json.loads((tmp_path / "matched.json").read_text())
    assert matched["matched"] and matched["train_missing"] == {"ratio": 0.5, "mode": "random"}
    assert {r["ratio"] for r in matched["results"]} == {0.5}

"""Model registry, conv encoder/decoder shapes, save/load round trip, and that the AE loss trains."""
from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from pae.data.loader import to_float
from pae.io import PaeError
from pae.models import ModelSpec, build_model, load_model, save_model
from tests.helpers import synthetic_raw

LATENT = 6


def spec(shape=(1, 28, 28), channels=(8, 16), kind="ae", arch="conv", hidden=32) -> ModelSpec:
    return ModelSpec(kind, arch, shape, LATENT, channels, hidden)


@pytest.mark.parametrize("channels", [(32,), (16, 32), (8, 16, 32)], ids=["1conv", "2conv", "3conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 32, 20)], ids=["28", "64rgb", "32x20"])
def test_shapes(shape, channels):
    torch.manual_seed(0)
    model = build_model(spec(shape, channels))
    x = torch.rand(2, *shape) - 0.5
    with torch.no_grad():
        assert model.encode(x).shape == (2, LATENT)
        assert model(x).shape == (2, *shape)
        assert model.decode(torch.randn(3, LATENT)).shape == (3, *shape)


def test_unknown_kind():
    with pytest.raises(PaeError, match="unknown model kind 'gan'.*'ae'"):
        build_model(spec(kind="gan"))


def test_unknown_arch():
    with pytest.raises(PaeError, match="unknown architecture 'transformer'.*'conv'"):
        build_model(spec(arch="transformer"))


def test_spec_from_dict_round_trip():
    s = spec(shape=(3, 64, 64), channels=(8, 16, 32))
    d = asdict(s)
    d["image_shape"], d["channels"] = list(d["image_shape"]), list(d["channels"])  # as JSON/YAML gives them
    assert ModelSpec.from_dict(d) == s


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    s = spec(shape=(1, 32, 20), channels=(8, 16))
    model = build_model(s)
    meta = {"epochs": 3, "val_mse": 0.0123, "dataset": "synthetic"}
    save_model(tmp_path / "model.pt", model, s, meta)
    loaded, loaded_spec, loaded_meta = load_model(tmp_path / "model.pt")
    assert loaded_spec == s and loaded_meta == meta
    assert not loaded.training
    x = torch.rand(4, 1, 32, 20) - 0.5
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.encode(x), model.encode(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_load_non_model_file(tmp_path):
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(PaeError, match="other.pt.*not a pae model file"):
        load_model(tmp_path / "other.pt")


def test_load_missing_or_garbage_file(tmp_path):
    with pytest.raises(PaeError, match="absent.pt.*not found"):
        load_model(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(PaeError, match="junk.pt.*cannot read model"):
        load_model(tmp_path / "junk.pt")


def test_adam_steps_lower_loss():
    torch.manual_seed(0)
    model = build_model(spec(shape=(1, 16, 16), channels=(8, 16)))
    x = to_float(torch.from_numpy(synthetic_raw(16, 0, shape=(1, 16, 16)).train_images))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    with torch.no_grad():
        before = model.loss(x).item()
    for _ in range(20):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = model.loss(x).item()
    assert after < 0.5 * before


def test_loss_is_pixel_mse():
    torch.manual_seed(0)
    model = build_model(spec(shape=(1, 8, 8), channels=(4,)))
    x = torch.rand(3, 1, 8, 8) - 0.5
    with torch.no_grad():
        # a float32 mean of 192 squared residuals both ways (equal here): rtol 1e-5 >> 1e-7 sqrt(192)
        assert torch.allclose(model.loss(x), ((model(x) - x) ** 2).mean(), rtol=1e-5, atol=0)

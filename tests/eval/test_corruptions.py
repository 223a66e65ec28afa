"""Corruptions: masks of the stated shape and fraction, noise of the stated std, missing pixels zeroed, seeded."""
from __future__ import annotations

import pytest
import torch

from pae.data.loader import to_float
from pae.eval.corruptions import CORRUPTIONS, corrupt
from pae.io import PaeError

SETTINGS = {"box_fraction": 0.5, "sparse_ratio": 0.8, "noise_sigma": 0.1, "seed": 0}


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randint(0, 256, (200, 2, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_left_half(images):
    x, mask, noise = corrupt("left_half", images, **SETTINGS)
    assert mask.shape == (200, 1, 28, 28) and noise == 0.0
    assert (mask[..., :14] == 0).all() and (mask[..., 14:] == 1).all()
    assert (x[..., :14] == 0).all() and torch.equal(x[..., 14:], to_float(images)[..., 14:])


@pytest.mark.parametrize("fraction, side", [(0.5, 14), (0.25, 7)])
def test_center_box(images, fraction, side):
    x, mask, _ = corrupt("center_box", images, **SETTINGS | {"box_fraction": fraction})
    assert (1 - mask).sum(dim=(1, 2, 3)).eq(side * side).all()
    top = (28 - side) // 2
    assert (mask[..., top:top + side, top:top + side] == 0).all()
    rows = (mask[0, 0] == 0).any(1).nonzero().flatten()
    assert rows.min() + rows.max() == 27 - ((28 - side) % 2)  # centred (to the pixel)
    assert (x * (1 - mask) == 0).all()


def test_sparse_fraction_and_shared_channels(images):
    x, mask, noise = corrupt("sparse", images, **SETTINGS)
    assert mask.shape == (200, 1, 28, 28) and noise == 0.0
    assert abs((1 - mask).mean().item() - 0.8) < 0.01  # seeded draws over 156,800 pixels: sd 0.001
    assert (x[:, 0][mask[:, 0] == 0] == 0).all() and (x[:, 1][mask[:, 0] == 0] == 0).all()
    assert set(mask.unique().tolist()) == {0.0, 1.0}


def test_noise_has_the_stated_std(images):
    x, mask, noise = corrupt("noise", images, **SETTINGS)
    residual = x - to_float(images)
    assert noise == 0.1 and (mask == 1).all()
    # sampling over 313,600 values: the std is within ~0.13% (sd), the mean within 1.8e-4 (sd); a wrong sigma is not
    assert residual.std().item() == pytest.approx(0.1, rel=0.02) and abs(residual.mean().item()) < 0.002


def test_noise_sparse(images):
    x, mask, noise = corrupt("noise_sparse", images, **SETTINGS | {"sparse_ratio": 0.5})
    observed = mask.expand_as(x) == 1
    assert noise == 0.1 and abs((1 - mask).mean().item() - 0.5) < 0.01  # 156,800 pixels: sd 0.0013
    assert (x[~observed] == 0).all()
    assert (x - to_float(images))[observed].std().item() == pytest.approx(0.1, rel=0.02)  # sd ~0.18% here


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_seeded(images, kind):
    a, b = corrupt(kind, images, **SETTINGS), corrupt(kind, images, **SETTINGS)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other = corrupt(kind, images, **SETTINGS | {"seed": 1})
    changes = kind in ("sparse", "noise", "noise_sparse")
    assert torch.equal(a[0], other[0]) != changes


def test_float_input_matches_uint8(images):
    a, b = corrupt("noise_sparse", images, **SETTINGS), corrupt("noise_sparse", to_float(images), **SETTINGS)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_input_is_named(images):
    with pytest.raises(PaeError, match="unknown corruption 'blur'"):
        corrupt("blur", images, **SETTINGS)
    with pytest.raises(PaeError, match="sparse_ratio"):
        corrupt("sparse", images, **SETTINGS | {"sparse_ratio": 1.0})
    with pytest.raises(PaeError, match="noise_sigma"):
        corrupt("noise", images, **SETTINGS | {"noise_sigma": 0.0})

"""MCAR masks: the asked ratio, fixed per item, redrawn per epoch in random mode, shared across channels."""
from __future__ import annotations

import pytest
import torch

from pae.data.masks import mcar_mask


def test_ratio_and_shape():
    m = mcar_mask(0, torch.arange(2000), (28, 28), 0.3)
    assert m.shape == (2000, 1, 28, 28) and m.dtype == torch.float32
    assert abs(1 - m.mean().item() - 0.3) < 0.005  # sampling over 1.57M pixels: sd 4e-4
    assert set(m.unique().tolist()) == {0.0, 1.0}


def test_fixed_per_item_whatever_the_batch():
    a = mcar_mask(7, torch.tensor([5, 9, 11]), (8, 8), 0.5)
    b = mcar_mask(7, torch.tensor([11, 5]), (8, 8), 0.5)
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])


def test_epoch_and_seed_change_the_mask():
    items = torch.arange(100)
    base = mcar_mask(0, items, (10, 10), 0.5)
    for other in (mcar_mask(0, items, (10, 10), 0.5, epoch=1), mcar_mask(1, items, (10, 10), 0.5)):
        agree = (other == base).float().mean().item()
        assert 0.4 < agree < 0.6  # independent masks agree on half the pixels (10,000 of them: sd 0.005)


def test_neighbouring_pixels_and_items_are_not_correlated():
    m = mcar_mask(0, torch.arange(500), (28, 28), 0.5).flatten(1)
    # sampling: the correlation of ~390,000 independent pairs has sd ~0.0016
    assert abs(torch.corrcoef(torch.stack([m[:, :-1].flatten(), m[:, 1:].flatten()]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(torch.stack([m[:-1].flatten(), m[1:].flatten()]))[0, 1]) < 0.02


def test_ratio_out_of_range():
    with pytest.raises(ValueError, match="missing ratio"):
        mcar_mask(0, torch.arange(3), (4, 4), 1.0)

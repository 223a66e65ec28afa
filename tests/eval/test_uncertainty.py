"""pae.eval.uncertainty: the calibration of a likelihood (exact fractions on constructed residuals, through the
model path too), the traversal's bilinear grid and its corner images."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pae.data.loader import to_float
from pae.eval.uncertainty import (bilinear_grid, calibration, calibration_counts, corner_images, has_likelihood,
                                  interval_k, predictive)
from pae.models.likelihoods import LikelihoodSpec, build_likelihood
from pae.models.posteriors import DiagonalGaussian

# Residuals in units of sigma: 3 of 8 inside 0.9945 sigma, 6 of 8 inside 1.96 sigma (none near the edges)
T = torch.tensor([0.0, -0.5, 0.99, 1.0, -1.5, 1.9, 1.97, -3.0])


def test_interval_half_widths_are_the_gaussian_quantiles():
    # Phi^-1(0.84) and Phi^-1(0.975) to 4 digits (erfinv in float64 is exact to ~1e-15)
    assert interval_k(0.68) == pytest.approx(0.99446, abs=1e-5)
    assert interval_k(0.95) == pytest.approx(1.95996, abs=1e-5)


def test_calibration_counts_exact_fractions():
    sigma = torch.tensor([0.01, 0.02, 0.05, 0.1, 0.2, 0.01, 0.03, 0.3])  # a different sigma per pixel
    mu = torch.linspace(-0.4, 0.4, 8)
    x = mu + T * sigma
    assert calibration_counts(x, mu, sigma) == {0.68: 3 / 8, 0.95: 6 / 8}
    # one sigma broadcast over all pixels (an image-wise or homoscedastic likelihood)
    assert calibration_counts(mu + T * 0.1, mu, torch.tensor(0.1)) == {0.68: 3 / 8, 0.95: 6 / 8}


class _Lookup(nn.Module):
    """A decoder that returns the stored output of item round(z[:, 0]): posteriors centred on the items' indices
    with a tiny variance make the model's path reproduce constructed means and scales exactly."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.register_buffer("outputs", outputs)

    def forward(self, z):
        return self.outputs[z[:, 0].round().long()]


class _Model(nn.Module):
    def __init__(self, outputs, kind: str, dim: int = 2):
        super().__init__()
        self.decoder = _Lookup(outputs)
        self.likelihood = build_likelihood(LikelihoodSpec(kind=kind), 1)
        self.posterior = DiagonalGaussian(dim)


def _params(n: int, dim: int = 2) -> torch.Tensor:
    """Diagonal posteriors: mean (index, 0), log-variance -20 (std 4.5e-5, so a draw rounds to the index)."""
    mean = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], 1)
    return torch.cat([mean, torch.full((n, dim), -20.0)], 1)


def test_calibration_through_a_pixelwise_gaussian_model():
    # 4 images of 1 x 2 x 4 pixels: each image carries the 8 residuals T (in its own sigma's units)
    n, images = 4, torch.randint(0, 256, (4, 1, 2, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    sigma = torch.tensor([0.02, 0.05, 0.1, 0.2]).view(n, 1, 1, 1).expand(n, 1, 2, 4)
    mu = to_float(images) - T.view(1, 1, 2, 4) * sigma
    model = _Model(torch.cat([mu, sigma.log()], 1), "gaussian_pixel")
    got = calibration(model, images, _params(n), torch.device("cpu"), batch_size=3)  # batches of 3 and 1
    rms_residual = math.sqrt((T.double() ** 2).mean() * (torch.tensor([0.02, 0.05, 0.1, 0.2]).double() ** 2).mean())
    for which in ("sample", "mean"):
        assert got[which]["coverage"] == {"0.68": 3 / 8, "0.95": 6 / 8}
        # float32 residuals of values ~0.5: relative error ~1e-6
        assert got[which]["rms_residual"] == pytest.approx(rms_residual, rel=1e-5)
        assert got[which]["rms_std"] == pytest.approx(math.sqrt((0.02 ** 2 + 0.05 ** 2 + 0.1 ** 2 + 0.2 ** 2) / 4),
                                                      rel=1e-6)
    assert got["n_pixels"] == 32 and has_likelihood(model) and not has_likelihood(nn.Linear(2, 2))


def test_bernoulli_has_no_intervals_but_its_moments():
    logits = torch.tensor([0.0, 2.0, -1.0, 4.0]).view(1, 1, 2, 2)
    images = torch.tensor([0, 255, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    model = _Model(logits, "bernoulli")
    got = calibration(model, images, _params(1), torch.device("cpu"))
    p = torch.sigmoid(logits.double())
    assert got["sample"]["coverage"] is None and got["mean"]["coverage"] is None
    assert got["mean"]["rms_std"] == pytest.approx((p * (1 - p)).mean().sqrt().item(), rel=1e-6)
    # residuals of x + 0.5 (grey level / 255) against p
    x = images.double() / 255
    assert got["mean"]["rms_residual"] == pytest.approx((x - p).pow(2).mean().sqrt().item(), rel=1e-6)
    mu, std = predictive(model, torch.zeros(1, 2))
    assert torch.allclose(std.double(), (p * (1 - p)).sqrt(), atol=1e-7) and torch.allclose(mu.double(), p - 0.5,
                                                                                             atol=1e-7)


def test_bilinear_grid_corners_edges_and_centre():
    corners = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 8.0], [4.0, 8.0]])  # tl, tr, bl, br
    grid = bilinear_grid(corners, 3)
    assert grid.shape == (3, 3, 2)
    assert torch.equal(grid[0, 0], corners[0]) and torch.equal(grid[0, -1], corners[1])
    assert torch.equal(grid[-1, 0], corners[2]) and torch.equal(grid[-1, -1], corners[3])
    assert torch.equal(grid[0, 1], torch.tensor([2.0, 0.0]))  # along the top row: tl -> tr
    assert torch.equal(grid[1, 0], torch.tensor([0.0, 4.0]))  # down the left column: tl -> bl
    assert torch.equal(grid[1, 1], corners.mean(0))


def test_corner_images_take_four_labels_when_they_can():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4])
    picked = corner_images(labels, seed=1)
    assert len(set(labels[picked].tolist())) == 4 and len(set(picked.tolist())) == 4
    assert torch.equal(picked, corner_images(labels, seed=1))  # seeded
    same = corner_images(torch.zeros(6, dtype=torch.long))  # one label (CelebA): four different images
    assert len(set(same.tolist())) == 4

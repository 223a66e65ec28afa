"""OoD metrics: known cases by hand, chance level, intervals around the point estimate, determinism, bad input.
OoD sets and scores: seeded capping, flips, folder images converted to the run's shape, the shape check of other
datasets, a small OoD dataset used whole, non-finite scores, the scores' definitions and order, a VAD optimised once
per set."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pae.data.loader import to_float
from pae.data.store import open_dataset, pick, write_dataset
from pae.eval.density import pae_log_density
from pae.eval.ood import (NONFINITE_SCORE, dataset_set, finite_scores, flip, folder_set, fpr_at_tpr, image_scores,
                          ood_metrics, score_names, to_channels)
from pae.flows import FlowSpec, build_flow
from pae.io import PaeError
from pae.models import ModelSpec, build_model
from tests.helpers import synthetic_raw


def test_perfect_separation():
    m = ood_metrics(np.arange(10.0), np.arange(10.0) + 100, n_boot=50)
    # AUPR is a float64 sum of precision steps: 1 up to round-off (1e-16 seen); pytest's default rel=1e-6 is ample
    assert m["auroc"]["value"] == 1.0 and m["aupr"]["value"] == pytest.approx(1.0) and m["fpr95"]["value"] == 0.0
    assert m["auroc"]["low"] == 1.0


def test_hand_computed_case():
    """in = [0, 1, 2, 3], out = [2.5, 4]: pairs (out > in) = 3 + 4 of 8 -> AUROC 7/8. All positives are flagged at
    threshold 2.5, which also flags one negative (3): FPR at 95% TPR = 1/4."""
    m = ood_metrics([0, 1, 2, 3], [2.5, 4], n_boot=10)
    # ratios of small counts in float64 (exact here): pytest's default rel=1e-6
    assert m["auroc"]["value"] == pytest.approx(7 / 8)
    assert m["fpr95"]["value"] == pytest.approx(0.25)
    labels = np.array([0, 0, 0, 0, 1, 1])
    assert fpr_at_tpr(labels, np.array([0, 1, 2, 3, 2.5, 4]), 0.5) == 0.0  # threshold 4 flags half the positives


def test_same_distribution_is_chance_and_the_interval_covers_it():
    rng = np.random.default_rng(0)
    m = ood_metrics(rng.normal(size=2000), rng.normal(size=2000), n_boot=200)
    # sampling, not round-off: the AUROC of 2 x 2,000 draws has sd ~0.009, FPR95's ~0.007 (seeded: fixed values)
    assert abs(m["auroc"]["value"] - 0.5) < 0.03
    assert m["auroc"]["low"] < 0.5 < m["auroc"]["high"]
    assert m["fpr95"]["value"] == pytest.approx(0.95, abs=0.03)


def test_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=1000), rng.normal(1.0, size=1000)
    m1, m2 = ood_metrics(a, b, n_boot=300, seed=3), ood_metrics(a, b, n_boot=300, seed=3)
    assert m1 == m2
    for k, v in m1.items():
        assert v["low"] <= v["value"] <= v["high"], k
    # Two unit Gaussians one sigma apart: AUROC = Phi(1 / sqrt(2)) = 0.760, up to sampling (sd ~0.011 at 2 x 1,000)
    assert m1["auroc"]["value"] == pytest.approx(0.760, abs=0.03)
    assert m1["auroc"]["high"] - m1["auroc"]["low"] < 0.06


def test_bad_input():
    with pytest.raises(ValueError, match="both"):
        ood_metrics([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        ood_metrics([1.0, np.inf], [2.0])


# ------------------------------------------------------------------------------------------------ sets and scores

def test_no_bootstrap_gives_the_point_estimate_only():
    m = ood_metrics([0, 1, 2, 3], [2.5, 4], n_boot=0)
    # a ratio of counts in float64: pytest's default rel=1e-6
    assert m["auroc"]["value"] == pytest.approx(7 / 8) and m["auroc"]["low"] is None and m["fpr95"]["high"] is None


def test_pick_is_seeded_sorted_and_capped():
    a, b = pick(100, 10), pick(100, 10)
    assert torch.equal(a, b) and len(a) == 10 and len(a.unique()) == 10
    assert torch.equal(a, a.sort().values) and a.max() < 100
    assert not torch.equal(a, torch.arange(10))  # drawn, not the first ten
    assert torch.equal(pick(5, 10), torch.arange(5))


def test_flips_move_a_pixel_where_they_say():
    images = torch.zeros(2, 1, 5, 7, dtype=torch.uint8)
    images[0, 0, 1, 2] = 255
    h, v = flip(images, "hflip"), flip(images, "vflip")
    assert h.dtype == torch.uint8 and h.shape == images.shape
    assert h[0, 0, 1, 7 - 1 - 2] == 255 and h.sum() == 255  # mirrored across the vertical axis: column 2 -> 4
    assert v[0, 0, 5 - 1 - 1, 2] == 255 and v.sum() == 255  # upside down: row 1 -> 3
    assert torch.equal(flip(h, "hflip"), images)
    with pytest.raises(PaeError, match="rot90"):
        flip(images, "rot90")


def test_rgb_to_grey_uses_the_601_luma_and_grey_to_rgb_repeats():
    rgb = torch.tensor([10, 200, 40], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    grey = to_channels(rgb, 1)
    assert grey.shape == (1, 1, 2, 2) and (grey == round(0.299 * 10 + 0.587 * 200 + 0.114 * 40)).all()  # 125
    again = to_channels(grey, 3)
    assert again.shape == (1, 3, 2, 2) and (again == grey).all()
    assert to_channels(rgb, 3) is rgb


def _png(path: Path, mode: str, size: tuple[int, int], colour) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_folder_images_come_out_with_the_runs_shape(tmp_path):
    _png(tmp_path / "a_red.png", "RGB", (40, 30), (255, 0, 0))
    _png(tmp_path / "deeper" / "b_grey.png", "L", (20, 20), 100)
    (tmp_path / "notes.txt").write_text("not an image")
    grey = folder_set(tmp_path, (1, 28, 28), max_images=10)
    assert grey.images.shape == (2, 1, 28, 28) and grey.images.dtype == torch.uint8 and grey.n_available == 2
    assert (grey.images[0] == 76).all() and (grey.images[1] == 100).all()  # red: round(0.299 * 255); grey as is
    rgb = folder_set(tmp_path, (3, 16, 16), max_images=10)
    assert rgb.images.shape == (2, 3, 16, 16)
    assert rgb.images[0, :, 3, 5].tolist() == [255, 0, 0] and (rgb.images[1] == 100).all()
    one = folder_set(tmp_path, (1, 28, 28), max_images=1)
    assert len(one.images) == 1 and one.n_available == 2 and len(one.index) == 1


def test_a_dataset_of_another_shape_is_refused_naming_both_files(synthetic_h5, tmp_path):
    other = tmp_path / "rgb.h5"
    write_dataset(other, "rgb", synthetic_raw(shape=(3, 28, 28)), val_size=20, split_seed=0)
    with pytest.raises(PaeError) as e:
        dataset_set(other, (1, 28, 28), synthetic_h5, max_images=10)
    assert str(other) in str(e.value) and str(synthetic_h5) in str(e.value)
    assert "(3, 28, 28)" in str(e.value) and "(1, 28, 28)" in str(e.value)
    same = dataset_set(synthetic_h5, (1, 28, 28), synthetic_h5, max_images=10)
    assert same.images.shape == (10, 1, 28, 28) and same.n_available == 40


def test_a_small_ood_dataset_is_topped_up_with_its_other_images_but_the_runs_own_file_is_not(synthetic_h5,
                                                                                                tmp_path):
    other = tmp_path / "other.h5"
    write_dataset(other, "other", synthetic_raw(n_train=60, n_test=30, seed=1), val_size=10, split_seed=0)
    data = open_dataset(other)
    test = data.splits["test"]
    enough = dataset_set(other, (1, 28, 28), synthetic_h5, max_images=20)   # the test split alone has enough
    assert len(enough.index) == 20 and set(enough.index.tolist()) <= set(test.tolist()) and enough.n_available == 30
    assert torch.equal(enough.images, data.images[enough.index])
    whole = dataset_set(other, (1, 28, 28), synthetic_h5, max_images=1000)  # every image of the file, in file order
    assert torch.equal(whole.index, torch.arange(90)) and whole.n_available == 90
    assert torch.equal(whole.images, data.images) and "all splits" in whole.source
    part = dataset_set(other, (1, 28, 28), synthetic_h5, max_images=35)     # all 30 test images and 5 others
    assert len(part.index) == 35 and set(test.tolist()) <= set(part.index.tolist())
    assert torch.equal(part.index, part.index.sort().values)
    assert torch.equal(part.index, dataset_set(other, (1, 28, 28), synthetic_h5, max_images=35).index)
    own = dataset_set(synthetic_h5, (1, 28, 28), synthetic_h5, max_images=1000)
    assert own.n_available == 40 and set(own.index.tolist()) == set(open_dataset(synthetic_h5).splits["test"].tolist())


def test_nonfinite_scores_become_large_finite_ones():
    s = finite_scores(torch.tensor([1.0, math.inf, -math.inf, math.nan]))
    assert s.tolist() == [1.0, NONFINITE_SCORE, -NONFINITE_SCORE, NONFINITE_SCORE]
    assert ood_metrics(s[:1].numpy(), s[1:2].numpy(), n_boot=0)["auroc"]["value"] == 1.0


def _tiny_flow(dim: int):
    return build_flow(FlowSpec(kind="realnvp", layers=2, hidden=8, blocks=1, bins=4, tail_bound=3.0, epochs=1,
                               patience=1, batch_size=8, lr=1e-3), dim).eval()


def test_ae_scores_are_the_stated_quantities_in_image_order():
    torch.manual_seed(0)
    model = build_model(ModelSpec(kind="ae", arch="mlp", image_shape=(1, 8, 8), latent_dim=3, channels=(16,),
                                  hidden=8)).eval()
    flow = _tiny_flow(3)
    images = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    sigma = torch.linspace(0.05, 0.2, 64).view(1, 8, 8)
    scores = image_scores(model, flow, images, torch.device("cpu"), batch_size=3, sigma=sigma)  # batches of 3, 3, 1
    assert list(scores) == score_names(model, jacobian=True) == ["flow_logp", "recon_mse", "pae_density",
                                                                 "pae_marginal"]
    x = to_float(images)
    # The scores are float32 computations (batches of 3, 3, 1 here, all 7 at once below) stored as float64, so float32
    # tolerances, not float64's default 1e-7 (another CPU was off by 4.7e-7): the per-image MSE is a mean of 64
    # squared float32 residuals (~1e-7 relative), log p(z) and log det J^T J go through float32 layers (|value| ~ 2,
    # round-off ~1e-6); a wrong score is off by far more.
    with torch.no_grad():
        z = model.encode(x)
        torch.testing.assert_close(scores["recon_mse"], (model.decode(z) - x).pow(2).flatten(1).mean(1).double(),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(scores["flow_logp"], -flow.log_prob(z).double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores["pae_density"], -pae_log_density(model, flow, z), rtol=1e-5, atol=1e-5)
    # the Laplace marginal, term by term with an explicit Jacobian: Gaussian log-likelihood + log p(z) + d/2 log 2pi
    # - 1/2 log det(J^T S^-1 J)
    s = sigma.flatten().double()
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: model.decode(v[None]).flatten(), z[i]).double()
        with torch.no_grad():
            resid = (x[i].flatten() - model.decode(z[i:i + 1]).flatten()).double()
            loglik = torch.distributions.Normal(0.0, s).log_prob(resid).sum()
            expected = loglik + flow.log_prob(z[i:i + 1]).double()[0] + 1.5 * math.log(2 * math.pi) \
                - 0.5 * torch.logdet((jac / s[:, None]).T @ (jac / s[:, None]))
        # |value| ~ 400: 64 float32 residuals over sigma 0.05-0.2, squared (~1e-5 absolute, 1e-8 relative seen)
        torch.testing.assert_close(scores["pae_marginal"][i], -expected, rtol=1e-5, atol=1e-6)
    assert "pae_density" not in image_scores(model, flow, images, torch.device("cpu"), jacobian=False)


def test_a_vad_is_optimised_once_per_set_and_scored_with_its_elbo():
    torch.manual_seed(0)
    model = build_model(ModelSpec(kind="vad", arch="mlp", image_shape=(1, 8, 8), latent_dim=3, channels=(16,),
                                  hidden=8, n_items=10, infer_steps=3)).eval()
    calls = []
    infer = model.infer
    model.infer = lambda x, mask=None: calls.append(len(x)) or infer(x, mask)
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    scores = image_scores(model, _tiny_flow(3), images, torch.device("cpu"), batch_size=16,
                          sigma=torch.full((1, 8, 8), 0.1))
    assert calls == [6]  # one test-time optimisation of the whole set, reused by every score
    assert list(scores) == ["flow_logp", "recon_mse", "pae_density", "pae_marginal", "elbo"]
    assert all(v.shape == (6,) and torch.isfinite(v).all() for v in scores.values())
    assert (scores["elbo"] > 0).all()  # -ELBO of 64 Gaussian pixels (sigma 0.1) far from a 3-step fit: positive

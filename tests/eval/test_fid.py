"""FID: the Fréchet distance against closed forms; its bootstrap interval (agreement with pytorch-fid, coverage,
width, seeding); the TensorFlow graph's preprocessing; KID and precision / recall; the min-max stretch and its pass
that sends only the changed images through Inception. The Inception weights and features:
tests/eval/test_inception.py."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_fid import inception as fid_inception

from pae.eval import fid as fid_lib
from pae.eval.fid import frechet_bootstrap, frechet_distance, inception_features, tf1_bilinear


def _gaussian(mean, cov, n, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def test_frechet_distance_of_gaussians_with_known_moments():
    """Diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)). Sample moments are used, so
    compare against the same formula on the sample moments, and both against the population value."""
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([4.0, 0.5, 0.5])
    a, b = _gaussian(mu1, np.diag(s1), 200_000, 0), _gaussian(mu2, np.diag(s2), 200_000, 1)
    population = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    # sampling error of the sample moments at n = 200,000 (~0.2% here), not round-off
    assert frechet_distance(a, b) == pytest.approx(population, rel=0.02)


def test_frechet_distance_full_covariance_closed_form():
    """Same covariance, shifted mean: d^2 = |mu1 - mu2|^2 exactly (up to sampling)."""
    cov = np.array([[2.0, 0.8], [0.8, 1.0]])
    a = _gaussian([0, 0], cov, 100_000, 2)
    # float64 on 2-d: scipy's sqrtm of S^2 gives S to ~1e-14 of Tr S = 3 (3e-14 seen); 1e-9 for other LAPACKs
    assert frechet_distance(a, a + np.array([3.0, -1.0])) == pytest.approx(10.0, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_bootstrap_value_agrees_with_pytorch_fid():
    """The QR / nuclear-norm route gives pytorch-fid's sqrtm value, also when n < D (singular covariances, checked
    against the eigenvalues of S_a S_b, where pytorch-fid's sqrtm needs its eps offset)."""
    rng = np.random.default_rng(4)
    a = _gaussian(np.zeros(6), np.diag([1.0, 2, 3, 4, 5, 6]), 400, 5)
    b = a[:300] @ rng.normal(size=(6, 6)) * 0.5 + 1.0
    # float64, 6-d full-rank covariances: QR + SVD and scipy's sqrtm agree to ~1e-14 (equal here); 1e-9 for other
    # LAPACKs
    assert frechet_bootstrap(a, b, 0, 0)["value"] == pytest.approx(frechet_distance(a, b), rel=1e-9)
    a, b = rng.normal(size=(5, 20)), rng.normal(size=(7, 20)) + 0.3
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # S_a S_b has rank <= min(n_a, n_b) - 1 = 4: only those eigenvalues count. The 16 zero ones come out as round-off
    # (~1e-15) whose square roots (~3e-8 each) made the reference itself uncertain to ~1e-8 relative, CPU-dependent.
    top = np.sort(np.linalg.eigvals(sa @ sb).real)[::-1][:min(len(a), len(b)) - 1]
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(top).sum()
    # float64 on 20-d with four well-separated eigenvalues: ~1e-14 (equal here); 1e-9 for other LAPACKs
    assert frechet_bootstrap(a, b, 0, 0)["value"] == pytest.approx(expected, rel=1e-9)


def test_a_resample_factorised_on_its_distinct_rows_is_the_resampled_sets_distance():
    """The bootstrap's resample (rows drawn with replacement) is factorised on its distinct rows weighted by their
    counts: the distance of the resampled sets themselves, full-rank and singular (n < D)."""
    rng = np.random.default_rng(5)
    for (n_a, n_b, d) in ((300, 250, 6), (9, 12, 20)):
        a, b = rng.normal(size=(n_a, d)), rng.normal(size=(n_b, d)) * 1.5 + 0.2
        ia, ib = rng.integers(0, n_a, n_a), rng.integers(0, n_b, n_b)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        resampled = fid_lib._frechet(ta, tb, torch.from_numpy(ia), torch.from_numpy(ib)).item()
        # float64, one QR of other rows on each side and an SVD of a D x D product: round-off ~1e-14 relative
        assert resampled == pytest.approx(fid_lib._frechet(ta[ia], tb[ib]).item(), rel=1e-9)
        if n_a > d:
            assert resampled == pytest.approx(frechet_distance(a[ia], b[ib]), rel=1e-9)


def test_bootstrap_interval_contains_the_value_and_narrows_with_n():
    """Unit Gaussians with means 1 apart in each of 4 dimensions (population d^2 = 4): the interval holds the value,
    and with 25x the samples it is several times narrower (width ~ 1 / sqrt(n))."""
    shift = np.ones(4)
    widths = []
    for n in (200, 5000):
        a, b = _gaussian(np.zeros(4), np.eye(4), n, 6), _gaussian(shift, np.eye(4), n, 7)
        r = frechet_bootstrap(a, b, 100, 0)
        assert r["low"] < r["value"] < r["high"]
        assert (r["n_boot"], r["level"], r["n_a"], r["n_b"]) == (100, 0.95, n, n) and r["bootstrap_bias"] > 0
        widths.append(r["high"] - r["low"])
    assert r["low"] < 4.0 < r["high"]
    assert widths[1] < widths[0] / 3


def test_bootstrap_is_seeded_and_n_boot_zero_gives_the_value_alone():
    a, b = _gaussian(np.zeros(3), np.eye(3), 300, 8), _gaussian(np.ones(3), 2 * np.eye(3), 250, 9)
    r = frechet_bootstrap(a, b, 30, seed=1)
    assert r == frechet_bootstrap(a, b, 30, seed=1)
    assert frechet_bootstrap(a, b, 30, seed=2)["low"] != r["low"]
    bare = frechet_bootstrap(a, b, 0, seed=1)
    assert bare["value"] == r["value"] and bare["n_boot"] == 0
    assert bare["low"] is None and bare["high"] is None and bare["bootstrap_bias"] is None


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="one width"):
        frechet_bootstrap(np.zeros((5, 3)), np.zeros((5, 4)), 0, 0)
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_bootstrap(np.zeros((1, 3)), np.zeros((5, 3)), 0, 0)


def test_tensorflow_resize_is_tf1_resize_bilinear():
    """TensorFlow 1's ResizeBilinear (no half-pixel centres): output i reads input i * in / out, clamped at the last
    pixel, so the last rows and columns repeat; worked by hand for 2x2 -> 4x4."""
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)[None, None]
    want = torch.tensor([[0.0, 0.5, 1.0, 1.0], [1.0, 1.5, 2.0, 2.0], [2.0, 2.5, 3.0, 3.0], [2.0, 2.5, 3.0, 3.0]])
    assert torch.equal(tf1_bilinear(x, 4)[0, 0], want.double())
    images = torch.rand(2, 3, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tf1_bilinear(images, 28), images)  # its own size: the identity
    big = tf1_bilinear(images, 280)  # an integer factor: every 10th output pixel is an input pixel
    assert torch.allclose(big[:, :, ::10, ::10], images, rtol=0, atol=1e-12)
    pytorch = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    assert (tf1_bilinear(images, 299) - pytorch).abs().max() > 0.05  # the two resizes differ: half a pixel's shift


def test_inception_features_preprocess_as_the_tensorflow_graph_did():
    seen = []

    class Probe(torch.nn.Module):  # stands in for Inception: records its input, returns (N, 2048, 1, 1)
        def forward(self, x):
            seen.append(x.clone())
            return [x.mean(dim=(2, 3), keepdim=True).repeat(1, 683, 1, 1)[:, :2048]]

    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    inception_features(Probe(), images, preprocessing="pytorch")
    inception_features(Probe(), images, preprocessing="tensorflow")
    torch.testing.assert_close(seen[0], images.float().expand(-1, 3, -1, -1) / 255)  # pytorch-fid resizes itself
    # pytorch-fid's network maps x to 2x - 1: the TensorFlow graph's (p - 128) / 128 after its resize
    tf_graph = tf1_bilinear((images.double().expand(-1, 3, -1, -1) - 128) / 128, 299)
    torch.testing.assert_close(2 * seen[1].double() - 1, tf_graph, rtol=0, atol=1e-5)  # float32, |values| <= 1
    with pytest.raises(ValueError, match="preprocessing='bicubic'"):
        inception_features(Probe(), images, preprocessing="bicubic")


def _unbiased_mmd2_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 of two samples with the kernel (x.y / D + 1)^3, written out (Bińkowski et al. 2018)."""
    d = x.shape[1]
    kxx, kyy, kxy = (((a @ b.T) / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    """With one subset holding every image, the KID is the formula written out, up to float32 features' round-off
    (the kernel sums 2,500 products of numbers of order 1: ~1e-6 relative, far below the tolerance); and it is
    unbiased: two samples of one Gaussian give a KID near 0 (within two standard deviations of the subsets' KIDs; the
    subsets overlap, so their mean varies about as much as one of them), which the biased FID is not."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 16)).astype(np.float32)
    y = (rng.normal(size=(50, 16)) + 0.5).astype(np.float32)
    one = fid_lib.kid(x, y, seed=0, subsets=1, subset_size=50)
    assert one["value"] == pytest.approx(_unbiased_mmd2_cubic(x.astype(np.float64), y.astype(np.float64)), rel=1e-4)
    assert (one["subset_size"], one["n_a"], one["n_b"], one["std"]) == (50, 50, 50, 0.0)

    a = rng.normal(size=(400, 8)).astype(np.float32)
    b = rng.normal(size=(400, 8)).astype(np.float32)
    same = fid_lib.kid(a, b, seed=1, subsets=50, subset_size=200)
    assert abs(same["value"]) < 2 * same["std"]
    assert fid_lib.kid(a, b + 1.0, seed=1, subsets=50, subset_size=200)["value"] > 20 * abs(same["value"]) + 0.01
    assert fid_lib.kid(a[:30], b, seed=1)["subset_size"] == 30  # subsets no larger than the smaller set


def test_precision_is_fidelity_and_recall_is_coverage():
    """Generated features clustered on one half of the real ones: every generated image lies in the real manifold
    (precision 1), but the real half far from them is not covered (recall about 1/2). The swap of the roles mirrors
    it: torch-fidelity's argument order (generated first) is the one used."""
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 20]).astype(np.float32)
    generated = real[:200] + rng.normal(scale=0.05, size=(200, 4)).astype(np.float32)
    pr = fid_lib.precision_recall(generated, real)
    assert pr["precision"] == 1.0 and 0.4 <= pr["recall"] <= 0.55 and pr["k"] == 3
    swapped = fid_lib.precision_recall(real, generated)
    assert swapped["recall"] == 1.0 and 0.4 <= swapped["precision"] <= 0.55


def test_minmax_stretches_each_image_to_the_full_range():
    images = torch.tensor([[[[10, 20], [30, 40]]], [[[7, 7], [7, 7]]], [[[0, 255], [128, 3]]]], dtype=torch.uint8)
    out = fid_lib.minmax_per_image(images)
    assert out.dtype == torch.uint8
    assert out[0].flatten().tolist() == [0, 85, 170, 255] and out[1].flatten().tolist() == [0, 0, 0, 0]
    assert torch.equal(out[2], images[2])


def test_the_stretched_pass_sends_only_the_images_the_stretch_changes_through_inception():
    seen = []

    class Probe(torch.nn.Module):  # stands in for Inception: counts its images; each image's features are its own
        def forward(self, x):
            seen.append(len(x))
            return [torch.stack([x.mean(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), x[:, 0, 3, 5]], 1)[:, :, None, None]]

    g = torch.Generator().manual_seed(0)
    images = torch.randint(20, 200, (6, 1, 28, 28), dtype=torch.uint8, generator=g)
    images[:3, :, 0, 0], images[:3, :, 0, 1] = 0, 255  # these three span 0-255: the stretch leaves them alone
    full = fid_lib.InceptionFeatures(Probe(), torch.device("cpu"), 4, "pytorch")._features(
        fid_lib.minmax_per_image(images))
    features = fid_lib.InceptionFeatures(Probe(), torch.device("cpu"), 4, "pytorch")
    seen.clear()
    features.plain(images)
    assert sum(seen) == 6
    seen.clear()
    stretched = features.stretched(images)
    assert sum(seen) == 3
    # float32 features of the same images in batches of other sizes: equal up to float32 round-off
    np.testing.assert_allclose(stretched, full, rtol=1e-6)
    seen.clear()
    features.stretched(images.flip(0))  # not the images of the plain pass: all of them go through
    assert sum(seen) == 6
    seen.clear()
    features.remember(images, features._features(images))  # a piece read back counts as a plain pass
    seen.clear()
    np.testing.assert_allclose(features.stretched(images), full, rtol=1e-6)
    assert sum(seen) == 3

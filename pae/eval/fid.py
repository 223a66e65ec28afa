"""FID: the Fréchet distance between Inception pool3 features (2048-d) of two image sets (Heusel et al. 2017),
through pytorch-fid's Inception, so figures compare with the literature. `frechet_distance` is pytorch-fid's own
(scipy sqrtm); `frechet_bootstrap`, which the stages use, computes the same quantity in torch through QR factors
(float64, on any device; agreement with pytorch-fid is tested), fast enough to be bootstrapped at D = 2048.

The Inception weights are found offline (pae/eval/inception.py: the config's file, pytorch-fid's own file, or the
NVlabs TorchScript port converted into pytorch-fid's network); they are never downloaded.

Protocol for images (stated here and written into every metrics file by the caller), `preprocessing`:
- "pytorch" (pytorch-fid's): uint8 pixels p -> p / 255; one-channel images repeated to three channels; pytorch-fid's
  network resizes bilinearly to 299x299 (`F.interpolate`, half-pixel centres) and maps [0, 1] to [-1, 1].
- "tensorflow" (the original FID code's TensorFlow graph, which the PAE and TTUR code fed 28x28 images in 0-255):
  the graph resized with TensorFlow 1's ResizeBilinear (no half-pixel centres: output pixel i samples input position
  i * in / out, a shift of about half an input pixel) and scaled by (p - 128) / 128, onto [-1, 0.992]. Here: p / 256
  (which pytorch-fid's 2x - 1 turns into (p - 128) / 128), the same resize, and pytorch-fid's network (its own resize of
  a 299x299 image is the identity).
Real and generated images go through exactly the same path.

Intervals (`frechet_bootstrap`): a percentile bootstrap of the plug-in estimate, both feature sets resampled with
replacement. The plug-in Fréchet distance is biased upwards for finite samples (by an amount growing with D / n),
and a resample, which repeats items, is biased about as much again (for 3,000 vs 3,000 samples of 2048-d
Gaussians the replicates sit ~60% above the value): the raw percentiles would often exclude the value. So the
percentile interval is shifted by the bootstrap bias estimate (mean of the replicates minus the value): it is the
interval of the expected plug-in estimate at these sample sizes (the figure the literature reports, bias included),
which is what samplers compared at equal n differ in. The bias estimate is reported beside it.
"""
from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL, \
    prc_features_to_metric
from tqdm import tqdm

from pae.io import progress_kwargs

log = logging.getLogger(__name__)

PREPROCESSINGS = {
    "pytorch": "uint8 p -> p / 255; 1 channel repeated to 3; pytorch-fid's InceptionV3 resizes bilinearly to 299x299 "
               "(F.interpolate, half-pixel centres) and scales to [-1, 1]",
    "tensorflow": "uint8 p; 1 channel repeated to 3; bilinear resize to 299x299 as TensorFlow 1's ResizeBilinear "
                  "(no half-pixel centres: output pixel i samples input position i * in / out) and (p - 128) / 128, "
                  "as the original FID graph did"}


def protocol(preprocessing: str = "pytorch") -> str:
    """The image path into Inception, in words (fid.json's image_conversion)."""
    return f"{PREPROCESSINGS[preprocessing]}; pool3 features (2048-d); real and generated images identically"


@functools.lru_cache(maxsize=8)  # the same few sizes for every batch
def _tf1_bilinear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) interpolation weights of TensorFlow 1's ResizeBilinear (align_corners=False,
    half_pixel_centers=False) along one axis: output i reads input position i * n_in / n_out, between its floor and
    the next pixel (clamped at the last one)."""
    pos = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = pos.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    w[torch.arange(n_out), lo] += 1 - frac
    w[torch.arange(n_out), hi] += frac
    return w


def tf1_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images (N, C, H, W) resized to size x size as TensorFlow 1's ResizeBilinear did (the module docstring)."""
    wh = _tf1_bilinear_weights(x.shape[2], size).to(x)
    ww = wh if x.shape[3] == x.shape[2] else _tf1_bilinear_weights(x.shape[3], size).to(x)
    return torch.einsum("oh,nchw,pw->ncop", wh, x, ww)


INCEPTION_SIZE = 299


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
                       batch_size: int = 100, bf16: bool = False, channels_last: bool = True,
                       preprocessing: str = "pytorch") -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 images (N, C, H, W), C = 1 or 3, preprocessed as `preprocessing`
    says ("pytorch" or "tensorflow": the module docstring). The images go in channels-last, the layout
    `pae.eval.inception.load` gives the network (the same fp32 values up to round-off, 1.5x faster on a CPU), unless
    channels_last is False; with bf16, the network runs under bfloat16 autocast (bench/inception.py measures the
    paths and their FID)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"preprocessing={preprocessing!r}: expected one of {sorted(PREPROCESSINGS)}")
    tensorflow = preprocessing == "tensorflow"
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="inception features", **progress_kwargs()):
        x = images[i:i + batch_size].to(device).float() / (256.0 if tensorflow else 255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tensorflow:
            x = tf1_bilinear(x, INCEPTION_SIZE)
        x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
            out.append(model(x)[0].flatten(1).double().cpu())
    return torch.cat(out).numpy()


def minmax_per_image(images: torch.Tensor) -> torch.Tensor:
    """Each uint8 image stretched to the full 0-255 range (its own min to 0, max to 255; a constant image to 0), the
    PAE authors' preprocessing of real and generated images before Inception (their FID notebook)."""
    x = images.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp(min=1)
    return ((x - lo) / span * 255).round().to(torch.uint8)


class InceptionFeatures:
    """Inception features of uint8 image sets, as they are (`plain`) and min-max stretched (`stretched`). The stretch
    leaves an image that already spans 0 to 255 unchanged (92% of Fashion-MNIST's images, and many decoded ones), and
    the network sees the same input for it under both protocols: when the plain features of the same images are at
    hand (the `plain` call just before, or a `remember`ed piece), `stretched` passes only the changed images through
    the network. Each image's features do not depend on the others of its batch (Inception runs in eval mode), so the
    result is the full pass's up to float round-off."""

    def __init__(self, network: torch.nn.Module, device: torch.device | str, batch_size: int, preprocessing: str):
        self.network, self.device, self.batch_size, self.preprocessing = network, device, batch_size, preprocessing
        self._last: tuple[torch.Tensor, np.ndarray] | None = None  # the last plain images and their features

    def _features(self, images: torch.Tensor) -> np.ndarray:
        return inception_features(self.network, images, self.device, self.batch_size,
                                  preprocessing=self.preprocessing)

    def remember(self, images: torch.Tensor, features: np.ndarray) -> np.ndarray:
        self._last = (images, features)
        return features

    def knows(self, images: torch.Tensor) -> bool:
        """Whether the plain features of `images` are at hand."""
        return self._last is not None and torch.equal(self._last[0], images)

    def plain(self, images: torch.Tensor) -> np.ndarray:
        return self.remember(images, self._features(images))

    def stretched(self, images: torch.Tensor) -> np.ndarray:
        stretched = minmax_per_image(images)
        if not self.knows(images):
            return self._features(stretched)
        changed = (stretched != images).flatten(1).any(1).nonzero().squeeze(1)
        features = self._last[1].copy()
        if len(changed):
            features[changed.numpy()] = self._features(stretched[changed])
        log.info("min-max stretch: %d of %d images changed and went through Inception; the others kept their "
                 "features", len(changed), len(images))
        return features


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features (N, D)."""
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between the Gaussians fitted to two feature sets."""
    return float(calculate_frechet_distance(*statistics(a), *statistics(b)))


def _moments(x: torch.Tensor, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, R) of the feature set x (N, D), or of its resample x[rows] (N indices drawn with replacement), with
    R^T R the covariance (R from the QR factorisation of the centred features over sqrt(N - 1)). A resample is
    factorised on its distinct rows, each scaled by the square root of its count: the same scatter matrix, with the
    QR on ~63% of the rows (bench/frechet.py)."""
    n = len(x) if rows is None else len(rows)
    if rows is None:
        mean = x.mean(0)
        centred = x - mean
    else:
        counts = torch.bincount(rows, minlength=len(x))
        distinct = counts.nonzero().squeeze(1)
        weights = counts[distinct].to(x.dtype)[:, None]
        x = x[distinct]
        mean = (weights * x).sum(0) / n
        centred = (x - mean) * weights.sqrt()
    return mean, torch.linalg.qr(centred, mode="r").R / (n - 1) ** 0.5


def _frechet(a: torch.Tensor, b: torch.Tensor, rows_a: torch.Tensor | None = None,
             rows_b: torch.Tensor | None = None) -> torch.Tensor:
    """The Fréchet distance of two feature sets (N, D), or of their resamples a[rows_a] and b[rows_b], as a 0-d
    tensor, on their device, in their dtype. With A, B the centred features over sqrt(n - 1), S_a = A^T A and
    Tr (S_a S_b)^(1/2) = ||A B^T||_* (nuclear norm) = ||R_a R_b^T||_* for the QR factors A = Q_a R_a: exact for
    singular covariances (n <= D) and no d x d matrix square root (pytorch-fid's scipy.linalg.sqrtm takes ~12 s for
    D = 2048 on one core)."""
    (mean_a, ra), (mean_b, rb) = _moments(a, rows_a), _moments(b, rows_b)
    trace_sqrt = torch.linalg.svdvals(ra @ rb.T).sum()
    return (mean_a - mean_b).square().sum() + ra.square().sum() + rb.square().sum() - 2 * trace_sqrt


def frechet_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int, level: float = 0.95,
                      device: torch.device | str = "cpu") -> dict:
    """The Fréchet distance of feature sets a (N, D) and b (M, D) with a `level` percentile bootstrap interval of the
    plug-in estimate, shifted by the bootstrap bias estimate (module docstring): `n_boot` resamples of both sets with
    replacement (numpy generator seeded with `seed`). Computed in float64 on `device`; the value agrees with
    `frechet_distance` (pytorch-fid's sqrtm route). Returns {"value", "low", "high", "bootstrap_bias", "n_boot",
    "level", "n_a", "n_b"}, low clipped at 0; with n_boot = 0, low, high and bootstrap_bias are None."""
    if a.ndim != 2 or a.shape[1:] != b.shape[1:] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two feature sets (N >= 2, D) of one width, got {a.shape} and {b.shape}")
    ta = torch.as_tensor(a, dtype=torch.float64, device=device)
    tb = torch.as_tensor(b, dtype=torch.float64, device=device)
    value = _frechet(ta, tb).item()
    rng = np.random.default_rng(seed)
    reps = []
    for _ in tqdm(range(n_boot), desc="bootstrap", disable=n_boot < 10, **progress_kwargs()):
        ia = torch.as_tensor(rng.integers(0, len(a), len(a)), device=device)
        ib = torch.as_tensor(rng.integers(0, len(b), len(b)), device=device)
        reps.append(_frechet(ta, tb, ia, ib))
    out = {"value": value, "low": None, "high": None, "bootstrap_bias": None, "n_boot": n_boot, "level": level,
           "n_a": len(a), "n_b": len(b)}
    if reps:
        reps = torch.stack(reps)
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64, device=device)
        bias = reps.mean().item() - value
        low, high = (torch.quantile(reps, q) - bias).tolist()
        out.update(low=max(low, 0.0), high=high, bootstrap_bias=bias)  # a distance: the shift may cross zero
    return out


# KID and precision / recall, in the same features as the FID (no second pass), by torch-fidelity's own functions,
# with its defaults: KID (Bińkowski et al. 2018) is the unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3,
# averaged over 100 random subsets of 1,000 images of each set (fewer where a set is smaller): unbiased, so it
# compares across n, where the FID is biased upwards at small n. Precision and recall (Kynkäänniemi et al. 2019): the
# share of generated images inside the real images' manifold (the union of balls reaching each real image's k-th
# nearest real neighbour, k = 3) and of real images inside the generated images' manifold: fidelity and coverage,
# which the FID mixes into one number.
KID_SUBSETS, KID_SUBSET_SIZE, PRC_NEIGHBOURHOOD = 100, 1000, 3
COVERAGE_PROTOCOL = {
    "kid": f"unbiased MMD^2, kernel (x.y / D + 1)^3, mean (and std) over {KID_SUBSETS} random subsets of "
           f"min({KID_SUBSET_SIZE}, n) images of each set (torch-fidelity's kid_features_to_metric)",
    "precision_recall": f"k-NN manifolds, k = {PRC_NEIGHBOURHOOD} (Kynkäänniemi et al. 2019): precision = share of "
                        "generated images within some real image's k-NN radius, recall = share of real images within "
                        "some generated image's (torch-fidelity's prc_features_to_metric)"}


def kid(generated: np.ndarray, real: np.ndarray, seed: int, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE) -> dict:
    """Kernel Inception Distance of feature sets (N, D) and (M, D): {"value" (the mean over subsets), "std" (over
    subsets), "subsets", "subset_size", "n_a", "n_b"}; subsets drawn with `seed`."""
    size = min(subset_size, len(generated), len(real))
    out = kid_features_to_metric(torch.from_numpy(np.ascontiguousarray(generated)),
                                 torch.from_numpy(np.ascontiguousarray(real)), kid_subsets=subsets,
                                 kid_subset_size=size, kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return {"value": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subsets": subsets,
            "subset_size": size, "n_a": len(generated), "n_b": len(real)}


def precision_recall(generated: np.ndarray, real: np.ndarray, k: int = PRC_NEIGHBOURHOOD) -> dict:
    """Precision and recall of generated against real feature sets: {"precision", "recall", "f_score", "k", "n_a",
    "n_b"} (torch-fidelity: features_1 generated, features_2 real)."""
    out = prc_features_to_metric(torch.from_numpy(np.ascontiguousarray(generated)),
                                 torch.from_numpy(np.ascontiguousarray(real)), prc_neighborhood=k,
                                 prc_batch_size=10000, save_cpu_ram=True, verbose=False)
    return {"precision": out[KEY_METRIC_PRECISION], "recall": out[KEY_METRIC_RECALL],
            "f_score": out[KEY_METRIC_F_SCORE], "k": k, "n_a": len(generated), "n_b": len(real)}

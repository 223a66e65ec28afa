"""The fid stage (per run): the domain Fréchet distance (in the features of the dataset's domain classifier, from the
train_classifier stage) and, when Inception is available, the FID of sampled and reconstructed images ->
metrics/fid.json.

fid.json compares image sets with the real test images (at most eval.fid.n_samples of them, drawn with the seed):
  prior            z ~ N(0, I) through the decoder (what the auto-encoder gives without a density on its latents)
  pae_T{T}         the PAE: u ~ N(0, T^2 I) through the inverse flow, then the decoder, for each T of
                   eval.fid.temperatures (the distance-vs-T curve); every temperature and the prior share the same
                   base draws u (common random numbers, so differences between them are not sampling noise)
  reconstructions  the decoded test latents of latents.h5 of the same real test images
  train_vs_test    train-split images (at most n_samples, drawn with seed + 1): the floor a perfect sampler reaches
Every set is made of uint8 images: decoder means on the [-0.5, 0.5] scale are clamped and rounded to uint8 (`to_uint8`),
the form the real images are stored in, so both sets pass through the same quantisation and the same feature path.

Layout of fid.json:
  protocol         n_real, n_generated {set: n}, n_fid {real, generated}, seed, reference, sets {set: description},
                   image_conversion {domain_fd, fid, fid_minmax}, pixel_normalisation, bootstrap {n_boot, level,
                   method}, kid, precision_recall (what they are), classifier {file, test_accuracy, ...},
                   inception {mode, weights: {path, sha256, obtained, source, source_sha256, max_abs_diff} or null},
                   nonfinite_latents {set: count}
  domain_fd        {set: {value, low, high, bootstrap_bias, n_boot, level, n_a, n_b}}: the Fréchet distance in the
                   domain classifier's features (never an FID: not comparable with published figures)
  fid              the same for pytorch-fid's Inception pool3 features on the first eval.fid.fid_samples images of
                   each set (n_a, n_b say how many), or null when Inception was not run
  fid_minmax       the same with each image min-max stretched first (eval.fid.scalings has minmax), else null
  kid              {fid | fid_minmax: {set: {value, std, subsets, subset_size, n_a, n_b}}}: the Kernel Inception
                   Distance in the same features as that FID (unbiased at small n), or null without Inception
  precision_recall {fid | fid_minmax: {set: {precision, recall, f_score, k, n_a, n_b}}}: precision (fidelity) and
                   recall (coverage) of the set against the real images in those features, or null
  fid_unavailable  why the FID is null (the missing-weights message, or the config's inception: never), else null
  temperatures     the PAE temperatures, in config order

Inception on a CPU takes about 30 minutes per 10,000 images on one core, so the paper's protocol (nine image sets,
two scalings) runs for hours. The min-max pass of a set sends through Inception only the images the stretch changes
(8% of Fashion-MNIST's real images) and reuses the plain pass's features for the rest. With --partial (the workflow
passes the run's checkpoint/fid folder) each finished piece is kept there: the real images' features per extractor,
each set's features per extractor (one Inception pass each, kept until all of the set's distances are done, so a stop
in a bootstrap or between a set's two scalings loses no pass) and each set's distance per extractor; a rerun of the
stage after a stop computes only what is left. The folder belongs to one set of inputs (the sha256 of the input
files and of the spec, written in it): another set of inputs empties it first. It is removed once fid.json is
written.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from pae.data.latents import split_with_latents
from pae.data.store import Dataset, pick
from pae.eval import fid as fid_lib
from pae.eval import inception
from pae.eval.classifier import DomainClassifier, classifier_features, load_classifier
from pae.eval.generate import decode_to_uint8
from pae.flows import LatentFlow
from pae.io import PaeError, atomic_path, read_json, write_json
from pae.stages.args import add_run_inputs
from pae.stages.common import load_run

log = logging.getLogger(__name__)

LEVEL = 0.95
PIXELS = ("real and generated images are uint8 (generated: the decoder mean on the [-0.5, 0.5] scale clamped and "
          "rounded to uint8, as the real images are stored); both then take the identical path of each feature "
          "extractor")
CLASSIFIER_INPUT = ("uint8 -> [-0.5, 0.5] (pae.data.loader.to_float), native size and channels; the domain "
                    "classifier's penultimate layer (after its ReLU)")
BOOTSTRAP = ("percentile bootstrap of the plug-in estimate (both sets resampled with replacement), shifted by the "
             "bootstrap bias estimate: an interval for the expected plug-in distance at these sample sizes "
             "(pae/eval/fid.py)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_inputs(p, "the eval.fid config section", latents=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--partial", type=Path, default=None,
                   help="folder keeping the finished pieces, so that a rerun after a stop resumes (module docstring)")


def run(a: argparse.Namespace) -> None:
    fid(a.spec, a.model, a.flow, a.data, a.latents, a.classifier, a.out, a.device, partial=a.partial)


class _Finished:
    """The finished pieces of an fid stage in `folder` (None: nothing kept): arrays (.npy) and results (.json), each
    written atomically once computed and read back by a rerun with the same `fingerprint`."""

    def __init__(self, folder: Path | None, fingerprint: str):
        self.folder = folder
        if folder is None:
            return
        stamp = folder / "fingerprint.txt"
        if folder.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
            log.info("%s: kept from other inputs; starting afresh", folder)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
        done = sorted(p.stem for p in folder.iterdir() if p.suffix in (".npy", ".json"))
        if done:
            log.info("resuming: %d finished pieces in %s (%s)", len(done), folder, ", ".join(done))

    def array(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        kept = self.kept_array(name)
        if kept is not None:
            return kept
        value = compute()
        if self.folder is not None:
            with atomic_path(self.folder / f"{name}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, value)  # a file object: np.save would add .npy to a path's name
        return value

    def kept_array(self, name: str) -> np.ndarray | None:
        """The array piece `name` when it is kept, else None."""
        path = None if self.folder is None else self.folder / f"{name}.npy"
        return np.load(path) if path is not None and path.exists() else None

    def discard(self, names: list[str]) -> None:
        """Removes the array pieces `names` (those no longer needed once the results built on them are kept)."""
        for name in names if self.folder is not None else []:
            (self.folder / f"{name}.npy").unlink(missing_ok=True)

    def result(self, name: str, compute: Callable[[], dict]) -> dict:
        path = None if self.folder is None else self.folder / f"{name}.json"
        if path is not None and path.exists():
            return read_json(path)
        value = compute()
        if path is not None:
            write_json(path, value)
        return value

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _fingerprint(spec: dict, files: list[Path], weights: dict | None) -> str:
    """sha256 over the spec, the input files' contents and the Inception weights' hash."""
    h = hashlib.sha256(json.dumps({"spec": spec, "inception": weights and weights["sha256"]}, sort_keys=True).encode())
    for path in files:
        h.update(inception.sha256(path).encode())
    return h.hexdigest()


@torch.no_grad()
def decode(model: torch.nn.Module, z: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """uint8 images of latents z, decoded in batches."""
    return torch.cat([decode_to_uint8(model, z[i:i + batch_size], device) for i in range(0, len(z), batch_size)])


@torch.no_grad()
def flow_latents(flow: LatentFlow, u: torch.Tensor, temperature: float, batch_size: int) -> torch.Tensor:
    """z = f^-1(T u) for base draws u ~ N(0, I), in batches, on the flow's device."""
    device = flow.mean.device
    return torch.cat([flow.inverse(u[i:i + batch_size].to(device) * temperature)[0]
                      for i in range(0, len(u), batch_size)])


def _image_sets(model: torch.nn.Module, flow: LatentFlow, latent_dim: int, test_z: torch.Tensor,
                train_images: torch.Tensor, spec: dict, device: torch.device, nonfinite: dict[str, int]
                ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
    """(name, a function making its uint8 images) of each compared set: a set is made only when asked for (a
    resumed stage skips the finished ones), and only one is held in memory."""
    n, seed, bs = spec["n_samples"], spec["seed"], spec["batch_size"]
    u = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    flow.eval()

    def pae_samples(name: str, t: float) -> torch.Tensor:
        z = flow_latents(flow, u, t, bs)
        nonfinite[name] = int((~torch.isfinite(z).all(1)).sum())
        if nonfinite[name]:
            log.warning("%s: %d of %d flow samples are not finite", name, nonfinite[name], n)
        return decode(model, z, device, bs)

    yield "prior", lambda: decode(model, u, device, bs)
    for t in spec["temperatures"]:
        name = f"pae_T{float(t)}"
        yield name, lambda name=name, t=float(t): pae_samples(name, t)
    yield "reconstructions", lambda: decode(model, test_z, device, bs)
    yield "train_vs_test", lambda: train_images[pick(len(train_images), n, seed + 1)]


def _inception(spec: dict, device: torch.device) -> tuple[torch.nn.Module | None, dict | None, str | None]:
    """(model, weights record for fid.json, reason it is unavailable) by spec["inception"]: auto, required or
    never."""
    if spec["inception"] == "never":
        return None, None, "skipped: eval.fid.inception is 'never'"
    try:
        weights = inception.find_weights(spec["weights"])
        model = inception.load(weights, device)
    except PaeError as e:
        if spec["inception"] == "required":
            raise
        log.warning("no FID, only the domain Fréchet distance: %s", e)
        return None, None, str(e)
    log.info("Inception weights: %s (%s, sha256 %s)", weights.path, weights.obtained, weights.sha256[:16])
    return model, asdict(weights), None


def minmax_per_image(images: torch.Tensor) -> torch.Tensor:
    """Each uint8 image stretched to the full 0-255 range (its own min to 0, max to 255; a constant image to 0), the
    PAE authors' preprocessing of real and generated images before Inception (their FID notebook)."""
    x = images.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp(min=1)
    return ((x - lo) / span * 255).round().to(torch.uint8)


class _InceptionFeatures:
    """Inception features of uint8 image sets, as they are (`plain`) and min-max stretched (`stretched`). The stretch
    leaves an image that already spans 0 to 255 unchanged (92% of Fashion-MNIST's images, and many decoded ones), and
    the network sees the same input for it under both protocols: when the plain features of the same images are at
    hand (the `plain` call just before, or a `remember`ed piece), `stretched` passes only the changed images through
    the network. Each image's features do not depend on the others of its batch (Inception runs in eval mode), so the
    result is the full pass's up to float round-off."""

    def __init__(self, network: torch.nn.Module, device: torch.device, batch_size: int, preprocessing: str):
        self.network, self.device, self.batch_size, self.preprocessing = network, device, batch_size, preprocessing
        self._last: tuple[torch.Tensor, np.ndarray] | None = None  # the last plain images and their features

    def _features(self, images: torch.Tensor) -> np.ndarray:
        return fid_lib.inception_features(self.network, images, self.device, self.batch_size,
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


def _check_classifier(data: Dataset, classifier: DomainClassifier, cmeta: dict, classifier_path: Path) -> None:
    if cmeta.get("dataset_sha256") != data.attrs["sha256"] or \
            tuple(classifier.config["image_shape"]) != tuple(data.image_shape):
        raise PaeError(f"{classifier_path}: trained on another dataset than {data.path} (sha256 "
                       f"{cmeta.get('dataset_sha256')} vs {data.attrs['sha256']}); rerun the train_classifier stage")


def fid(spec: dict, model_path: Path, flow_path: Path, data_path: Path, latents_path: Path, classifier_path: Path,
        out: Path, device: str, partial: Path | None = None) -> None:
    """Domain Fréchet distance (and FID when Inception is available) of every set against the real test images ->
    `out` (fid.json, layout in the module docstring). spec = config eval.fid; `partial`: the folder of finished
    pieces (module docstring)."""
    with torch.random.fork_rng(devices=[]):  # building the networks draws initial weights: leave the global RNG
        r = load_run(model_path, flow_path, data_path, device)
        classifier, cmeta = load_classifier(classifier_path, r.device)
        inception, weights, fid_unavailable = _inception(spec, r.device)
    model, mspec, flow, data, dev = r.model, r.spec, r.flow, r.data, r.device
    _check_classifier(data, classifier, cmeta, classifier_path)
    test_images, test_z = split_with_latents(latents_path, data, "test")
    n, seed, bs = spec["n_samples"], spec["seed"], spec["batch_size"]
    chosen = pick(len(test_images), n, seed)
    real = test_images[chosen]

    n_fid = min(spec["fid_samples"] or n, n)
    extractors: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
        "domain_fd": lambda images: classifier_features(classifier, images, dev, bs)}
    if inception is not None:  # on the first n_fid images of each set (random draws, so a random subset)
        features = _InceptionFeatures(inception, dev, bs, spec["preprocessing"])
        extractors["fid"] = lambda images: features.plain(images[:n_fid])
        if "minmax" in spec["scalings"]:
            extractors["fid_minmax"] = lambda images: features.stretched(images[:n_fid])
    fingerprint = "" if partial is None else _fingerprint(
        spec, [model_path, flow_path, data_path, latents_path, classifier_path], weights)
    finished = _Finished(partial, fingerprint)
    real_features = {}
    for key, extract in extractors.items():
        real_features[key] = finished.array(f"real-{key}", lambda extract=extract: extract(real))
        if key == "fid":  # computed or read back from its piece: the stretched pass reuses it
            features.remember(real[:n_fid], real_features[key])
    results: dict[str, dict] = {key: {} for key in extractors}
    coverage: dict[str, dict] = {"kid": {}, "precision_recall": {}}  # {metric: {fid | fid_minmax: {set: ...}}}
    n_generated, nonfinite = {}, {}
    sets = _image_sets(model, flow, mspec.latent_dim, test_z[chosen], data.split("train")[0], spec, dev, nonfinite)
    for name, make in sets:
        images_once = functools.cache(make)  # the set's images, made once and only if a distance is left to compute

        def compute(key: str, images_once=images_once, name=name) -> dict:
            images = images_once()
            if key == "fid_minmax" and not features.knows(images[:n_fid]):  # resumed after the set's plain pass
                plain = finished.kept_array(f"features-{name}-fid")
                if plain is not None:
                    features.remember(images[:n_fid], plain)
            set_features = finished.array(f"features-{name}-{key}", lambda: extractors[key](images))
            done = {"n_generated": len(images), "nonfinite": nonfinite.get(name),
                    "distance": fid_lib.frechet_bootstrap(set_features, real_features[key],
                                                          spec["bootstrap"], seed, LEVEL, dev)}
            if key != "domain_fd":  # beside every FID, in the same Inception features
                done["kid"] = fid_lib.kid(set_features, real_features[key], seed)
                done["precision_recall"] = fid_lib.precision_recall(set_features, real_features[key])
            return done
        for key in extractors:  # pieces per set and distance: a stop loses at most one Inception pass
            done = finished.result(f"set-{name}-{key}", lambda key=key: compute(key))
            results[key][name] = done["distance"]
            if key != "domain_fd":
                coverage["kid"].setdefault(key, {})[name] = done["kid"]
                coverage["precision_recall"].setdefault(key, {})[name] = done["precision_recall"]
        finished.discard([f"features-{name}-{key}" for key in extractors])
        n_generated[name] = done["n_generated"]
        if done["nonfinite"] is not None:
            nonfinite[name] = done["nonfinite"]
        log.info("%-16s %s", name, "; ".join(_describe(key, results[key][name]) for key in extractors))
        for key in coverage["kid"]:
            k, pr = coverage["kid"][key][name], coverage["precision_recall"][key][name]
            log.info("%-16s %s: KID %.4g (std %.2g over %d subsets of %d), precision %.3f, recall %.3f", name, key,
                     k["value"], k["std"], k["subsets"], k["subset_size"], pr["precision"], pr["recall"])

    write_json(out, {
        "protocol": _protocol(spec, len(real), n_fid, n_generated, nonfinite, classifier_path, cmeta, weights),
        "domain_fd": results["domain_fd"], "fid": results.get("fid"), "fid_minmax": results.get("fid_minmax"),
        "kid": coverage["kid"] or None, "precision_recall": coverage["precision_recall"] or None,
        "fid_unavailable": fid_unavailable,
        "temperatures": [float(t) for t in spec["temperatures"]]})
    finished.remove()
    log.info("wrote %s (%d real test images; %s; domain classifier test accuracy %.4f)", out, len(real),
             "FID and domain FD" if inception is not None else "domain FD only, no FID", cmeta["test_accuracy"])


def _describe(key: str, r: dict) -> str:
    label = {"domain_fd": "domain FD", "fid": "FID", "fid_minmax": "FID (min-max per image)"}[key]
    interval = "" if r["low"] is None else f" [{r['low']:.4g}, {r['high']:.4g}]"
    return f"{label} {r['value']:.4g}{interval} ({r['n_a']} vs {r['n_b']} images)"


def _protocol(spec: dict, n_real: int, n_fid: int, n_generated: dict, nonfinite: dict, classifier_path: Path,
              cmeta: dict, weights: dict | None) -> dict:
    return {
        "n_real": n_real, "n_generated": n_generated, "seed": spec["seed"],
        "reference": f"the test split, {n_real} images (all of them, or n_samples drawn with the seed)",
        "sets": {"prior": "z ~ N(0, I) -> decoder",
                 "pae_T": "u ~ N(0, I) (the prior's draws), z = flow^-1(T u) -> decoder, for T in temperatures",
                 "reconstructions": "decoder(test latents of latents.h5) of the reference images",
                 "train_vs_test": "train-split images (at most n_samples, drawn with seed + 1): the floor"},
        "pixel_normalisation": PIXELS,
        "image_conversion": {"domain_fd": CLASSIFIER_INPUT, "fid": fid_lib.protocol(spec["preprocessing"]),
                             "fid_minmax": f"each image min-max stretched to 0-255 (real and generated), then "
                                           f"{fid_lib.protocol(spec['preprocessing'])}"},
        "preprocessing": spec["preprocessing"],
        "n_fid": {"real": min(n_real, n_fid), "generated": {k: min(v, n_fid) for k, v in n_generated.items()}},
        "bootstrap": {"n_boot": spec["bootstrap"], "level": LEVEL, "method": BOOTSTRAP},
        **fid_lib.COVERAGE_PROTOCOL,
        "classifier": {"file": str(classifier_path), "test_accuracy": cmeta.get("test_accuracy"),
                       "val_accuracy": cmeta.get("val_accuracy"), "features": cmeta.get("features"),
                       "n_classes": cmeta.get("n_classes"),
                       "task": cmeta.get("task", "classes")},
        "inception": {"mode": spec["inception"], "weights": weights},
        "nonfinite_latents": nonfinite,
    }

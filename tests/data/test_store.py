"""The HDF5 dataset store: round trip, splits, attributes, damaged or foreign files, atomic writes."""
from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest
import torch

from pae.data.store import FORMAT, make_splits, open_dataset, write_dataset
from pae.io import PaeError
from tests.helpers import synthetic_raw

N_TRAIN, N_TEST = 120, 40


@pytest.fixture(scope="module")
def raw():
    return synthetic_raw(N_TRAIN, N_TEST)


def write(path, raw, **kw):
    kw = {"val_size": 20, "split_seed": 0, **kw}
    return write_dataset(path, "synthetic", raw, **kw)


def split_sets(ds):
    return {name: set(idx.tolist()) for name, idx in ds.splits.items()}


# ------------------------------------------------------------------------------------------------------- round trip

def test_round_trip_images_and_labels(tmp_path, raw):
    write(tmp_path / "d.h5", raw)
    ds = open_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(ds.images.numpy(), np.concatenate([raw.train_images, raw.test_images]))
    np.testing.assert_array_equal(ds.labels.numpy(), np.concatenate([raw.train_labels, raw.test_labels]))
    assert ds.image_shape == (1, 28, 28)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64


def test_splits_disjoint_and_cover_official_parts(tmp_path, raw):
    write(tmp_path / "d.h5", raw, val_size=25)
    s = split_sets(open_dataset(tmp_path / "d.h5"))
    assert not s["train"] & s["val"] and not s["train"] & s["test"] and not s["val"] & s["test"]
    assert s["train"] | s["val"] == set(range(N_TRAIN))
    assert s["test"] == set(range(N_TRAIN, N_TRAIN + N_TEST))
    assert len(s["val"]) == 25 and len(s["train"]) == N_TRAIN - 25


def test_split_returns_images_and_labels_of_that_split(tmp_path, raw):
    write(tmp_path / "d.h5", raw)
    ds = open_dataset(tmp_path / "d.h5")
    images, labels = ds.split("val")
    idx = ds.splits["val"].numpy()
    np.testing.assert_array_equal(images.numpy(), ds.images.numpy()[idx])
    np.testing.assert_array_equal(labels.numpy(), ds.labels.numpy()[idx])
    with pytest.raises(PaeError, match="no split 'bogus'"):
        ds.split("bogus")


def test_same_seed_same_split_other_seed_different(tmp_path, raw):
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        write(tmp_path / f"{name}.h5", raw, split_seed=seed)
    a, b, c = (open_dataset(tmp_path / f"{n}.h5") for n in "abc")
    assert a.splits["val"].tolist() == b.splits["val"].tolist()
    assert a.attrs["sha256"] == b.attrs["sha256"]
    assert a.splits["val"].tolist() != c.splits["val"].tolist()


def test_limits_honoured(tmp_path, raw):
    write(tmp_path / "d.h5", raw, limit_train=30, limit_test=7)
    s = split_sets(open_dataset(tmp_path / "d.h5"))
    assert len(s["train"]) == 30 and len(s["test"]) == 7 and len(s["val"]) == 20
    assert s["train"] <= set(range(N_TRAIN)) - s["val"]
    assert s["test"] <= set(range(N_TRAIN, N_TRAIN + N_TEST))


def test_make_splits_limits_are_prefixes_of_the_unlimited_split():
    full = make_splits(N_TRAIN, N_TEST, 20, seed=5)
    small = make_splits(N_TRAIN, N_TEST, 20, seed=5, limit_train=10)
    assert small["val"].tolist() == full["val"].tolist()  # a limit never changes the validation set
    assert set(small["train"].tolist()) <= set(full["train"].tolist())


def test_attributes(tmp_path, raw):
    attrs = write(tmp_path / "d.h5", raw, split_seed=7)
    ds = open_dataset(tmp_path / "d.h5")
    assert ds.attrs["format"] == FORMAT == "pae-dataset/1"
    assert ds.attrs["dataset"] == "synthetic" and ds.attrs["source"] == "synthetic"
    assert ds.attrs["source_detail"] == raw.detail
    assert ds.attrs["split_seed"] == 7
    assert ds.attrs["classes"] == raw.classes
    sha = ds.attrs["sha256"]
    assert sha == attrs["sha256"] and re.fullmatch(r"[0-9a-f]{64}", sha)


# ----------------------------------------------------------------------------------------------------------- errors

def test_missing_file(tmp_path):
    with pytest.raises(PaeError, match="absent.h5.*not found"):
        open_dataset(tmp_path / "absent.h5")


def test_truncated_file(tmp_path, raw):
    path = tmp_path / "d.h5"
    write(path, raw)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(PaeError, match="d.h5.*perhaps truncated"):
        open_dataset(path)


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello\n")
    with pytest.raises(PaeError, match="text.h5.*not a readable HDF5 file"):
        open_dataset(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("something", data=np.arange(10))
    with pytest.raises(PaeError, match="other.h5.*not a pae dataset file"):
        open_dataset(path)


def test_checksum_mismatch(tmp_path, raw):
    path = tmp_path / "d.h5"
    write(path, raw)
    with h5py.File(path, "r+") as f:
        f["images"][0, 0, 14, 14] = f["images"][0, 0, 14, 14] ^ 0xFF
    with pytest.raises(PaeError, match="d.h5.*checksum mismatch"):
        open_dataset(path)
    assert open_dataset(path, verify=False).images[0, 0, 14, 14] == raw.train_images[0, 0, 14, 14] ^ 0xFF


def test_split_index_out_of_range(tmp_path, raw):
    path = tmp_path / "d.h5"
    write(path, raw)
    with h5py.File(path, "r+") as f:
        f["splits/test"][0] = 10_000
    with pytest.raises(PaeError, match="d.h5.*split 'test' indexes outside"):
        open_dataset(path, verify=False)


@pytest.mark.parametrize("val_size", [N_TRAIN, N_TRAIN + 5, 0])
def test_val_size_out_of_range(tmp_path, raw, val_size):
    path = tmp_path / "d.h5"
    with pytest.raises(PaeError, match=f"val_size={val_size}"):
        write(path, raw, val_size=val_size)
    assert not path.exists()


def test_non_uint8_images_rejected(tmp_path, raw):
    bad = synthetic_raw(N_TRAIN, N_TEST)
    bad.train_images = bad.train_images.astype(np.float32)
    with pytest.raises(PaeError, match="must be uint8"):
        write(tmp_path / "d.h5", bad)


# -------------------------------------------------------------------------------------------------------- atomicity

def _fail_after_first_create_dataset(monkeypatch):
    original = h5py.File.create_dataset
    calls = []

    def flaky(self, *args, **kw):
        calls.append(args[0] if args else kw.get("name"))
        if len(calls) > 1:
            raise RuntimeError("disk full (simulated)")
        return original(self, *args, **kw)

    monkeypatch.setattr(h5py.File, "create_dataset", flaky)
    return calls


def test_failed_write_leaves_nothing(tmp_path, raw, monkeypatch):
    calls = _fail_after_first_create_dataset(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated"):
        write(tmp_path / "d.h5", raw)
    assert len(calls) == 2  # it did get midway
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_file(tmp_path, raw, monkeypatch):
    path = tmp_path / "d.h5"
    old = write(path, raw, split_seed=1)
    _fail_after_first_create_dataset(monkeypatch)
    with pytest.raises(RuntimeError):
        write(path, raw, split_seed=2)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]
    assert open_dataset(path).attrs["sha256"] == old["sha256"]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a private temporary file; the result must still be readable as the umask allows."""
    import os
    import stat
    old = os.umask(0o022)
    try:
        write_dataset(tmp_path / "d.h5", "synthetic", synthetic_raw(), val_size=20, split_seed=0)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d.h5").stat().st_mode) == 0o644

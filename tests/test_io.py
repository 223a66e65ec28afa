"""pae.io: atomic writes on a full or read-only device, and loading pae files without running pickled code."""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pae import io
from pae.io import PaeError, atomic_path, torch_load, torch_save, write_json

DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC: a real full device without a mount
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system; to run this test: "
                                                                   "sudo mknod -m 666 /dev/full c 1 7")


def _statvfs(free_bytes: int):
    real = os.statvfs

    class Fake:
        f_frsize, f_bavail = 4096, free_bytes // 4096

    def fake(folder):
        real(folder)  # the folder exists
        return Fake()
    return fake


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A checkpoint already on disk, which a failed write must leave as it is."""
    path = tmp_path / "out" / "checkpoint.pt"
    torch_save(path, {"kind": "checkpoint", "epoch": 3, "w": torch.arange(5.0)})
    return path


def _intact(path: Path) -> None:
    assert torch_load(path, "checkpoint")["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the temporary file is gone


@needs_dev_full
def test_torch_save_on_a_full_device_names_the_file(checkpoint, monkeypatch):
    """torch's zip writer reports a full device as "[enforce fail at inline_container.cc] unexpected pos ...",
    with no errno: the free space of the folder decides."""
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, str(DEV_FULL)))  # the kernel says ENOSPC
    monkeypatch.setattr(os, "statvfs", _statvfs(8192))
    with pytest.raises(PaeError, match=re.escape(f"no space left on the device of {checkpoint}")) as e:
        torch_save(checkpoint, {"kind": "checkpoint", "epoch": 4, "w": torch.randn(100_000)})
    assert "inline_container" in str(e.value)  # the writer's own words follow
    _intact(checkpoint)


@needs_dev_full
def test_torch_runtime_error_with_free_space_is_not_called_a_full_device(checkpoint, monkeypatch):
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, str(DEV_FULL)))
    monkeypatch.setattr(os, "statvfs", _statvfs(10 << 30))
    with pytest.raises(RuntimeError, match="inline_container"):
        torch_save(checkpoint, {"kind": "checkpoint", "epoch": 4, "w": torch.randn(100_000)})
    _intact(checkpoint)


@needs_dev_full
@pytest.mark.parametrize("writer", ["h5py", "json", "fileobj"])
def test_enospc_from_any_writer_names_the_file(tmp_path, writer):
    dest = tmp_path / "latents.h5"
    dest.write_bytes(b"old")
    with pytest.raises(PaeError, match="^" + re.escape(f"no space left on the device of {dest}")):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            if writer == "h5py":  # HDF5's "file write failed: ..., errno = 28"
                with h5py.File(DEV_FULL, "w") as f:
                    f["x"] = np.zeros(10_000)
            elif writer == "json":
                with open(DEV_FULL, "w") as f:
                    json.dump({"a": 1}, f)
            else:  # torch.save to an open file: RuntimeError raised while handling the OSError
                with open(DEV_FULL, "wb") as f:
                    torch.save({"w": torch.randn(100_000)}, f)
    assert dest.read_bytes() == b"old" and os.listdir(tmp_path) == ["latents.h5"]


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "no space left on the device of {}"),
                                           (errno.EROFS, "{} is on a read-only filesystem")])
def test_rename_failure_keeps_the_old_file(checkpoint, monkeypatch, code, message):
    def fail(src, dst):
        raise OSError(code, os.strerror(code), str(dst))
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PaeError, match=re.escape(message.format(checkpoint))):
        torch_save(checkpoint, {"kind": "checkpoint", "epoch": 4})
    monkeypatch.undo()
    _intact(checkpoint)


def test_read_only_folder_names_the_file(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(io.tempfile, "mkstemp", fail)
    with pytest.raises(PaeError, match="^" + re.escape(f"{tmp_path / 'm.json'} is on a read-only filesystem")):
        write_json(tmp_path / "m.json", {"a": 1})


def test_wrapped_oserror_is_found_through_the_cause(tmp_path):
    dest = tmp_path / "x.csv"
    with pytest.raises(PaeError, match=re.escape(f"{dest} is on a read-only filesystem")):
        with atomic_path(dest):
            try:
                raise OSError(errno.EROFS, "Read-only file system")
            except OSError as e:
                raise ValueError("writer failed") from e
    assert os.listdir(tmp_path) == []


def test_other_errors_pass_unchanged(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with atomic_path(tmp_path / "x.json"):
            1 / 0
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "y.json"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert os.listdir(tmp_path) == []


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pickled code ran",))


class _Plain:
    pass


@pytest.mark.parametrize("payload, name", [(_Runs(), "system"), (_Plain(), "_Plain")])
def test_a_file_with_pickled_objects_is_refused(tmp_path, payload, name):
    path = tmp_path / "model.pt"
    torch.save({"kind": "model", "spec": payload}, path)
    with pytest.raises(PaeError, match="^" + re.escape(f"{path}: refused to load this model: it holds a pickled "
                                                             "Python object (") + rf"[\w.]*{name}\)"):
        torch_load(path, "model")


def test_a_damaged_file_is_named_without_torch_advice_to_drop_weights_only(tmp_path):
    path = tmp_path / "flow.pt"
    path.write_bytes(pickle.dumps([1, 2], protocol=2)[:-3] + b"\xff" * 100)
    with pytest.raises(PaeError, match="^" + re.escape(f"{path}: cannot read flow")) as e:
        torch_load(path, "flow")
    assert "weights_only" not in str(e.value)


def test_plain_data_and_tensors_load(tmp_path):
    path = tmp_path / "c.pt"
    obj = {"kind": "classifier", "config": {"image_shape": (1, 28, 28), "channels": [8, 16]}, "meta": {"a": None},
           "state_dict": {"w": torch.ones(2, dtype=torch.float16)}}
    torch_save(path, obj)
    assert torch_load(path, "classifier")["config"] == obj["config"]

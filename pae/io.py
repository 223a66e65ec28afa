"""Small I/O helpers shared by every stage: atomic writes, JSON, logging setup.

Every output is written to a temporary file in the destination folder and renamed into place, so an interrupted stage
never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator


class PaeError(Exception):
    """An error caused by the user's input (a file, a key, a value); its message says what was expected."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result gets the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PaeError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise PaeError(f"{path}: not valid JSON ({e})") from None


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically."""
    import torch  # imported here so that config validation (run by the Snakefile) does not pay for torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path: str | os.PathLike, what: str) -> dict:
    """Load a pae checkpoint-like file, with a clear error when it is missing, truncated or not one of ours."""
    import torch

    path = Path(path)
    if not path.exists():
        raise PaeError(f"{path}: {what} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, pickle garbage, ...
        raise PaeError(f"{path}: cannot read {what} ({type(e).__name__}: {e}); delete it and rerun the stage") from None
    if not isinstance(obj, dict) or obj.get("kind") != what:
        raise PaeError(f"{path}: not a pae {what} file (expected a dict with kind={what!r})")
    return obj


def setup_logging(verbose: bool = True) -> None:
    """Log to stderr (each workflow rule redirects stderr to its log file)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


class _Lines:
    """A file for tqdm writing to a log: each update becomes one line instead of a carriage-return redraw."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_kwargs() -> dict:
    """tqdm settings: a live bar on a terminal; in a log file, one progress line every 30 s (and at the end)."""
    if sys.stderr.isatty():
        return {"file": sys.stderr, "mininterval": 0.5, "dynamic_ncols": True}
    return {"file": _Lines(sys.stderr), "mininterval": 30.0, "ascii": True, "ncols": 100}

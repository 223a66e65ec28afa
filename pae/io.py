"""Small I/O helpers shared by every stage: atomic writes, JSON, logging setup.

Every output is written to a temporary file in the destination folder and renamed into place, so an interrupted stage
never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pickle
import re
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


# Below this much free space a write that failed without an errno (torch's zip writer: "[enforce fail at
# inline_container.cc] unexpected pos ...") is taken to have run out of space.
LOW_SPACE_BYTES = 1 << 20


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # gone, or no statvfs (Windows)
        return None
    return st.f_bavail * st.f_frsize


def _chain(e: BaseException) -> Iterator[BaseException]:
    """`e` and the exceptions it was raised from or while handling (torch and h5py wrap the OSError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def storage_error(e: BaseException, path: Path) -> PaeError | None:
    """A PaeError naming `path` when writing it failed because its device is full or read-only, else None.
    Looks at the errno of every OSError in the chain, then at the message (h5py and torch put the C library's
    error text there), then, for a failure that carries no errno, at the free space of the folder."""
    if isinstance(e, PaeError):
        return None
    chain = list(_chain(e))
    codes = {c.errno for c in chain if isinstance(c, OSError) and c.errno}
    text = " ".join(str(c) for c in chain)
    codes |= {int(n) for n in re.findall(r"errno = (\d+)", text)}  # HDF5's "file write failed: ..., errno = 28"
    cause = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    if codes & _NO_SPACE or os.strerror(errno.ENOSPC) in text:
        return PaeError(f"no space left on the device of {path} ({cause}); free some space and rerun")
    if errno.EROFS in codes or os.strerror(errno.EROFS) in text:
        return PaeError(f"{path} is on a read-only filesystem ({cause})")
    if isinstance(e, (RuntimeError, OSError)) and not codes:  # torch's zip writer, h5py without an errno
        free = _free_bytes(path.parent)
        if free is not None and free < LOW_SPACE_BYTES:
            return PaeError(f"no space left on the device of {path} ({free} bytes free after the write failed: "
                            f"{cause}); free some space and rerun")
    return None


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError as e:  # e.g. the filesystem was remounted read-only meanwhile
        logging.getLogger(__name__).warning("cannot remove the temporary file %s: %s", tmp, e)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it (a file already
    at `path` is left as it was). A full or read-only device becomes a PaeError naming `path`, whatever the writer
    raised."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        err = storage_error(e, path)
        if err is None:
            raise
        raise err from e
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result gets the usual permissions
        os.replace(tmp, path)
    except Exception as e:
        err = storage_error(e, path)  # looked at before the temporary file is removed (the space it holds)
        if err is None:
            raise
        raise err from e
    finally:
        _remove(tmp)


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
        # weights_only: tensors and plain data (dicts, lists, tuples, str, numbers) only, never code from the file
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # the weights-only unpickler met a class or function
        if found is None:  # not a pickle at all, or damaged: torch's advice to retry without weights_only left out
            detail = [line.strip() for line in str(e).splitlines() if line.strip() and not any(
                boiler in line for boiler in ("Weights only", "Please file", "Check the documentation"))]
            raise PaeError(f"{path}: cannot read {what} (UnpicklingError: {'; '.join(detail) or 'damaged file'}); "
                           "delete it and rerun the stage") from None
        raise PaeError(f"{path}: refused to load this {what}: it holds a pickled Python object"
                       f" ({found.group(1)}), through which loading could run code; pae "
                       "files hold only tensors and plain data. Do not use a file of unknown origin; delete it and "
                       "rerun the stage") from None
    except Exception as e:  # truncated zip, garbage, ...
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


# A log record's first line as setup_logging writes it ("2025-01-31 12:00:00,123 ERROR pae: ..."); the lines up to the
# next record belong to its message.
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<name>[\w.]+): (?P<message>.*)$")
# Each attempt of a rule (snakemake's retries, reruns) starts its log with a record holding this marker; the rule's
# LOG.attempts collects every attempt's log one after the other.
ATTEMPT_HEADER = "===="
# Lines of the other writers of a SLURM job's log (submitit's own log format, srun and slurmstepd): not part of the pae
# record above them.
_FOREIGN = re.compile(r"^(?:submitit [A-Z]+ \(\d{4}-|srun: |slurmstepd: )")


def log_errors(path: str | os.PathLike) -> list[str]:
    """The error messages pae logged in a stage's log file (`python -m pae ... 2>&1 | tee -i -a LOG.attempts > LOG`)
    in its last attempt (the lines from the last ATTEMPT_HEADER record on): each record at level ERROR of the `pae`
    loggers, its continuation lines included (a PaeError message may span several lines). A log with no such record
    that ends in a Python traceback gives the traceback's last line (the exception). The workflow prints these on the
    terminal when a stage fails, so the cause shows without opening the log."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    for i in range(len(lines) - 1, -1, -1):
        record = _RECORD.match(lines[i])
        if record and record["message"].startswith(ATTEMPT_HEADER):
            lines = lines[i:]
            break
    errors: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        record = _RECORD.match(line)
        if record:
            name = record["name"]
            current = None
            if record["level"] in ("ERROR", "CRITICAL") and (name == "pae" or name.startswith("pae.")):
                current = [record["message"]]
                errors.append(current)
        elif _FOREIGN.match(line):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    if errors:
        # An error quoted whole by a later one (the SLURM launcher's summary quotes the stage's) is given once.
        messages = ["\n".join(e) for e in errors]
        return [m for i, m in enumerate(messages) if not any(m in later for later in messages[i + 1:])]
    if any(line.startswith("Traceback (most recent call last):") for line in lines):
        last = [line for line in lines if line.strip() and not line.startswith(" ")]
        return last[-1:]
    return []


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

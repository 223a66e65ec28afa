"""The data a figure is drawn from, kept beside it: figures/data/{name}.h5 holds the figure's kind (which drawer draws
it), a JSON `meta` (labels, table rows, colours) and its arrays (images, scores). The report stage writes it and
draws from it; `python -m pae report --from FOLDER` redraws every figure of a report or an export from these files
alone, without the runs or any model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from pae.io import PaeError, atomic_path

FORMAT = "pae-figure-data/1"
DATA_DIR = "data"  # under the figures folder


def data_path(figures_dir: str | os.PathLike, name: str) -> Path:
    """figures/data/{name}.h5 of the figure figures/{name}.png."""
    return Path(figures_dir) / DATA_DIR / f"{name}.h5"


def save(path: str | os.PathLike, kind: str, meta: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write a figure's data (arrays by name; a name with "/" makes groups), atomically."""
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format=FORMAT, kind=kind, meta=json.dumps(meta, allow_nan=True))
        for name, value in (arrays or {}).items():
            value = np.asarray(value)
            f.create_dataset(name, data=value, **({"compression": "gzip"} if value.size > 1024 else {}))


def load(path: str | os.PathLike) -> tuple[str, dict, dict[str, np.ndarray]]:
    """(kind, meta, arrays) of a figure-data file; a file of another format is named with what was expected."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise KeyError(f"format {f.attrs.get('format')!r}, expected {FORMAT!r}")
            arrays: dict[str, np.ndarray] = {}
            f.visititems(lambda name, obj: arrays.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset)
                         else None)
            return str(f.attrs["kind"]), json.loads(f.attrs["meta"]), arrays
    except (OSError, KeyError, ValueError) as e:
        raise PaeError(f"{path}: not a pae figure-data file ({e})") from None

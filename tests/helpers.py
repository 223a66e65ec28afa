"""Helpers shared by the tests: tiny synthetic data, running `python -m pae`, the real-data policy."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pae.data.sources import RawDataset

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

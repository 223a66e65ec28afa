"""Figures of an experiment, drawn from each run's samples.h5 and history files (no model is loaded here)."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pae.io import PaeError, atomic_path, read_json  # noqa: E402


def image_grid(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """uint8 (N, C, H, W) -> one (rows*H, cols*W[, 3]) image with `pad` white pixels between tiles."""
    n, c, h, w = images.shape
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = \
            img.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def _show(ax, grid: np.ndarray, title: str) -> None:
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _save(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _read_samples(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            out = {k: f[k][...] for k in ("pae", "prior", "originals", "reconstructions", "interpolations")}
            out["temperature"] = float(f.attrs["temperature"])
            return out
    except (OSError, KeyError) as e:
        raise PaeError(f"{path}: not a complete samples file ({e}); rerun the evaluate stage") from None


def write_run_figures(runs: list[dict], figures_dir: str | os.PathLike) -> None:
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        s = _read_samples(run["files"]["samples"])
        name = run["run"]
        ncols = int(np.ceil(np.sqrt(len(s["pae"]))))
        fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
        _show(axes[0], image_grid(s["pae"], ncols), f"PAE samples (flow, T={s['temperature']:g})")
        _show(axes[1], image_grid(s["prior"], ncols), "z ~ N(0, I) through the decoder")
        fig.suptitle(name)
        _save(fig, figures_dir / f"{name}_samples.png")

        k = min(16, len(s["originals"]))
        pairs = np.concatenate([s["originals"][:k], s["reconstructions"][:k]])
        fig, ax = plt.subplots(figsize=(10, 1.6))
        _show(ax, image_grid(pairs, k), f"{name}: test images (top) and reconstructions (bottom)")
        _save(fig, figures_dir / f"{name}_reconstructions.png")

        interp = s["interpolations"]
        fig, ax = plt.subplots(figsize=(8, 0.8 * len(interp) + 0.4))
        _show(ax, image_grid(interp.reshape(-1, *interp.shape[2:]), interp.shape[1]),
              f"{name}: latent interpolations between test images")
        _save(fig, figures_dir / f"{name}_interpolations.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        hist = [h for h in read_json(run["files"]["history"])["epochs"] if h["val_mse"] is not None]
        axes[0].plot([h["epoch"] for h in hist], [h["val_mse"] for h in hist], marker=".", label=run["run"])
        flow = read_json(run["files"]["flow_history"])["epochs"]
        axes[1].plot([h["epoch"] for h in flow], [h["val_logp"] for h in flow], label=run["run"])
    axes[0].set(xlabel="epoch", ylabel="validation MSE per pixel", yscale="log", title="auto-encoder")
    axes[1].set(xlabel="epoch", ylabel="validation log p(z)", title="flow on latents")
    axes[0].legend(fontsize=7)
    _save(fig, figures_dir / "training_curves.png")

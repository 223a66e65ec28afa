"""Figures of the decoder's predicted uncertainty and of latent traversals, after the heteroscedastic VAE's
(github.com/Sheev13/vae), drawn from the arrays the uncertainty stage wrote (uncertainty.h5); no model is loaded here.

  {run}_uncertainty.png         a row per test image: the image, a posterior sample's latent (bar chart), the
                                likelihood's mean at that latent and its predicted std, on one colour bar
  {run}_sample_uncertainty.png  N(0, I) and PAE samples with their predicted std beside them (likelihoods whose
                                scale varies: where the model is unsure of its own samples)
  {run}_traversal.png           images decoded on a bilinear grid between the latents of four test images
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pae.io import PaeError  # noqa: E402
from pae.report.figures import _save, _styled, image_grid  # noqa: E402

PANELS_FORMAT = "pae-uncertainty-panels/1"  # the format pae.stages.uncertainty writes (no torch imported here)
LIKELIHOOD_LABELS = {
    "gaussian_fixed": "Gaussian, one fixed sigma",
    "gaussian_learned": "Gaussian, one learned sigma (homoscedastic)",
    "gaussian_image": "Gaussian, a sigma per image (image-wise heteroscedastic)",
    "gaussian_pixel": "Gaussian, a sigma per pixel (pixel-wise heteroscedastic)",
    "bernoulli": "Bernoulli",
}


def likelihood_label(kind: str, beta_nll: float | None = None) -> str:
    """A likelihood kind in words, with its beta-NLL weight where it is set; an empty kind is an AE's (none)."""
    if not kind:
        return "no likelihood (auto-encoder)"
    return LIKELIHOOD_LABELS.get(kind, kind) + (f", beta-NLL {beta_nll:g}" if beta_nll else "")


def read_panels(path: str | os.PathLike) -> dict:
    """Every array of an uncertainty.h5 and its attributes (under "attrs")."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != PANELS_FORMAT:
                raise KeyError(f"format {f.attrs.get('format')!r}, expected {PANELS_FORMAT!r}")
            out = {k: f[k][...] for k in f}
            out["attrs"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            return out
    except (OSError, KeyError) as e:
        raise PaeError(f"{path}: not a complete uncertainty panels file ({e}); rerun the uncertainty stage") from None


def _image(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> what imshow takes: (H, W) for one channel, else (H, W, C)."""
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _std_map(std: np.ndarray) -> np.ndarray:
    """(C, H, W) std -> (H, W): the channel for grey images, the rms over channels for colour ones."""
    return std[0] if std.shape[0] == 1 else np.sqrt((std.astype(np.float64) ** 2).mean(0))


def _bare(ax) -> None:
    """No ticks nor frame, keeping the axis labels (which carry per-panel notes)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _show_image(ax, img: np.ndarray) -> None:
    ax.imshow(_image(img), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
    _bare(ax)


def _std_label(attrs: dict) -> str:
    what = "sqrt(p (1 - p))" if attrs["likelihood"] == "bernoulli" else "sigma"
    return f"predicted std {what}, pixel scale"


def _colorbar(fig, im, axes, attrs: dict, shrink: float) -> None:
    """The one colour bar of a figure's std panels, beside `axes`."""
    bar = fig.colorbar(im, ax=axes, shrink=shrink)
    bar.set_label(_std_label(attrs), fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _vmax(*stds: np.ndarray) -> float:
    """The top of a shared colour bar: the largest std shown (a small positive number when all are 0)."""
    return max(max(float(s.max()) for s in stds), 1e-6)


@_styled
def uncertainty_figure(run: dict, path: str | os.PathLike) -> bool:
    """The uncertainty figure of one run (see the module docstring); False (nothing drawn) for a model without a
    likelihood (an AE)."""
    p = read_panels(run["files"]["uncertainty_panels"])
    if "std" not in p:
        return False
    attrs, k = p["attrs"], len(p["originals"])
    latents = p["latents"]
    lim = 1.05 * max(float(np.abs(latents).max()), 1e-6)
    vmax = _vmax(p["std"])
    fig, axes = plt.subplots(k, 4, figsize=(7.4, 1.45 * k + 0.7), squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.7, 1, 1]})
    titles = ["test image", f"z ~ q(z | x) ({latents.shape[1]} dims)", "reconstruction\n(mean at z)",
              "predicted std"]
    for i in range(k):
        row = axes[i]
        _show_image(row[0], p["originals"][i])
        row[1].bar(np.arange(latents.shape[1]), latents[i], width=0.8, color="tab:blue")
        row[1].axhline(0, color="grey", lw=0.5)
        row[1].set(ylim=(-lim, lim), xticks=[])
        row[1].tick_params(labelsize=6)
        for side in ("top", "right"):
            row[1].spines[side].set_visible(False)
        _show_image(row[2], p["reconstructions"][i])
        std = _std_map(p["std"][i])
        im = row[3].imshow(std, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        _bare(row[3])
        # one number for a constant map (one sigma per image or for all), else the map's mean and largest value
        note = f"{std.mean():.3g}" if np.ptp(std) <= 1e-6 * std.max() else f"mean {std.mean():.3g}, max {std.max():.3g}"
        row[3].set_xlabel(note, fontsize=6, labelpad=2)
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=8)
    _colorbar(fig, im, axes[:, 3], attrs, shrink=min(1.0, 3.0 / k))
    fig.suptitle(f"{run['run']}: {likelihood_label(attrs['likelihood'], attrs['beta_nll'])}", fontsize=9)
    _save(fig, Path(path))
    return True


@_styled
def sample_uncertainty_figure(run: dict, path: str | os.PathLike) -> bool:
    """Samples with their predicted std (see the module docstring): N(0, I) and the PAE's flow at T = 1, each a row of
    likelihood means over a row of stds on one colour bar. False (nothing drawn) unless the likelihood's scale
    varies (constant for an AE, a fixed or one learned sigma)."""
    p = read_panels(run["files"]["uncertainty_panels"])
    if "prior_samples" not in p:
        return False
    attrs, m = p["attrs"], len(p["prior_samples"])
    vmax = _vmax(p["prior_std"], p["pae_std"])
    fig, axes = plt.subplots(4, m, figsize=(0.95 * m + 1.6, 4.6), squeeze=False, layout="constrained")
    rows = [("prior_samples", "z ~ N(0, I):\nmean"), ("prior_std", "std"),
            ("pae_samples", "PAE (flow, T=1):\nmean"), ("pae_std", "std")]
    for r, (key, label) in enumerate(rows):
        for j in range(m):
            ax = axes[r, j]
            if key.endswith("_std"):
                std = _std_map(p[key][j])
                im = ax.imshow(std, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
                _bare(ax)
                ax.set_xlabel(f"{std.mean():.2g}", fontsize=6, labelpad=1)
            else:
                _show_image(ax, p[key][j])
        axes[r, 0].set_ylabel(label, fontsize=8)
    _colorbar(fig, im, axes[:, -1], attrs, shrink=0.9)
    fig.suptitle(f"{run['run']}: {likelihood_label(attrs['likelihood'], attrs['beta_nll'])}: decoded samples and "
                 "their predicted std (number: its mean)", fontsize=9)
    _save(fig, Path(path))
    return True


@_styled
def traversal_figure(run: dict, path: str | os.PathLike) -> bool:
    """The traversal grid of one run beside the four test images whose latents are its corners."""
    p = read_panels(run["files"]["uncertainty_panels"])
    grid = p["traversal"]
    s = grid.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 6.0), layout="constrained", gridspec_kw={"width_ratios": [s, 2.2]})
    tiles = image_grid(grid.reshape(-1, *grid.shape[2:]), s)
    axes[0].imshow(tiles, cmap="gray" if tiles.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    axes[0].set_title(f"decoded bilinear interpolation of the corner images' latents ({s} x {s})", fontsize=8)
    corners = image_grid(p["corner_images"], 2)
    axes[1].imshow(corners, cmap="gray" if corners.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    axes[1].set_title("test images at\nthe corners", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{run['run']}: latent traversal", fontsize=9)
    _save(fig, Path(path))
    return True


def write_uncertainty_figures(runs: list[dict], figures_dir: str | os.PathLike) -> None:
    """Every run's uncertainty, sample-uncertainty and traversal figures, where its model has what they show."""
    figures_dir = Path(figures_dir)
    for run in runs:
        uncertainty_figure(run, figures_dir / f"{run['run']}_uncertainty.png")
        sample_uncertainty_figure(run, figures_dir / f"{run['run']}_sample_uncertainty.png")
        traversal_figure(run, figures_dir / f"{run['run']}_traversal.png")

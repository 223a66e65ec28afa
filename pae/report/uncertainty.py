"""Figures of the decoder's predicted uncertainty and of latent traversals, after the heteroscedastic VAE's
(github.com/Sheev13/vae), drawn from the arrays the uncertainty stage wrote (uncertainty.h5); no model is loaded here.

  {run}_uncertainty.png         a row per test image: the image, a posterior sample's latent (bar chart), the
                                likelihood's mean at that latent and its predicted std, on one colour bar
  {run}_sample_uncertainty.png  N(0, I) and PAE samples with their predicted std beside them (likelihoods whose
                                scale varies: where the model is unsure of its own samples)
  {run}_interpolation_grid.png  images decoded on a bilinear grid between the latents of four test images, beside
                                those images
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
from pae.report.figures import (bare, drawer, image_grid, make, show_image, std_map,  # noqa: E402
                                wrapped_suptitle)
from pae.report.style import PAGE_IN, run_label  # noqa: E402

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


def _constant(std: np.ndarray) -> bool:
    """A std map that is one number (one sigma for the image or for every image): shown as that number."""
    return float(np.ptp(std)) <= 1e-6 * max(float(std.max()), 1e-12)


def _std_label(attrs: dict) -> str:
    what = "sqrt(p (1 − p))" if attrs["likelihood"] == "bernoulli" else "σ"
    return f"predicted std {what}\n(pixels on [−0.5, 0.5])"


def _colorbar(fig, im, axes, attrs: dict, height_in: float) -> None:
    """The one colour bar of a figure's std maps, as tall as the rows it serves (`height_in`), with its range in its
    label."""
    lo, hi = im.get_clim()
    bar = fig.colorbar(im, ax=axes, location="right", pad=0.08, aspect=max(height_in / 0.11, 5.0))
    bar.set_label(f"{_std_label(attrs)},\nscale {lo:g}–{hi:.3g}")


def _vmax(*stds: np.ndarray) -> float:
    """The top of a shared colour bar: the largest std shown (a small positive number when all are 0)."""
    return max(max(float(s.max()) for s in stds), 1e-6)


def _panels_data(run: dict, keys: tuple[str, ...], panels: dict | None) -> tuple[dict, dict]:
    """The figure data of `keys` from the run's uncertainty.h5 (`panels`: read_panels of it, read here if None)."""
    p = panels or read_panels(run["files"]["uncertainty_panels"])
    return {"run": run["run"], "attrs": p["attrs"]}, {k: p[k] for k in keys if k in p}


def uncertainty_data(run: dict, panels: dict | None = None) -> tuple[dict, dict] | None:
    """The uncertainty figure's data, or None for a model without a likelihood (an AE)."""
    meta, arrays = _panels_data(run, ("originals", "latents", "reconstructions", "std"), panels)
    return (meta, arrays) if "std" in arrays else None


@drawer("uncertainty")
def draw_uncertainty(meta: dict, arrays: dict) -> plt.Figure:
    """A row per test image: the image, the latent it was decoded from (bars, one per dimension, on one scale for
    every row), the likelihood's mean there and its predicted std. A std that is one number per image (a fixed or
    one learned sigma) is written as that number instead of drawn as a flat map."""
    attrs, k = meta["attrs"], len(arrays["originals"])
    latents = arrays["latents"]
    dims = latents.shape[1]
    lim = 1.05 * max(float(np.abs(latents).max()), 1e-6)
    stds = [std_map(s) for s in arrays["std"]]
    flat = all(_constant(s) for s in stds)
    cell = 0.75
    fig, axes = plt.subplots(k, 4, figsize=(PAGE_IN if not flat else 5.6, cell * k + 0.9), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": [1, 3.2, 1, 1]})
    encoder = "z: test-time optimisation\n(the VAD has no encoder)" if attrs.get("model") == "vad" else \
        "z: one draw from q(z | x)"
    titles = ["test image", f"{encoder}, {dims} dimensions", "likelihood\nmean at z",
              "predicted σ\nper image" if flat else "predicted std"]
    vmax = _vmax(*[s for s in stds])
    im = None
    for i in range(k):
        row = axes[i]
        show_image(row[0], arrays["originals"][i])
        row[1].bar(np.arange(dims), latents[i], width=0.8, color="#0072B2")
        row[1].axhline(0, color="0.5", lw=0.5)
        row[1].set_ylim(-lim, lim)
        row[1].set_xlim(-0.7, dims - 0.3)
        ticks = np.arange(0, dims, max(1, dims // 8))
        row[1].set_xticks(ticks, [str(t) for t in ticks] if i == k - 1 else [])
        if i == k - 1:
            row[1].set_xlabel("latent dimension")
        row[1].set_ylabel("z", labelpad=1)
        show_image(row[2], arrays["reconstructions"][i])
        if flat:
            row[3].axis("off")
            row[3].text(0.5, 0.5, f"σ = {stds[i].mean():.3g}", ha="center", va="center", transform=row[3].transAxes)
        else:
            im = row[3].imshow(stds[i], cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
            bare(row[3])
    for ax, title in zip(axes[0], titles):
        ax.set_title(title)
    if im is not None:
        _colorbar(fig, im, axes[:, 3], attrs, cell * k)
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: {likelihood_label(attrs['likelihood'], attrs['beta_nll'])}")
    return fig


def sample_uncertainty_data(run: dict, panels: dict | None = None) -> tuple[dict, dict] | None:
    """The sample-uncertainty figure's data, or None unless the likelihood's scale varies."""
    meta, arrays = _panels_data(run, ("prior_samples", "prior_std", "pae_samples", "pae_std"), panels)
    return (meta, arrays) if "prior_samples" in arrays else None


@drawer("sample_uncertainty")
def draw_sample_uncertainty(meta: dict, arrays: dict) -> plt.Figure:
    """Samples with their predicted std: N(0, I) and the flow at T = 1, each a row of likelihood means over a row of
    std maps on one colour scale (stated on the bar)."""
    attrs, m = meta["attrs"], len(arrays["prior_samples"])
    vmax = _vmax(arrays["prior_std"], arrays["pae_std"])
    cell = min(0.75, (PAGE_IN - 1.6) / m)
    fig, axes = plt.subplots(4, m, figsize=(cell * m + 1.6, 4 * cell + 0.7), squeeze=False, layout="constrained")
    rows = [("prior_samples", "N(0, I):\nmean"), ("prior_std", "N(0, I):\nstd"),
            ("pae_samples", "flow, T = 1:\nmean"), ("pae_std", "flow, T = 1:\nstd")]
    im = None
    for r, (key, label) in enumerate(rows):
        for j in range(m):
            ax = axes[r, j]
            if key.endswith("_std"):
                im = ax.imshow(std_map(arrays[key][j]), cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
                bare(ax)
            else:
                show_image(ax, arrays[key][j])
        axes[r, 0].set_ylabel(label)
    _colorbar(fig, im, axes[:, -1], attrs, 4 * cell)
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: decoded samples and their predicted std\n"
                          f"{likelihood_label(attrs['likelihood'], attrs['beta_nll'])}")
    return fig


def interpolation_grid_data(run: dict, panels: dict | None = None) -> tuple[dict, dict]:
    return _panels_data(run, ("traversal", "corner_images"), panels)


@drawer("interpolation_grid")
def draw_interpolation_grid(meta: dict, arrays: dict) -> plt.Figure:
    """The four test images (left) and the grid decoded on a bilinear interpolation between their latents (right):
    its corners are the four images' reconstructions, so the pair shows what the latents keep of them."""
    grid = arrays["traversal"]
    s = grid.shape[0]
    side = PAGE_IN - 1.9
    fig = plt.figure(figsize=(PAGE_IN, side + 0.55), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.45, side])
    corners = left.subplots(4, 1)
    names = ("top left", "top right", "bottom left", "bottom right")
    for ax, image, name in zip(corners, arrays["corner_images"], names):
        show_image(ax, image)
        ax.set_ylabel(name)
    left.suptitle("test images")
    ax = right.subplots()
    show_image(ax, image_grid(grid.reshape(-1, *grid.shape[2:]), s))
    ax.set_title(f"decoded on a {s} x {s} bilinear grid between their latents\n(corners: their reconstructions)")
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: latent interpolation between four test images")
    return fig


FIGURES = {"uncertainty": uncertainty_data, "sample_uncertainty": sample_uncertainty_data,
           "interpolation_grid": interpolation_grid_data}  # kind -> its data, None where the model has none


def write_uncertainty_figures(runs: list[dict], figures_dir: str | os.PathLike) -> None:
    """Every run's uncertainty, sample-uncertainty and interpolation-grid figures, where its model has what they
    show ({run}_{kind}.png, their data in figures/data/)."""
    for run in runs:
        panels = read_panels(run["files"]["uncertainty_panels"])
        for kind, collect in FIGURES.items():
            data = collect(run, panels)
            if data is not None:
                make(figures_dir, f"{run['run']}_{kind}", kind, *data)

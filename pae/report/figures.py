"""Figures of an experiment, drawn from the files the stages wrote (samples.h5, histories, metrics, OoD scores,
posterior panels); no model is loaded here."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

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


def impute_figure(rows: list[dict], path: str | os.PathLike) -> None:
    """MSE on the missing pixels vs the missing ratio, a line per model and method (matched training dashed for
    fixed masks, dotted for random ones), a panel per dataset and latent size; bands are the table's intervals."""
    panels = sorted({(r["dataset"], r["latent_dim"]) for r in rows}, key=str)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    styles = {"clean": "-", "fixed": "--", "random": ":"}
    for ax, (dataset, z) in zip(axes[0], panels):
        lines: dict[tuple, list[dict]] = {}
        for r in rows:
            if (r["dataset"], r["latent_dim"]) == (dataset, z):
                kind = "clean" if not r["matched"] else r["train_missing"].split("/")[1]
                lines.setdefault((r["model"], r["method"], kind), []).append(r)
        for (model, method, kind), pts in sorted(lines.items()):
            pts.sort(key=lambda r: r["test_ratio"])
            x = [p["test_ratio"] for p in pts]
            label = f"{model} {method}" + ("" if kind == "clean" else f" (trained missing, {kind})")
            line, = ax.plot(x, [p["mse_missing"] for p in pts], styles[kind], marker="o", ms=3, label=label)
            ax.fill_between(x, [p["mse_low"] for p in pts], [p["mse_high"] for p in pts], color=line.get_color(),
                            alpha=0.15, lw=0)
        ax.set(xlabel="missing ratio r", ylabel="MSE per missing pixel", title=f"{dataset}, latent {z}")
        ax.legend(fontsize=6)
    _save(fig, Path(path))


def roc_figure(run: dict, path: str | os.PathLike) -> None:
    """ROC curves of one run: a panel per OoD set, a curve per score (from metrics/ood_scores.csv)."""
    scores_path = Path(run["files"]["ood_scores"])
    try:
        table = pd.read_csv(scores_path)
    except (OSError, pd.errors.ParserError) as e:
        raise PaeError(f"{scores_path}: cannot read the OoD scores ({e}); rerun the ood stage") from None
    if "set" not in table or "in" not in set(table["set"]):
        raise PaeError(f"{scores_path}: expected a 'set' column with in-distribution rows ('in')")
    score_names = [c for c in table.columns if c not in ("set", "index")]
    sets = [s for s in dict.fromkeys(table["set"]) if s != "in"]
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets), 3.6), squeeze=False)
    inside = table[table["set"] == "in"]
    for ax, name in zip(axes[0], sets):
        out = table[table["set"] == name]
        labels = np.r_[np.zeros(len(inside)), np.ones(len(out))]
        for score in score_names:
            values = np.r_[inside[score].to_numpy(), out[score].to_numpy()]
            fpr, tpr, _ = roc_curve(labels, values)
            ax.plot(fpr, tpr, label=f"{score} ({roc_auc_score(labels, values):.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"OoD: {name}")
        ax.legend(fontsize=6, title="score (AUROC)", title_fontsize=6)
    fig.suptitle(f"{run['run']}: in-distribution = {run['dataset']} test images", fontsize=9)
    _save(fig, Path(path))


def temperature_figure(rows: list[dict], path: str | os.PathLike) -> None:
    """Distance of PAE samples to the test images vs the flow temperature T, a line per run, the N(0, I) sampler and
    the train-vs-test floor as horizontal lines; the domain FD, and the FID beside it when it was computed."""
    metrics = ["domain_fd"] + (["fid"] if any(r["fid"] is not None for r in rows) else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for ax, metric in zip(axes[0], metrics):
        for run in runs:
            mine = [r for r in rows if r["run"] == run]
            pae = sorted((r for r in mine if r["temperature"] is not None), key=lambda r: r["temperature"])
            line, = ax.plot([r["temperature"] for r in pae], [r[metric] for r in pae], marker="o", ms=3, label=run)
            ax.fill_between([r["temperature"] for r in pae], [r[f"{metric}_low"] for r in pae],
                            [r[f"{metric}_high"] for r in pae], color=line.get_color(), alpha=0.15, lw=0)
            for r in mine:
                if r["set"] in ("prior", "train_vs_test"):
                    ax.axhline(r[metric], color=line.get_color(), lw=0.8, ls="--" if r["set"] == "prior" else ":")
        label = "domain Fréchet distance (classifier features; not FID)" if metric == "domain_fd" else "FID"
        ax.set(xlabel="flow temperature T", ylabel=label, yscale="log",
               title=f"{label.split(' (')[0]}: PAE samples vs T\n(dashed: z ~ N(0, I); dotted: train-vs-test floor)")
        ax.legend(fontsize=6)
    _save(fig, Path(path))


def posterior_figure(run: dict, path: str | os.PathLike) -> None:
    """Inpainting / denoising panels of one run, a block per corruption, a row per image:
    corrupted | MAP | posterior samples | posterior mean | per-pixel std | truth (the PAE paper's layout)."""
    panels_path = Path(run["files"]["posterior_panels"])
    try:
        with h5py.File(panels_path, "r") as f:
            blocks = {kind: ({k: g[k][...] for k in ("corrupted", "map", "samples", "mean", "std", "truth")},
                             g.attrs.get("samples_method", "")) for kind, g in f.items()}
    except (OSError, KeyError) as e:
        raise PaeError(f"{panels_path}: not a complete posterior panels file ({e}); rerun the posterior stage") \
            from None
    fig, axes = plt.subplots(len(blocks), 1, figsize=(9, 1.3 + 1.1 * sum(len(b["truth"]) for b, _ in
                                                                            blocks.values()) / len(blocks)),
                             squeeze=False)
    for ax, (kind, (b, method)) in zip(axes[:, 0], blocks.items()):
        k = b["samples"].shape[1]
        std = b["std"].astype(np.float64)
        std = (std * 255.0 / max(std.max(), 1.0)).round().astype(np.uint8)  # stretched to full scale to be visible
        cols = [b["corrupted"][:, None], b["map"][:, None], b["samples"], b["mean"][:, None], std[:, None],
                b["truth"][:, None]]
        tiles = np.concatenate(cols, axis=1)  # (F, k + 5, C, H, W)
        _show(ax, image_grid(tiles.reshape(-1, *tiles.shape[2:]), tiles.shape[1]),
              f"{kind}: corrupted | MAP | {k} {method} samples | posterior mean | std (stretched) | truth")
    fig.suptitle(run["run"], fontsize=9)
    _save(fig, Path(path))

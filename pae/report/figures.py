"""Figures of an experiment, drawn from the files the stages wrote (samples.h5, histories, metrics, OoD scores,
posterior panels); no model is loaded here."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from pae.io import PaeError, atomic_path, read_json  # noqa: E402
from pae.report.summary import over_seeds  # noqa: E402


# Font sizes for figures shown about 8-10 inches wide: titles and labels that fit their panels.
STYLE = {"axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 6,
         "legend.title_fontsize": 6, "figure.titlesize": 10}


def _styled(draw):
    """Draw a figure under STYLE (a context, so pae's report leaves matplotlib's global settings alone)."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


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


@_styled
def write_run_figures(runs: list[dict], figures_dir: str | os.PathLike) -> None:
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        s = _read_samples(run["files"]["samples"])
        name = run["run"]
        ncols = int(np.ceil(np.sqrt(len(s["pae"]))))
        fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), layout="constrained")
        _show(axes[0], image_grid(s["pae"], ncols), f"PAE samples (flow, T={s['temperature']:g})")
        _show(axes[1], image_grid(s["prior"], ncols), "z ~ N(0, I) through the decoder")
        fig.suptitle(name)
        _save(fig, figures_dir / f"{name}_samples.png")

        k = min(16, len(s["originals"]))
        pairs = np.concatenate([s["originals"][:k], s["reconstructions"][:k]])
        fig, ax = plt.subplots(figsize=(10, 1.6), layout="constrained")
        _show(ax, image_grid(pairs, k), f"{name}: test images (top) and reconstructions (bottom)")
        _save(fig, figures_dir / f"{name}_reconstructions.png")

        interp = s["interpolations"]
        fig, ax = plt.subplots(figsize=(8, 0.8 * len(interp) + 0.4), layout="constrained")
        _show(ax, image_grid(interp.reshape(-1, *interp.shape[2:]), interp.shape[1]),
              f"{name}: latent interpolations between test images")
        _save(fig, figures_dir / f"{name}_interpolations.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for run in runs:
        hist = [h for h in read_json(run["files"]["history"])["epochs"] if h["val_mse"] is not None]
        axes[0].plot([h["epoch"] for h in hist], [h["val_mse"] for h in hist], marker=".", label=run["run"])
        flow = read_json(run["files"]["flow_history"])["epochs"]
        axes[1].plot([h["epoch"] for h in flow], [h["val_logp"] for h in flow], label=run["run"])
    axes[0].set(xlabel="epoch", ylabel="validation MSE per pixel", yscale="log", title="auto-encoder")
    axes[1].set(xlabel="epoch", ylabel="validation log p(z)", title="flow on latents")
    if len(runs) <= 12:  # beyond that a legend hides the curves
        axes[0].legend(fontsize=7)
    _save(fig, figures_dir / "training_curves.png")


@_styled
def impute_figure(rows: list[dict], path: str | os.PathLike) -> None:
    """MSE on the missing pixels vs the missing ratio: a row of panels per dataset and latent size, a panel per
    training condition (trained on whole images and tested at every ratio, the adversarial case; trained with
    matching fixed, or random, masks), a line per model and method in the same colour in every panel (the model's own
    inference solid, the PAE's latent MAP dashed). Bands: the range over seeds, or with one seed the interval over
    images. Panels of a row share their y axis."""
    def condition(r: dict) -> str:  # "clean", or the mask mode of "ratio/mode"
        return r["train_missing"].split("/")[1] if r["matched"] else "clean"

    conditions = [c for c in ("clean", "fixed", "random") if any(condition(r) == c for r in rows)]
    titles = {"clean": "trained on whole images", "fixed": "trained with the test ratio, fixed masks",
              "random": "trained with the test ratio, random masks"}
    groups = sorted({(r["dataset"], r["latent_dim"]) for r in rows})
    lines_keys = sorted({(r["model"], r["method"]) for r in rows})
    colours = {key: f"C{i % 10}" for i, key in enumerate(sorted({m for m, _ in lines_keys}))}
    fig, axes = plt.subplots(len(groups), len(conditions), figsize=(4.6 * len(conditions), 3.6 * len(groups)),
                             squeeze=False, sharey="row", layout="constrained")
    for i, (dataset, z) in enumerate(groups):
        for j, kind in enumerate(conditions):
            ax = axes[i][j]
            for model, method in lines_keys:
                pts = sorted((r for r in rows if (r["dataset"], r["latent_dim"], r["model"], r["method"],
                                                  condition(r)) == (dataset, z, model, method, kind)),
                             key=lambda r: r["test_ratio"])
                if not pts:
                    continue
                x = [p["test_ratio"] for p in pts]
                own = method != "pae_map"
                ax.plot(x, [p["mse_missing"] for p in pts], "-" if own else "--", marker="o" if own else "s", ms=3,
                        color=colours[model], label=f"{model}, {method}")
                band = ("mse_min", "mse_max") if pts[0]["n_seeds"] > 1 else ("mse_low", "mse_high")
                ax.fill_between(x, [p[band[0]] for p in pts], [p[band[1]] for p in pts], color=colours[model],
                                alpha=0.12, lw=0)
            ax.set(xlabel="missing ratio r", title=f"{dataset}, latent {z}: {titles[kind]}")
            ax.title.set_fontsize(8)
            if j == 0:
                ax.set_ylabel("MSE per missing pixel")
            ax.legend(fontsize=6)
    _save(fig, Path(path))


@_styled
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
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets), 3.6), squeeze=False, layout="constrained")
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


def _model_lines(rows: list[dict]) -> dict[tuple, list[dict]]:
    lines: dict[tuple, list[dict]] = {}
    for r in rows:
        lines.setdefault((r["model"], r["latent_dim"]), []).append(r)
    return lines


def _band(ax, x, rows, metric, **style):
    """A line of `metric` (mean over seeds) with a band: the range over the seeds, or with one seed the run's own
    (bootstrap) interval; points without a value are skipped. (A t interval over two or three seeds would cover the
    whole axis; the tables give it.)"""
    pts = [(xi, r) for xi, r in zip(x, rows) if r.get(metric) is not None]
    if not pts:
        return None
    xs = [p[0] for p in pts]
    line, = ax.plot(xs, [p[1][metric] for p in pts], marker="o", ms=3, **style)
    several = [p[1].get("n_seeds", 1) > 1 for p in pts]
    low = [p[1].get(f"{metric}_min" if many else f"{metric}_low") for p, many in zip(pts, several)]
    high = [p[1].get(f"{metric}_max" if many else f"{metric}_high") for p, many in zip(pts, several)]
    if all(v is not None and np.isfinite(v) for v in low + high):
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15, lw=0)
    return line


@_styled
def temperature_figure(rows: list[dict], path: str | os.PathLike) -> None:
    """Distance of PAE samples to the test images vs the flow temperature T (mean over seeds, with its interval), a
    line per model and latent size, a panel per dataset (and metric: domain FD, and FID when it was computed); the
    N(0, I) sampler dashed and the train-vs-test floor dotted. `rows`: samplers.csv rows."""
    metrics = ["domain_fd"] + (["fid"] if any(r["fid"] is not None for r in rows) else [])
    summary = over_seeds(rows, ("dataset", "model", "latent_dim", "set", "temperature"), tuple(metrics))
    datasets = sorted({r["dataset"] for r in summary})
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(5.5 * len(datasets), 4 * len(metrics)),
                             squeeze=False, layout="constrained")
    for i, metric in enumerate(metrics):
        label = "domain Fréchet distance (classifier features; not FID)" if metric == "domain_fd" else "FID"
        for ax, dataset in zip(axes[i], datasets):
            mine = [r for r in summary if r["dataset"] == dataset]
            for (model, z), rs in sorted(_model_lines(mine).items()):
                pae = sorted((r for r in rs if r["temperature"] is not None), key=lambda r: r["temperature"])
                line = _band(ax, [r["temperature"] for r in pae], pae, metric, label=f"{model} z{z}")
                for r in rs:
                    if line is not None and r["set"] in ("prior", "train_vs_test") and r[metric] is not None:
                        ax.axhline(r[metric], color=line.get_color(), lw=0.8,
                                   ls="--" if r["set"] == "prior" else ":")
            ax.set(xlabel="flow temperature T", ylabel=label, yscale="log",
                   title=f"{dataset}: PAE samples vs T (mean over seeds,\nband: their range; dashed: z ~ N(0, I); "
                         "dotted: floor)")
            ax.legend(fontsize=6)
    _save(fig, Path(path))


@_styled
def latent_figure(table1_rows: list[dict], path: str | os.PathLike) -> None:
    """Table 1 against the latent size, a panel column per dataset: the distance of PAE samples (T = 1, solid) and of
    N(0, I) samples (dashed) to the test images, a line per model (domain FD; FID in a further row when computed),
    and the reconstruction MSE. Means over seeds with their intervals."""
    metrics = ["domain_fd"] + (["fid"] if any(r.get("fid_pae_T1") is not None for r in table1_rows) else [])
    datasets = sorted({r["dataset"] for r in table1_rows})
    fig, axes = plt.subplots(len(metrics) + 1, len(datasets), figsize=(5 * len(datasets), 3.6 * (len(metrics) + 1)),
                             squeeze=False, layout="constrained")
    for j, dataset in enumerate(datasets):
        mine = [r for r in table1_rows if r["dataset"] == dataset]
        models = sorted({r["model"] for r in mine})
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            for model in models:
                rs = sorted((r for r in mine if r["model"] == model), key=lambda r: r["latent_dim"])
                x = [r["latent_dim"] for r in rs]
                line = _band(ax, x, rs, f"{metric}_pae_T1", label=f"{model}: PAE (flow) T=1")
                _band(ax, x, rs, f"{metric}_prior", ls="--", label=f"{model}: N(0, I)",
                      color=line.get_color() if line else None)
            name = "domain FD (not FID)" if metric == "domain_fd" else "FID"
            ax.set(xscale="log", yscale="log", xlabel="latent size", ylabel=name,
                   title=f"{dataset}: {name} of samples vs latent size\n(mean over seeds, band: their range)")
            ax.legend(fontsize=6)
        ax = axes[-1, j]
        for model in models:
            rs = sorted((r for r in mine if r["model"] == model), key=lambda r: r["latent_dim"])
            _band(ax, [r["latent_dim"] for r in rs], rs, "recon_mse", label=model)
        ax.set(xscale="log", yscale="log", xlabel="latent size", ylabel="test MSE per pixel",
               title=f"{dataset}: reconstruction error vs latent size")
        ax.legend(fontsize=6)
        sizes = sorted({r["latent_dim"] for r in mine})
        for a in axes[:, j]:
            a.set_xticks(sizes, [str(z) for z in sizes])
            a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # the log axis' own labels between sizes
    _save(fig, Path(path))


@_styled
def samples_figure(runs: list[dict], dataset: str, path: str | os.PathLike, n: int = 16) -> None:
    """Sample grids of one dataset: a row per latent size, a column per model, each cell `n` PAE samples (the
    flow at the evaluate stage's temperature) of the lowest seed's run; N(0, I) samples beside for models trained
    with that prior (VAE, beta-VAE, VAD)."""
    mine = [r for r in runs if r["dataset"] == dataset]
    first: dict[tuple, dict] = {}
    for r in sorted(mine, key=lambda r: r["seed"]):
        first.setdefault((r["latent_dim"], r["model"]), r)
    sizes = sorted({z for z, _ in first})
    columns = [(m, kind) for m in dict.fromkeys(r["model"] for r in mine) for kind in
               (("pae",) if m == "ae" else ("pae", "prior"))]
    ncols = int(np.ceil(np.sqrt(n)))
    fig, axes = plt.subplots(len(sizes), len(columns), figsize=(2.1 * len(columns), 2.3 * len(sizes)),
                             squeeze=False, layout="constrained")
    for i, z in enumerate(sizes):
        for j, (model, kind) in enumerate(columns):
            ax = axes[i, j]
            run = first.get((z, model))
            if run is None:
                ax.axis("off")
                continue
            s = _read_samples(run["files"]["samples"])
            title = f"{model} + flow (T={s['temperature']:g})" if kind == "pae" else f"{model}: N(0, I)"
            _show(ax, image_grid(s[kind][:n], ncols), f"z{z} {title}")
    fig.suptitle(f"{dataset}: samples (lowest seed of each run)", fontsize=10)
    _save(fig, Path(path))


CORRUPTION_LABELS = {"left_half": "left half missing", "center_box": "centre box missing", "sparse": "sparse pixels",
                     "noise": "noise", "noise_sparse": "noise + sparse"}
SAMPLERS = {"mcmc": "NUTS", "laplace": "Laplace"}


def _read_panels(path: Path) -> dict[str, tuple[dict[str, np.ndarray], str]]:
    try:
        with h5py.File(path, "r") as f:
            return {kind: ({k: g[k][...] for k in ("corrupted", "map", "samples", "mean", "std", "truth")},
                           str(g.attrs.get("samples_method", ""))) for kind, g in f.items()}
    except (OSError, KeyError) as e:
        raise PaeError(f"{path}: not a complete posterior panels file ({e}); rerun the posterior stage") from None


@_styled
def posterior_figure(run: dict, path: str | os.PathLike, width: float = 8.0) -> None:
    """Inpainting / denoising of one run as one grid (the PAE paper's layout): a row per example image, grouped in a
    panel per corruption that spans the width, a column per quantity: corrupted | MAP | posterior samples |
    posterior mean | per-pixel posterior std | truth, the headers once on top. The std is one map per image (the
    channels' mean for RGB) on one colour scale for the whole figure, in pixel units ([-0.5, 0.5] scale)."""
    blocks = _read_panels(Path(run["files"]["posterior_panels"]))
    order = list(CORRUPTION_LABELS)  # the schema's order, not the file's alphabetical one
    blocks = dict(sorted(blocks.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    k = max(b["samples"].shape[1] for b, _ in blocks.values())
    headers = ["corrupted", "MAP", *[f"sample {i + 1}" for i in range(k)], "posterior\nmean", "posterior\nstd",
               "truth"]
    std_maps = {kind: b["std"].astype(np.float64).mean(axis=1) / 255.0 for kind, (b, _) in blocks.items()}
    vmax = max(max(float(m.max()) for m in std_maps.values()), 1 / 255)
    methods = {m for _, m in blocks.values()}

    spacer = 0.25  # height of the gap between corruption panels, in image rows
    heights, first_rows = [], []
    for i, (b, _) in enumerate(blocks.values()):
        heights += [spacer] if i else []
        first_rows.append(len(heights))
        heights += [1.0] * len(b["truth"])
    heights.append(0.5)  # a row for the colour bar
    label_w = 0.02  # the label column holds only its y-label, drawn outside it
    cell = width / (len(headers) + 0.6)  # an image column's width in inches, the labels' margin aside
    fig = plt.figure(figsize=(width, cell * sum(heights) + 0.65), layout="constrained")  # + suptitle, headers
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.01, hspace=0.01)
    gs = fig.add_gridspec(len(heights), len(headers) + 1, width_ratios=[label_w] + [1] * len(headers),
                          height_ratios=heights)
    shown = None
    for (kind, (b, method)), r0 in zip(blocks.items(), first_rows):
        n = len(b["truth"])
        label = fig.add_subplot(gs[r0:r0 + n, 0])
        label.set(xticks=[], yticks=[])
        label.spines[:].set_visible(False)
        name = CORRUPTION_LABELS.get(kind, kind.replace("_", " "))
        label.set_ylabel(name if len(methods) == 1 else f"{name}\n({SAMPLERS.get(method, method)} samples)",
                         fontsize=9)
        for i in range(n):
            samples = [*b["samples"][i]] + ["empty"] * (k - b["samples"].shape[1])  # fewer than another panel's
            images = [b["corrupted"][i], b["map"][i], *samples, b["mean"][i], "std", b["truth"][i]]
            for j, image in enumerate(images):
                ax = fig.add_subplot(gs[r0 + i, j + 1])
                ax.set(xticks=[], yticks=[])
                if isinstance(image, str) and image == "empty":
                    ax.axis("off")
                elif isinstance(image, str):
                    shown = ax.imshow(std_maps[kind][i], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
                else:
                    grey = image.shape[0] == 1
                    ax.imshow(image[0] if grey else image.transpose(1, 2, 0), cmap="gray" if grey else None,
                              vmin=0, vmax=255, interpolation="nearest")
                if r0 == 0 and i == 0:
                    ax.set_title(headers[j], fontsize=8)
    # The colour bar under the std column, inset in a blank cell of its own row and left out of the layout: attached
    # to the std axes, constrained_layout would shift that column off the grid when there are few rows.
    host = fig.add_subplot(gs[-1, headers.index("posterior\nstd") + 1])
    host.axis("off")
    cax = host.inset_axes([0.1, 0.72, 0.8, 0.2])
    cax.set_in_layout(False)
    bar = fig.colorbar(shown, cax=cax, orientation="horizontal")
    bar.ax.tick_params(labelsize=6)
    bar.locator = matplotlib.ticker.MaxNLocator(2)
    bar.update_ticks()
    bar.set_label("posterior std", fontsize=7)
    (method,) = methods if len(methods) == 1 else ("",)
    fig.suptitle(f"{run['run']}: posterior samples by {SAMPLERS.get(method, method)}" if method else run["run"],
                 fontsize=9)
    _save(fig, Path(path))

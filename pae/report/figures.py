"""Figures of an experiment. Each is made in two steps: a `*_data` function reads what the figure shows from the
files the stages wrote (samples.h5, histories, OoD scores, posterior panels, table rows) into its figure data
(pae.report.figdata: figures/data/{name}.h5), and a drawer registered under the figure's kind draws it from that data
alone. `redraw` draws every figure of a folder again from its data files: an exported report needs no run or model.

One style for all (pae.report.style): drawn at the printed size, one colour per model and one line style per
method in every figure of a report, human names, bands labelled as what they are, references as labelled lines."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Callable

import h5py
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from sklearn.metrics import roc_auc_score, roc_curve

from pae.io import PaeError, read_json
from pae.report import figdata
from pae.report.style import (BASE_MODELS, COLUMN_IN, PAGE_HEIGHT_IN, PAGE_IN, SCORE_LABELS, dataset_label,
                              method_label, method_style, model_colours, model_label, run_label, save, styled)
from pae.report.summary import load_references, over_seeds

DRAWERS: dict[str, Callable] = {}


def drawer(kind: str):
    """Register `draw(meta, arrays) -> Figure` as the drawer of figures of this kind, drawn under the report style."""
    def register(draw):
        DRAWERS[kind] = styled(draw)
        return draw
    return register


def make(figures_dir: str | os.PathLike, name: str, kind: str, meta: dict, arrays: dict | None = None) -> Path:
    """Write figures/data/{name}.h5 and draw figures/{name}.png from it."""
    figures_dir = Path(figures_dir)
    figdata.save(figdata.data_path(figures_dir, name), kind, meta, arrays)
    return draw_file(figdata.data_path(figures_dir, name), figures_dir / f"{name}.png")


def draw_file(data_file: str | os.PathLike, png: str | os.PathLike) -> Path:
    kind, meta, arrays = figdata.load(data_file)
    if kind not in DRAWERS:
        raise PaeError(f"{data_file}: figure kind {kind!r} has no drawer (known: {', '.join(sorted(DRAWERS))})")
    save(DRAWERS[kind](meta, arrays), Path(png))
    return Path(png)


def redraw(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Every figure of a report folder (results/{exp}/ or an export) drawn again from figures/data/*.h5. The figures
    drawn from the tables (against the temperature, the latent size and the missing ratio) get their data from
    tables/*.csv where an older export has none. Returns (the figures drawn, the PNGs left as they were: no data)."""
    from pae.report import uncertainty  # noqa: F401  (registers its drawers)

    folder = Path(folder)
    figures_dir = folder / "figures"
    _table_figures_data(folder)
    files = sorted((figures_dir / figdata.DATA_DIR).glob("*.h5"))
    if not files:
        raise PaeError(f"{figures_dir / figdata.DATA_DIR}: no figure data to draw from (export the report with "
                       "`python -m pae export-report`, which copies it, or rerun the report stage)")
    drawn = [draw_file(f, figures_dir / f"{f.stem}.png") for f in files]
    left = sorted(p for p in figures_dir.glob("*.png") if p not in drawn)
    return drawn, left


TABLE_FIGURES = {"fd_vs_temperature": ("temperature", "samplers"), "fd_vs_latent": ("latent", "table1"),
                 "impute_mse_vs_ratio": ("impute", "impute")}


def _table_figures_data(folder: Path) -> None:
    """figures/data/ of the figures drawn from the tables, from tables/*.csv, for each such figure of the folder
    that has none (an export made before figures kept their data)."""
    refs = None
    for name, (kind, table) in TABLE_FIGURES.items():
        csv = folder / "tables" / f"{table}.csv"
        if figdata.data_path(folder / "figures", name).exists() or not (folder / "figures" / f"{name}.png").exists() \
                or not csv.exists():
            continue
        try:
            frame = pd.read_csv(csv)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise PaeError(f"{csv}: cannot read the table its figure {name}.png is redrawn from ({e})") from None
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        colours = model_colours(sorted({r["model"] for r in rows}))
        refs = refs if refs is not None else load_references()
        data = (temperature_data(rows, refs, colours) if kind == "temperature" else
                latent_data(rows, refs, colours) if kind == "latent" else impute_data(rows, colours))
        figdata.save(figdata.data_path(folder / "figures", name), kind, *data)


# ---- Shared pieces ----

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


def show_image(ax, image: np.ndarray) -> None:
    """A uint8 (H, W) or (H, W, 3) image, or one (C, H, W) tile, on its 0-255 scale, without ticks or frame."""
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    bare(ax)


def bare(ax) -> None:
    """No ticks nor frame; the axis labels stay (they carry row and column names)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def band_label(n_seeds: int | set, over_images: str = "95% bootstrap interval over images",
               marks: str = "band") -> str:
    """What the `marks` (a shaded band, or bars and bands) show: the range over the seeds, or with one seed the run's
    own interval `over_images` (a set of seed counts: both, where the groups of a figure differ)."""
    counts = n_seeds if isinstance(n_seeds, set) else {n_seeds}
    if len(counts) > 1:
        return f"{marks}: range over the seeds where there are {max(counts)}, the {over_images} where there is one"
    n = next(iter(counts), 1)
    return f"{marks}: range over {n} seeds" if n > 1 else f"{marks}: {over_images} (1 seed)"


def wrapped_suptitle(fig: plt.Figure, text: str) -> None:
    """The figure's title, each line wrapped to the figure's width at the title's font size; the figure grows by the
    lines that wrapping adds, so that the panels keep the room they were given."""
    size = matplotlib.font_manager.FontProperties(size=matplotlib.rcParams["figure.titlesize"]).get_size_in_points()
    title = "\n".join(wrapped(line, fig.get_figwidth(), size) for line in text.split("\n"))
    added = title.count("\n") - text.count("\n")
    if added:
        fig.set_figheight(fig.get_figheight() + added * 1.2 * size / 72)
    fig.suptitle(title)


def legend_columns(labels, width_in: float, most: int = 3, fontsize: float = 7.0) -> int:
    """How many columns of these legend labels fit across `width_in` inches: an average glyph 0.55 em wide, each
    entry's handle and gaps 0.6 in; at most `most`, at least one."""
    labels = list(labels)
    column = max((len(str(t)) for t in labels), default=1) * 0.55 * fontsize / 72 + 0.6
    return max(1, min(most, len(labels), int(width_in // column)))


def log_y_if_decades(ax, lo: float, hi: float) -> bool:
    """Where a panel's values (lo to hi) lie a decade or more apart, a log y axis keeps the lower ones apart: set
    it, labelled in plain numbers at 1, 2 and 5 times the powers of ten (20, 50, 100, not 2 × 10¹), and at 3 times
    them too where the values span less than two decades (so that the panel has labels near its lowest values, 24
    to 242 being labelled 30, 50, 100, 200). Whether it did."""
    if not (lo > 0 and hi / lo > 10):
        return False
    ax.set_yscale("log")
    subs = (1.0, 2.0, 3.0, 5.0) if hi / lo < 100 else (1.0, 2.0, 5.0)
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    return True


def wrapped(text: str, width_in: float, fontsize: float = 7.0) -> str:
    """Text wrapped to `width_in` inches at `fontsize` points (an average glyph 0.55 em wide), between words only
    ("beta-NLL", "left-right" stay whole), in lines of even length: as many lines as the width needs, each as short
    as that number of lines allows (no last line of one word)."""
    def lines(width: int) -> list[str]:
        return textwrap.wrap(text, width, break_on_hyphens=False)

    widest = max(20, int(width_in * 72 / (0.55 * fontsize)))
    n = len(lines(widest))
    narrow = widest
    while narrow > 20 and len(lines(narrow - 1)) == n:
        narrow -= 1
    return "\n".join(lines(narrow))


def std_map(std: np.ndarray) -> np.ndarray:
    """(C, H, W) per-pixel std -> (H, W): the channel of a grey image, the rms over the channels of a colour one."""
    return std[0] if std.shape[0] == 1 else np.sqrt((std.astype(np.float64) ** 2).mean(0))


def read_samples(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            out = {k: f[k][...] for k in ("pae", "prior", "originals", "reconstructions", "interpolations")}
            out["temperature"] = float(f.attrs["temperature"])
            return out
    except (OSError, KeyError) as e:
        raise PaeError(f"{path}: not a complete samples file ({e}); rerun the evaluate stage") from None


def _model_order(model: str) -> tuple:
    """The base models in their fixed order (AE, VAE, beta-VAE, VAD), named blocks' variants after their base."""
    base = model.partition("-")[0]
    return (BASE_MODELS.index(base) if base in BASE_MODELS else len(BASE_MODELS), model)


# ---- Samples ----

def samples_data(runs: list[dict], dataset: str, n: int = 64, read=None) -> tuple[dict, dict]:
    """Flow and N(0, I) samples of each latent size x model of a dataset (its lowest seed), `n` of each. `read`: a
    run -> its samples.h5 contents (read_samples of its file by default)."""
    read = read or (lambda run: read_samples(run["files"]["samples"]))
    first: dict[tuple, dict] = {}
    for r in sorted((r for r in runs if r["dataset"] == dataset), key=lambda r: r["seed"]):
        first.setdefault((r["latent_dim"], r["model"]), r)
    cells, arrays = [], {}
    for i, ((z, model), run) in enumerate(sorted(first.items())):
        s = read(run)
        k = min(n, len(s["pae"]), len(s["prior"]))
        cells.append({"latent_dim": z, "model": model, "run": run["run"], "seed": run["seed"],
                      "temperature": s["temperature"], "n": k})
        arrays[f"{i}/flow"], arrays[f"{i}/prior"] = s["pae"][:k], s["prior"][:k]
    return {"dataset": dataset, "cells": cells}, arrays


SAMPLERS = ("flow", "prior")
SAMPLE_TITLE_IN = 0.22  # each sample grid's title, inches


def _samples_layout(cells: list[dict]) -> tuple[list, list, float]:
    """The sample figure's rows and columns: with one model, a column per sampler and a row per latent size; with
    several, a column per model and a row per latent size x sampler; and a grid's side in inches."""
    models = sorted(dict.fromkeys(c["model"] for c in cells), key=_model_order)
    sizes = sorted({c["latent_dim"] for c in cells})
    if len(models) == 1:
        rows, cols = [(z, None) for z in sizes], [(models[0], s) for s in SAMPLERS]
    else:
        rows, cols = [(z, s) for z in sizes for s in SAMPLERS], [(m, None) for m in models]
    return rows, cols, min((PAGE_IN - 0.3) / len(cols), 2.6)


def samples_pages(runs: list[dict], dataset: str, read=None) -> dict[str, tuple[dict, dict]]:
    """The dataset's sample figure(s) by name: "samples_{dataset}" when every latent size fits one page, else one
    figure per run of latent sizes that fits, "samples_{dataset}_z{first}-{last}"."""
    meta, arrays = samples_data(runs, dataset, read=read)
    rows, _, cell_in = _samples_layout(meta["cells"])
    sizes = sorted({c["latent_dim"] for c in meta["cells"]})
    per_size = len(rows) // max(len(sizes), 1)
    fit = max(1, int((PAGE_HEIGHT_IN - 0.35) // ((cell_in + SAMPLE_TITLE_IN) * per_size)))
    if len(sizes) <= fit:
        return {f"samples_{dataset}": (meta, arrays)}
    pages = {}
    for p in range(0, len(sizes), fit):
        chunk = sizes[p:p + fit]
        keep = [i for i, c in enumerate(meta["cells"]) if c["latent_dim"] in chunk]
        pages[f"samples_{dataset}_z{chunk[0]}-{chunk[-1]}"] = (
            {**meta, "cells": [meta["cells"][i] for i in keep]},
            {f"{j}/{s}": arrays[f"{i}/{s}"] for j, i in enumerate(keep) for s in SAMPLERS})
    return pages


@drawer("samples")
def draw_samples(meta: dict, arrays: dict) -> plt.Figure:
    """A grid of sample grids (rows and columns: _samples_layout)."""
    cells = meta["cells"]
    models = sorted(dict.fromkeys(c["model"] for c in cells), key=_model_order)
    rows, cols, cell_in = _samples_layout(cells)
    title_in = SAMPLE_TITLE_IN
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(cell_in * len(cols) + 0.3,
                                                            (cell_in + title_in) * len(rows) + 0.35),
                             squeeze=False, layout="constrained")
    where = {(c["latent_dim"], c["model"]): i for i, c in enumerate(cells)}
    for i, (z, row_sampler) in enumerate(rows):
        for j, (model, col_sampler) in enumerate(cols):
            ax, sampler = axes[i, j], row_sampler or col_sampler
            k = where.get((z, model))
            if k is None:
                ax.axis("off")
                continue
            images = arrays[f"{k}/{sampler}"]
            side = int(np.sqrt(len(images)))  # a full square grid: the first side^2 samples
            show_image(ax, image_grid(images[:side * side], side))
            what = (f"flow, T = {cells[k]['temperature']:g}" if sampler == "flow" else "N(0, I)")
            if i == 0 or row_sampler:
                ax.set_title(f"{model_label(model)}: {what}" if len(models) > 1 else what)
            if j == 0:
                ax.set_ylabel(f"latent {z}")
    n = int(np.sqrt(cells[0]["n"])) ** 2 if cells else 0
    fig.suptitle(f"{dataset_label(meta['dataset'])}: {n} samples per grid, not selected (lowest seed of each run)")
    return fig


# ---- Per-run image figures ----

def reconstructions_data(run: dict, n: int = 16, samples: dict | None = None) -> tuple[dict, dict]:
    s = samples or read_samples(run["files"]["samples"])
    k = min(n, len(s["originals"]))
    return {"run": run["run"]}, {"originals": s["originals"][:k], "reconstructions": s["reconstructions"][:k]}


@drawer("reconstructions")
def draw_reconstructions(meta: dict, arrays: dict) -> plt.Figure:
    k = len(arrays["originals"])
    cols = min(k, 8)
    fig, axes = plt.subplots(2, 1, figsize=(PAGE_IN, PAGE_IN / cols * 2 * -(-k // cols) + 0.5), layout="constrained")
    for ax, key, label in zip(axes, ("originals", "reconstructions"), ("test images", "reconstructions")):
        show_image(ax, image_grid(arrays[key], cols))
        ax.set_ylabel(label)
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: test images and their reconstructions (same positions)")
    return fig


def interpolations_data(run: dict, samples: dict | None = None) -> tuple[dict, dict]:
    s = samples or read_samples(run["files"]["samples"])
    return {"run": run["run"]}, {"interpolations": s["interpolations"]}


@drawer("interpolations")
def draw_interpolations(meta: dict, arrays: dict) -> plt.Figure:
    interp = arrays["interpolations"]
    pairs, steps = interp.shape[:2]
    fig, ax = plt.subplots(figsize=(PAGE_IN, PAGE_IN / steps * pairs + 0.45), layout="constrained")
    show_image(ax, image_grid(interp.reshape(-1, *interp.shape[2:]), steps))
    ax.set_xlabel("decoded along the straight line between the latents of two test images (a row per pair)")
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: latent interpolations")
    return fig


# ---- Training curves ----

def training_data(runs: list[dict], colours: dict) -> tuple[dict, dict]:
    curves = []
    for run in runs:
        hist = [h for h in read_json(run["files"]["history"])["epochs"] if h.get("val_mse") is not None]
        flow = read_json(run["files"]["flow_history"])["epochs"]
        curves.append({"run": run["run"], "model": run["model"], "latent_dim": run["latent_dim"],
                       "epoch": [h["epoch"] for h in hist], "val_mse": [h["val_mse"] for h in hist],
                       "flow_epoch": [h["epoch"] for h in flow], "val_logp": [h["val_logp"] for h in flow]})
    return {"curves": curves, "colours": colours}, {}


LATENT_STYLES = ("-", "--", ":", "-.")


def _latent_styles(sizes) -> dict[int, str]:
    return {z: LATENT_STYLES[i % len(LATENT_STYLES)] for i, z in enumerate(sorted(set(sizes)))}


@drawer("training")
def draw_training(meta: dict, arrays: dict) -> plt.Figure:
    """Validation MSE of the auto-encoder and validation log p(z) of the flow per latent dimension (nats per
    dimension: comparable across latent sizes), a colour per model, a line style per latent size."""
    curves, colours = meta["curves"], meta["colours"]
    styles = _latent_styles(c["latent_dim"] for c in curves)
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_IN, 2.8), layout="constrained")
    for c in curves:
        style = {"color": colours[c["model"]], "ls": styles[c["latent_dim"]], "lw": 1.0, "gid": f"{c['model']}/train"}
        axes[0].plot(c["epoch"], c["val_mse"], **style)
        axes[1].plot(c["flow_epoch"], np.asarray(c["val_logp"], float) / c["latent_dim"], **style)
    axes[0].set(xlabel="epoch", ylabel="validation MSE per pixel\n(pixels on [−0.5, 0.5], log scale)", yscale="log",
                title="auto-encoder")
    axes[0].yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False))
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[1].set(xlabel="epoch", ylabel="validation log p(z) per latent dimension\n(nats / dimension)",
                title="flow on the latents")
    handles = [Line2D([], [], color=col, label=model_label(m)) for m, col in colours.items()
               if any(c["model"] == m for c in curves)]
    handles += [Line2D([], [], color="0.3", ls=ls, label=f"latent {z}") for z, ls in styles.items()]
    fig.legend(handles=handles, loc="outside right upper")
    fig.suptitle(f"Training ({len(curves)} runs)")
    return fig


# ---- OoD: ROC curves ----

SCORE_COLOURS = {"flow_logp": "#0072B2", "recon_mse": "#D55E00", "pae_density": "#009E73", "pae_marginal": "#CC79A7",
                 "elbo": "#E69F00"}
# Dashed: the score drawn second of a pair whose curves can all but coincide (-ELBO over reconstruction MSE, the
# PAE density over the flow's log p(z)), so the solid one shows between its dashes.
SCORE_LINESTYLES = {"pae_density": (0, (3, 2)), "elbo": (0, (3, 2))}


def roc_data(run: dict) -> tuple[dict, dict]:
    """The OoD scores of one run (metrics/ood_scores.csv) by set and score, as float32."""
    scores_path = Path(run["files"]["ood_scores"])
    try:
        table = pd.read_csv(scores_path)
    except (OSError, pd.errors.ParserError) as e:
        raise PaeError(f"{scores_path}: cannot read the OoD scores ({e}); rerun the ood stage") from None
    if "set" not in table or "in" not in set(table["set"]):
        raise PaeError(f"{scores_path}: expected a 'set' column with in-distribution rows ('in')")
    scores = [c for c in table.columns if c not in ("set", "index")]
    sets = [s for s in dict.fromkeys(table["set"]) if s != "in"]
    arrays = {f"{s}/{score}": table.loc[table["set"] == s, score].to_numpy(np.float32)
              for s in ["in", *sets] for score in scores}
    return {"run": run["run"], "dataset": run["dataset"], "sets": sets, "scores": scores}, arrays


def roc_curves(inside: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    labels = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    values = np.r_[inside, outside].astype(np.float64)
    fpr, tpr, _ = roc_curve(labels, values)
    return fpr, tpr, float(roc_auc_score(labels, values))


@drawer("roc")
def draw_roc(meta: dict, arrays: dict) -> plt.Figure:
    """A panel per OoD set, a curve per score; scores whose curves are identical (the same ranking of the images)
    are drawn once and named together. Where the best AUROC exceeds 0.99 the false-positive rate is on a log axis
    (down to 1 / n_in), which shows what a linear one hides."""
    sets, scores = meta["sets"], meta["scores"]
    width = min(PAGE_IN, 2.45 * len(sets))
    legend_in = 0.3 + 0.15 * len(scores)  # each panel's legend in a row under it: a title and a line per score
    fig, axes = plt.subplots(2, len(sets), figsize=(width, width / len(sets) + 0.8 + legend_in), squeeze=False,
                             layout="constrained", height_ratios=[width / len(sets), legend_in])
    for ax, name in zip(axes[0], sets):
        inside_n = len(arrays[f"in/{scores[0]}"])
        curves: list[tuple[np.ndarray, np.ndarray, float, list[str]]] = []
        for score in scores:
            fpr, tpr, auc = roc_curves(arrays[f"in/{score}"], arrays[f"{name}/{score}"])
            same = next((c for c in curves if np.array_equal(c[0], fpr) and np.array_equal(c[1], tpr)), None)
            if same is not None:
                same[3].append(score)
            else:
                curves.append((fpr, tpr, auc, [score]))
        log_x = max(c[2] for c in curves) > 0.99
        for fpr, tpr, auc, names in curves:
            label = " = ".join(SCORE_LABELS.get(s, s) for s in names) + f": {auc:.3f}"
            keep = fpr > 0 if log_x else slice(None)
            ax.plot(fpr[keep], tpr[keep], color=SCORE_COLOURS.get(names[0]), lw=1.0, label=label,
                    ls=SCORE_LINESTYLES.get(names[0], "-"), drawstyle="steps-post")
        ax.plot([1 / inside_n, 1] if log_x else [0, 1], [1 / inside_n, 1] if log_x else [0, 1], color="0.6",
                lw=0.6, ls=":")
        if log_x:
            ax.set_xscale("log")
            ax.set_xlim(1 / inside_n, 1)
        ax.set(ylim=(0, 1.01), xlabel="false-positive rate" + (" (log)" if log_x else ""),
               ylabel="true-positive rate")
        n_out = len(arrays[f"{name}/{scores[0]}"])
        ax.set_title(f"out: {dataset_label(name)}\n(n = {inside_n:,} in, {n_out:,} out)")
        below = axes[1, list(sets).index(name)]
        below.axis("off")
        below.legend(*ax.get_legend_handles_labels(), loc="upper center", title="score: AUROC", handlelength=1.5)
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: OoD detection\n"
                          f"(in-distribution: {dataset_label(meta['dataset'])} test images)")
    return fig


# ---- Posterior panels ----

STD_MAX = 0.25  # the std colour bar's fixed top in every figure (pixels on [-0.5, 0.5])
METHOD_NAMES = {"laplace": "Laplace", "mcmc": "NUTS"}
CORRUPTION_LABELS = {"left_half": "left half missing", "center_box": "centre box missing",
                     "sparse": "sparse pixels missing", "noise": "Gaussian noise", "noise_sparse": "noise + missing"}
FIGURE_SAMPLES = 2  # posterior samples shown per method


def _read_posterior_panels(path: Path) -> dict[str, dict]:
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "pae-posterior-panels/2":
                raise KeyError(f"format {f.attrs.get('format')!r}, expected 'pae-posterior-panels/2'")
            out = {}
            for kind, g in f.items():
                methods = [str(m) for m in g.attrs["methods"]]
                out[kind] = {"noise_sigma": float(g.attrs["noise_sigma"]), "methods": methods,
                             **{k: g[k][...] for k in ("truth", "corrupted", "mask", "map")},
                             **{f"{m}/{k}": g[f"{m}/{k}"][...] for m in methods for k in ("samples", "mean", "std")}}
                if "labels" in g:  # written with a classifier of the dataset's classes
                    out[kind] |= {"labels": g["labels"][...], "class_names": json.loads(g.attrs["class_names"]),
                                  **{f"{m}/{k}": g[f"{m}/{k}"][...] for m in methods
                                     for k in ("sample_classes", "class_counts")}}
            return out
    except (OSError, KeyError) as e:
        raise PaeError(f"{path}: not a complete posterior panels file ({e}); rerun the posterior stage") from None


def posterior_data(run: dict) -> tuple[dict, dict]:
    order = list(CORRUPTION_LABELS)  # the schema's order, not the file's alphabetical one
    panels = _read_posterior_panels(Path(run["files"]["posterior_panels"]))
    kinds = sorted(panels, key=lambda k: order.index(k) if k in order else len(order))
    meta = {"run": run["run"], "corruptions": [
        {"kind": k, "noise_sigma": panels[k]["noise_sigma"], "methods": panels[k]["methods"],
         "missing_fraction": float(1 - panels[k]["mask"].mean())} for k in kinds]}
    arrays = {f"{k}/{name}": v for k in kinds for name, v in panels[k].items() if isinstance(v, np.ndarray)}
    if kinds and "class_names" in panels[kinds[0]]:
        meta["class_names"] = panels[kinds[0]]["class_names"]
    return meta, arrays


PAGE_IMAGES = 12  # test images (rows) in one posterior figure: 12 rows and their headers fit a page


def by_corruption(meta: dict, arrays: dict) -> dict[str, tuple[dict, dict]]:
    """Posterior figure data split into one (meta, arrays) per corruption, keyed by its name, and where it has more
    than PAGE_IMAGES images (eval.posterior.figure_images) into pages of them, keyed "{corruption}_images{a}-{b}"
    (1-based): each figure stays within a page."""
    out = {}
    for c in meta["corruptions"]:
        mine = {k: v for k, v in arrays.items() if k.split("/", 1)[0] == c["kind"]}
        n = len(mine[f"{c['kind']}/truth"])
        for start in range(0, n, PAGE_IMAGES):
            stop = min(start + PAGE_IMAGES, n)
            key = c["kind"] if n <= PAGE_IMAGES else f"{c['kind']}_images{start + 1}-{stop}"
            # every array of a corruption has its images first
            out[key] = ({**meta, "corruptions": [c]}, {k: v[start:stop] for k, v in mine.items()})
    return out


def has_classes(meta: dict) -> bool:
    """Whether posterior figure data carries the classifier's classes of the samples (posterior_classes draws it)."""
    return "class_names" in meta


def _corruption_title(c: dict) -> str:
    parts = [CORRUPTION_LABELS.get(c["kind"], c["kind"].replace("_", " "))]
    if c["missing_fraction"] > 0:
        parts.append(f"{100 * c['missing_fraction']:.0f}% of pixels missing (shown red)")
    if c["noise_sigma"] > 0:
        parts.append(f"σ = {c['noise_sigma']:g} (pixel range 1)")
    return ", ".join(parts)


def _observed(corrupted: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W, 3): the observed image in grey (or colour), missing pixels red."""
    rgb = np.repeat(corrupted, 3, axis=0) if corrupted.shape[0] == 1 else corrupted.copy()
    rgb = rgb.transpose(1, 2, 0)
    rgb[mask[0] == 0] = (200, 30, 30)
    return rgb


def _input_tile(ax, arrays: dict, kind: str, key: str, i: int) -> bool:
    """Draw image i's truth, observed image or MAP (the posterior figures' first columns); False for other keys."""
    if key in ("truth", "map"):
        show_image(ax, arrays[f"{kind}/{key}"][i])
    elif key == "observed":
        show_image(ax, _observed(arrays[f"{kind}/corrupted"][i], arrays[f"{kind}/mask"][i]))
    else:
        return False
    return True


@drawer("posterior")
def draw_posterior(meta: dict, arrays: dict) -> plt.Figure:
    """Inpainting / denoising of one run: a block of rows (one per test image) per corruption, columns truth |
    observed | MAP | per method: posterior samples and the per-pixel posterior std. Laplace and NUTS on the same
    images; the std on one fixed scale, 0 to STD_MAX, in every figure (one colour bar as tall as the figure)."""
    blocks = meta["corruptions"]
    methods = list(dict.fromkeys(m for c in blocks for m in c["methods"]))
    columns = [("truth", "truth"), ("observed", "observed"), ("MAP", "map")]
    for m in methods:
        columns += [(f"{METHOD_NAMES.get(m, m)}\nsample {i + 1}", f"{m}/sample{i}") for i in range(FIGURE_SAMPLES)]
        columns += [(f"{METHOD_NAMES.get(m, m)}\nstd", f"{m}/std")]
    n_rows = sum(len(arrays[f"{c['kind']}/truth"]) for c in blocks)
    bar_w = 1.0  # the colour bar's column, inches, its label and ticks included
    title_h, header_h = 0.28, 0.22  # a block title's and the column headers' (two lines) heights, inches
    fixed_h = title_h * len(blocks) + header_h + 0.3
    # a tile as wide as the page allows, and no taller than lets every row fit the page's height
    cell = min((PAGE_IN - bar_w - 0.2) / len(columns), (PAGE_HEIGHT_IN - fixed_h) / n_rows)
    width = cell * len(columns) + bar_w + 0.2
    height = max(cell * n_rows + fixed_h, 2.2)  # at least as tall as the colour bar's three-line label
    fig = plt.figure(figsize=(width, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    images_fig, bar_fig = fig.subfigures(1, 2, width_ratios=[width - bar_w, bar_w])
    subfigs = images_fig.subfigures(len(blocks), 1, squeeze=False, height_ratios=[
        len(arrays[f"{c['kind']}/truth"]) * cell + title_h + header_h * (b == 0) for b, c in enumerate(blocks)])[:, 0]
    shown = None
    for b, (sub, c) in enumerate(zip(subfigs, blocks)):
        k = c["kind"]
        n = len(arrays[f"{k}/truth"])
        axes = sub.subplots(n, len(columns), squeeze=False)
        sub.suptitle(_corruption_title(c), fontsize=8, x=0.02, ha="left")
        for i in range(n):
            for j, (header, key) in enumerate(columns):
                ax = axes[i, j]
                method, _, what = key.partition("/")
                if _input_tile(ax, arrays, k, key, i):
                    pass
                elif method not in c["methods"]:
                    ax.axis("off")
                elif what == "std":
                    std = std_map(arrays[f"{k}/{method}/std"][i])
                    shown = ax.imshow(std, cmap="magma", vmin=0, vmax=STD_MAX, interpolation="nearest")
                    bare(ax)
                else:
                    show_image(ax, arrays[f"{k}/{method}/samples"][i, int(what[len("sample"):])])
                if b == 0 and i == 0:
                    ax.set_title(header, fontsize=7)
    if shown is not None:
        # As tall as the image rows: laid out once to know where they are, then the bar placed beside them.
        fig.canvas.draw()
        image_axes = [ax for sub in subfigs for ax in sub.axes if ax.images]
        top = max(ax.get_position().y1 for ax in image_axes)
        bottom = min(ax.get_position().y0 for ax in image_axes)
        left = bar_fig.bbox.x0 / fig.bbox.width
        cax = fig.add_axes([left + 0.01, bottom, 0.018, top - bottom])
        bar = fig.colorbar(shown, cax=cax, extend="max")
        bar.set_label(f"posterior std per pixel\n(pixels on [−0.5, 0.5]),\nfixed scale 0–{STD_MAX:g}")
        bar.set_ticks(np.linspace(0, STD_MAX, 6))
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: posterior of corrupted test images under the flow prior")
    return fig



def short_class(name: str) -> str:
    """A class name short enough for a 7 pt label on a 28-pixel tile: "T-shirt/top" -> "T-shirt", "Ankle boot" ->
    "boot"."""
    name = name.split("/")[0]
    return name.split()[-1] if len(name) > 8 and " " in name else name


def _shares(counts: np.ndarray, names: list[str], min_share: float = 0.1) -> str:
    """The classes holding at least min_share of an image's samples, largest first, one per line, and the rest."""
    total = counts.sum()
    order = np.argsort(-counts, kind="stable")
    lines = [f"{short_class(names[c])}  {counts[c] / total:.0%}" for c in order if counts[c] / total >= min_share]
    rest = 1 - sum(counts[c] for c in order if counts[c] / total >= min_share) / total
    return "\n".join(lines + ([f"other  {rest:.0%}"] if rest > 0.005 else []))


@drawer("posterior_classes")
def draw_posterior_classes(meta: dict, arrays: dict) -> plt.Figure:
    """The PAE paper's Fig. 6 measure: per corruption and test image, the truth with its label, the observed image,
    the MAP, and per method (Laplace, NUTS) posterior samples each marked with the domain classifier's class, beside
    the classes' shares over all of the method's samples: an ambiguous inpainting should spread over several."""
    blocks = meta["corruptions"]
    names = meta["class_names"]
    methods = list(dict.fromkeys(m for c in blocks for m in c["methods"]))
    k = max(arrays[f"{c['kind']}/{m}/sample_classes"].shape[1] for c in blocks for m in c["methods"])
    columns = [("truth", "truth"), ("observed", "observed"), ("MAP", "map")]
    for m in methods:
        n_all = max(int(arrays[f"{c['kind']}/{m}/class_counts"][0].sum()) for c in blocks if m in c["methods"])
        columns += [(f"{METHOD_NAMES.get(m, m)}\nsample {i + 1}", f"{m}/sample{i}") for i in range(k)]
        columns += [(f"{METHOD_NAMES.get(m, m)}: classes\nof {n_all} samples", f"{m}/shares")]
    widths = [1.9 if key.endswith("/shares") else 1.0 for _, key in columns]
    n_rows = sum(len(arrays[f"{c['kind']}/truth"]) for c in blocks)
    title_h, header_h = 0.28, 0.22  # a block title's and the column headers' (two lines) heights, inches
    fixed_h = title_h * len(blocks) + header_h + 0.45
    # a tile as wide as the page allows, and no taller than lets every row (a tile and its class) fit the page
    cell = min((PAGE_IN - 0.1) / sum(widths), (PAGE_HEIGHT_IN - fixed_h) / n_rows - 0.13)
    row = cell + 0.13  # a tile and its class under it
    fig = plt.figure(figsize=(cell * sum(widths) + 0.1, row * n_rows + fixed_h), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    subfigs = fig.subfigures(len(blocks), 1, squeeze=False, height_ratios=[
        len(arrays[f"{c['kind']}/truth"]) * row + title_h + header_h * (b == 0) for b, c in enumerate(blocks)])[:, 0]
    tag = dict(fontsize=7, labelpad=1)  # a tile's class, under it: the image stays whole
    for b, (sub, c) in enumerate(zip(subfigs, blocks)):
        kd = c["kind"]
        n = len(arrays[f"{kd}/truth"])
        axes = sub.subplots(n, len(columns), squeeze=False, gridspec_kw={"width_ratios": widths})
        sub.suptitle(_corruption_title(c), fontsize=8, x=0.02, ha="left")
        for i in range(n):
            for j, (header, key) in enumerate(columns):
                ax = axes[i, j]
                method, _, what = key.partition("/")
                if _input_tile(ax, arrays, kd, key, i):
                    if key == "truth":
                        ax.set_xlabel(short_class(names[int(arrays[f"{kd}/labels"][i])]), **tag)
                elif method not in c["methods"]:
                    ax.axis("off")
                elif what == "shares":
                    ax.axis("off")
                    ax.text(0.05, 0.5, _shares(arrays[f"{kd}/{method}/class_counts"][i], names), fontsize=7,
                            va="center", ha="left", transform=ax.transAxes, linespacing=1.1)
                else:
                    s = int(what[len("sample"):])
                    show_image(ax, arrays[f"{kd}/{method}/samples"][i, s])
                    ax.set_xlabel(short_class(names[int(arrays[f"{kd}/{method}/sample_classes"][i, s])]), **tag)
                if b == 0 and i == 0:
                    ax.set_title(header, fontsize=7)
    wrapped_suptitle(fig, f"{run_label(meta['run'])}: the classifier's class under each posterior sample, the "
                          "label under the truth")
    return fig

# ---- Sample quality against the temperature and the latent size (from the tables) ----

METRIC_LABELS = {"domain_fd": "domain FD (not FID)", "fid": "FID, pixels as they are",
                 "fid_minmax": "FID, min-max stretched"}


def _references(refs: list[dict], dataset: str, metric: str, present: set, sampler: str = "") -> list[dict]:
    """References of table1 for this dataset and metric ("fid", or "fid_prior" with sampler "prior") at a model and
    latent size the figure has (`present`: {(model, latent_dim)})."""
    name = f"{metric}_{sampler}" if sampler else metric
    return [{"value": r["value"], "model": r["model"], "latent_dim": r["latent_dim"],
             "label": _reference_label(r)} for r in refs
            if r["table"] == "table1" and r["dataset"] == dataset and r["metric"] == name and _comparable(r)
            and (r["model"], r["latent_dim"]) in present]


def _comparable(ref: dict) -> bool:
    """A reference whose protocol (for an FID) is known; one of unknown protocol or n sits beside none of ours."""
    return not ref["metric"].startswith("fid") or (ref.get("protocol") is not None and ref.get("n") is not None)


def _reference_label(ref: dict) -> str:
    """"paper: 28", "authors' notebook, cell 15: 34.85": the value with where it comes from (references.yaml)."""
    return f"{ref.get('cited_as') or 'reference'}: {ref['value']:g}"


def temperature_data(samplers_rows: list[dict], refs: list[dict], colours: dict) -> tuple[dict, dict]:
    metrics = ["domain_fd"] + [m for m in ("fid", "fid_minmax") if any(r.get(m) is not None for r in samplers_rows)]
    summary = over_seeds(samplers_rows, ("dataset", "model", "latent_dim", "set", "temperature"), tuple(metrics))
    datasets = sorted({r["dataset"] for r in summary})
    present = {(r["model"], r["latent_dim"]) for r in summary}
    return {"metrics": metrics, "rows": summary, "colours": colours,
            "references": {d: {m: _references(refs, d, m, present) for m in metrics} for d in datasets}}, {}


def _band(ax, x, rows, metric, color, **style):
    """A line of `metric` (mean over seeds) with its band (the range over the seeds, or with one seed the run's
    bootstrap interval); points without a value are skipped. Returns the line, or None."""
    pts = [(xi, r) for xi, r in zip(x, rows) if r.get(metric) is not None]
    if not pts:
        return None
    xs = [p[0] for p in pts]
    line, = ax.plot(xs, [p[1][metric] for p in pts], color=color, **style)
    several = [p[1].get("n_seeds", 1) > 1 for p in pts]
    low = [p[1].get(f"{metric}_min" if many else f"{metric}_low") for p, many in zip(pts, several)]
    high = [p[1].get(f"{metric}_max" if many else f"{metric}_high") for p, many in zip(pts, several)]
    if all(v is not None and np.isfinite(v) for v in low + high):
        ax.fill_between(xs, low, high, color=color, alpha=0.18, lw=0)
    return line


LATENT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _latent_markers(sizes) -> dict[int, str]:
    """A marker per latent size, where one model's curves differ only in it (the colour stays the model's)."""
    return {z: LATENT_MARKERS[i % len(LATENT_MARKERS)] for i, z in enumerate(sorted(set(sizes)))}


@drawer("temperature")
def draw_temperature(meta: dict, arrays: dict) -> plt.Figure:
    """Distance of flow samples to the test images against the flow temperature T, a panel per dataset x metric, on
    a linear axis (it shows the rise the sweep is about); a colour per model and a marker per latent size, one
    legend for all. References (at T = 1) are labelled lines. N(0, I) samples and the training-image floor do not
    depend on T: they are in Table 1 and the latent-size figure, not here (a line per model would bury the curves)."""
    rows, metrics, colours = meta["rows"], meta["metrics"], meta["colours"]
    datasets = sorted({r["dataset"] for r in rows})
    ncols = len(metrics)
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(min(PAGE_IN, max(COLUMN_IN, 2.6 * ncols + 0.4)),
                                                          2.6 * len(datasets) + 1.0),
                             squeeze=False, layout="constrained")
    n_seeds = {r["n_seeds"] for r in rows} or {1}
    markers = _latent_markers(r["latent_dim"] for r in rows)  # a latent size keeps its marker in every panel
    handles: dict[str, Line2D] = {}
    for i, dataset in enumerate(datasets):
        mine = [r for r in rows if r["dataset"] == dataset]
        groups = sorted({(r["model"], r["latent_dim"]) for r in mine}, key=lambda g: (list(colours).index(g[0]), g[1]))
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            ys = []
            for model, z in groups:
                rs = [r for r in mine if (r["model"], r["latent_dim"]) == (model, z)]
                flow = sorted((r for r in rs if r["temperature"] is not None), key=lambda r: r["temperature"])
                label = f"{model_label(model)}, latent {z}"
                line = _band(ax, [r["temperature"] for r in flow], flow, metric, colours[model], ls="-",
                             marker=markers[z], label=label, gid=f"{model}/flow")
                if line is not None:
                    handles.setdefault(label, line)
                    ys += [r[metric] for r in flow if r[metric] is not None]
            refs = meta["references"].get(dataset, {}).get(metric, [])
            ys += [r["value"] for r in refs]
            if not ys:
                ax.axis("off")
                continue
            lo, hi = min(ys), max(ys)
            drawn = ax.dataLim  # the lines and every band whole, so that no band runs off the panel
            if log_y_if_decades(ax, lo, hi):
                lo, hi = min(lo, drawn.minposy) / 1.2, max(hi, drawn.y1) * 1.2
            else:
                lo, hi = min(lo, drawn.y0), max(hi, drawn.y1)
                pad = max(0.05 * (hi - lo), 0.03 * hi)
                lo, hi = lo - pad, hi + pad
            for r in refs:  # a dotted line in the model's colour, named in the legend with its source
                label = f"{model_label(r['model'])}, latent {r['latent_dim']}, T = 1: {r['label']}"
                handles.setdefault(label, ax.axhline(r["value"], color=colours[r["model"]], lw=1.0,
                                                     ls=(0, (1, 1.5)), label=label))
            ax.set_ylim(lo, hi)
            ax.set(xlabel="flow temperature T", ylabel=METRIC_LABELS.get(metric, metric),
                   title=dataset_label(dataset))
    fig.legend(handles=list(handles.values()), loc="outside lower center",
               ncols=legend_columns(handles, fig.get_figwidth()))
    wrapped_suptitle(fig, f"Flow samples against the temperature T\n{band_label(n_seeds)}")
    return fig


def latent_data(table1_rows: list[dict], refs: list[dict], colours: dict) -> tuple[dict, dict]:
    metrics = ["domain_fd"] + [m for m in ("fid", "fid_minmax")
                               if any(r.get(f"{m}_pae_T1") is not None for r in table1_rows)]
    keep = ("dataset", "model", "latent_dim", "n_seeds")
    cols = [f"{m}_{s}{b}" for m in metrics for s in ("pae_T1", "prior") for b in ("", "_low", "_high", "_min", "_max")]
    cols += [f"recon_mse{b}" for b in ("", "_low", "_high", "_min", "_max")]
    rows = [{k: r.get(k) for k in (*keep, *cols)} for r in table1_rows]
    datasets = sorted({r["dataset"] for r in rows})
    present = {(r["model"], r["latent_dim"]) for r in rows}
    references = {d: {f"{m}_{s}": _references(refs, d, m, present, "" if s == "pae_T1" else s)
                      for m in metrics for s in ("pae_T1", "prior")} for d in datasets}
    for d in datasets:
        references[d]["recon_mse"] = _references(refs, d, "recon_mse", present)
    return {"metrics": metrics, "rows": rows, "colours": colours, "references": references}, {}


@drawer("latent")
def draw_latent(meta: dict, arrays: dict) -> plt.Figure:
    """Sample distances (flow samples at T = 1 solid, N(0, I) samples dashed) and the reconstruction error against
    the latent size, a row per dataset, a column per metric, a colour per model, one legend for all. A dataset with
    one latent size gets dots with their intervals instead of lines; references are labelled lines."""
    rows, metrics, colours = meta["rows"], meta["metrics"], meta["colours"]
    datasets = sorted({r["dataset"] for r in rows})
    panels = [*metrics, "recon_mse"]
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(PAGE_IN, 2.3 * len(datasets) + 0.9),
                             squeeze=False, layout="constrained")
    n_seeds = {r["n_seeds"] for r in rows} or {1}
    handles: dict[str, object] = {}
    for i, dataset in enumerate(datasets):
        mine = [r for r in rows if r["dataset"] == dataset]
        models = [m for m in colours if any(r["model"] == m for r in mine)]
        for j, panel in enumerate(panels):
            ax = axes[i, j]
            series = [("pae_T1", "flow"), ("prior", "prior")] if panel != "recon_mse" else [("", "recon")]
            columns = [f"{panel}_{s}" if s else panel for s, _ in series]
            sizes = sorted({r["latent_dim"] for r in mine if any(r.get(c) is not None for c in columns)})
            one = len(sizes) <= 1  # the sizes this panel has a value at
            k, where = 0, {}
            for model in models:
                rs = sorted((r for r in mine if r["model"] == model), key=lambda r: r["latent_dim"])
                for sampler, method in series:
                    col = f"{panel}_{sampler}" if sampler else panel
                    label = model_label(model) + (f": {method_label(method, model)}" if sampler else "")
                    style = method_style(method if sampler else "flow")
                    if one:
                        r = rs[0]
                        if r.get(col) is None:
                            continue
                        low, high = _interval(r, col)
                        bars = ax.errorbar([k], [r[col]], yerr=[[r[col] - low], [high - r[col]]],
                                           color=colours[model], marker=style["marker"], ls="none", capsize=2,
                                           label=label)
                        bars.lines[0].set_gid(f"{model}/{method}")
                        if sampler:
                            handles.setdefault(label, bars)
                        where[(model, sampler)] = k
                        k += 1
                    else:
                        line = _band(ax, [r["latent_dim"] for r in rs], rs, col, colours[model], label=label,
                                     gid=f"{model}/{method}", **style)
                        if line is not None and sampler:  # the MSE's curves take their model's colour alone
                            handles.setdefault(label, line)
            for s_, method in series:  # a reference: a star in its model's colour beside ours, its source in the legend
                for r in meta["references"].get(dataset, {}).get(f"{panel}_{s_}" if s_ else panel, []):
                    x = where.get((r["model"], s_), None) if one else r["latent_dim"]
                    if x is None:
                        continue
                    what = f": {method_label(method, r['model'])}" if s_ else ": test MSE"
                    label = f"{model_label(r['model'])}{what}, latent {r['latent_dim']}: {r['label']}"
                    star, = ax.plot([x + 0.25 if one else x], [r["value"]], marker="*", ms=8, ls="none",
                                    color=colours.get(r["model"], "0.2"), markeredgecolor="0.1", mew=0.4,
                                    label=label)
                    handles.setdefault(label, star)
                    if one:
                        ax.set_xlim(-0.6, max(k, 1) - 0.3)
            if one:
                ax.set_xticks([])
                if ax.get_xlim()[1] < max(k, 1) - 0.3:
                    ax.set_xlim(-0.6, max(k, 1) - 0.4)
                ax.set_xlabel(f"latent {sizes[0]}" if sizes else "")
            else:
                ax.set_xscale("log")
                ax.set_xticks(sizes, [str(z) for z in sizes])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                ax.set_xlabel("latent size")
            ys = [y for ln in ax.get_lines() for y in np.asarray(ln.get_ydata(), float)]
            if ys:
                log_y_if_decades(ax, min(ys), max(ys))
            ax.set_ylabel("test MSE per pixel\n(pixels on [−0.5, 0.5])" if panel == "recon_mse" else
                          METRIC_LABELS.get(panel, panel))
            ax.set_title(dataset_label(dataset))
    fig.legend(handles=list(handles.values()), labels=list(handles), loc="outside lower center",
               ncols=legend_columns(handles, fig.get_figwidth(), most=2),
               title="★ = a reference value, with its source" if any(h.get_marker() == "*" for h in handles.values()
                                                                    if isinstance(h, Line2D)) else None)
    single_size = any(len({r["latent_dim"] for r in rows if r["dataset"] == d}) == 1 for d in datasets)
    what = band_label(n_seeds, marks="bars, bands" if single_size else "band")
    wrapped_suptitle(fig, f"Samples and reconstructions against the latent size\n{what}")
    return fig


def _interval(row: dict, col: str) -> tuple[float, float]:
    several = row.get("n_seeds", 1) > 1
    low, high = row.get(f"{col}_min" if several else f"{col}_low"), row.get(f"{col}_max" if several else f"{col}_high")
    value = row[col]
    ok = low is not None and high is not None and np.isfinite(low) and np.isfinite(high)
    return (low, high) if ok else (value, value)


# ---- Imputation ----

def impute_data(rows: list[dict], colours: dict) -> tuple[dict, dict]:
    keep = ("dataset", "latent_dim", "model", "method", "train_missing", "matched", "test_ratio", "mse_missing",
            "mse_low", "mse_high", "mse_min", "mse_max", "n_seeds", "n_images")
    return {"rows": [{k: r.get(k) for k in keep} for r in rows], "colours": colours}, {}


IMPUTE_TITLES = {"clean": "trained on whole images", "fixed": "trained with fixed masks\n(at the test ratio)",
                 "random": "trained with random masks\n(at the test ratio)"}


@drawer("impute")
def draw_impute(meta: dict, arrays: dict) -> plt.Figure:
    """MSE on the missing pixels against the missing ratio: a panel per dataset and latent size and training
    condition (a row per dataset and latent size, a column per condition; with one condition, the panels wrapped in
    two columns); a colour per model (the same in every panel and figure), a line style per method (the model's own
    inference solid, the PAE's latent MAP dashed)."""
    rows, colours = meta["rows"], meta["colours"]

    def condition(r: dict) -> str:
        return r["train_missing"].split("/")[1] if r["matched"] else "clean"

    conditions = [c for c in ("clean", "fixed", "random") if any(condition(r) == c for r in rows)]
    groups = sorted({(r["dataset"], r["latent_dim"]) for r in rows})
    keys = sorted({(r["model"], r["method"]) for r in rows}, key=lambda k: (list(colours).index(k[0]), k[1]))
    panels = [(g, c) for g in groups for c in conditions]
    ncols = len(conditions) if len(conditions) > 1 else min(2, len(groups))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_IN if ncols > 1 else COLUMN_IN + 0.6, 2.3 * nrows + 0.8),
                             squeeze=False, layout="constrained")
    n_seeds = {r["n_seeds"] for r in rows} or {1}
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for k, ((dataset, z), kind) in enumerate(panels):
        ax = axes.flat[k]
        for model, method in keys:
            pts = sorted((r for r in rows if (r["dataset"], r["latent_dim"], r["model"], r["method"],
                                              condition(r)) == (dataset, z, model, method, kind)),
                         key=lambda r: r["test_ratio"])
            if not pts:
                continue
            x = [p["test_ratio"] for p in pts]
            ax.plot(x, [p["mse_missing"] for p in pts], color=colours[model], gid=f"{model}/{method}",
                    **method_style(method))
            band = ("mse_min", "mse_max") if pts[0]["n_seeds"] > 1 else ("mse_low", "mse_high")
            ax.fill_between(x, [p[band[0]] for p in pts], [p[band[1]] for p in pts], color=colours[model],
                            alpha=0.15, lw=0)
        ax.set_xlabel("missing ratio r")
        if len(conditions) == 1:
            ax.set_title(f"{dataset_label(dataset)}, latent {z}")
        elif k < ncols:
            ax.set_title(IMPUTE_TITLES[kind])
        if len(conditions) == 1 or k % ncols == 0:
            ax.set_ylabel(("" if len(conditions) == 1 else f"{dataset_label(dataset)}, latent {z}:\n")
                          + "MSE per missing pixel\n(pixels on [−0.5, 0.5])")
    if len(conditions) == 1:
        wrapped_suptitle(fig, f"Imputation of pixels missing at random, models {IMPUTE_TITLES[conditions[0]]}")
    handles = [Line2D([], [], color=colours[m], lw=2, label=model_label(m)) for m in colours
               if any(r["model"] == m for r in rows)]
    methods = {method_label(m): m for m in dict.fromkeys(k[1] for k in keys)}
    handles += [Line2D([], [], color="0.3", label=label, **method_style(m)) for label, m in methods.items()]
    n_images = max((r.get("n_images") or 0 for r in rows), default=0)
    bands = band_label(n_seeds, over_images="mean ±1.96\u00a0se over images")
    title = f"{bands}; {n_images:,} test images per point" if n_images else bands
    fig.legend(handles=handles, loc="outside lower center",
               ncols=legend_columns([h.get_label() for h in handles], fig.get_figwidth()),
               title=wrapped(title, fig.get_figwidth() - 0.2))
    return fig

"""Figures (pae/report/figures.py) drawn from small synthetic stage outputs: the posterior figure's grid (a row per
image, a column per quantity, headers once, a colour bar for the std, the width filled), and every figure laid out
by constrained_layout with no panel's labels over another's. Structure is checked, not pixels."""
from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.layout_engine import ConstrainedLayoutEngine

from pae.report import figures, summary

HEADERS = ["corrupted", "MAP", "sample 1", "sample 2", "sample 3", "sample 4", "posterior\nmean", "posterior\nstd",
           "truth"]


def _overlapping_panels(fig) -> list[tuple[str, str]]:
    """Pairs of axes whose extents, titles, tick labels and axis labels included, overlap by more than a pixel."""
    renderer = fig.canvas.get_renderer()
    boxes = [(ax, ax.get_tightbbox(renderer)) for ax in fig.axes if ax.get_visible()]
    out = []
    for (a, ba), (b, bb) in itertools.combinations(boxes, 2):
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > 1 and h > 1:
            out.append(tuple(ax.get_title() or ax.get_ylabel() or ax.get_label() for ax in (a, b)))
    return out


def _write_panels(path, kinds=("left_half", "noise"), n=3, k=4, channels=1, size=8, method="mcmc", seed=0):
    rng = np.random.default_rng(seed)

    def images(*shape):
        return rng.integers(0, 256, (*shape, channels, size, size), dtype=np.uint8)

    with h5py.File(path, "w") as f:
        for i, kind in enumerate(kinds):
            g = f.create_group(kind)
            g.attrs["samples_method"] = method
            for name in ("truth", "corrupted", "map", "mean"):
                g[name] = images(n)
            g["samples"] = images(n, k)
            g["std"] = rng.integers(0, 20 + 20 * i, (n, channels, size, size), dtype=np.uint8)
            g["mask"] = np.ones((n, 1, size, size), dtype=np.uint8)
    return path


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


@pytest.mark.parametrize("channels, kinds, n", [(1, ("noise", "left_half"), 3), (3, ("left_half",), 1)])
def test_posterior_figure_is_one_grid_with_headers_once_and_a_std_colour_bar(tmp_path, drawn, channels, kinds, n):
    panels = _write_panels(tmp_path / "panels.h5", kinds=kinds, n=n, channels=channels)
    figures.posterior_figure({"run": "d-ae-z4-s0", "files": {"posterior_panels": str(panels)}}, tmp_path / "p.png")
    (fig,) = drawn
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    images = _image_axes(fig)
    assert len(images) == len(kinds) * n * len(HEADERS)  # a row per image of each corruption, a column per quantity

    # The grid: columns at the same x in every row, rows at the same y in every column, in reading order.
    renderer = fig.canvas.get_renderer()
    rows = [images[i:i + len(HEADERS)] for i in range(0, len(images), len(HEADERS))]
    lefts = np.array([[ax.get_position().x0 for ax in row] for row in rows])
    bottoms = np.array([[ax.get_position().y0 for ax in row] for row in rows])
    assert np.ptp(lefts, axis=0).max() < 1e-3 and np.ptp(bottoms, axis=1).max() < 1e-3
    assert (np.diff(lefts[0]) > 0).all() and (np.diff(bottoms[:, 0]) < 0).all()
    # ... that fills the figure's width (the old figure drew each corruption as a strip a fifth of it)
    x0 = min(ax.get_window_extent(renderer).x0 for ax in images)
    x1 = max(ax.get_window_extent(renderer).x1 for ax in images)
    assert (x1 - x0) / fig.bbox.width > 0.85

    # Column headers once, on the first row; a y-label per corruption panel, in the schema's order.
    assert [ax.get_title() for ax in rows[0]] == HEADERS
    assert all(ax.get_title() == "" for row in rows[1:] for ax in row)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["left half missing", "noise"][:len(kinds)]

    # The std: one map per image on one colour scale, with its colour bar.
    std_column = [row[HEADERS.index("posterior\nstd")] for row in rows]
    assert all(ax.images[0].get_array().ndim == 2 for ax in std_column)
    with h5py.File(panels) as f:
        vmax = max(f[kind]["std"][...].mean(axis=1).max() for kind in f) / 255
    assert all(ax.images[0].get_clim() == pytest.approx((0, vmax)) for ax in std_column)
    (bar,) = [c for ax in fig.axes for c in (ax, *ax.child_axes) if getattr(c, "_colorbar", None)]
    assert bar.get_xlabel() == "posterior std" and bar._colorbar.mappable in [ax.images[0] for ax in std_column]
    # ... under the std column, within its width
    renderer = fig.canvas.get_renderer()
    box, column = bar.get_window_extent(renderer), std_column[-1].get_window_extent(renderer)
    assert column.x0 <= box.x0 < box.x1 <= column.x1 and box.y1 < column.y0
    assert fig.get_suptitle() == "d-ae-z4-s0: posterior samples by NUTS"
    assert not _overlapping_panels(fig)


def test_posterior_figure_names_each_panels_sampler_and_aligns_panels_with_fewer_samples(tmp_path, drawn):
    path = _write_panels(tmp_path / "panels.h5", kinds=("left_half",), n=2, k=2)
    with h5py.File(path, "a") as f:
        src = f["left_half"]
        g = f.create_group("sparse")
        for name in src:
            g[name] = src[name][:, :1] if name == "samples" else src[name][...]  # one sample where the other has 2
        g.attrs["samples_method"] = "laplace"
    figures.posterior_figure({"run": "r", "files": {"posterior_panels": str(path)}}, tmp_path / "p.png")
    (fig,) = drawn
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == \
        ["left half missing\n(NUTS samples)", "sparse pixels\n(Laplace samples)"]
    assert fig.get_suptitle() == "r"
    images = _image_axes(fig)
    assert len(images) == 2 * 7 + 2 * 6  # the missing sample's cell stays empty, the columns stay aligned
    assert [ax.get_title() for ax in images[:7]] == ["corrupted", "MAP", "sample 1", "sample 2", "posterior\nmean",
                                                    "posterior\nstd", "truth"]
    left = {round(ax.get_position().x0, 4) for ax in images}
    assert len(left) == 7


def _run(tmp_path, name, dataset="fashion_mnist", model="ae", z=4, seed=0):
    rng = np.random.default_rng(seed)
    folder = tmp_path / name
    folder.mkdir()
    with h5py.File(folder / "samples.h5", "w") as f:
        for key in ("pae", "prior", "originals", "reconstructions"):
            f[key] = rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
        f["interpolations"] = rng.integers(0, 256, (2, 5, 1, 8, 8), dtype=np.uint8)
        f.attrs["temperature"] = 1.0
    (folder / "history.json").write_text(json.dumps({"epochs": [{"epoch": e, "val_mse": 0.1 / e} for e in (1, 2)]}))
    (folder / "flow.json").write_text(json.dumps({"epochs": [{"epoch": e, "val_logp": -5 + e} for e in (1, 2)]}))
    n = 50
    sets = np.repeat(["in", "mnist", "hflip", "vflip"], n)
    scores = {"set": sets, "index": np.tile(np.arange(n), 4), "flow_logp": rng.normal(size=4 * n),
              "recon_mse": rng.normal(size=4 * n) + (sets != "in")}
    pd.DataFrame(scores).to_csv(folder / "ood_scores.csv", index=False)
    files = {"samples": folder / "samples.h5", "history": folder / "history.json",
             "flow_history": folder / "flow.json", "ood_scores": folder / "ood_scores.csv"}
    return {"run": name, "dataset": dataset, "model": model, "latent_dim": z, "seed": seed,
            "files": {k: str(v) for k, v in files.items()}}


def _sampler_rows(runs):
    rows = []
    for r in runs:
        grid = {k: r[k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
        for name, t, v in (("prior", None, 100.0), ("pae_T1.0", 1.0, 20.0), ("pae_T0.7", 0.7, 15.0),
                           ("reconstructions", None, 5.0), ("train_vs_test", None, 0.5)):
            rows.append({**grid, "set": name, "temperature": t, "domain_fd": v * r["latent_dim"] ** -0.5,
                         "domain_fd_low": v * 0.9, "domain_fd_high": v * 1.1, "fid": 3 * v, "fid_low": 2 * v,
                         "fid_high": 4 * v})
    return rows


def test_every_figure_uses_constrained_layout_and_no_labels_overlap(tmp_path, drawn):
    runs = [_run(tmp_path, f"{d}-{m}-z{z}-s0", d, m, z) for d in ("fashion_mnist", "mnist") for m in ("ae", "vae")
            for z in (4, 16)]
    for r in runs:
        r["recon_mse"] = 0.01 * r["latent_dim"] ** -0.5
    samplers = _sampler_rows(runs)
    impute = [{"dataset": d, "model": m, "latent_dim": 4, "train_missing": tm, "matched": tm != "clean",
               "test_ratio": ratio, "method": method, "mse_missing": 0.02 + ratio / 10, "mse_low": 0.01,
               "mse_high": 0.1, "n_seeds": 1}
              for d in ("fashion_mnist", "mnist") for m in ("ae", "vae") for method in ("encoder", "pae_map")
              for tm in ("clean", "0.5/fixed") for ratio in (0.3, 0.7)]
    figures.write_run_figures(runs, tmp_path / "figures")
    figures.roc_figure(runs[0], tmp_path / "roc.png")
    figures.samples_figure(runs, "fashion_mnist", tmp_path / "samples.png")
    figures.temperature_figure(samplers, tmp_path / "t.png")
    figures.latent_figure(summary.table1(runs, samplers, []), tmp_path / "z.png")
    figures.impute_figure(impute, tmp_path / "impute.png")
    panels = _write_panels(tmp_path / "panels.h5")
    figures.posterior_figure({"run": "r", "files": {"posterior_panels": str(panels)}}, tmp_path / "p.png")
    assert len(drawn) == 3 * len(runs) + 1 + 6
    for fig in drawn:
        assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine), fig.get_suptitle()
        assert not _overlapping_panels(fig), (fig.get_suptitle(), _overlapping_panels(fig))

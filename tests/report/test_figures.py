"""Figures (pae/report/figures.py, uncertainty.py) drawn from small synthetic stage outputs and checked as a referee
would (tests/report/checks.py): text of at least 7 pt at the printed size, no curve hidden under another, one colour
per model in every panel and figure, colour bars with a stated (and for the posterior a fixed) range, canvases without
empty space; and every figure redrawn from its data alone. Structure is checked, not pixels."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zlib

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from pae.io import PaeError
from pae.report import figdata, figures, style, summary
from pae.report.export import export
from pae.stages.report import write_figures
from tests.report import checks

MODELS = ("ae", "vae", "vad")


def _samples(folder, rng, n=16, size=8):
    with h5py.File(folder / "samples.h5", "w") as f:
        for key in ("pae", "prior", "originals", "reconstructions"):
            f[key] = rng.integers(0, 256, (n, 1, size, size), dtype=np.uint8)
        f["interpolations"] = rng.integers(0, 256, (3, 6, 1, size, size), dtype=np.uint8)
        f.attrs["temperature"] = 1.0


def write_posterior_panels(path, kinds=("left_half", "noise"), n=2, k=4, channels=1, size=8, nuts=True, seed=0,
                           classes=True):
    """Panels as pae.stages.posterior writes them (format 2): Laplace, and NUTS on the same images; with `classes`,
    the labels and the classifier's classes of the samples, as the stage writes them with a classifier."""
    rng = np.random.default_rng(seed)

    def images(*shape):
        return rng.integers(0, 256, (*shape, channels, size, size), dtype=np.uint8)

    methods = ["laplace", "mcmc"] if nuts else ["laplace"]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "pae-posterior-panels/2"
        for kind in kinds:
            g = f.create_group(kind)
            g.attrs.update(methods=methods, noise_sigma=0.1 if kind == "noise" else 0.0)
            for name in ("truth", "corrupted", "map"):
                g[name] = images(n)
            mask = np.ones((n, 1, size, size), np.uint8)
            if kind == "left_half":
                mask[..., : size // 2] = 0
            g["mask"] = mask
            for m in methods:
                g[f"{m}/samples"], g[f"{m}/mean"] = images(n, k), images(n)
                g[f"{m}/std"] = rng.uniform(0, 0.3, (n, channels, size, size)).astype(np.float32)
                if classes:
                    g[f"{m}/sample_classes"] = rng.integers(0, 10, (n, k))
                    g[f"{m}/class_counts"] = rng.multinomial(20, [0.6, 0.3, 0.1] + [0.0] * 7, size=n)
            if classes:
                g["labels"] = rng.integers(0, 10, n)
                g.attrs["class_names"] = json.dumps(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
    return path


def write_uncertainty_panels(path, likelihood="gaussian_pixel", model="vae", seed=0, k=3, m=5, d=6, s=4):
    rng = np.random.default_rng(seed)

    def images(n):
        return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)

    varies = likelihood in ("gaussian_pixel", "gaussian_image", "bernoulli")
    with h5py.File(path, "w") as f:
        f["traversal"] = rng.integers(0, 256, (s, s, 1, 8, 8), dtype=np.uint8)
        f["corner_images"], f["corner_index"] = images(4), np.arange(4)
        if likelihood:
            f["originals"], f["reconstructions"] = images(k), images(k)
            f["latents"] = rng.normal(size=(k, d)).astype(np.float32)
            std = rng.uniform(0, 0.3, (k, 1, 8, 8)) if varies else np.full((k, 1, 8, 8), 0.1)
            f["std"] = std.astype(np.float32)
        if varies:
            for name in ("prior", "pae"):
                f[f"{name}_samples"] = images(m)
                f[f"{name}_std"] = rng.uniform(0, 0.4, (m, 1, 8, 8)).astype(np.float32)
        f.attrs.update(format="pae-uncertainty-panels/1", model=model, likelihood=likelihood, beta_nll=0.0,
                       scale_varies=varies, gaussian=likelihood != "bernoulli")
    return path


def make_run(tmp_path, dataset="fashion_mnist", model="ae", z=4, seed=0, identical_scores=True):
    """A run's stage outputs, small and synthetic: samples, histories, OoD scores (recon_mse and elbo rank the
    images alike when `identical_scores`, nearly alike when it is "near", and the flow separates MNIST almost
    perfectly), posterior and uncertainty panels."""
    name = f"{dataset}-{model}-z{z}-s{seed}"
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same data in every process (hash() is salted)
    folder = tmp_path / name
    folder.mkdir()
    _samples(folder, rng)
    scale = (1 + MODELS.index(model) / 4) * z ** -0.3  # every run its own curve
    (folder / "history.json").write_text(json.dumps({"epochs": [{"epoch": e, "val_mse": 0.1 * scale / e}
                                                                for e in (1, 2, 3)]}))
    (folder / "flow.json").write_text(json.dumps({"epochs": [{"epoch": e, "val_logp": -5.0 * z * scale / e}
                                                                     for e in (1, 2)]}))
    n = 200
    sets = np.repeat(["in", "mnist", "hflip"], n)
    shift = (sets != "in").astype(float)
    recon = rng.normal(size=3 * n) + shift
    scores = {"set": sets, "index": np.tile(np.arange(n), 3),
              "flow_logp": rng.normal(size=3 * n) + 6 * (sets == "mnist"),
              "recon_mse": recon}
    if model != "ae":
        scores["elbo"] = (2 * recon + 1 if identical_scores is True else
                          recon + 3e-4 * rng.normal(size=3 * n) if identical_scores == "near" else
                          rng.normal(size=3 * n) + shift)
    pd.DataFrame(scores).to_csv(folder / "ood_scores.csv", index=False)
    write_posterior_panels(folder / "posterior_panels.h5")
    write_uncertainty_panels(folder / "uncertainty.h5", "" if model == "ae" else "gaussian_pixel", model)
    files = {"samples": folder / "samples.h5", "history": folder / "history.json",
             "flow_history": folder / "flow.json", "ood_scores": folder / "ood_scores.csv",
             "posterior_panels": folder / "posterior_panels.h5", "uncertainty_panels": folder / "uncertainty.h5"}
    return {"run": name, "dataset": dataset, "model": model, "latent_dim": z, "seed": seed,
            "files": {k: str(v) for k, v in files.items()}}


def sampler_rows(runs):
    rows = []
    for r in runs:
        grid = {k: r[k] for k in ("run", "dataset", "model", "latent_dim", "seed")}
        shift = MODELS.index(r["model"]) * 3 + 8 / r["latent_dim"]  # every model and latent size its own curve
        for name, t, v in (("prior", None, 100.0), ("pae_T1.0", 1.0, 34.0), ("pae_T0.9", 0.9, 35.5),
                           ("pae_T0.7", 0.7, 41.0), ("reconstructions", None, 30.0), ("train_vs_test", None, 2.5)):
            v = v + shift
            rows.append({**grid, "set": name, "temperature": t, "domain_fd": v / 5, "domain_fd_low": v / 5 - 0.3,
                         "domain_fd_high": v / 5 + 0.3, "fid": v, "fid_low": v - 0.6, "fid_high": v + 0.6,
                         "fid_minmax": v - 1, "fid_minmax_low": v - 1.6, "fid_minmax_high": v - 0.4})
    return rows


def impute_rows(models_by_condition):
    return [{"dataset": "fashion_mnist", "model": m, "latent_dim": 4, "train_missing": tm, "matched": tm != "clean",
             "test_ratio": ratio, "method": method,
             "mse_missing": 0.02 + ratio / 10 + 0.01 * i + (0.004 if method == "pae_map" else 0), "mse_low": 0.015,
             "mse_high": 0.1, "mse_min": 0.02, "mse_max": 0.1, "n_seeds": 1, "n_images": 200}
            for tm, models in models_by_condition.items() for i, m in enumerate(models)
            for method in (("vad_infer",) if m == "vad" else ("encoder",)) + ("pae_map",) for ratio in (0.1, 0.5, 0.9)]


REFS = [{"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 4, "metric": "fid",
         "value": 28.0, "source": "the paper, Table 1", "cited_as": "paper", "n": None, "protocol": None},
        {"table": "table1", "dataset": "fashion_mnist", "model": "ae", "latent_dim": 4, "metric": "fid_minmax",
         "value": 34.85, "source": "the authors' notebook ..., cell 15", "cited_as": "authors' notebook, cell 15",
         "n": 10000, "protocol": "tensorflow, minmax"}]


def test_references_are_labelled_lines_and_one_of_unknown_protocol_is_left_out(experiment):
    """The notebook's min-max FID is drawn where its protocol is, in its model's colour and named in the legend with
    its source; the paper's FID, whose n and protocol are not stated, beside no FID of ours."""
    runs, rows = experiment
    colours = style.model_colours(r["model"] for r in runs)
    for kind, data in (("temperature", figures.temperature_data(rows["samplers"], REFS, colours)),
                       ("latent", figures.latent_data(rows["table1"], REFS, colours))):
        fig = _drawn(kind, *data)
        notes = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        assert any(t.startswith("AE") and t.endswith("authors' notebook, cell 15: 34.85") for t in notes), notes
        assert not any("28" in t for t in notes), notes


@pytest.fixture
def experiment(tmp_path):
    """Synthetic runs of three models at two latent sizes (one seed), their tables' rows and a drawn report's
    figures folder."""
    runs = [make_run(tmp_path, "fashion_mnist", m, z) for m, z in (("ae", 4), ("ae", 16), ("vae", 4), ("vae", 16),
                                                                    ("vad", 4))]
    runs.append(make_run(tmp_path, "mnist", "ae", 8))  # a second dataset: a second row of panels
    for r in runs:
        r["recon_mse"] = 0.01 * r["latent_dim"] ** -0.5 * (1 + MODELS.index(r["model"]) / 4)
    samplers = sampler_rows(runs)
    rows = {"samplers": samplers, "table1": summary.table1(runs, samplers, REFS),
            "impute": impute_rows({"clean": ("ae", "vae", "vad"), "0.5/fixed": ("vad",), "0.5/random": ("vae",)})}
    return runs, rows


def _drawn(kind, meta, arrays):
    fig = figures.DRAWERS[kind](meta, arrays)
    fig.canvas.draw()
    return fig


def test_every_figure_passes_the_referee(tmp_path, experiment, monkeypatch):
    """Each kind of figure of a report: no text under 7 pt at the printed size, no wider than the page, no hidden
    curve, no panels over each other; image figures fill their canvas."""
    runs, rows = experiment
    drawn = {}

    def keep(fig, path):  # laid out as it would be saved, and kept open to be checked
        fig.canvas.draw()
        drawn[path.stem] = fig

    monkeypatch.setattr(figures, "save", keep)
    write_figures(runs, rows, REFS, tmp_path / "figures")
    kinds = set()
    for path in sorted((tmp_path / "figures" / "data").glob("*.h5")):
        kind = figdata.load(path)[0]
        kinds.add(kind)
        fig = drawn[path.stem]
        assert checks.referee(fig) == [], (path.name, checks.referee(fig))
        if kind in ("samples", "posterior", "posterior_classes", "interpolation_grid", "reconstructions",
                    "interpolations"):
            assert checks.empty_fraction(fig) < 0.3, (path.name, checks.empty_fraction(fig))
    # two models at two latent sizes: 8 sample grids, taller than a page in one figure, so a page per latent size
    assert {n for n in drawn if n.startswith("samples_fashion")} == {"samples_fashion_mnist_z4-4",
                                                                     "samples_fashion_mnist_z16-16"}
    assert kinds == {"samples", "reconstructions", "interpolations", "roc", "posterior", "posterior_classes",
                     "uncertainty",
                     "sample_uncertainty", "interpolation_grid", "training", "temperature", "latent", "impute"}


def test_roc_draws_identical_curves_once_naming_both_and_a_log_axis_above_0_99(tmp_path):
    """The VAE's -ELBO and reconstruction error can rank every image alike: one curve then, its legend entry naming
    both (before, the second curve lay exactly under the first and the legend listed both). The flow separates
    MNIST with AUROC > 0.99: the false-positive rate on a log axis down to 1 / n_in."""
    run = make_run(tmp_path, model="vae", identical_scores=True)
    fig = _drawn("roc", *figures.roc_data(run))
    assert checks.hidden_lines(fig) == []
    mnist, hflip, mnist_legend = fig.axes[:3]  # the panels, then the row of their legends under them
    labels = [t.get_text() for t in mnist_legend.get_legend().get_texts()]
    assert any(style.SCORE_LABELS["recon_mse"] in t and style.SCORE_LABELS["elbo"] in t for t in labels), labels
    assert len(labels) == 2
    assert mnist.get_xscale() == "log" and mnist.get_xlim()[0] == pytest.approx(1 / 200)
    assert hflip.get_xscale() == "linear"  # no AUROC above 0.99 there
    assert "n = 200 in, 200 out" in mnist.get_title()

    different = make_run(tmp_path, model="vad", identical_scores=False)
    fig = _drawn("roc", *figures.roc_data(different))
    assert len(fig.axes[2].get_legend().get_texts()) == 3


def test_roc_curves_that_nearly_coincide_stay_visible(tmp_path):
    """The smoke grid's VAEs: -ELBO and reconstruction MSE rank the images nearly alike (AUROC 0.877 and 0.877), so
    their curves never part by more than a step; in one line style the first drawn was hidden under the second. The
    scores drawn later in a pair that can coincide (-ELBO, the PAE density) are dashed over the solid ones."""
    run = make_run(tmp_path, model="vae", identical_scores="near")
    fig = _drawn("roc", *figures.roc_data(run))
    labels = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]
    assert len(labels) == 3  # not identical: drawn and named apart
    assert checks.nearly_hidden_lines(fig) == []
    panels = fig.axes[:2]  # MNIST and flipped; then the legends' row
    for ln in (ln for ax in panels for ln in ax.get_lines() if not ln.get_label().startswith("_")):
        ln.set_linestyle("-")  # the same curves in one style are reported, a pair per panel
    assert [pair[1].split(":")[0] for pair in checks.nearly_hidden_lines(fig)] == [style.SCORE_LABELS["elbo"]] * 2


def test_the_referee_check_finds_a_hidden_curve():
    """The check itself: two labelled curves with the same points are reported."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 0.5, 1], [0, 0.8, 1], label="elbo")
    ax.plot([0, 0.5, 1], [0, 0.8, 1], label="recon_mse")
    assert checks.hidden_lines(fig) == [("elbo", "recon_mse")]
    plt.close(fig)


def test_titles_name_a_run_in_words_and_the_referee_finds_config_keys():
    """A per-run figure's title gives the run as words (model, dataset, latent size, seed; a named block after the
    model as the legends give it); the referee check flags a run id or a config key left in a figure's text."""
    import matplotlib.pyplot as plt

    assert style.run_label("fashion_mnist-beta_vae-z32-s2") == "β-VAE on Fashion-MNIST, latent 32, seed 2"
    assert style.run_label("mnist-vad-z50-s0-miss0.7-random") == "VAD (miss0.7-random) on MNIST, latent 50, seed 0"
    assert style.run_label("not a run id") == "not a run id"
    fig, ax = plt.subplots()
    fig.suptitle("mnist-vae-z10-s0: OoD detection")
    ax.plot([0, 1], [0, 1], label="recon_mse")
    ax.legend()
    assert sorted(checks.code_names(fig)) == ["mnist-vae-z10-s0: OoD detection", "recon_mse"]
    fig.suptitle(style.run_label("mnist-vae-z10-s0") + ": OoD detection")
    ax.legend(["reconstruction MSE"])
    assert checks.code_names(fig) == []
    plt.close(fig)


def test_a_long_band_note_wraps_inside_a_narrow_figure_and_latent_sizes_keep_their_marker(experiment):
    """The smoke grid's case: FID in one protocol only (two metric columns, a narrower figure) and a model with two
    seeds beside models with one, so the band note names both kinds; it wraps within the canvas. A latent size has
    one marker in every panel (before, latent 4 on Fashion-MNIST and latent 8 on MNIST shared one)."""
    runs, rows = experiment
    colours = style.model_colours(r["model"] for r in runs)
    samplers = [{k: v for k, v in r.items() if not k.startswith("fid_minmax")} for r in rows["samplers"]]
    samplers += [{**r, "seed": 1, "run": r["run"] + "-s1"} for r in samplers if r["model"] == "vae"]
    mnist = [{**r, "dataset": "mnist", "latent_dim": 8, "run": r["run"] + "-mnist"} for r in samplers
             if r["latent_dim"] == 4 and r["dataset"] == "fashion_mnist"]
    fig = _drawn("temperature", *figures.temperature_data(samplers + mnist, REFS, colours))
    assert fig.get_figwidth() < style.PAGE_IN and "\n" in fig._suptitle.get_text()
    assert "where there is one" in fig._suptitle.get_text().replace("\n", " ")
    assert checks.referee(fig) == []
    by_size = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label().startswith("_"):
                continue
            by_size.setdefault(line.get_label().rsplit("latent ", 1)[1], set()).add(line.get_marker())
    assert all(len(m) == 1 for m in by_size.values()) and len(set().union(*by_size.values())) == len(by_size)


def test_one_colour_per_model_in_every_panel_and_figure(tmp_path, experiment):
    """A model keeps one colour across the panels of a figure and across figures, even where a panel holds fewer
    models (before, the imputation figure gave the VAD another colour in its panel of its own)."""
    runs, rows = experiment
    colours = style.model_colours(r["model"] for r in runs)
    drawn = [_drawn("impute", *figures.impute_data(rows["impute"], colours)),
             _drawn("temperature", *figures.temperature_data(rows["samplers"], REFS, colours)),
             _drawn("latent", *figures.latent_data(rows["table1"], REFS, colours)),
             _drawn("training", *figures.training_data(runs, colours))]
    seen = checks.line_colours_by_gid(drawn)
    assert set(seen) == set(MODELS)
    assert all(seen[m] == {to_hex(colours[m])} for m in MODELS), seen
    assert len({to_hex(c) for c in colours.values()}) == len(colours)
    # the base models' colours do not depend on which other models a report has
    assert style.model_colours(["vad"])["vad"] == colours["vad"]
    named = style.model_colours(["vae", "vae-bernoulli", "vae-pixel"])
    assert len(set(named.values())) == 3 and named["vae"] == colours["vae"]


def test_only_an_aes_flow_samples_are_called_the_pae(experiment):
    """The latent-size figure names the flow sampler of each model: the PAE for an AE, plain flow samples for a VAE
    or VAD (the two-stage sampler, not the PAE)."""
    runs, rows = experiment
    fig = _drawn("latent", *figures.latent_data(rows["table1"], REFS, style.model_colours(r["model"] for r in runs)))
    labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert {"AE: flow samples (PAE)", "VAE: flow samples", "VAD: flow samples"} <= labels, labels
    assert not any("PAE" in label for label in labels if not label.startswith("AE")), labels


def test_posterior_figure_shows_laplace_and_nuts_on_one_fixed_std_scale(tmp_path):
    """Truth | observed | MAP | Laplace samples, std | NUTS samples, std; one colour bar as tall as the images, on the
    same 0 to STD_MAX scale in every figure, its range in its label; each block says its mask or noise sigma."""
    meta, arrays = figures.posterior_data({"run": "r", "files": {
        "posterior_panels": str(write_posterior_panels(tmp_path / "p.h5", n=2))}})
    fig = _drawn("posterior", meta, arrays)
    images = [ax for ax in fig.axes if ax.images]
    headers = ["truth", "observed", "MAP", "Laplace\nsample 1", "Laplace\nsample 2", "Laplace\nstd",
               "NUTS\nsample 1", "NUTS\nsample 2", "NUTS\nstd"]
    assert [ax.get_title() for ax in images[:len(headers)]] == headers
    assert len(images) == 2 * 2 * len(headers)
    (bar,) = checks.colour_bars(fig)
    assert bar._colorbar.mappable.get_clim() == (0, figures.STD_MAX)
    assert f"0–{figures.STD_MAX:g}" in bar.get_ylabel()
    std_axes = [ax for ax in images if ax.images[0].get_cmap().name == "magma"]
    assert len(std_axes) == 2 * 2 * 2 and all(ax.images[0].get_clim() == (0, figures.STD_MAX) for ax in std_axes)
    # as tall as the images it describes (within a row's height)
    renderer = fig.canvas.get_renderer()
    top = max(ax.get_window_extent(renderer).y1 for ax in images)
    bottom = min(ax.get_window_extent(renderer).y0 for ax in images)
    row = images[0].get_window_extent(renderer).height
    box = bar.get_window_extent(renderer)
    assert box.height > (top - bottom) - 2 * row
    titles = [sf._suptitle.get_text() for sf in fig.subfigs[0].subfigs]  # the images' part, a block per corruption
    assert titles[0].startswith("left half missing, 50% of pixels missing")
    assert titles[1] == "Gaussian noise, σ = 0.1 (pixel range 1)"
    assert checks.referee(fig) == []

    laplace_only = figures.posterior_data({"run": "r", "files": {
        "posterior_panels": str(write_posterior_panels(tmp_path / "l.h5", n=2, nuts=False))}})
    fig = _drawn("posterior", *laplace_only)
    assert [ax.get_title() for ax in fig.axes if ax.images][:6] == headers[:6]


def test_posterior_classes_figure_marks_each_sample_with_its_class(tmp_path):
    """The PAE paper's Fig. 6 measure: each shown sample carries the classifier's class, the truth its label, and
    each method a column of its classes' shares over all its samples (those of >= 10%, the rest as "other")."""
    path = write_posterior_panels(tmp_path / "p.h5", n=2, k=3)
    meta, arrays = figures.posterior_data({"run": "r", "files": {"posterior_panels": str(path)}})
    assert figures.has_classes(meta)
    fig = _drawn("posterior_classes", meta, arrays)
    names = [figures.short_class(c) for c in meta["class_names"]]
    assert names[0] == "T-shirt" and names[9] == "boot"
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 2 * (3 + 2 * 3)  # corruptions x images x (truth, observed, MAP, 3 samples per method)
    tags = [ax.get_xlabel() for ax in images if ax.get_xlabel()]
    with h5py.File(path) as f:
        expected = []
        for kind in ("left_half", "noise"):
            for i in range(2):
                expected.append(names[f[f"{kind}/labels"][i]])
                expected += [names[c] for m in ("laplace", "mcmc") for c in f[f"{kind}/{m}/sample_classes"][i]]
        counts = f["left_half/mcmc/class_counts"][0]
    assert tags == expected
    shares = [t.get_text() for ax in fig.axes if not ax.images for t in ax.texts]
    top = int(np.argmax(counts))
    assert shares[1].splitlines()[0] == f"{names[top]}  {counts[top] / counts.sum():.0%}"
    assert checks.referee(fig) == [] and checks.empty_fraction(fig) < 0.3
    plain = figures.posterior_data({"run": "r", "files": {"posterior_panels": str(
        write_posterior_panels(tmp_path / "plain.h5", classes=False))}})
    assert not figures.has_classes(plain[0])


def test_posterior_figures_one_per_corruption_each_within_a_page(tmp_path):
    """The reproductions' panels (8 images, two corruptions) in one figure fit a page only with smaller tiles (before,
    one figure was 11.4 in tall); split per corruption, each figure fits at the page's width, and holds only its
    corruption's images. Any number of rows fits: the tiles shrink to the page's height."""
    meta, arrays = figures.posterior_data({"run": "r", "files": {
        "posterior_panels": str(write_posterior_panels(tmp_path / "p.h5", n=8, size=28))}})
    together = _drawn("posterior", meta, arrays)
    assert not checks.too_tall(together) and together.get_figwidth() < style.PAGE_IN - 1
    split = figures.by_corruption(meta, arrays)
    assert list(split) == ["left_half", "noise"]
    for kind, (m, a) in split.items():
        assert [c["kind"] for c in m["corruptions"]] == [kind] and all(k.startswith(f"{kind}/") for k in a)
        for drawer in ("posterior", "posterior_classes"):
            fig = _drawn(drawer, m, a)
            assert checks.referee(fig) == [], (kind, drawer)
            assert len([ax for ax in fig.axes if ax.images]) > 8 * 3
            assert fig.get_figwidth() == pytest.approx(style.PAGE_IN)
    # eval.posterior.figure_images: 30 -> pages of at most 12 images, in order
    meta, arrays = figures.posterior_data({"run": "r", "files": {
        "posterior_panels": str(write_posterior_panels(tmp_path / "q.h5", kinds=("noise",), n=30, k=2))}})
    pages = figures.by_corruption(meta, arrays)
    assert list(pages) == ["noise_images1-12", "noise_images13-24", "noise_images25-30"]
    assert np.array_equal(pages["noise_images13-24"][1]["noise/mcmc/samples"], arrays["noise/mcmc/samples"][12:24])
    for m, a in pages.values():
        for drawer in ("posterior", "posterior_classes"):
            assert checks.referee(_drawn(drawer, m, a)) == [], drawer


def test_uncertainty_figure_writes_a_constant_std_as_a_number(tmp_path):
    """One sigma for all pixels: the std column holds its value, not six identical saturated squares; the latent
    bars share one range and have dimension ticks; a VAD's latents are not called q(z | x)."""
    from pae.report import uncertainty

    for likelihood, flat in (("gaussian_learned", True), ("gaussian_pixel", False)):
        run = {"run": "r", "files": {"uncertainty_panels": str(write_uncertainty_panels(
            tmp_path / f"{likelihood}.h5", likelihood, model="vad"))}}
        fig = _drawn("uncertainty", *uncertainty.uncertainty_data(run))
        stds = fig.axes[3::4]
        assert all(not ax.images for ax in stds) == flat
        assert all(ax.texts[0].get_text() == "σ = 0.1" for ax in stds) if flat else checks.colour_bars(fig)
        bars = fig.axes[1::4]
        assert len({ax.get_ylim() for ax in bars}) == 1 and bars[-1].get_xticklabels()
        assert "q(z | x)" not in fig.axes[1].get_title() and "VAD" in fig.axes[1].get_title()
        assert checks.referee(fig) == []


def test_a_report_folder_and_its_export_redraw_without_the_runs(tmp_path, experiment):
    """`python -m pae report --from FOLDER` redraws every figure from figures/data/ alone; an export carries the
    data of the figures it links to, so it redraws after the runs are gone."""
    runs, rows = experiment
    src = tmp_path / "results" / "exp"
    colours = style.model_colours(r["model"] for r in runs)  # the two figures the report links, made as the stage does
    figures.make(src / "figures", "fd_vs_temperature", "temperature",
                 *figures.temperature_data(rows["samplers"], REFS, colours))
    vae = next(r for r in runs if r["run"] == "fashion_mnist-vae-z4-s0")
    figures.make(src / "figures", f"{vae['run']}_posterior", "posterior", *figures.posterior_data(vae))
    (src / "tables").mkdir()
    (src / "tables" / "runs.csv").write_text("run\n")
    (src / "report.md").write_text("# r\n![t](figures/fd_vs_temperature.png)\n![p](figures/fashion_mnist-vae-z4-s0"
                                   "_posterior.png)\n")
    dest = tmp_path / "docs" / "exp"
    written = export(src / "report.md", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in written) == [
        "figures/data/fashion_mnist-vae-z4-s0_posterior.h5", "figures/data/fd_vs_temperature.h5",
        "figures/fashion_mnist-vae-z4-s0_posterior.png", "figures/fd_vs_temperature.png", "report.md",
        "tables/runs.csv"]
    for r in runs:  # no run left
        shutil.rmtree(tmp_path / r["run"])
    for png in dest.glob("figures/*.png"):
        png.unlink()
    drawn, left = figures.redraw(dest)  # the command line's path: test_an_export_without_figure_data_...
    assert sorted(p.name for p in drawn) == ["fashion_mnist-vae-z4-s0_posterior.png", "fd_vs_temperature.png"]
    assert left == [] and all(p.read_bytes()[:4] == b"\x89PNG" for p in drawn)

    (src / "figures" / "data" / "fd_vs_temperature.h5").unlink()
    with pytest.raises(Exception, match="figure data .*fd_vs_temperature.h5.* is missing"):
        export(src / "report.md", dest)
    empty = tmp_path / "empty"
    (empty / "figures").mkdir(parents=True)
    with pytest.raises(PaeError, match="no figure data to draw from"):
        figures.redraw(empty)


def test_export_copies_the_report_its_tables_and_only_linked_figures(tmp_path):
    src = tmp_path / "results" / "exp"
    (src / "figures" / "data").mkdir(parents=True)
    (src / "tables").mkdir()
    (src / "figures" / "a.png").write_bytes(b"a")
    (src / "figures" / "data" / "a.h5").write_bytes(b"a")
    (src / "figures" / "unlinked.png").write_bytes(b"u")
    (src / "tables" / "runs.csv").write_text("run\n")
    (src / "report.md").write_text("# r\n![a](figures/a.png)\n")
    dest = tmp_path / "docs" / "example"
    dest.mkdir(parents=True)
    (dest / "stale.png").write_bytes(b"old")  # a previous export is replaced as a whole
    export(src / "report.md", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "figures/a.png", "figures/data/a.h5", "report.md", "tables/runs.csv"]
    (src / "report.md").write_text("![gone](figures/missing.png)\n")
    with pytest.raises(Exception, match="links to missing figures"):
        export(src / "report.md", dest)
    with pytest.raises(Exception, match="no report to export"):
        export(src / "nope.md", dest)


def test_a_figure_data_file_of_another_kind_is_named(tmp_path):
    path = tmp_path / "x.h5"
    figdata.save(path, "no_such_kind", {})
    with pytest.raises(Exception, match="figure kind 'no_such_kind' has no drawer"):
        figures.draw_file(path, tmp_path / "x.png")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(Exception, match="y.h5: not a pae figure-data file"):
        figdata.load(tmp_path / "y.h5")


def test_an_export_without_figure_data_redraws_the_figures_of_its_tables(tmp_path, experiment):
    """An export made before figures kept their data: the figures drawn from tables (here the temperature figure,
    from tables/samplers.csv) are redrawn from the tables; an image figure without data is left as it was, and
    named."""
    runs, rows = experiment
    folder = tmp_path / "old-export"
    (folder / "figures").mkdir(parents=True)
    (folder / "tables").mkdir()
    pd.DataFrame(rows["samplers"]).to_csv(folder / "tables" / "samplers.csv", index=False)
    (folder / "figures" / "fd_vs_temperature.png").write_bytes(b"old")
    (folder / "figures" / "samples_fashion_mnist.png").write_bytes(b"old")
    out = subprocess.run([sys.executable, "-m", "pae", "report", "--from", str(folder)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "redrew 1 figures" in out.stdout and "left as they were" in out.stdout and \
        "samples_fashion_mnist.png" in out.stdout
    assert (folder / "figures" / "fd_vs_temperature.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "figures" / "samples_fashion_mnist.png").read_bytes() == b"old"
    kind, meta, _ = figdata.load(folder / "figures" / "data" / "fd_vs_temperature.h5")
    assert kind == "temperature" and {r["model"] for r in meta["rows"]} == set(MODELS)


@pytest.mark.parametrize("lo, hi, lowest_label", [(24.0, 242.0, 30.0), (0.9, 950.0, 1.0)])
def test_a_log_axis_has_a_label_near_its_lowest_values(lo, hi, lowest_label):
    """A panel whose values span a decade or two (the FD of flow samples near 24, of N(0, I) samples near 242) is
    labelled at 30 as well as at 50, 100, 200, so its lowest points are not left below the last label; a wider one
    keeps 1, 2, 5 times the powers of ten."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [lo, hi])
    assert figures.log_y_if_decades(ax, lo, hi)
    fig.canvas.draw()
    y0, y1 = ax.get_ylim()
    labelled = sorted(t.get_position()[1] for t in ax.get_yticklabels()
                      if t.get_text() and y0 <= t.get_position()[1] <= y1)
    plt.close(fig)
    assert labelled[0] == pytest.approx(lowest_label)
    def has(v):  # tick positions are computed (3 * 10**1): compared to their float precision, not bit for bit
        return any(x == pytest.approx(v) for x in labelled)

    assert has(3.0) is False and has(30.0) is (hi / lo < 100)

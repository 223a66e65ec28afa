"""The uncertainty figures (pae/report/uncertainty.py: panels, bar charts, one colour bar, labels), the uncertainty
table and its report.md section, from synthetic stage outputs."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from pae.io import PaeError, write_json
from pae.report import markdown, uncertainty as figs
from pae.report.figures import DRAWERS
from pae.report.tables import uncertainty_table
from tests.report import checks

K, M, D, S = 3, 5, 6, 4


def _write_panels(path, likelihood="gaussian_pixel", beta_nll=0.5, channels=1, scale_varies=True):
    rng = np.random.default_rng(0)

    def images(n):
        return rng.integers(0, 256, (n, channels, 8, 8), dtype=np.uint8)

    with h5py.File(path, "w") as f:
        f["traversal"] = rng.integers(0, 256, (S, S, channels, 8, 8), dtype=np.uint8)
        f["corner_images"], f["corner_index"] = images(4), np.arange(4)
        if likelihood:
            f["originals"], f["reconstructions"] = images(K), images(K)
            f["latents"] = rng.normal(size=(K, D)).astype(np.float32)
            f["std"] = rng.uniform(0, 0.3, (K, channels, 8, 8)).astype(np.float32)
        if scale_varies:
            for name in ("prior", "pae"):
                f[f"{name}_samples"] = images(M)
                f[f"{name}_std"] = rng.uniform(0, 0.4, (M, channels, 8, 8)).astype(np.float32)
        f.attrs.update(format=figs.PANELS_FORMAT, model="vae" if likelihood else "ae", likelihood=likelihood,
                       beta_nll=beta_nll, scale_varies=scale_varies, gaussian=likelihood != "bernoulli")
    return {"run": "mnist-vae-z6-s0-x", "files": {"uncertainty_panels": str(path)}}


def _images(ax):
    return ax.get_images()


def _drawn(kind, data):
    fig = DRAWERS[kind](*data)
    fig.canvas.draw()
    return fig


def test_uncertainty_figure_rows_bars_and_one_colour_bar(tmp_path):
    run = _write_panels(tmp_path / "p.h5")
    fig = _drawn("uncertainty", figs.uncertainty_data(run))
    panels, (colorbar,) = fig.axes[:4 * K], fig.axes[4 * K:]
    assert [ax.get_title() for ax in panels[:4]] == ["test image", f"z: one draw from q(z | x), {D} dimensions",
                                                     "likelihood\nmean at z", "predicted std"]
    for i in range(K):
        image, bars, recon, std = panels[4 * i:4 * i + 4]
        assert len(_images(image)) == len(_images(recon)) == 1 and len(bars.patches) == D
        (im,) = _images(std)
        assert im.get_clim() == (0, pytest.approx(0.3, abs=0.01))  # one scale for every row: the largest std
    lo, hi = _images(panels[3])[0].get_clim()
    assert "predicted std σ" in colorbar.get_ylabel() and f"scale 0–{hi:.3g}" in colorbar.get_ylabel()
    # the run in words (the named block in brackets, as in the legends), wrapped between words only
    assert fig._suptitle.get_text().replace("\n", " ") == ("VAE (x) on MNIST, latent 6, seed 0: Gaussian, a sigma per "
                                                           "pixel (pixel-wise heteroscedastic), beta-NLL 0.5")
    assert "beta-NLL" in fig._suptitle.get_text()
    assert checks.referee(fig) == []


def test_constant_std_is_written_as_its_value(tmp_path):
    run = _write_panels(tmp_path / "p.h5", likelihood="gaussian_image", beta_nll=0.0)
    with h5py.File(tmp_path / "p.h5", "r+") as f:
        f["std"][...] = np.float32(0.0826)  # one sigma per image
    fig = _drawn("uncertainty", figs.uncertainty_data(run))
    assert [fig.axes[4 * i + 3].texts[0].get_text() for i in range(K)] == ["σ = 0.0826"] * K
    assert not checks.colour_bars(fig)


def test_bernoulli_colour_bar_and_colour_images(tmp_path):
    run = _write_panels(tmp_path / "p.h5", likelihood="bernoulli", beta_nll=0.0, channels=3)
    fig = _drawn("uncertainty", figs.uncertainty_data(run))
    assert "sqrt(p (1 − p))" in fig.axes[-1].get_ylabel()
    assert _images(fig.axes[0])[0].get_array().shape == (8, 8, 3)  # an RGB image
    assert _images(fig.axes[3])[0].get_array().shape == (8, 8)  # its std: rms over channels
    assert fig._suptitle.get_text().endswith(": Bernoulli")


def test_sample_uncertainty_figure_rows_and_colour_bar(tmp_path):
    run = _write_panels(tmp_path / "p.h5")
    fig = _drawn("sample_uncertainty", figs.sample_uncertainty_data(run))
    assert len(fig.axes) == 4 * M + 1
    labels = [fig.axes[r * M].get_ylabel() for r in range(4)]
    assert labels == ["N(0, I):\nmean", "N(0, I):\nstd", "flow, T = 1:\nmean", "flow, T = 1:\nstd"]
    clims = {_images(fig.axes[r * M + j])[0].get_clim() for r in (1, 3) for j in range(M)}
    assert len(clims) == 1 and checks.referee(fig) == []  # both std rows on one scale


def test_no_uncertainty_figures_without_a_likelihood_and_an_interpolation_grid_always(tmp_path):
    ae = _write_panels(tmp_path / "ae.h5", likelihood="", beta_nll=0.0, scale_varies=False)
    fixed = _write_panels(tmp_path / "fixed.h5", likelihood="gaussian_learned", beta_nll=0.0, scale_varies=False)
    assert figs.uncertainty_data(ae) is None and figs.sample_uncertainty_data(ae) is None
    assert figs.sample_uncertainty_data(fixed) is None
    fig = _drawn("interpolation_grid", figs.interpolation_grid_data(ae))
    inputs, grid = fig.axes[:4], fig.axes[4]
    assert [ax.get_ylabel() for ax in inputs] == ["top left", "top right", "bottom left", "bottom right"]
    assert _images(grid)[0].get_array().shape == (S * 9 + 1, S * 9 + 1)  # S x S tiles of 8 px, 1 px apart
    assert "corners: their reconstructions" in grid.get_title()
    assert checks.referee(fig) == [] and checks.empty_fraction(fig) < 0.3


def test_figures_written_as_png_with_their_data_and_a_bad_file_named(tmp_path):
    run = _write_panels(tmp_path / "p.h5")
    figs.write_uncertainty_figures([run], tmp_path / "figures")
    for name in ("uncertainty", "sample_uncertainty", "interpolation_grid"):
        assert (tmp_path / "figures" / f"{run['run']}_{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "figures" / "data" / f"{run['run']}_{name}.h5").is_file()
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["traversal"] = np.zeros((2, 2, 1, 4, 4), np.uint8)
    with pytest.raises(PaeError, match="not a complete uncertainty panels file.*rerun the uncertainty stage"):
        figs.interpolation_grid_data({"run": "r", "files": {"uncertainty_panels": str(bad)}})


def _result(likelihood, coverage, n_test=1000):
    calibration = None if likelihood is None else {
        w: {"coverage": coverage, "rms_residual": 0.1, "rms_std": 0.12} for w in ("sample", "mean")}
    return {"likelihood": likelihood, "beta_nll": 0.5 if likelihood == "gaussian_pixel" else 0.0,
            "calibration": calibration, "n_test": n_test, "note": None if coverage else "no intervals"}


def _runs(tmp_path):
    runs = []
    for model, likelihood, coverage in (("ae", None, None), ("vae-px", "gaussian_pixel", {"0.68": 0.7, "0.95": 0.9}),
                                        ("vae-b", "bernoulli", None)):
        files = {"uncertainty": tmp_path / f"{model}.json", "elbo": tmp_path / f"{model}-elbo.json"}
        # the runs' test sets differ (as MNIST's 1,000 and Fashion-MNIST's 10,000 do): each row gives its own
        write_json(files["uncertainty"], _result(likelihood, coverage, 10000 if model == "vae-b" else 1000))
        write_json(files["elbo"], {"test_nll": -500.0, "test_elbo": -520.0})
        runs.append({"run": f"mnist-{model}-z8-s0", "dataset": "mnist", "model": model, "latent_dim": 8, "seed": 0,
                     "files": files})
    return runs


def test_uncertainty_table_and_report_section(tmp_path):
    rows = uncertainty_table(_runs(tmp_path))
    assert [r["model"] for r in rows] == ["vae-px", "vae-b"]  # the AE has no likelihood
    px, b = rows
    assert (px["coverage68_sample"], px["coverage95_mean"], px["test_nll"]) == (0.7, 0.9, -500.0)
    assert b["coverage68_sample"] is None and b["rms_std_sample"] == 0.12 and b["note"] == "no intervals"

    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "mnist-vae-px-z8-s0_uncertainty.png").write_bytes(b"png")
    showcase = [{"run": "mnist-vae-px-z8-s0"}, {"run": "mnist-vae-b-z8-s0"}]
    text = "\n".join(markdown._uncertainty_section(rows, showcase, figures))
    assert text.startswith("## The decoder's uncertainty")
    assert ("| mnist | vae-px | 8 | gaussian_pixel (beta-NLL 0.5) | 1 | 1,000 | -500 | 0.7 | 0.9 | 0.7 | 0.9 | 0.1 "
            "| 0.12 |") in text
    assert "| mnist | vae-b | 8 | bernoulli | 1 | 10,000 | -500 | n/a | n/a | n/a | n/a | 0.1 | 0.12 |" in text
    # linked where drawn; a sample-uncertainty figure that was not drawn is left out, a missing interpolation grid named
    assert markdown.FIGURE_LINK.findall(text) == ["figures/mnist-vae-px-z8-s0_uncertainty.png"]
    assert "mnist-vae-px-z8-s0_sample_uncertainty" not in text
    assert "(latent interpolation between four test images, mnist-vae-b-z8-s0: not drawn)" in text
    assert "No model of this experiment has a likelihood" in "\n".join(markdown._uncertainty_section([], [], figures))

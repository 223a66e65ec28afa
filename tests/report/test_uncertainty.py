"""The uncertainty figures (pae/report/uncertainty.py: panels, bar charts, one colour bar, labels), the uncertainty
table and its report.md section, from synthetic stage outputs."""
from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest

from pae.io import PaeError, write_json
from pae.report import markdown, uncertainty as figs
from pae.report.tables import uncertainty_table

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


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of axes whose extents, titles, tick labels and axis labels included, overlap by more than a pixel."""
    renderer = fig.canvas.get_renderer()
    boxes = [(ax, ax.get_tightbbox(renderer)) for ax in fig.axes if ax.get_visible()]
    return [(a.get_title() or a.get_ylabel(), b.get_title() or b.get_ylabel())
            for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
            if min(ba.x1, bb.x1) - max(ba.x0, bb.x0) > 1 and min(ba.y1, bb.y1) - max(ba.y0, bb.y0) > 1]


def _images(ax):
    return ax.get_images()


def test_uncertainty_figure_rows_bars_and_one_colour_bar(tmp_path, drawn):
    run = _write_panels(tmp_path / "p.h5")
    assert figs.uncertainty_figure(run, tmp_path / "u.png")
    (fig,) = drawn
    panels, (colorbar,) = fig.axes[:4 * K], fig.axes[4 * K:]
    assert [ax.get_title() for ax in panels[:4]] == ["test image", f"z ~ q(z | x) ({D} dims)",
                                                     "reconstruction\n(mean at z)", "predicted std"]
    for i in range(K):
        image, bars, recon, std = panels[4 * i:4 * i + 4]
        assert len(_images(image)) == len(_images(recon)) == 1 and len(bars.patches) == D
        (im,) = _images(std)
        assert im.get_clim() == (0, pytest.approx(0.3, abs=0.01))  # one scale for every row: the largest std
        assert std.get_xlabel().startswith("mean ")
    assert "predicted std sigma" in colorbar.get_ylabel()
    assert fig._suptitle.get_text() == ("mnist-vae-z6-s0-x: Gaussian, a sigma per pixel (pixel-wise "
                                        "heteroscedastic), beta-NLL 0.5")
    assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine" and not _overlaps(fig)


def test_constant_std_is_labelled_by_its_value(tmp_path, drawn):
    run = _write_panels(tmp_path / "p.h5", likelihood="gaussian_image", beta_nll=0.0)
    with h5py.File(tmp_path / "p.h5", "r+") as f:
        f["std"][...] = np.float32(0.0826)  # one sigma per image
    figs.uncertainty_figure(run, tmp_path / "u.png")
    assert [drawn[0].axes[4 * i + 3].get_xlabel() for i in range(K)] == ["0.0826"] * K


def test_bernoulli_colour_bar_and_colour_images(tmp_path, drawn):
    run = _write_panels(tmp_path / "p.h5", likelihood="bernoulli", beta_nll=0.0, channels=3)
    assert figs.uncertainty_figure(run, tmp_path / "u.png")
    assert "sqrt(p (1 - p))" in drawn[0].axes[-1].get_ylabel()
    assert _images(drawn[0].axes[0])[0].get_array().shape == (8, 8, 3)  # an RGB image
    assert _images(drawn[0].axes[3])[0].get_array().shape == (8, 8)  # its std: rms over channels
    assert drawn[0]._suptitle.get_text().endswith(": Bernoulli")


def test_sample_uncertainty_figure_rows_and_colour_bar(tmp_path, drawn):
    run = _write_panels(tmp_path / "p.h5")
    assert figs.sample_uncertainty_figure(run, tmp_path / "s.png")
    (fig,) = drawn
    assert len(fig.axes) == 4 * M + 1
    labels = [fig.axes[r * M].get_ylabel() for r in range(4)]
    assert labels == ["z ~ N(0, I):\nmean", "std", "PAE (flow, T=1):\nmean", "std"]
    clims = {_images(fig.axes[r * M + j])[0].get_clim() for r in (1, 3) for j in range(M)}
    assert len(clims) == 1 and not _overlaps(fig)  # both std rows on one scale


def test_no_uncertainty_figures_without_a_likelihood_and_a_traversal_always(tmp_path, drawn):
    ae = _write_panels(tmp_path / "ae.h5", likelihood="", beta_nll=0.0, scale_varies=False)
    fixed = _write_panels(tmp_path / "fixed.h5", likelihood="gaussian_learned", beta_nll=0.0, scale_varies=False)
    assert not figs.uncertainty_figure(ae, tmp_path / "a.png") and not figs.sample_uncertainty_figure(ae, tmp_path)
    assert not figs.sample_uncertainty_figure(fixed, tmp_path / "f.png") and not drawn
    assert figs.traversal_figure(ae, tmp_path / "t.png")
    grid, corners = drawn[0].axes
    assert _images(grid)[0].get_array().shape == (S * 9 + 1, S * 9 + 1)  # S x S tiles of 8 px, 1 px apart
    assert _images(corners)[0].get_array().shape == (19, 19) and "latent traversal" in drawn[0]._suptitle.get_text()
    assert not _overlaps(drawn[0])


def test_figures_written_as_png_and_a_bad_file_named(tmp_path):
    run = _write_panels(tmp_path / "p.h5")
    figs.write_uncertainty_figures([run], tmp_path / "figures")
    for name in ("uncertainty", "sample_uncertainty", "traversal"):
        assert (tmp_path / "figures" / f"{run['run']}_{name}.png").read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["traversal"] = np.zeros((2, 2, 1, 4, 4), np.uint8)
    with pytest.raises(PaeError, match="not a complete uncertainty panels file.*rerun the uncertainty stage"):
        figs.traversal_figure({"run": "r", "files": {"uncertainty_panels": str(bad)}}, tmp_path / "t.png")


def _result(likelihood, coverage):
    calibration = None if likelihood is None else {
        w: {"coverage": coverage, "rms_residual": 0.1, "rms_std": 0.12} for w in ("sample", "mean")}
    return {"likelihood": likelihood, "beta_nll": 0.5 if likelihood == "gaussian_pixel" else 0.0,
            "calibration": calibration, "n_test": 1000, "note": None if coverage else "no intervals"}


def _runs(tmp_path):
    runs = []
    for model, likelihood, coverage in (("ae", None, None), ("vae-px", "gaussian_pixel", {"0.68": 0.7, "0.95": 0.9}),
                                        ("vae-b", "bernoulli", None)):
        files = {"uncertainty": tmp_path / f"{model}.json", "elbo": tmp_path / f"{model}-elbo.json"}
        write_json(files["uncertainty"], _result(likelihood, coverage))
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
    assert "| mnist | vae-px | 8 | gaussian_pixel (beta-NLL 0.5) | 1 | -500 | 0.7 | 0.9 | 0.7 | 0.9 | 0.1 | 0.12 |" \
        in text
    assert "| mnist | vae-b | 8 | bernoulli | 1 | -500 | n/a | n/a | n/a | n/a | 0.1 | 0.12 |" in text
    # linked where drawn; a sample-uncertainty figure that was not drawn is left out, a missing traversal named
    assert markdown.FIGURE_LINK.findall(text) == ["figures/mnist-vae-px-z8-s0_uncertainty.png"]
    assert "mnist-vae-px-z8-s0_sample_uncertainty" not in text and "(latent traversal, mnist-vae-b-z8-s0: not drawn)" \
        in text
    assert "No model of this experiment has a likelihood" in "\n".join(markdown._uncertainty_section([], [], figures))

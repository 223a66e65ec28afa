"""The uncertainty stage on tiny synthetic inputs: calibration and the figures' arrays for a VAE whose likelihood's
scale varies (pixel-wise Gaussian), one with a fixed sigma, and an AE (traversal only); a VAE without posterior
parameters is refused."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from pae.io import PaeError
from pae.stages.uncertainty import PANELS_FORMAT, uncertainty
from tests.helpers import RUN_FILES_LATENT, write_run_files

SPEC = {"n_images": 3, "n_samples": 5, "traversal_steps": 4, "seed": 0}


def _run_files(tmp_path, data_path, kind: str, likelihood: str = "gaussian_pixel", params: bool = True) -> dict:
    """tests.helpers.write_run_files with the posterior parameters of every split, for the uncertainty stage."""
    files = write_run_files(tmp_path, data_path, kind, likelihood, params)
    return {**files, "out": tmp_path / "metrics" / "uncertainty.json", "panels_out": tmp_path / "uncertainty.h5",
            "batch_size": 16}


def _panels(path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in f}, dict(f.attrs)


def test_pixelwise_gaussian_vae(tmp_path, synthetic_h5):
    files = _run_files(tmp_path, synthetic_h5, "vae")
    uncertainty(SPEC, **files)
    result = json.loads(files["out"].read_text())
    assert (result["model"], result["likelihood"], result["gaussian"], result["scale_varies"]) == \
        ("vae", "gaussian_pixel", True, True)
    assert result["k"]["0.68"] == pytest.approx(0.99446, abs=1e-5) and result["n_test"] == 40
    for which in ("sample", "mean"):
        c = result["calibration"][which]
        assert 0 <= c["coverage"]["0.68"] <= c["coverage"]["0.95"] <= 1
        assert c["rms_residual"] > 0 and c["rms_std"] > 0
    assert result["calibration"]["n_pixels"] == 40 * 28 * 28

    panels, attrs = _panels(files["panels_out"])
    assert attrs["format"] == PANELS_FORMAT and attrs["likelihood"] == "gaussian_pixel" and attrs["scale_varies"]
    assert panels["traversal"].shape == (4, 4, 1, 28, 28) and panels["traversal"].dtype == np.uint8
    assert panels["corner_images"].shape == (4, 1, 28, 28) and len(set(panels["corner_index"].tolist())) == 4
    assert panels["originals"].shape == panels["reconstructions"].shape == (3, 1, 28, 28)
    assert panels["latents"].shape == (3, RUN_FILES_LATENT)
    assert panels["std"].shape == (3, 1, 28, 28) and panels["std"].dtype == np.float32 and (panels["std"] > 0).all()
    for name in ("prior", "pae"):
        assert panels[f"{name}_samples"].shape == panels[f"{name}_std"].shape == (5, 1, 28, 28)
    # The arrays are seeded: a second run writes the same
    again = tmp_path / "again.h5"
    uncertainty(SPEC, **{**files, "panels_out": again})
    assert all(np.array_equal(v, _panels(again)[0][k]) for k, v in panels.items())


def test_fixed_sigma_vae_has_no_sample_panels(tmp_path, synthetic_h5):
    files = _run_files(tmp_path, synthetic_h5, "vae", likelihood="gaussian_fixed")
    uncertainty(SPEC, **files)
    result = json.loads(files["out"].read_text())
    assert not result["scale_varies"] and result["calibration"]["mean"]["rms_std"] == pytest.approx(0.1, rel=1e-6)
    panels, _ = _panels(files["panels_out"])
    assert "prior_samples" not in panels and np.allclose(panels["std"], 0.1)


def test_autoencoder_gets_the_traversal_only(tmp_path, synthetic_h5):
    files = _run_files(tmp_path, synthetic_h5, "ae")
    uncertainty(SPEC, **files)
    result = json.loads(files["out"].read_text())
    assert result["likelihood"] is None and result["calibration"] is None and "no likelihood" in result["note"]
    panels, attrs = _panels(files["panels_out"])
    assert set(panels) == {"traversal", "corner_images", "corner_index"} and attrs["likelihood"] == ""


def test_vae_without_posterior_parameters_is_refused(tmp_path, synthetic_h5):
    files = _run_files(tmp_path, synthetic_h5, "vae", params=False)
    with pytest.raises(PaeError, match="no posterior parameters.*rerun the encode stage"):
        uncertainty(SPEC, **files)
    assert not files["out"].exists() and not files["panels_out"].exists()

"""docs/examples/ run on the tiny workflow's run (the session's one run, tests/conftest.py tiny_workflow), so that
they keep working as the API changes."""
from __future__ import annotations

import runpy
import sys

import pytest
from PIL import Image

from tests.helpers import REPO

pytestmark = pytest.mark.integration


def test_use_a_trained_run(tiny_run_dir, tmp_path, monkeypatch, capsys):
    script = REPO / "docs" / "examples" / "use_a_trained_run.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(tiny_run_dir), "--out", str(tmp_path), "--images", "60",
                                      "--device", "cpu"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "AUROC, 60 MNIST digits vs 60 fashion_mnist-ae-z4-s0 test images" in out and "inpainting: MSE" in out
    for name in ("flow_logp", "recon_mse", "pae_density", "pae_marginal"):
        assert f"  {name}" in out
    with Image.open(tmp_path / "inpainting.png") as picture:  # 4 rows of 6 images of 28 x 28, 2-pixel gaps
        assert picture.size == (6 * 30 - 2, 4 * 30 - 2)
    for temperature in ("1.0", "0.7"):
        with Image.open(tmp_path / f"samples_T{temperature}.png") as picture:
            assert picture.size == (6 * 30 - 2, 6 * 30 - 2)  # 36 samples

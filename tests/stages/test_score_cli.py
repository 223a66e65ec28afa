"""`python -m pae score`, `sample` and `inpaint` (pae/stages/score.py, sample.py, inpaint.py) on the tiny workflow's
run (the session's one run, tests/conftest.py tiny_workflow), through pae's entry point in this process: a folder of
PNGs scores as the ood stage scored the same test images, samples are samples.h5's for the same seed, inpainting is
pae.api's posterior, and bad input exits 1 with the cause."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import pae
from pae.__main__ import main

pytestmark = pytest.mark.integration


def test_score_a_folder_of_pngs(tiny_run_dir, tmp_path):
    """Test images written as PNG files (in a subfolder too, searched recursively) score as ood_scores.csv scored
    them: the same numbers, as the same text, one row per file with its name."""
    stage = {int(r["index"]): r for r in csv.DictReader(open(tiny_run_dir / "metrics" / "ood_scores.csv"))
             if r["set"] == "in"}
    with h5py.File(next((tiny_run_dir.parents[2] / "resources" / "data").glob("fashion_mnist*.h5")), "r") as f:
        test = f["images"][...][f["splits/test"][...]]
    chosen = sorted(stage)[:10]
    folder = tmp_path / "pngs"
    (folder / "more").mkdir(parents=True)
    for i in chosen:
        Image.fromarray(test[i, 0]).save(folder / ("more" if i % 2 else "") / f"test{i:04d}.png")
    out = tmp_path / "scores.csv"
    assert main(["score", str(tiny_run_dir), str(folder), "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["file", "index", "flow_logp", "recon_mse", "pae_density", "pae_marginal"]
    assert len(rows) == len(chosen) and [r["index"] for r in rows] == [str(i) for i in range(len(chosen))]
    for row in rows:
        i = int(row["file"].split("test")[1][:4])
        assert row["file"] == ("more/" if i % 2 else "") + f"test{i:04d}.png"
        for k in ("flow_logp", "recon_mse", "pae_density", "pae_marginal"):
            # 9 digits; float32 round-off of another thread count or batch could move the last (measured: equal)
            assert float(row[k]) == pytest.approx(float(stage[i][k]), rel=1e-6), (row["file"], k)


def test_score_errors_name_the_cause(tiny_run_dir, tmp_path, capsys):
    folder = tmp_path / "wide"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "a.png")
    missing = tmp_path / "nowhere"
    assert main(["score", str(tiny_run_dir), str(missing), "--out", str(tmp_path / "s.csv")]) == 1
    assert f"{missing}: not found (expected a folder of images" in capsys.readouterr().err
    assert main(["score", str(tmp_path), str(folder), "--out", str(tmp_path / "s.csv")]) == 1
    assert "model/model.pt not found; the train stage writes it" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_sample_to_npy_npz_and_png(tiny_run_dir, tmp_path, capsys):
    with h5py.File(tiny_run_dir / "samples.h5", "r") as f:
        expected, temperature = f["pae"][...], f.attrs["temperature"]
    n = len(expected)
    args = ["sample", str(tiny_run_dir), "-n", str(n), "--temperature", str(temperature), "--seed", "0", "--device",
            "cpu", "--out"]
    assert main([*args, str(tmp_path / "s.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "s.npy"), expected)
    assert main([*args, str(tmp_path / "s.npz")]) == 0
    with np.load(tmp_path / "s.npz") as saved:
        assert np.array_equal(saved["images"], expected) and saved["z"].shape == (n, 4) and saved["seed"] == 0
    # a grid: 10 images in 4 columns (3 rows) of 28 x 28 with 2-pixel gaps; the seed drawn is logged
    assert main(["sample", str(tiny_run_dir), "-n", "10", "--columns", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert ", seed " in capsys.readouterr().err
    with Image.open(tmp_path / "s.png") as grid:
        assert grid.size == (4 * 30 - 2, 3 * 30 - 2) and grid.mode == "L"
    assert main(["sample", str(tiny_run_dir), "-n", "4", "--out", str(tmp_path / "s.jpg")]) == 1
    assert "must end in .png, .npy, .npz" in capsys.readouterr().err


def test_inpaint_a_folder_with_a_mask_image(tiny_run_dir, tmp_path, capsys):
    """Four test images as PNGs, the left half of a mask PNG black: the .npz holds pae.api's Laplace posterior of
    them (the same numbers), the observed pixels kept; the .png has the rows observed, filled and std."""
    with h5py.File(next((tiny_run_dir.parents[2] / "resources" / "data").glob("fashion_mnist*.h5")), "r") as f:
        test = f["images"][...][f["splits/test"][...][:4]]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(test):
        Image.fromarray(image[0]).save(folder / f"{i}.png")
    mask = np.full((28, 28), 255, np.uint8)
    mask[:, :14] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["inpaint", str(tiny_run_dir), str(folder), "--mask", str(tmp_path / "mask.png"), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "out.npz")]) == 0
    post = pae.load_run(tiny_run_dir, device="cpu").posterior(test, torch.from_numpy(mask > 0), method="laplace")
    with np.load(tmp_path / "out.npz") as saved:
        assert np.array_equal(saved["mean"], post.mean.numpy()) and np.array_equal(saved["std"], post.std.numpy())
        assert np.array_equal(saved["filled"][..., 14:], test[..., 14:])  # observed pixels as given
        assert np.array_equal(saved["filled"][..., :14], post.mean.numpy()[..., :14])
        assert list(saved["files"]) == ["0.png", "1.png", "2.png", "3.png"]
    assert main([*args, "--out", str(tmp_path / "out.png")]) == 0
    assert "posterior std: white = " in capsys.readouterr().err
    with Image.open(tmp_path / "out.png") as grid:
        assert grid.size == (4 * 30 - 2, 3 * 30 - 2)
    np.save(tmp_path / "bad.npy", np.full((28, 28), 0.5))
    assert main(["inpaint", str(tiny_run_dir), str(folder), "--mask", str(tmp_path / "bad.npy"), "--out",
                 str(tmp_path / "x.npz")]) == 1
    assert "bad.npy: mask values must be 0 (missing) or 1 (observed)" in capsys.readouterr().err

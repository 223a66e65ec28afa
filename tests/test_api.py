"""pae.load_run (pae/api.py) on the tiny workflow's run (the session's one run, tests/conftest.py tiny_workflow): the
API's numbers are the stages' own on the same images (ood_scores.csv, samples.h5, impute.json, posterior.json and its
panels, latents.h5, test_scores.csv), and bad input, missing files and a run without a flow get clear errors."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import pae
from pae.data.latents import read_latents
from pae.data.loader import to_float
from pae.data.store import open_dataset, pick
from pae.eval.corruptions import corrupt
from pae.eval.impute import imputation_masks, missing_mse
from pae.eval.ood import flip
from pae.eval.posterior import method_metrics
from pae.io import PaeError

pytestmark = pytest.mark.integration

# ood_scores.csv holds 9 significant digits (relative rounding <= 5e-9). The stage ran with the rule's threads, this
# test with one; float32 sums in another order could move the last bits (measured: equal to all 9 digits), so the
# bound is float32's round-off, 1e-6, far below any difference of definition (another sigma, batch or latent).
CSV_RTOL = 1e-6


@pytest.fixture(scope="module")
def run(tiny_run_dir):
    return pae.load_run(tiny_run_dir, device="cpu")


def _ood_rows(run_dir: Path, name: str) -> list[dict]:
    return [r for r in csv.DictReader(open(run_dir / "metrics" / "ood_scores.csv")) if r["set"] == name]


def _assert_scores_match(got: dict[str, torch.Tensor], rows: list[dict]) -> None:
    assert list(got) == [k for k in rows[0] if k not in ("set", "index")]  # every score of the stage, in its order
    for name, values in got.items():
        np.testing.assert_allclose(values.numpy(), [float(r[name]) for r in rows], rtol=CSV_RTOL, atol=0,
                                   err_msg=name)


def test_scores_equal_the_ood_stages_scores(run, tiny_run_dir):
    """The in-distribution test images, their left-right flips and the MNIST digits, as the ood stage chose them
    (ood_scores.csv's index column), scored by the API: every score of every image is the CSV's."""
    test = run.data.split("test")[0]
    rows = _ood_rows(tiny_run_dir, "in")
    images = test[[int(r["index"]) for r in rows]]
    _assert_scores_match(run.score(images), rows)
    _assert_scores_match(run.score(flip(images, "hflip")), _ood_rows(tiny_run_dir, "hflip"))
    mnist = open_dataset(next((tiny_run_dir.parents[2] / "resources" / "data").glob("mnist*.h5")))
    rows = _ood_rows(tiny_run_dir, "mnist")
    _assert_scores_match(run.score(mnist.images[[int(r["index"]) for r in rows]].numpy()), rows)  # numpy: accepted


def test_samples_equal_the_evaluate_stages_for_the_same_seed(run, tiny_run_dir):
    with h5py.File(tiny_run_dir / "samples.h5", "r") as f:
        pae_samples, prior, originals, reconstructions = (f[k][...] for k in ("pae", "prior", "originals",
                                                                              "reconstructions"))
        temperature = f.attrs["temperature"]
    drawn = run.sample(len(pae_samples), temperature=temperature, seed=0)
    assert drawn.images.dtype == torch.uint8 and np.array_equal(drawn.images.numpy(), pae_samples)
    assert drawn.z.shape == (len(pae_samples), run.latent_dim) and drawn.seed == 0
    assert np.array_equal(run.prior_sample(len(prior), seed=0).images.numpy(), prior)
    assert not np.array_equal(run.sample(len(pae_samples), seed=1).images.numpy(), pae_samples)
    # the decoder of the encode stage's latents (evaluate's reconstructions), from uint8 and from [0, 1] floats
    assert np.array_equal(run.reconstruct(originals).numpy(), reconstructions)
    assert np.array_equal(run.reconstruct(torch.from_numpy(originals).float() / 255).numpy(), reconstructions)


def test_encode_equals_the_encode_stage_and_recon_mse_the_evaluate_stage(run, tiny_run_dir):
    test = run.data.split("test")[0]
    assert torch.equal(run.encode(test), read_latents(tiny_run_dir / "latents.h5", "test")[0])
    rows = list(csv.DictReader(open(tiny_run_dir / "metrics" / "test_scores.csv")))  # 6 significant digits
    np.testing.assert_allclose(run.score(test, ["recon_mse"])["recon_mse"].numpy(),
                               [float(r["recon_mse"]) for r in rows], rtol=5e-6)
    z = run.encode(test[0])  # one image (C, H, W)
    assert z.shape == (1, run.latent_dim) and torch.equal(run.decode(z[0]), run.reconstruct(test[:1]))


def test_imputation_equals_impute_json_on_its_images(run, tiny_run_dir):
    """The impute stage's test images and masks (its seed), imputed by the API: the mean missing-pixel MSE of each
    method at each ratio is impute.json's."""
    written = json.loads((tiny_run_dir / "metrics" / "impute.json").read_text())
    test = run.data.split("test")[0]
    items = pick(len(test), written["n_images"], written["seed"])
    truth = to_float(test[items])
    for ratio in sorted({r["ratio"] for r in written["results"]}):
        masks = imputation_masks(written["seed"], items, tuple(test.shape[2:]), ratio)
        imputed = run.impute(test[items], masks)
        assert set(imputed) == {"encoder", "pae_map"}
        for method, result in imputed.items():
            row = next(r for r in written["results"] if (r["ratio"], r["method"]) == (ratio, method))
            mse = missing_mse(result.pixels, truth, masks).double()
            assert mse.mean().item() == pytest.approx(row["mse_missing"], rel=1e-6), (ratio, method)
            # filled: the observed pixels as given, the missing ones from the reconstruction
            observed = masks.bool().expand_as(truth)
            assert torch.equal(result.filled[observed], test[items][observed])
            assert torch.equal(result.filled[~observed], result.reconstruction[~observed])


def test_posterior_equals_the_posterior_stages(run, tiny_run_dir):
    """The posterior stage's images with its left-half mask: MAP, Laplace and NUTS by the API give posterior.json's
    figures and the panels' images (NUTS is chaotic: any difference in its inputs would show)."""
    written = json.loads((tiny_run_dir / "metrics" / "posterior.json").read_text())
    spec = written["spec"]
    test = run.data.split("test")[0]
    truth = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(spec["seed"]))[:written["n_images"]]]
    _, mask, _ = corrupt("left_half", truth, box_fraction=spec["box_fraction"], sparse_ratio=spec["sparse_ratio"],
                         noise_sigma=spec["noise_sigma"], seed=spec["seed"])
    stage = written["corruptions"]["left_half"]["methods"]
    with h5py.File(tiny_run_dir / "posterior_panels.h5", "r") as f:
        panels = {k: f["left_half"][k][...] for k in ("map", "laplace/mean", "laplace/std", "mcmc/mean")}
    n_fig = len(panels["map"])
    for method, name in (("map", "map"), ("laplace", "laplace"), ("nuts", "mcmc")):
        post = run.posterior(truth, mask, method=method)
        got = method_metrics(to_float(truth), mask, post.predictive, run.sigma_pix)
        for key in ("mse_missing", "mse_all", "posterior_std_missing"):
            assert got[key] == pytest.approx(stage[name][key], rel=1e-6), (method, key)
        assert got["coverage_all"] == pytest.approx(stage[name]["coverage_all"], rel=1e-6)
        mean = post.mean[:n_fig].numpy()
        assert np.array_equal(mean, panels["map" if method == "map" else f"{name}/mean"]), method
        assert post.samples.shape[:2] == (1 if method == "map" else spec["posterior_samples"], len(truth))
    assert post.record["n_images"] == len(truth) and post.record["acceptance_rate"] > 0


def test_config_history_and_metrics_as_the_run_wrote_them(run, tiny_run_dir):
    config = run.config
    assert config["model"]["kind"] == "ae" and config["model"]["latent_dim"] == 4
    assert config["train"]["epochs"] == 2 and config["flow"]["layers"] == 2
    assert config["dataset"]["path"].startswith("resources/data/fashion_mnist")
    assert config["eval"]["posterior"]["n_images"] == 6 and config["eval"]["ood"]["max_images"] == 300
    assert len(run.history["train"]["epochs"]) == 2 and run.history["flow"]["epochs"]
    assert {"recon", "flow", "fid", "ood", "posterior", "impute"} <= set(run.metrics)
    assert run.metrics["recon"] == json.loads((tiny_run_dir / "metrics" / "recon.json").read_text())


def test_bad_images_and_masks_are_named(run):
    test = run.data.split("test")[0][:4]
    cases = {
        "(4, 1, 32, 32)": torch.zeros(4, 1, 32, 32, dtype=torch.uint8),  # wrong size
        "(4, 3, 28, 28)": torch.zeros(4, 3, 28, 28, dtype=torch.uint8),  # wrong channels
        "channels-last": torch.zeros(4, 28, 28, 1, dtype=torch.uint8),
    }
    for shape, images in cases.items():
        with pytest.raises(PaeError, match=r"this run expects \(N, 1, 28, 28\)") as e:
            run.score(images)
        assert shape in str(e.value) or shape == "channels-last" and "channels-last" in str(e.value)
    with pytest.raises(PaeError, match=r"float images must be in \[0, 1\], got values in \[0, 255\]"):
        run.encode(test.float())  # 0-255 floats
    with pytest.raises(PaeError, match="integer images must be in"):
        run.encode(test.long() - 1)
    with pytest.raises(PaeError, match="numpy array or a torch tensor"):
        run.encode(test.tolist())
    with pytest.raises(PaeError, match=r"mask of shape \(4, 3, 28, 28\).*\(4, 1, 28, 28\)"):
        run.impute(test, torch.ones(4, 3, 28, 28))
    with pytest.raises(PaeError, match="0 \\(missing\\) or 1 \\(observed\\)"):
        run.impute(test, torch.full((28, 28), 0.5))
    with pytest.raises(PaeError, match="latent size is 4"):
        run.decode(torch.zeros(2, 5))
    with pytest.raises(PaeError, match="unknown posterior method 'mcmc'"):
        run.posterior(test, method="mcmc")
    with pytest.raises(PaeError, match="unknown scores"):
        run.score(test, ["auroc"])
    with pytest.raises(PaeError, match="temperature must be positive"):
        run.sample(4, temperature=0)


def _copy_run(run_dir: Path, dest: Path, leave_out: tuple[str, ...]) -> Path:
    shutil.copytree(run_dir, dest, ignore=lambda folder, names: [n for n in names if n in leave_out])
    return dest


def test_missing_files_are_named_with_the_stage_that_writes_them(tiny_run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dataset is also looked for below the working directory
    bare = _copy_run(tiny_run_dir, tmp_path / "no_model", ("model.pt",))
    with pytest.raises(PaeError, match="model/model.pt not found; the train stage writes it"):
        pae.load_run(bare, device="cpu")
    with pytest.raises(PaeError, match="not a folder"):
        pae.load_run(tmp_path / "nothing", device="cpu")
    # Outside the workflow's folder the dataset is not found: named, with the stage that writes it and the way out
    moved = pae.load_run(_copy_run(tiny_run_dir, tmp_path / "moved", ("latents.h5",)), device="cpu")
    with pytest.raises(PaeError, match=r"the run's dataset resources/data/fashion_mnist-\w+\.h5 .* found nowhere .*"
                                       "the prepare stage writes it; pass data=PATH"):
        moved.posterior(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    data = next((tiny_run_dir.parents[2] / "resources" / "data").glob("fashion_mnist*.h5"))
    moved = pae.load_run(tmp_path / "moved", device="cpu", data=data)
    with pytest.raises(PaeError, match="latents.h5 not found; the encode stage writes it"):
        moved.impute(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.ones(28, 28))
    mnist = next((tiny_run_dir.parents[2] / "resources" / "data").glob("mnist*.h5"))
    with pytest.raises(PaeError, match="not the dataset this run was trained on"):
        pae.load_run(tmp_path / "moved", device="cpu", data=mnist).data


def test_a_run_without_a_flow(tiny_run_dir, tmp_path, run):
    """Sampling, the flow's scores, pae_map and the posterior refuse, naming the flow file and its stage; encoding,
    reconstruction, N(0, I) samples, the reconstruction error and the encoder's imputation work, with the same
    numbers as with the flow."""
    data = next((tiny_run_dir.parents[2] / "resources" / "data").glob("fashion_mnist*.h5"))
    bare = pae.load_run(_copy_run(tiny_run_dir, tmp_path / "no_flow", ("flow.pt",)), device="cpu", data=data)
    assert bare.flow is None and bare.config["flow"] is None
    cause = "needs the run's flow, .* flow/flow.pt not found; the fit_flow stage writes it"
    test = run.data.split("test")[0][:5]
    for call in (lambda: bare.sample(4), lambda: bare.score(test, ["flow_logp"]),
                 lambda: bare.score(test, ["pae_marginal"]), lambda: bare.posterior(test),
                 lambda: bare.impute(test, torch.ones(28, 28), methods=["pae_map"])):
        with pytest.raises(PaeError, match=cause):
            call()
    assert list(bare.score(test)) == ["recon_mse"]
    assert torch.equal(bare.score(test)["recon_mse"], run.score(test, ["recon_mse"])["recon_mse"])
    assert torch.equal(bare.reconstruct(test), run.reconstruct(test))
    assert torch.equal(bare.prior_sample(3, seed=0).images, run.prior_sample(3, seed=0).images)
    mask = imputation_masks(0, torch.arange(5), (28, 28), 0.5)
    assert list(bare.impute(test, mask)) == ["encoder"]
    assert torch.equal(bare.impute(test, mask)["encoder"].pixels, run.impute(test, mask)["encoder"].pixels)

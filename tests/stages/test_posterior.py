"""The posterior stage end to end on tiny synthetic inputs: both outputs written, every corruption x method present,
finite figures, coverages in [0, 1], images of the stated shapes; bad inputs named."""
from __future__ import annotations

import json
import math

import h5py
import pytest
import torch

from pae.data.latents import write_latents
from pae.io import PaeError
from pae.stages.posterior import posterior
from tests.helpers import RUN_FILES_LATENT, write_run_files

SPEC = {"n_images": 4, "corruptions": ["center_box", "noise_sparse"], "box_fraction": 0.5, "sparse_ratio": 0.5,
        "noise_sigma": 0.1, "restarts": 2, "map_steps": 15, "map_lr": 0.05, "laplace": "gauss_newton",
        "posterior_samples": 6, "mcmc": True, "mcmc_images": 3, "mcmc_warmup": 8, "mcmc_max_tree_depth": 3, "figure_images": 2,
        "seed": 0}


@pytest.fixture
def run_files(tmp_path, synthetic_h5) -> dict:
    return write_run_files(tmp_path, synthetic_h5, "ae")


def _finite_numbers(obj) -> list[float]:
    if isinstance(obj, dict):
        return [v for value in obj.values() for v in _finite_numbers(value)]
    return [float(obj)] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def test_stage_writes_every_corruption_and_method(run_files):
    posterior(SPEC, **run_files)
    metrics = json.loads(run_files["out"].read_text())
    assert metrics["n_images"] == 4 and metrics["latent_dim"] == RUN_FILES_LATENT
    assert metrics["sigma_pix"]["min"] >= metrics["sigma_pix"]["floor"]
    assert set(metrics["corruptions"]) == set(SPEC["corruptions"])
    box, noisy = metrics["corruptions"]["center_box"], metrics["corruptions"]["noise_sparse"]
    # a ratio of pixel counts in float64: pytest's default rel=1e-6
    assert box["missing_fraction"] == pytest.approx(14 * 14 / 28 ** 2) and box["noise_sigma"] == 0.0
    assert noisy["noise_sigma"] == 0.1 and 0.3 < noisy["missing_fraction"] < 0.7
    for corruption in metrics["corruptions"].values():
        assert set(corruption["methods"]) == {"map", "laplace", "mcmc"}
        for name, m in corruption["methods"].items():
            assert all(math.isfinite(v) for v in _finite_numbers(m)), (name, m)
            assert m["mse_missing"] > 0 and m["mse_all"] > 0 and m["seconds"] > 0
            for region in ("coverage_missing", "coverage_all"):
                assert set(m[region]) == {"0.68", "0.95"}
                assert 0 <= m[region]["0.68"] <= m[region]["0.95"] <= 1
        assert corruption["methods"]["map"]["posterior_std_all"] == 0.0
        assert corruption["methods"]["laplace"]["posterior_std_missing"] > 0
        mcmc = corruption["methods"]["mcmc"]
        assert mcmc["step_size"] > 0 and 0 <= mcmc["acceptance_rate"] <= 1 and mcmc["divergences"] >= 0
        # NUTS ran on the first mcmc_images images; the Laplace figures of the same images are beside it
        assert mcmc["n_images"] == 3 and set(mcmc["laplace_same_images"]) >= {"mse_all", "coverage_all"}

    with h5py.File(run_files["panels_out"], "r") as f:
        for kind in SPEC["corruptions"]:
            g = f[kind]
            # Laplace and NUTS on the same images: the first figure_images (2), as NUTS covers 3
            assert list(g.attrs["methods"]) == ["laplace", "mcmc"]
            for name in ("truth", "corrupted", "map", "laplace/mean", "mcmc/mean"):
                assert g[name].shape == (2, 1, 28, 28) and g[name].dtype == "uint8", name
            for method in ("laplace", "mcmc"):
                assert g[f"{method}/samples"].shape == (2, 4, 1, 28, 28) and g[f"{method}/samples"].dtype == "uint8"
                std = g[f"{method}/std"][...]
                assert std.shape == (2, 1, 28, 28) and std.dtype == "float32" and (std >= 0).all()
            assert g["mask"].shape == (2, 1, 28, 28)
        box = f["center_box"]
        assert (box["corrupted"][:][box["mask"][:] == 0] == 128).all()  # missing pixels shown mid-grey


def test_stage_without_mcmc_and_with_the_exact_hessian(run_files):
    spec = SPEC | {"corruptions": ["noise"], "mcmc": False, "laplace": "hessian"}
    posterior(spec, **run_files)
    noise = json.loads(run_files["out"].read_text())["corruptions"]["noise"]
    assert set(noise["methods"]) == {"map", "laplace"} and noise["missing_fraction"] == 0.0
    assert noise["methods"]["laplace"]["curvature"] == "hessian"
    laplace_metrics = noise["methods"]["laplace"]
    assert laplace_metrics["mse_missing"] is None and laplace_metrics["coverage_missing"] is None
    # denoising: the noisy observation's error is the noise variance, the reconstructions are scored on all pixels
    # (sampling: a mean of 4 x 784 squared N(0, 0.1^2) draws is within sqrt(2 / 3136) = 2.5% (sd) of 0.01)
    assert noise["corrupted_mse_all"] == pytest.approx(0.01, rel=0.1)
    with h5py.File(run_files["panels_out"], "r") as f:
        assert list(f["noise"].attrs["methods"]) == ["laplace"] and "mcmc" not in f["noise"]


def test_stage_with_a_vad(tmp_path, synthetic_h5):
    """No encoder: the MAP starts from the VAD's test-time optimisation on the observed pixels."""
    files = write_run_files(tmp_path, synthetic_h5, "vad")
    posterior(SPEC | {"corruptions": ["left_half"], "mcmc": False}, **files)
    methods = json.loads(files["out"].read_text())["corruptions"]["left_half"]["methods"]
    assert set(methods) == {"map", "laplace"}
    assert all(math.isfinite(v) for m in methods.values() for v in _finite_numbers(m))


def test_latents_that_do_not_match_the_data_are_named(run_files, tmp_path):
    short = {"val": {"z": torch.zeros(3, RUN_FILES_LATENT), "labels": torch.zeros(3)}}
    write_latents(tmp_path / "short.h5", short, {})
    with pytest.raises(PaeError, match="short.h5: 3 val latents but .*synthetic.h5 has 20 val images"):
        posterior(SPEC, **run_files | {"latents_path": tmp_path / "short.h5"})
    assert not run_files["out"].exists() and not run_files["panels_out"].exists()


def test_the_classes_of_each_methods_samples_are_counted_with_the_domain_classifier(run_files, tmp_path):
    """With the dataset's domain classifier, posterior.json counts the classes the classifier gives each method's
    decoded samples, per image (the PAE paper's Fig. 6 measure: a posterior spreading over several digits), and
    records the images' labels; the counts add up to the samples (MAP: its one image); the other figures are those
    of a run without the classifier."""
    from pae.eval.classifier import DomainClassifier, save_classifier

    torch.manual_seed(0)
    classifier = DomainClassifier((1, 28, 28), n_classes=10, features=16)
    save_classifier(tmp_path / "classifier.pt", classifier, {"test_accuracy": 0.5, "task": "classes"})
    spec = SPEC | {"corruptions": ["center_box"]}
    posterior(spec, **run_files)
    without = json.loads(run_files["out"].read_text())
    posterior(spec, **run_files, classifier_path=tmp_path / "classifier.pt")
    metrics = json.loads(run_files["out"].read_text())
    assert metrics["classifier"] == {"file": str(tmp_path / "classifier.pt"), "test_accuracy": 0.5, "n_classes": 10}
    assert len(metrics["labels"]) == 4 and all(isinstance(v, int) for v in metrics["labels"])
    methods = metrics["corruptions"]["center_box"]["methods"]
    for method, n_images, n_samples in (("map", 4, 1), ("laplace", 4, 6), ("mcmc", 3, 6)):
        counts = methods[method]["classes"]
        assert len(counts) == n_images and all(len(c) == 10 and sum(c) == n_samples for c in counts), method
        # the rest of the method's figures as without the classifier (its loading leaves the random streams alone)
        assert {k: v for k, v in methods[method].items() if k not in ("classes", "seconds")} == \
            {k: v for k, v in without["corruptions"]["center_box"]["methods"][method].items() if k != "seconds"}
    # the panels carry the classes of the figure's images: the labels, each shown sample's class (the class the
    # counts give it: with one class per sample among the shown ones), and the counts over all samples
    with h5py.File(run_files["panels_out"]) as f:
        g = f["center_box"]
        n_fig = len(g["truth"])
        assert g["labels"][...].tolist() == metrics["labels"][:n_fig]
        with h5py.File(run_files["data_path"]) as data:
            assert json.loads(g.attrs["class_names"]) == json.loads(data.attrs["classes"])
        for method in ("laplace", "mcmc"):
            counts = g[f"{method}/class_counts"][...]
            assert counts.tolist() == methods[method]["classes"][:n_fig]
            shown = g[f"{method}/sample_classes"][...]
            assert shown.shape == g[f"{method}/samples"].shape[:2]
            assert all(counts[i, c] > 0 for i in range(n_fig) for c in shown[i])

    rotation = tmp_path / "rotation.pt"  # a one-class dataset's classifier (rotations): nothing to count
    save_classifier(rotation, DomainClassifier((1, 28, 28), n_classes=4, features=16), {"task": "rotation"})
    posterior(spec, **run_files, classifier_path=rotation)
    metrics = json.loads(run_files["out"].read_text())
    assert metrics["classifier"] is None and "classes" not in metrics["corruptions"]["center_box"]["methods"]["map"]

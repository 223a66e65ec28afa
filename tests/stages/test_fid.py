"""The sample-quality stages end to end on tiny synthetic inputs (an untrained AE, an untrained flow, their latents, a
one-epoch classifier): fid.json has every set, the protocol, intervals; FID is null with the reason when the
Inception weights are absent, computed with a random stand-in named in the spec (the path, not the values), and
inception=required without weights fails naming the file. The dataset's reference (fid_reference stage) is computed
once: the runs reading it send no real image through a feature extractor and write what a run computing it itself
writes; a reference of other inputs is refused naming what differs; both stages resume from their pieces."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pae.data.latents import write_latents
from pae.data.store import open_dataset, pick
from pae.eval.classifier import load_classifier, save_classifier
from pae.eval import fid as fid_lib
from pae.eval import inception, sample_quality
from pae.eval.generate import encode_images
from pae.flows import FlowSpec, build_flow, save_flow
from pae.io import PaeError
from pae.models import ModelSpec, build_model, save_model
from pae.eval.classifier import rotation_task
from pae.stages import fid as fid_stage
from pae.stages import fid_reference as reference_stage
from pae.stages import train_classifier as classifier_stage

CLASSIFIER = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "features": 8, "seed": 0}
FID = {"n_samples": 16, "fid_samples": None, "scalings": ["uint8"], "temperatures": [1.0, 0.5], "bootstrap": 5,
       "inception": "auto", "weights": None, "batch_size": 7, "seed": 0, "preprocessing": "pytorch"}
SETS = {"prior", "pae_T1.0", "pae_T0.5", "reconstructions", "train_vs_test"}


def _run_files(folder, data_path, seed: int) -> dict:
    """model.pt (an untrained AE drawn with `seed`), flow.pt and latents.h5 of a run on `data_path` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    mspec = ModelSpec("ae", "conv", (1, 28, 28), 4, (8, 16), 32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(mspec).eval()
    save_model(folder / "model.pt", model, mspec, {})
    data = open_dataset(data_path)
    splits = {s: {"z": encode_images(model, data.split(s)[0], "cpu"), "labels": data.split(s)[1]}
              for s in ("train", "val", "test")}
    write_latents(folder / "latents.h5", splits, {"model": "model.pt"})
    fspec = FlowSpec(kind="realnvp", layers=2, hidden=8, blocks=1, bins=4, tail_bound=3.0, epochs=1, patience=1,
                     batch_size=16, lr=1e-3)
    z = splits["train"]["z"]
    save_flow(folder / "flow.pt", build_flow(fspec, 4, z.mean(0), z.std(0)), fspec, {})
    return {"model_path": folder / "model.pt", "flow_path": folder / "flow.pt", "latents_path": folder / "latents.h5"}


@pytest.fixture
def inputs(tmp_path, synthetic_h5):
    """model.pt, flow.pt, latents.h5 and classifier.pt for the synthetic dataset (120/20/40 images of 1x28x28)."""
    classifier_stage.train_classifier(CLASSIFIER, synthetic_h5, tmp_path / "classifier.pt", "cpu")
    return {**_run_files(tmp_path, synthetic_h5, 0), "data_path": synthetic_h5,
            "classifier_path": tmp_path / "classifier.pt"}


def _reference(inputs, spec, out, partial=None):
    """The fid_reference stage for the dataset and classifier of `inputs` -> `out`."""
    reference_stage.fid_reference(spec, inputs["data_path"], inputs["classifier_path"], out, "cpu", partial=partial)
    return out


def _run(inputs, out, **spec):
    """The reference of the spec, then the fid stage reading it, as the workflow runs them."""
    spec = {**FID, **spec}
    reference = _reference(inputs, spec, out.with_name(f"{out.stem}-reference.h5"))
    fid_stage.fid(spec, **inputs, out=out, device="cpu", reference_path=reference)
    return json.loads(out.read_text())


def test_train_classifier_stage_writes_its_accuracies(inputs, synthetic_h5):
    _, meta = load_classifier(inputs["classifier_path"])
    assert 0 <= meta["test_accuracy"] <= 1 and meta["n_test"] == 40 and meta["features"] == CLASSIFIER["features"]
    assert meta["dataset_sha256"] == open_dataset(synthetic_h5).attrs["sha256"] and meta["spec"] == CLASSIFIER


def test_rotation_task_rotates_each_image_by_its_label():
    images = torch.zeros(40, 1, 6, 6, dtype=torch.uint8)
    images[:, 0, 0, 0] = 255  # a bright top-left corner: each rotation moves it to a different corner
    rotated, k = rotation_task(images, seed=0)
    corners = {0: (0, 0), 1: (5, 0), 2: (5, 5), 3: (0, 5)}  # torch.rot90 turns counter-clockwise
    for img, r in zip(rotated, k.tolist()):
        assert img[0, corners[r][0], corners[r][1]] == 255 and img.sum() == 255
    assert set(k.tolist()) == {0, 1, 2, 3}
    assert torch.equal(rotation_task(images, seed=0)[1], k)


def test_a_dataset_with_one_class_trains_the_rotation_task(tmp_path):
    from pae.data.store import write_dataset
    from tests.helpers import synthetic_raw
    raw = synthetic_raw()
    raw.train_labels[:], raw.test_labels[:], raw.classes = 0, 0, ["face"]
    for images in (raw.train_images, raw.test_images):  # an upright feature (blobs alone look the same rotated)
        images[:, :, :4, 4:24] = 200
    path = tmp_path / "one_class.h5"
    write_dataset(path, "image_folder", raw, val_size=20, split_seed=0)
    classifier_stage.train_classifier({**CLASSIFIER, "epochs": 20, "lr": 3e-3}, path, tmp_path / "classifier.pt", "cpu")
    _, meta = load_classifier(tmp_path / "classifier.pt")
    assert meta["task"].startswith("rotation") and meta["n_classes"] == 4
    assert meta["test_accuracy"] > 0.6  # a bar along the top: rotations are learnable; chance is 0.25


def test_fid_stage_without_inception_weights(inputs, tmp_path, no_inception_weights):
    state = torch.random.get_rng_state()
    result = _run(inputs, tmp_path / "fid.json")
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded by its own generators
    assert result["fid"] is None and result["fid_minmax"] is None
    assert result["kid"] is None and result["precision_recall"] is None  # they live in Inception's features
    assert str(no_inception_weights / inception.PYTORCH_FID_NAME) in result["fid_unavailable"]
    assert inception.TORCHSCRIPT_PIN in result["fid_unavailable"]
    assert set(result["domain_fd"]) == SETS and result["temperatures"] == [1.0, 0.5]
    for name, r in result["domain_fd"].items():
        assert r["value"] >= 0 and r["low"] <= r["high"] and (r["n_a"], r["n_b"], r["n_boot"]) == (16, 16, 5), name
    # The floor: train images against test images of one distribution beat an untrained decoder's outputs.
    floor = result["domain_fd"]["train_vs_test"]["value"]
    assert all(floor < r["value"] for name, r in result["domain_fd"].items() if name != "train_vs_test")
    p = result["protocol"]
    assert p["n_real"] == 16 and p["n_generated"] == dict.fromkeys(SETS, 16) and p["seed"] == 0
    assert p["bootstrap"]["n_boot"] == 5 and p["bootstrap"]["level"] == 0.95
    assert "percentile" in p["bootstrap"]["method"]
    assert p["classifier"]["file"] == str(inputs["classifier_path"]) and 0 <= p["classifier"]["test_accuracy"] <= 1
    assert "repeated to 3" in p["image_conversion"]["fid"] and "to_float" in p["image_conversion"]["domain_fd"]
    assert "uint8" in p["pixel_normalisation"] and p["inception"] == {"mode": "auto", "weights": None}
    assert "min-max" in p["image_conversion"]["fid_minmax"]
    assert p["nonfinite_latents"] == {"pae_T1.0": 0, "pae_T0.5": 0}
    again = _run(inputs, tmp_path / "again.json")
    assert again["domain_fd"] == result["domain_fd"]  # seeded: the same samples, the same resamples


def test_fid_stage_with_an_inception_stand_in(inputs, tmp_path, stand_in_weights, no_inception_weights):
    result = _run(inputs, tmp_path / "fid.json", n_samples=6, fid_samples=4, temperatures=[1.0], bootstrap=2,
                  inception="required", weights=str(stand_in_weights), scalings=["uint8", "minmax"])
    sets = {"prior", "pae_T1.0", "reconstructions", "train_vs_test"}
    assert result["fid_unavailable"] is None and set(result["fid"]) == set(result["domain_fd"]) == sets
    for key in ("fid", "fid_minmax"):  # on the first fid_samples images of each set
        for r in result[key].values():
            assert r["value"] >= 0 and r["low"] is not None and (r["n_a"], r["n_b"]) == (4, 4)
    assert all(r["n_a"] == 6 for r in result["domain_fd"].values())
    p = result["protocol"]
    assert p["n_fid"] == {"real": 4, "generated": dict.fromkeys(sets, 4)}
    assert p["inception"]["mode"] == "required" and p["inception"]["weights"] == {
        "path": str(stand_in_weights), "sha256": inception.sha256(stand_in_weights),
        "obtained": "config (eval.fid.weights)", "source": None, "source_sha256": None, "max_abs_diff": None}
    assert result["fid"] != result["domain_fd"] and result["fid_minmax"] != result["fid"]
    # KID, precision and recall beside every FID, in its features (4 vs 4 images: KID's subsets hold all 4)
    for metric in ("kid", "precision_recall"):
        assert set(result[metric]) == {"fid", "fid_minmax"} and all(set(v) == sets for v in result[metric].values())
    for key in ("fid", "fid_minmax"):
        for name in sets:
            k, pr = result["kid"][key][name], result["precision_recall"][key][name]
            assert (k["subset_size"], k["n_a"], k["n_b"], k["subsets"]) == (4, 4, 4, 100) and k["std"] >= 0
            assert 0 <= pr["precision"] <= 1 and 0 <= pr["recall"] <= 1 and pr["k"] == 3
    assert "unbiased MMD^2" in p["kid"] and "Kynkäänniemi" in p["precision_recall"]
    assert p["preprocessing"] == "pytorch" and "pytorch-fid's InceptionV3 resizes" in p["image_conversion"]["fid"]

    # The TensorFlow graph's path: the same images and domain FDs, other Inception inputs and so other FIDs
    tf = _run(inputs, tmp_path / "fid_tf.json", n_samples=6, fid_samples=4, temperatures=[1.0], bootstrap=2,
              inception="required", weights=str(stand_in_weights), preprocessing="tensorflow")
    assert tf["protocol"]["preprocessing"] == "tensorflow"
    assert "ResizeBilinear" in tf["protocol"]["image_conversion"]["fid"]
    assert tf["domain_fd"] == result["domain_fd"]
    assert all(tf["fid"][k]["value"] != result["fid"][k]["value"] for k in sets)


def test_inception_required_without_weights_fails_naming_the_file(inputs, tmp_path, no_inception_weights):
    with pytest.raises(PaeError, match="eval.fid.weights") as e:
        _run(inputs, tmp_path / "fid.json", inception="required", weights=str(tmp_path / "nope.pth"))
    assert str(tmp_path / "nope.pth") in str(e.value)
    assert not (tmp_path / "fid.json").exists()


def test_inception_never_and_no_bootstrap(inputs, tmp_path, stand_in_weights):
    result = _run(inputs, tmp_path / "fid.json", inception="never", weights=str(stand_in_weights), bootstrap=0)
    assert result["fid"] is None and "never" in result["fid_unavailable"]
    assert all(r["low"] is None and r["high"] is None for r in result["domain_fd"].values())


def test_a_classifier_of_another_dataset_is_refused(inputs, tmp_path):
    model, meta = load_classifier(inputs["classifier_path"])
    save_classifier(tmp_path / "other.pt", model, {**meta, "dataset_sha256": "0" * 64})
    with pytest.raises(PaeError, match="rerun the train_classifier stage"):
        _run({**inputs, "classifier_path": tmp_path / "other.pt"}, tmp_path / "fid.json")


def test_a_stopped_stage_resumes_from_its_finished_pieces(inputs, tmp_path, monkeypatch):
    """A stop in the third image set's bootstrap keeps the first two sets' distances and the third set's features in
    the partial folder (the real images' features and the floor are the reference's); the rerun extracts features of
    the one set left only and writes what an uninterrupted run writes. The folder goes once fid.json is written, and
    pieces of other inputs are not reused."""
    spec = {**FID, "inception": "never"}
    whole = _run(inputs, tmp_path / "whole.json", inception="never")
    reference = tmp_path / "whole-reference.h5"
    partial = tmp_path / "checkpoint" / "fid"
    real_bootstrap = _stop_in_the_bootstrap(monkeypatch, 3)  # the third set's (one distance per set)
    with pytest.raises(KeyboardInterrupt):
        fid_stage.fid(spec, **inputs, out=tmp_path / "fid.json", device="cpu", reference_path=reference,
                      partial=partial)
    assert not (tmp_path / "fid.json").exists()
    assert sorted(p.name for p in partial.iterdir()) == ["features-pae_T0.5-domain_fd.npy", "fingerprint.txt",
                                                         "set-pae_T1.0-domain_fd.json", "set-prior-domain_fd.json"]
    monkeypatch.setattr(fid_lib, "frechet_bootstrap", real_bootstrap)
    extracted = _count_classifier_passes(monkeypatch)
    fid_stage.fid(spec, **inputs, out=tmp_path / "fid.json", device="cpu", reference_path=reference, partial=partial)
    assert len(extracted) == 1  # reconstructions; not the real images nor the floor, the sets done, pae_T0.5
    resumed = json.loads((tmp_path / "fid.json").read_text())
    assert resumed == whole and not partial.exists()

    partial.mkdir(parents=True)
    (partial / "fingerprint.txt").write_text("other inputs")
    (partial / "set-prior-domain_fd.json").write_text("{}")
    extracted.clear()
    fid_stage.fid(spec, **inputs, out=tmp_path / "again.json", device="cpu", reference_path=reference,
                  partial=partial)
    assert json.loads((tmp_path / "again.json").read_text()) == whole and len(extracted) == 4  # the run's sets


def test_a_stopped_reference_resumes_from_its_finished_pieces(inputs, tmp_path, monkeypatch):
    """A stop in the floor's bootstrap keeps the real images' and the floor's features; the rerun passes no image
    through the classifier, writes the uninterrupted reference and removes its pieces. Nothing is written at the
    reference's path before it is complete."""
    spec = {**FID, "inception": "never"}
    whole = sample_quality.read_reference(_reference(inputs, spec, tmp_path / "whole.h5"))
    partial = tmp_path / "ref.partial"
    real_bootstrap = _stop_in_the_bootstrap(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _reference(inputs, spec, tmp_path / "ref.h5", partial)
    assert not (tmp_path / "ref.h5").exists() and not list(tmp_path.glob(".ref.h5*"))
    assert sorted(p.name for p in partial.iterdir()) == ["features-train_vs_test-domain_fd.npy", "fingerprint.txt",
                                                         "real-domain_fd.npy"]
    monkeypatch.setattr(fid_lib, "frechet_bootstrap", real_bootstrap)
    extracted = _count_classifier_passes(monkeypatch)
    resumed = sample_quality.read_reference(_reference(inputs, spec, tmp_path / "ref.h5", partial))
    assert extracted == [] and not partial.exists()
    assert resumed.floor == whole.floor and all(np.array_equal(resumed.features[k], whole.features[k])
                                                for k in whole.features)


def _count_classifier_passes(monkeypatch) -> list:
    """Each call of the domain classifier's feature extractor appends its images to the returned list."""
    real_features, extracted = sample_quality.classifier_features, []
    monkeypatch.setattr(sample_quality, "classifier_features",
                        lambda model, images, *a: extracted.append(images) or real_features(model, images, *a))
    return extracted


def _stop_in_the_bootstrap(monkeypatch, n: int):
    """The n-th call of frechet_bootstrap raises KeyboardInterrupt (a stop); returns the real function."""
    real_bootstrap, calls = fid_lib.frechet_bootstrap, []

    def stopping(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_bootstrap(*args, **kwargs)

    monkeypatch.setattr(fid_lib, "frechet_bootstrap", stopping)
    return real_bootstrap


def test_a_stop_between_the_scalings_keeps_the_plain_pass(inputs, tmp_path, monkeypatch, stand_in_weights,
                                                         no_inception_weights):
    """A stop in the bootstrap of the first set's min-max FID keeps that set's features; with the min-max features
    lost too, the rerun sends through Inception only the images the stretch changes (the plain pass is read back),
    and the result is the uninterrupted run's."""
    spec = {**FID, "n_samples": 6, "temperatures": [1.0], "bootstrap": 2, "inception": "required",
            "weights": str(stand_in_weights), "scalings": ["uint8", "minmax"]}
    whole = tmp_path / "whole.json"
    fid_stage.fid(spec, **inputs, out=whole, device="cpu")  # the reference computed in the stage, not kept
    reference = _reference(inputs, spec, tmp_path / "reference.h5")
    partial = tmp_path / "checkpoint" / "fid"
    real_bootstrap = _stop_in_the_bootstrap(monkeypatch, 3)  # the prior's: domain_fd, fid, then fid_minmax
    with pytest.raises(KeyboardInterrupt):
        fid_stage.fid(spec, **inputs, out=tmp_path / "fid.json", device="cpu", reference_path=reference,
                      partial=partial)
    kept = sorted(p.name for p in partial.iterdir() if p.name.startswith(("features", "set")))
    assert kept == ["features-prior-domain_fd.npy", "features-prior-fid.npy", "features-prior-fid_minmax.npy",
                    "set-prior-domain_fd.json", "set-prior-fid.json"]
    (partial / "features-prior-fid_minmax.npy").unlink()
    kept_plain = np.load(partial / "features-prior-fid.npy")
    monkeypatch.setattr(fid_lib, "frechet_bootstrap", real_bootstrap)
    remembered = []
    real_remember = fid_lib.InceptionFeatures.remember
    monkeypatch.setattr(fid_lib.InceptionFeatures, "remember",
                        lambda self, images, f: remembered.append(f) or real_remember(self, images, f))
    fid_stage.fid(spec, **inputs, out=tmp_path / "fid.json", device="cpu", reference_path=reference,
                  partial=partial)
    # remembered first: the prior's plain features read back from its piece, so the stretched pass sends only the
    # changed images through (tests/eval/test_fid.py)
    assert np.array_equal(remembered[0], kept_plain)
    assert json.loads((tmp_path / "fid.json").read_text()) == json.loads(whole.read_text())
    assert not partial.exists()


def test_the_runs_of_a_dataset_compute_no_real_image_features(inputs, tmp_path, monkeypatch, stand_in_weights,
                                                             no_inception_weights, synthetic_h5):
    """The fid_reference stage sends the real test images and the floor's train images through the domain classifier
    and Inception (both scalings), once; two runs of the dataset (two models) reading its reference send only their
    own sets' images (prior, pae_T1.0, reconstructions) and none of those, and share its floor. (That a
    run reading the reference writes what a run computing it itself writes: the test above.)"""
    spec = {**FID, "n_samples": 8, "fid_samples": 4, "temperatures": [1.0], "inception": "required",
            "weights": str(stand_in_weights), "scalings": ["uint8", "minmax"]}  # 4 images: precision's k + 1
    runs = [inputs, {**inputs, **_run_files(tmp_path / "second", synthetic_h5, 1)}]

    data = open_dataset(synthetic_h5)
    test, train = data.split("test")[0], data.split("train")[0]
    real, floor = test[pick(len(test), 8, 0)], train[pick(len(train), 8, 1)]
    dataset_images = {bytes(x.numpy()) for images in (real, floor, fid_lib.minmax_per_image(real[:4]),
                                                       fid_lib.minmax_per_image(floor[:4])) for x in images}
    classified = _count_classifier_passes(monkeypatch)
    real_inception, through_inception = fid_lib.inception_features, []
    monkeypatch.setattr(fid_lib, "inception_features", lambda net, images, *a, **k: (
        through_inception.append(images) or real_inception(net, images, *a, **k)))

    def dataset_images_in(calls) -> int:
        return sum(bytes(x.numpy()) in dataset_images for images in calls for x in images)

    reference = _reference(inputs, spec, tmp_path / "reference.h5")
    assert dataset_images_in(classified) == 16 and len(classified) == 2  # real, floor: all 8 of each
    assert dataset_images_in(through_inception) >= 8  # the first 4 of each; the stretch adds those it changes
    results = []
    for i, run in enumerate(runs):
        classified.clear(), through_inception.clear()
        fid_stage.fid(spec, **run, out=tmp_path / f"run{i}.json", device="cpu", reference_path=reference)
        assert dataset_images_in(classified) == 0 and dataset_images_in(through_inception) == 0
        assert len(classified) == 3  # prior, pae_T1.0, reconstructions
        results.append(json.loads((tmp_path / f"run{i}.json").read_text()))
    for key in ("domain_fd", "fid", "fid_minmax"):  # one floor; the runs' own sets differ
        assert results[0][key]["train_vs_test"] == results[1][key]["train_vs_test"]
        assert results[0][key]["prior"] != results[1][key]["prior"]


def test_a_reference_of_other_inputs_is_refused_naming_what_differs(inputs, tmp_path, stand_in_weights,
                                                                    no_inception_weights):
    reference = _reference(inputs, {**FID, "inception": "never"}, tmp_path / "reference.h5")

    def refused(match, spec=None, reference_path=reference, **files):
        with pytest.raises(PaeError, match=match) as e:
            fid_stage.fid({**FID, "inception": "never", **(spec or {})}, **{**inputs, **files}, out=tmp_path / "f.json",
                          device="cpu", reference_path=reference_path)
        assert not (tmp_path / "f.json").exists()
        return str(e.value)

    # other eval.fid settings (the temperatures are the run's own: not compared)
    message = refused(r"eval\.fid\.n_samples 16 \(this run: 12\); eval\.fid\.seed 0 \(this run: 1\)",
                      {"n_samples": 12, "seed": 1, "temperatures": [0.7]})
    assert message.startswith(f"{reference}: an FID reference made from other inputs") and "temperatures" not in message
    assert "rerun the fid_reference stage" in message
    # a run with Inception weights, the reference made without
    message = refused("Inception weights sha256 none", {"inception": "required", "weights": str(stand_in_weights)})
    assert inception.sha256(stand_in_weights) in message and "eval.fid.inception 'never'" in message
    # another domain classifier of the same dataset
    model, meta = load_classifier(inputs["classifier_path"])
    save_classifier(tmp_path / "other.pt", model, {**meta, "test_accuracy": 0.0})
    refused(f"domain classifier sha256 {inception.sha256(inputs['classifier_path'])}",
            classifier_path=tmp_path / "other.pt")
    # not a reference at all, or none
    refused("not an FID reference \\(format 'pae-latents/1'", reference_path=inputs["latents_path"])
    refused("FID reference not found \\(the fid_reference stage writes it\\)", reference_path=tmp_path / "none.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    refused("not a readable FID reference", reference_path=tmp_path / "broken.h5")
    # the same settings but the temperatures: accepted
    fid_stage.fid({**FID, "inception": "never", "temperatures": [0.7]}, **inputs, out=tmp_path / "f.json",
                  device="cpu", reference_path=reference)
    assert set(json.loads((tmp_path / "f.json").read_text())["domain_fd"]) == {"prior", "pae_T0.7",
                                                                              "reconstructions", "train_vs_test"}


def test_the_reference_stores_float32_features_exactly_and_its_settings(inputs, tmp_path):
    spec = {**FID, "inception": "never"}
    path = _reference(inputs, spec, tmp_path / "reference.h5")
    import h5py
    with h5py.File(path) as f:
        assert f["real/domain_fd"].dtype == np.float32 and f.attrs["format"] == sample_quality.REFERENCE_FORMAT
    ref = sample_quality.read_reference(path)
    assert ref.features["domain_fd"].dtype == np.float64 and ref.features["domain_fd"].shape == (16, 8)
    assert ref.spec == {k: v for k, v in spec.items() if k != "temperatures"} and ref.n_real == 16
    assert ref.dataset_sha256 == open_dataset(inputs["data_path"]).attrs["sha256"] and ref.weights is None
    assert set(ref.floor) == {"domain_fd"} and ref.floor["domain_fd"]["n_generated"] == 16
    # features a float32 array cannot hold exactly are kept in float64
    assert sample_quality._compact(np.array([0.1])).dtype == np.float64
    assert sample_quality._compact(np.array([0.5])).dtype == np.float32

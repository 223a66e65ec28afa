"""The domain classifier: accuracy on real MNIST digits, best-epoch selection, seeded training, save/load round trip,
clear errors for foreign files and unlabelled data, and the domain Fréchet distance telling a degraded set from a
second sample of the same images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pae.data.store import open_dataset, write_dataset
from pae.eval.classifier import classifier_features, load_classifier, save_classifier, train_classifier
from pae.eval.fid import frechet_bootstrap
from pae.io import PaeError, torch_save
from tests.helpers import synthetic_raw

# 3 epochs at batch 64 on 3,500 digits: ~2 s on one CPU thread, test accuracy 0.954 (seed 0) when measured.
FAST = {"epochs": 3, "batch_size": 64, "lr": 3e-3, "features": 32, "seed": 0}


def _splits(data):
    return data.split("train"), data.split("val"), data.split("test")


@pytest.fixture(scope="module")
def mnist_classifier(mnist_5k_h5):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped, so outside conftest's one_thread
    try:
        data = open_dataset(mnist_5k_h5)
        model, meta = train_classifier(*_splits(data), 10, FAST, "cpu")
    finally:
        torch.set_num_threads(threads)
    return model, meta, data


def test_reaches_high_accuracy_on_mnist_and_keeps_the_best_epoch(mnist_classifier):
    model, meta, data = mnist_classifier
    assert meta["test_accuracy"] > 0.9 and meta["train_accuracy"] > 0.9
    vals = [h["val_accuracy"] for h in meta["history"]]
    assert meta["val_accuracy"] == max(vals) and vals[meta["best_epoch"] - 1] == max(vals)
    assert (meta["n_train"], meta["n_val"], meta["n_test"]) == (3500, 500, 1000)
    assert meta["n_classes"] == 10 and meta["features"] == FAST["features"] and meta["epochs"] == FAST["epochs"]
    feats = classifier_features(model, data.split("test")[0][:7], batch_size=3)
    assert feats.shape == (7, FAST["features"]) and feats.dtype == np.float64 and (feats >= 0).all()  # after ReLU


def test_save_load_gives_identical_features(mnist_classifier, tmp_path):
    model, meta, data = mnist_classifier
    save_classifier(tmp_path / "classifier.pt", model, meta)
    loaded, loaded_meta = load_classifier(tmp_path / "classifier.pt")
    images = data.split("test")[0][:50]
    np.testing.assert_array_equal(classifier_features(model, images), classifier_features(loaded, images))
    assert loaded_meta["test_accuracy"] == meta["test_accuracy"]


def test_wrong_files_give_clear_errors(tmp_path):
    with pytest.raises(PaeError, match="classifier not found"):
        load_classifier(tmp_path / "absent.pt")
    torch_save(tmp_path / "flow.pt", {"kind": "flow", "state_dict": {}})
    with pytest.raises(PaeError, match="not a pae classifier file"):
        load_classifier(tmp_path / "flow.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PaeError, match="cannot read classifier"):
        load_classifier(tmp_path / "garbage.pt")
    torch_save(tmp_path / "bad.pt", {"kind": "classifier", "state_dict": {"w": torch.zeros(1)},
                                     "config": {"image_shape": [1, 8, 8], "n_classes": 2, "features": 4,
                                                "channels": [4, 4, 4]}})
    with pytest.raises(PaeError, match="do not fit its architecture"):
        load_classifier(tmp_path / "bad.pt")


def test_training_is_seeded_on_any_image_shape(tmp_path):
    """Three-channel, non-square images; two runs with one seed give the same weights, another seed does not."""
    path = tmp_path / "rgb.h5"
    write_dataset(path, "synthetic", synthetic_raw(n_train=60, n_test=20, shape=(3, 12, 20)), val_size=10,
                  split_seed=0)
    data = open_dataset(path)
    spec = {"epochs": 2, "batch_size": 16, "lr": 1e-3, "features": 8, "seed": 3}
    states = [train_classifier(*_splits(data), 10, s, "cpu")[0].state_dict()
              for s in (spec, spec, {**spec, "seed": 4})]
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], rtol=0, atol=0)
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0])
    model, _ = train_classifier(*_splits(data), 10, spec, "cpu")
    assert classifier_features(model, data.split("test")[0]).shape == (20, 8)
    with pytest.raises(ValueError, match="expected uint8 images"):
        classifier_features(model, data.split("test")[0][:, :1])


def test_a_single_class_cannot_train_it(tmp_path):
    raw = synthetic_raw(n_train=40, n_test=10)
    raw.train_labels[:], raw.test_labels[:] = 0, 0
    write_dataset(tmp_path / "one.h5", "synthetic", raw, val_size=10, split_seed=0)
    with pytest.raises(PaeError, match="at least two classes"):
        train_classifier(*_splits(open_dataset(tmp_path / "one.h5")), 1, FAST, "cpu")


def test_domain_fd_separates_degraded_images_from_a_second_sample(mnist_classifier):
    """Two halves of the test digits are close (the finite-n floor); a blurred or shifted half is far, beyond the
    halves' interval (measured: halves 8.3, blurred 44.6, shifted 83 with 32 features)."""
    model, _, data = mnist_classifier
    images = data.split("test")[0]
    a, b = images[:500], images[500:]
    blurred = F.avg_pool2d(a.float(), 3, 1, 1).round().to(torch.uint8)
    shifted = torch.roll(a, 3, dims=3)
    fb = classifier_features(model, b)
    halves = frechet_bootstrap(classifier_features(model, a), fb, 20, 0)
    for degraded in (blurred, shifted):
        d = frechet_bootstrap(classifier_features(model, degraded), fb, 20, 0)
        assert d["value"] > 3 * halves["value"] and d["low"] > halves["high"]

"""The domain classifier: a small CNN trained once per dataset to label its images, whose penultimate layer gives the
features of the *domain Fréchet distance* (the FID formula on these features instead of Inception's; a figure for
comparing samplers on one dataset, not comparable with published FIDs).

Inputs are uint8 images (N, C, H, W) of any shape, converted with `to_float` to [-0.5, 0.5] at their native size (no
resizing). Architecture: three 3x3 stride-2 convolutions with ReLU (32, 64, 64 channels), an adaptive average pool to
4x4 (the identity for 28x28 images, which the convolutions bring to 4x4), a fully connected layer of `features` units
with ReLU (the feature layer), then the class logits.
Training: Adam on the train split (cross-entropy), batches in a seeded order (BatchLoader with the spec's seed), seeded
initialisation; the epoch with the best validation accuracy is kept and its test accuracy measured.

A dataset with a single class (CelebA, a flat image folder) cannot train it on its labels: the train_classifier stage
(pae/stages/train_classifier.py) then trains it to tell four rotations of the images apart instead (`rotation_task`).
"""
from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pae.data.loader import BatchLoader
from pae.io import PaeError, progress_kwargs, torch_load, torch_save

log = logging.getLogger(__name__)

KIND = "classifier"  # the kind tag of the saved file
CHANNELS = (32, 64, 64)  # the convolution stages' widths
POOLED = 4  # the adaptive pool's output side
ROTATION_CLASSES = ["0", "90", "180", "270"]  # the labels of rotation_task: degrees


def rotation_task(images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A label-free task for datasets without classes (CelebA, a flat image folder): each image rotated by k x 90
    degrees, k drawn per image, to be predicted (Gidaris et al. 2018, whose features transfer well); square images."""
    k = torch.randint(0, 4, (len(images),), generator=torch.Generator().manual_seed(seed))
    out = images.clone()
    for r in range(1, 4):
        out[k == r] = torch.rot90(images[k == r], r, dims=(2, 3))
    return out, k


class DomainClassifier(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, features: int,
                 channels: tuple[int, ...] = CHANNELS):
        super().__init__()
        c = image_shape[0]
        self.config = {"image_shape": list(image_shape), "n_classes": n_classes, "features": features,
                       "channels": list(channels)}
        layers = []
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c = ch
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(POOLED), nn.Flatten(),
                                  nn.Linear(c * POOLED * POOLED, features), nn.ReLU())
        self.head = nn.Linear(features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (after its ReLU), (N, features), of images on the [-0.5, 0.5] scale."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
             batch_size: int = 1000) -> float:
    """Fraction of uint8 images whose most likely class is their label."""
    model.eval()
    labels = labels.to(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for x, idx in BatchLoader(images, batch_size, shuffle=False, device=device).batches(with_index=True):
        correct += (model(x).argmax(1) == labels[idx]).sum()
    return correct.item() / max(len(images), 1)


@torch.no_grad()
def sample_classes(model: DomainClassifier, samples_u8: torch.Tensor, device: torch.device | str = "cpu",
                   batch_size: int = 1000) -> torch.Tensor:
    """(S, N) most likely class of each of S samples of N images: uint8 samples (S, N, C, H, W), as the posterior
    stage decodes them (the classifier reads uint8 images, as it was trained)."""
    model.eval()
    s, n = samples_u8.shape[:2]
    loader = BatchLoader(samples_u8.reshape(s * n, *samples_u8.shape[2:]), batch_size, shuffle=False, device=device)
    return torch.cat([model(x).argmax(1).cpu() for x in loader]).view(s, n)


def class_counts(classes: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(N, n_classes) counts of each class over the S samples of each image, from sample_classes' (S, N)."""
    return torch.stack([torch.bincount(classes[:, i], minlength=n_classes) for i in range(classes.shape[1])])


def _check_labels(labels: torch.Tensor, n_classes: int, split: str) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise PaeError(f"{split} labels outside 0..{n_classes - 1}")


def train_classifier(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                     test: tuple[torch.Tensor, torch.Tensor], n_classes: int, spec: dict, device: torch.device
                     ) -> tuple[DomainClassifier, dict]:
    """Train on (uint8 images, labels) of the train split; keep the epoch with the best validation accuracy.
    spec: epochs, batch_size, lr, features, seed (config eval.classifier). Returns the model (eval mode, on `device`)
    and meta: train/val/test accuracy of the kept model, best_epoch, epochs, per-epoch history, seconds, n_classes,
    features, split sizes."""
    device = torch.device(device)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = train, val, test
    if n_classes < 2 or len(torch.unique(y_train)) < 2:
        raise PaeError(f"the domain classifier needs at least two classes in the train labels, found "
                       f"{len(torch.unique(y_train))} ({n_classes} declared): an unlabelled dataset has no domain "
                       "Fréchet distance (for an image folder, put each class's images in its own subfolder)")
    for split, y in (("train", y_train), ("val", y_val), ("test", y_test)):
        _check_labels(y, n_classes, split)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation, the caller's random stream left as it was
        torch.manual_seed(spec["seed"])
        model = DomainClassifier(tuple(x_train.shape[1:]), n_classes, spec["features"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    loader = BatchLoader(x_train, spec["batch_size"], shuffle=True, seed=spec["seed"], device=device)
    labels = y_train.to(device)
    t0 = time.perf_counter()
    best, best_state, best_epoch, history = -1.0, None, 0, []
    bar = tqdm(range(spec["epochs"]), desc="classifier", **progress_kwargs())
    for epoch in bar:
        model.train()
        loader.set_epoch(epoch)
        total = torch.zeros((), device=device)
        for x, idx in loader.batches(with_index=True):
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        val_acc = accuracy(model, x_val, y_val, device)
        history.append({"epoch": epoch + 1, "train_loss": total.item() / len(x_train), "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.4f}", val=f"{val_acc:.4f}", refresh=False)
        log.info("classifier epoch %d: train loss %.4f, val accuracy %.4f", epoch + 1, history[-1]["train_loss"],
                 val_acc)
        if val_acc > best:
            best, best_state, best_epoch = val_acc, copy.deepcopy(model.state_dict()), epoch + 1
    model.load_state_dict(best_state)
    model.eval()
    meta = {"train_accuracy": accuracy(model, x_train, y_train, device), "val_accuracy": best,
            "test_accuracy": accuracy(model, x_test, y_test, device), "best_epoch": best_epoch,
            "epochs": spec["epochs"], "history": history, "seconds": time.perf_counter() - t0,
            "n_classes": n_classes, "features": spec["features"],
            "n_train": len(x_train), "n_val": len(x_val), "n_test": len(x_test)}
    return model, meta


def save_classifier(path: str | os.PathLike, model: DomainClassifier, meta: dict) -> None:
    """Atomically write the classifier (its architecture, weights and meta) under the kind tag 'classifier'."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save(path, {"kind": KIND, "config": model.config, "state_dict": state, "meta": meta})


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[DomainClassifier, dict]:
    """(model in eval mode on `device`, meta); PaeError for a missing, damaged or foreign file."""
    obj = torch_load(path, KIND)
    cfg = obj["config"]
    with torch.random.fork_rng(devices=[]):  # the initial weights it draws are overwritten: leave the global RNG
        model = DomainClassifier(tuple(cfg["image_shape"]), cfg["n_classes"], cfg["features"], tuple(cfg["channels"]))
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise PaeError(f"{path}: classifier weights do not fit its architecture ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), obj.get("meta", {})


@torch.no_grad()
def classifier_features(model: DomainClassifier, images_u8: torch.Tensor, device: torch.device | str = "cpu",
                        batch_size: int = 500) -> np.ndarray:
    """(N, features) float64 penultimate-layer features of uint8 images (N, C, H, W), in order."""
    expected = tuple(model.config["image_shape"])
    if images_u8.dtype != torch.uint8 or tuple(images_u8.shape[1:]) != expected:
        raise ValueError(f"expected uint8 images (N, {', '.join(map(str, expected))}), got {images_u8.dtype} "
                         f"{tuple(images_u8.shape)}")
    model.eval()
    loader = BatchLoader(images_u8, batch_size, shuffle=False, device=device)
    out = [model.features(x).double().cpu() for x in tqdm(loader, desc="classifier features", **progress_kwargs())]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config["features"]))
